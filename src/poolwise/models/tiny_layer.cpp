// One whole pre-LN transformer layer for tiny widths on CPU (fp32, no attention mask):
// LN -> QKV -> softmax attention -> output projection -> residual -> LN -> Linear -> GELU ->
// Linear (-> dropout) -> residual, forward and backward.
//
// The AdaPool paper's RL policies are 3-8 wide with head dimension 1. At those widths every
// PyTorch op (a LayerNorm over 3 numbers, a GEMM with an inner dimension of 3, a permute copy)
// costs far more than its arithmetic. Here one task is one sequence, held feature-major
// (feature c of token i at [c * n + i]) so that every loop, attention included, runs over the
// tokens with unit stride and vectorises without horizontal reductions per token; parameter
// gradients are summed per chunk of sequences. Same function as PreLNLayer (exact GELU,
// LayerNorm with its eps) up to two approximations below float32 resolution: exp (relative
// error < 2e-7, as in small_head_attention.cpp) and erf (absolute error < 1.5e-7). The
// backward pass recomputes attention probabilities from the saved log-sum-exp and the
// normalised activations from the saved statistics.
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <limits>
#include <mutex>
#include <vector>

namespace {

using F32 = float;

inline float exp_nonpositive(float x) {
  x = x < -87.0f ? -87.0f : x;
  const float t = x * 1.4426950408889634f;
  const float fi = __builtin_floorf(t + 0.5f);
  const float f = t - fi;
  const float p = 1.0f + f * (0.69314718f + f * (0.24022652f + f * (0.05550411f +
                  f * (0.00961813f + f * (0.00133336f + f * 0.00015404f)))));
  const int bits = (static_cast<int>(fi) + 127) << 23;
  float scale;
  __builtin_memcpy(&scale, &bits, sizeof(scale));
  return p * scale;
}

// erf by Abramowitz & Stegun 7.1.26 (absolute error < 1.5e-7), branch-free so that the GELU
// loops vectorise (std::erf does not)
inline float erf_fast(float x) {
  const float a = x < 0.f ? -x : x;
  const float t = 1.f / (1.f + 0.3275911f * a);
  const float poly = t * (0.254829592f + t * (-0.284496736f + t * (1.421413741f +
                     t * (-1.453152027f + t * 1.061405429f))));
  const float r = 1.f - poly * exp_nonpositive(-a * a);
  return x < 0.f ? -r : r;
}

// Dropout keep-factor of element idx: a 32-bit integer hash of (seed, idx) -> [0, 1), kept with
// probability 1 - p and scaled by 1 / (1 - p). Counter-based, so the backward pass recomputes
// the forward's mask instead of storing it; the seed comes from torch's generator per call.
inline float keep_factor(uint32_t seed, uint32_t idx, float p, float inv_keep) {
  uint32_t h = idx * 0x9E3779B1u ^ seed;
  h ^= h >> 16; h *= 0x85EBCA6Bu; h ^= h >> 13; h *= 0xC2B2AE35u; h ^= h >> 16;
  const float u = static_cast<float>(h >> 8) * (1.0f / 16777216.0f);
  return u < p ? 0.f : inv_keep;
}

constexpr float kInvSqrt2 = 0.70710678118654752f;
constexpr float kInvSqrt2Pi = 0.39894228040143268f;

struct Dims {
  int64_t n, d, h, e, f;
  float scale, eps;
};

// parameter order: g1, b1, wqkv (3D x D), wproj (D x D), g2, b2, w1 (F x D), fb1 (F), w2 (D x F), fb2 (D)
struct Params {
  const F32 *g1, *b1, *wqkv, *wproj, *g2, *b2, *w1, *fb1, *w2, *fb2;
};

struct Offsets {
  int64_t g1, b1, wqkv, wproj, g2, b2, w1, fb1, w2, fb2, total;
  explicit Offsets(const Dims& s) {
    const int64_t d = s.d, f = s.f;
    g1 = 0; b1 = g1 + d; wqkv = b1 + d; wproj = wqkv + 3 * d * d; g2 = wproj + d * d; b2 = g2 + d;
    w1 = b2 + d; fb1 = w1 + f * d; w2 = fb1 + f; fb2 = w2 + d * f; total = fb2 + d;
  }
};

// ---- feature-major building blocks: x is (features, n) ------------------------------------

void ln_recompute(const F32* __restrict x, const F32* __restrict mu, const F32* __restrict rs, const F32* g,
                  const F32* b, int64_t d, int64_t n, F32* __restrict xhat, F32* __restrict h) {
  for (int64_t c = 0; c < d; ++c) {
    const float gc = g[c], bc = b[c];
    for (int64_t i = 0; i < n; ++i) {
      const float xh = (x[c * n + i] - mu[i]) * rs[i];
      xhat[c * n + i] = xh;
      h[c * n + i] = xh * gc + bc;
    }
  }
}

// LayerNorm over the d features of each of the n tokens: the statistics, then xhat and h (d, n)
void ln_forward(const F32* __restrict x, F32* __restrict xhat, F32* __restrict h, const F32* g, const F32* b,
                int64_t d, int64_t n, float eps, F32* __restrict mu, F32* __restrict rs) {
  const float inv_d = 1.f / static_cast<float>(d);
  for (int64_t i = 0; i < n; ++i) mu[i] = 0.f;
  for (int64_t c = 0; c < d; ++c)
    for (int64_t i = 0; i < n; ++i) mu[i] += x[c * n + i];
  for (int64_t i = 0; i < n; ++i) { mu[i] *= inv_d; rs[i] = 0.f; }
  for (int64_t c = 0; c < d; ++c)
    for (int64_t i = 0; i < n; ++i) { const float t = x[c * n + i] - mu[i]; rs[i] += t * t; }
  for (int64_t i = 0; i < n; ++i) rs[i] = 1.f / std::sqrt(rs[i] * inv_d + eps);
  ln_recompute(x, mu, rs, g, b, d, n, xhat, h);
}

// dx += dLN/dx . dh; dg, db accumulate; t (d, n), m1 and m2 (n) are scratch
void ln_backward(const F32* __restrict dh, const F32* __restrict xhat, const F32* __restrict rs, const F32* g,
                 int64_t d, int64_t n, F32* __restrict dx, F32* __restrict dg, F32* __restrict db,
                 F32* __restrict t, F32* __restrict m1, F32* __restrict m2) {
  const float inv_d = 1.f / static_cast<float>(d);
  for (int64_t i = 0; i < n; ++i) { m1[i] = 0.f; m2[i] = 0.f; }
  for (int64_t c = 0; c < d; ++c) {
    const float gc = g[c];
    float sg = 0.f, sb = 0.f;
    for (int64_t i = 0; i < n; ++i) {
      const float dhv = dh[c * n + i], xh = xhat[c * n + i];
      sg += dhv * xh;
      sb += dhv;
      const float tv = dhv * gc;
      t[c * n + i] = tv;
      m1[i] += tv;
      m2[i] += tv * xh;
    }
    dg[c] += sg;
    db[c] += sb;
  }
  for (int64_t c = 0; c < d; ++c)
    for (int64_t i = 0; i < n; ++i)
      dx[c * n + i] += rs[i] * (t[c * n + i] - m1[i] * inv_d - xhat[c * n + i] * m2[i] * inv_d);
}

// y (o, n) = W (o, in) x (in, n) [+ bias]
void linear(const F32* __restrict w, const F32* __restrict x, const F32* bias, F32* __restrict y, int64_t o,
            int64_t in, int64_t n) {
  for (int64_t r = 0; r < o; ++r) {
    F32* yr = y + r * n;
    const float br = bias ? bias[r] : 0.f;
    for (int64_t i = 0; i < n; ++i) yr[i] = br;
    for (int64_t c = 0; c < in; ++c) {
      const float wrc = w[r * in + c];
      const F32* xc = x + c * n;
      for (int64_t i = 0; i < n; ++i) yr[i] += wrc * xc[i];
    }
  }
}

// x (in, n) = W^T (in, o) g (o, n)
void linear_t(const F32* __restrict w, const F32* __restrict g, F32* __restrict x, int64_t o, int64_t in,
              int64_t n) {
  for (int64_t c = 0; c < in * n; ++c) x[c] = 0.f;
  for (int64_t r = 0; r < o; ++r) {
    const F32* gr = g + r * n;
    for (int64_t c = 0; c < in; ++c) {
      const float wrc = w[r * in + c];
      F32* xc = x + c * n;
      for (int64_t i = 0; i < n; ++i) xc[i] += wrc * gr[i];
    }
  }
}

// dW (o, in) += g (o, n) x (in, n)^T; db (o) += sum_i g
void weight_grad(F32* __restrict dw, F32* db, const F32* __restrict g, const F32* __restrict x, int64_t o,
                 int64_t in, int64_t n) {
  for (int64_t r = 0; r < o; ++r) {
    const F32* gr = g + r * n;
    for (int64_t c = 0; c < in; ++c) {
      const F32* xc = x + c * n;
      float acc = 0.f;
      for (int64_t i = 0; i < n; ++i) acc += gr[i] * xc[i];
      dw[r * in + c] += acc;
    }
    if (db) {
      float acc = 0.f;
      for (int64_t i = 0; i < n; ++i) acc += gr[i];
      db[r] += acc;
    }
  }
}

Params params_of(const std::vector<torch::Tensor>& p) {
  return {p[0].data_ptr<float>(), p[1].data_ptr<float>(), p[2].data_ptr<float>(), p[3].data_ptr<float>(),
          p[4].data_ptr<float>(), p[5].data_ptr<float>(), p[6].data_ptr<float>(), p[7].data_ptr<float>(),
          p[8].data_ptr<float>(), p[9].data_ptr<float>()};
}

Dims dims_of(const torch::Tensor& x, const std::vector<torch::Tensor>& p, int64_t heads, double eps) {
  TORCH_CHECK(x.dim() == 3 && x.scalar_type() == torch::kFloat32, "x must be (B, N, D) float32");
  TORCH_CHECK(p.size() == 10, "expected 10 parameter tensors");
  const int64_t d = x.size(2);
  TORCH_CHECK(heads > 0 && d % heads == 0, "heads must divide D");
  Dims s{x.size(1), d, heads, d / heads, p[6].size(0), 0.f, static_cast<float>(eps)};
  s.scale = 1.f / std::sqrt(static_cast<float>(s.e));
  return s;
}

}  // namespace

// Returns y (B, N, D) and, feature-major, what the backward pass needs: qkv (B, 3D, N),
// att (B, D, N), x1 (B, D, N), stats (B, 4, N: mean and 1/std of both norms), u (B, F, N:
// before GELU), lse (B, H, N).
std::vector<torch::Tensor> tiny_forward(torch::Tensor x, double drop, int64_t seed, std::vector<torch::Tensor> p,
                                        int64_t heads, double eps) {
  x = x.contiguous();
  for (auto& t : p) t = t.contiguous();
  const Dims s = dims_of(x, p, heads, eps);
  const Params w = params_of(p);
  const float pd = static_cast<float>(drop), inv_keep = drop > 0 ? static_cast<float>(1.0 / (1.0 - drop)) : 1.f;
  const uint32_t sd = static_cast<uint32_t>(seed);
  const int64_t b = x.size(0), n = s.n, d = s.d, f = s.f, h = s.h, e = s.e;
  auto y = torch::empty_like(x);
  auto qkv = torch::empty({b, 3 * d, n}, x.options());
  auto att = torch::empty({b, d, n}, x.options());
  auto x1 = torch::empty({b, d, n}, x.options());
  auto stats = torch::empty({b, 4, n}, x.options());
  auto u = torch::empty({b, f, n}, x.options());
  auto lse = torch::empty({b, h, n}, x.options());
  const F32* X = x.data_ptr<float>();
  F32 *Y = y.data_ptr<float>(), *QKV = qkv.data_ptr<float>(), *A = att.data_ptr<float>(),
      *X1 = x1.data_ptr<float>(), *S = stats.data_ptr<float>(), *U = u.data_ptr<float>(),
      *L = lse.data_ptr<float>();
  at::parallel_for(0, b, 1, [&](int64_t b0, int64_t b1) {
    std::vector<F32> xt(d * n), xhat(d * n), hb(d * n), qs(e * n), sc(n), m(n), l(n), acc(e * n), g(f * n),
        ff(d * n);
    for (int64_t bi = b0; bi < b1; ++bi) {
      const F32* xb = X + bi * n * d;
      F32* qb = QKV + bi * 3 * d * n;
      F32* ab = A + bi * d * n;
      F32* x1b = X1 + bi * d * n;
      F32* sb = S + bi * 4 * n;
      F32* ub = U + bi * f * n;
      F32* lb = L + bi * h * n;
      for (int64_t i = 0; i < n; ++i)
        for (int64_t c = 0; c < d; ++c) xt[c * n + i] = xb[i * d + c];
      ln_forward(xt.data(), xhat.data(), hb.data(), w.g1, w.b1, d, n, s.eps, sb, sb + n);
      linear(w.wqkv, hb.data(), nullptr, qb, 3 * d, d, n);
      for (int64_t hh = 0; hh < h; ++hh) {
        const F32* q = qb + hh * e * n;
        const F32* k = qb + (d + hh * e) * n;
        const F32* v = qb + (2 * d + hh * e) * n;
        for (int64_t c = 0; c < e * n; ++c) { qs[c] = q[c] * s.scale; acc[c] = 0.f; }
        for (int64_t i = 0; i < n; ++i) { m[i] = -std::numeric_limits<float>::infinity(); l[i] = 0.f; }
        if (e == 1) {  // head dimension 1 (the RL policies): max_j q k_j is q max(k) or q min(k)
          float kmax = k[0], kmin = k[0];
          for (int64_t j = 1; j < n; ++j) { kmax = k[j] > kmax ? k[j] : kmax; kmin = k[j] < kmin ? k[j] : kmin; }
          for (int64_t i = 0; i < n; ++i) m[i] = qs[i] >= 0.f ? qs[i] * kmax : qs[i] * kmin;
          for (int64_t j = 0; j < n; ++j) {
            const float kj = k[j], vj = v[j];
            for (int64_t i = 0; i < n; ++i) {
              const float pij = exp_nonpositive(qs[i] * kj - m[i]);
              l[i] += pij;
              acc[i] += pij * vj;
            }
          }
          for (int64_t i = 0; i < n; ++i) {
            ab[hh * n + i] = acc[i] / l[i];
            lb[hh * n + i] = m[i] + std::log(l[i]);
          }
          continue;
        }
        for (int64_t j = 0; j < n; ++j) {  // pass 1: the row maxima
          for (int64_t i = 0; i < n; ++i) sc[i] = 0.f;
          for (int64_t c = 0; c < e; ++c) {
            const float kc = k[c * n + j];
            for (int64_t i = 0; i < n; ++i) sc[i] += qs[c * n + i] * kc;
          }
          for (int64_t i = 0; i < n; ++i) m[i] = sc[i] > m[i] ? sc[i] : m[i];
        }
        for (int64_t j = 0; j < n; ++j) {  // pass 2: exp, normaliser and P V, all over i
          for (int64_t i = 0; i < n; ++i) sc[i] = 0.f;
          for (int64_t c = 0; c < e; ++c) {
            const float kc = k[c * n + j];
            for (int64_t i = 0; i < n; ++i) sc[i] += qs[c * n + i] * kc;
          }
          for (int64_t i = 0; i < n; ++i) {
            sc[i] = exp_nonpositive(sc[i] - m[i]);
            l[i] += sc[i];
          }
          for (int64_t c = 0; c < e; ++c) {
            const float vc = v[c * n + j];
            for (int64_t i = 0; i < n; ++i) acc[c * n + i] += sc[i] * vc;
          }
        }
        for (int64_t c = 0; c < e; ++c)
          for (int64_t i = 0; i < n; ++i) ab[(hh * e + c) * n + i] = acc[c * n + i] / l[i];
        for (int64_t i = 0; i < n; ++i) lb[hh * n + i] = m[i] + std::log(l[i]);
      }
      linear(w.wproj, ab, nullptr, x1b, d, d, n);
      for (int64_t c = 0; c < d * n; ++c) x1b[c] += xt[c];
      ln_forward(x1b, xhat.data(), hb.data(), w.g2, w.b2, d, n, s.eps, sb + 2 * n, sb + 3 * n);
      linear(w.w1, hb.data(), w.fb1, ub, f, d, n);
      for (int64_t c = 0; c < f * n; ++c) g[c] = 0.5f * ub[c] * (1.f + erf_fast(ub[c] * kInvSqrt2));
      linear(w.w2, g.data(), w.fb2, ff.data(), d, f, n);
      F32* yb = Y + bi * n * d;
      for (int64_t i = 0; i < n; ++i)
        for (int64_t c = 0; c < d; ++c) {
          const float keep = pd > 0 ? keep_factor(sd, static_cast<uint32_t>((bi * n + i) * d + c), pd, inv_keep) : 1.f;
          yb[i * d + c] = x1b[c * n + i] + ff[c * n + i] * keep;
        }
    }
  });
  return {y, qkv, att, x1, stats, u, lse};
}

// Returns dx (B, N, D) and the 10 parameter gradients (same order and shapes as the parameters).
std::vector<torch::Tensor> tiny_backward(torch::Tensor dy, torch::Tensor x, double drop, int64_t seed,
                                         torch::Tensor qkv, torch::Tensor att, torch::Tensor x1,
                                         torch::Tensor stats, torch::Tensor u, torch::Tensor lse,
                                         std::vector<torch::Tensor> p, int64_t heads, double eps) {
  dy = dy.contiguous();
  x = x.contiguous();
  for (auto& t : p) t = t.contiguous();
  const Dims s = dims_of(x, p, heads, eps);
  const Params w = params_of(p);
  const Offsets off(s);
  const float pd = static_cast<float>(drop), inv_keep = drop > 0 ? static_cast<float>(1.0 / (1.0 - drop)) : 1.f;
  const uint32_t sd = static_cast<uint32_t>(seed);
  const int64_t b = x.size(0), n = s.n, d = s.d, f = s.f, h = s.h, e = s.e;
  auto dx = torch::empty_like(x);
  std::vector<F32> grads(off.total, 0.f);
  std::mutex lock;
  const F32 *DY = dy.data_ptr<float>(), *X = x.data_ptr<float>(), *QKV = qkv.data_ptr<float>(),
            *A = att.data_ptr<float>(), *X1 = x1.data_ptr<float>(), *S = stats.data_ptr<float>(),
            *U = u.data_ptr<float>(), *L = lse.data_ptr<float>();
  F32* DX = dx.data_ptr<float>();
  at::parallel_for(0, b, 1, [&](int64_t b0, int64_t b1) {
    std::vector<F32> gl(off.total, 0.f);
    std::vector<F32> xt(d * n), dx1(d * n), df(d * n), g(f * n), dg(f * n), xhat(d * n), hb(d * n), dh(d * n),
        t(d * n), m1(n), m2(n), datt(d * n), dqkv(3 * d * n), qs(e * n), dq(e * n), sc(n), ds(n), di(n);
    for (int64_t bi = b0; bi < b1; ++bi) {
      const F32* qb = QKV + bi * 3 * d * n;
      const F32* ab = A + bi * d * n;
      const F32* x1b = X1 + bi * d * n;
      const F32* sb = S + bi * 4 * n;
      const F32* ub = U + bi * f * n;
      const F32* lb = L + bi * h * n;
      const F32* dyb = DY + bi * n * d;
      const F32* xb = X + bi * n * d;
      for (int64_t i = 0; i < n; ++i)
        for (int64_t c = 0; c < d; ++c) {
          const float v = dyb[i * d + c];
          const float keep = pd > 0 ? keep_factor(sd, static_cast<uint32_t>((bi * n + i) * d + c), pd, inv_keep) : 1.f;
          dx1[c * n + i] = v;
          df[c * n + i] = v * keep;
          xt[c * n + i] = xb[i * d + c];
        }
      // feed-forward half
      for (int64_t c = 0; c < f * n; ++c) g[c] = 0.5f * ub[c] * (1.f + erf_fast(ub[c] * kInvSqrt2));
      weight_grad(gl.data() + off.w2, gl.data() + off.fb2, df.data(), g.data(), d, f, n);
      linear_t(w.w2, df.data(), dg.data(), d, f, n);
      for (int64_t c = 0; c < f * n; ++c) {
        const float z = ub[c];
        dg[c] *= 0.5f * (1.f + erf_fast(z * kInvSqrt2)) + z * kInvSqrt2Pi * exp_nonpositive(-0.5f * z * z);
      }
      ln_recompute(x1b, sb + 2 * n, sb + 3 * n, w.g2, w.b2, d, n, xhat.data(), hb.data());
      weight_grad(gl.data() + off.w1, gl.data() + off.fb1, dg.data(), hb.data(), f, d, n);
      linear_t(w.w1, dg.data(), dh.data(), f, d, n);
      ln_backward(dh.data(), xhat.data(), sb + 3 * n, w.g2, d, n, dx1.data(), gl.data() + off.g2,
                  gl.data() + off.b2, t.data(), m1.data(), m2.data());
      // output projection
      weight_grad(gl.data() + off.wproj, nullptr, dx1.data(), ab, d, d, n);
      linear_t(w.wproj, dx1.data(), datt.data(), d, d, n);
      // attention, head by head, every loop over the queries i
      for (int64_t hh = 0; hh < h; ++hh) {
        const F32* q = qb + hh * e * n;
        const F32* k = qb + (d + hh * e) * n;
        const F32* v = qb + (2 * d + hh * e) * n;
        const F32* da = datt.data() + hh * e * n;
        const F32* a = ab + hh * e * n;
        F32* dk = dqkv.data() + (d + hh * e) * n;
        F32* dv = dqkv.data() + (2 * d + hh * e) * n;
        for (int64_t c = 0; c < e * n; ++c) { qs[c] = q[c] * s.scale; dq[c] = 0.f; }
        for (int64_t i = 0; i < n; ++i) di[i] = 0.f;
        for (int64_t c = 0; c < e; ++c)
          for (int64_t i = 0; i < n; ++i) di[i] += da[c * n + i] * a[c * n + i];
        if (e == 1) {  // head dimension 1: one loop over the queries per key
          const F32* li = lb + hh * n;
          for (int64_t j = 0; j < n; ++j) {
            const float kj = k[j], vj = v[j];
            float sdk = 0.f, sdv = 0.f;
            for (int64_t i = 0; i < n; ++i) {
              const float pij = exp_nonpositive(qs[i] * kj - li[i]);
              const float dsij = pij * (da[i] * vj - di[i]);
              sdv += pij * da[i];
              sdk += dsij * qs[i];
              dq[i] += dsij * kj;
            }
            dk[j] = sdk;
            dv[j] = sdv;
          }
        } else {
        for (int64_t j = 0; j < n; ++j) {
          for (int64_t i = 0; i < n; ++i) { sc[i] = 0.f; ds[i] = 0.f; }
          for (int64_t c = 0; c < e; ++c) {
            const float kc = k[c * n + j], vc = v[c * n + j];
            for (int64_t i = 0; i < n; ++i) {
              sc[i] += qs[c * n + i] * kc;
              ds[i] += da[c * n + i] * vc;
            }
          }
          for (int64_t i = 0; i < n; ++i) {
            sc[i] = exp_nonpositive(sc[i] - lb[hh * n + i]);  // p_ij
            ds[i] = sc[i] * (ds[i] - di[i]);
          }
          for (int64_t c = 0; c < e; ++c) {
            const float kc = k[c * n + j];
            float sdk = 0.f, sdv = 0.f;
            for (int64_t i = 0; i < n; ++i) {
              sdv += sc[i] * da[c * n + i];
              sdk += ds[i] * qs[c * n + i];
              dq[c * n + i] += ds[i] * kc;
            }
            dk[c * n + j] = sdk;
            dv[c * n + j] = sdv;
          }
        }
        }
        F32* dqo = dqkv.data() + hh * e * n;
        for (int64_t c = 0; c < e * n; ++c) dqo[c] = dq[c] * s.scale;
      }
      // first norm and the QKV projection
      ln_recompute(xt.data(), sb, sb + n, w.g1, w.b1, d, n, xhat.data(), hb.data());
      weight_grad(gl.data() + off.wqkv, nullptr, dqkv.data(), hb.data(), 3 * d, d, n);
      linear_t(w.wqkv, dqkv.data(), dh.data(), 3 * d, d, n);
      ln_backward(dh.data(), xhat.data(), sb + n, w.g1, d, n, dx1.data(), gl.data() + off.g1, gl.data() + off.b1,
                  t.data(), m1.data(), m2.data());
      F32* dxb = DX + bi * n * d;
      for (int64_t i = 0; i < n; ++i)
        for (int64_t c = 0; c < d; ++c) dxb[i * d + c] = dx1[c * n + i];
    }
    std::lock_guard<std::mutex> guard(lock);
    for (int64_t c = 0; c < off.total; ++c) grads[c] += gl[c];
  });
  std::vector<torch::Tensor> out{dx};
  const int64_t starts[] = {off.g1, off.b1, off.wqkv, off.wproj, off.g2, off.b2, off.w1, off.fb1, off.w2, off.fb2};
  for (int k = 0; k < 10; ++k) {
    auto tt = torch::empty_like(p[k]);
    std::copy(grads.begin() + starts[k], grads.begin() + starts[k] + p[k].numel(), tt.data_ptr<float>());
    out.push_back(tt);
  }
  return out;
}

// the dropout keep-factors of a (B, N, D) output for a seed (for tests)
torch::Tensor tiny_dropout_mask(int64_t b, int64_t n, int64_t d, double drop, int64_t seed) {
  auto out = torch::empty({b, n, d}, torch::kFloat32);
  F32* o = out.data_ptr<float>();
  const float inv_keep = static_cast<float>(1.0 / (1.0 - drop));
  for (int64_t idx = 0; idx < b * n * d; ++idx)
    o[idx] = keep_factor(static_cast<uint32_t>(seed), static_cast<uint32_t>(idx), static_cast<float>(drop), inv_keep);
  return out;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("dropout_mask", &tiny_dropout_mask, "dropout keep-factors for a seed");
  m.def("forward", &tiny_forward, "fused tiny pre-LN layer forward");
  m.def("backward", &tiny_backward, "fused tiny pre-LN layer backward");
}
