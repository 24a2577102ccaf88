// Exact softmax attention for tiny head dimensions on CPU (fp32, no mask).
//
// PyTorch's CPU flash kernel runs its inner products as small GEMM calls; with a head
// dimension of 2 (the AdaPool paper's d=16, 8 heads) the per-call overhead dominates. Here each
// (batch, head) pair is one task: keys and values are transposed to (E, N) so that every inner
// loop runs over the N keys with unit stride and vectorises, exp included (-ffast-math). The
// head dimension E (1-4) is a template parameter, so a query row takes two fused passes over
// the keys forward (scores and their maximum; then exp, normaliser and P V) and one backward
// (scores, probabilities, dV, dS, dQ and dK together), with everything per key in registers.
// The backward pass recomputes the probabilities from the saved log-sum-exp, as flash
// attention does, so no N x N matrix is stored.
//
// Tensors are read and written through strides: element (b, h, i, c) of a (B, H, N, E) operand
// sits at base + b * sb + h * sh + i * sn + c. So the encoder hands over its fused QKV
// projection (B, N, 3, H, E) as it is and gets the output as (B, N, H, E), ready for the output
// projection: no permute copies on either side.
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <limits>
#include <vector>

namespace {

// exp(x) for x <= 0 as 2^i * 2^f, i = round(x log2 e), |f| <= 1/2, with the degree-6 Taylor
// polynomial of 2^f (relative error < 2e-7); branch-free, so the loops that call it vectorise.
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

// Where one (B, H, N, E) operand lives: element (b, h, i, c) at p + b * sb + h * sh + i * sn + c.
struct Layout {
  int64_t sb, sh, sn;
  int64_t at(int64_t b, int64_t h) const { return b * sb + h * sh; }
};

template <int E>
void to_columns(const float* src, int64_t sn, float* dst, int64_t n) {
  for (int64_t j = 0; j < n; ++j)
#pragma GCC unroll 4
    for (int c = 0; c < E; ++c) dst[c * n + j] = src[j * sn + c];
}

template <int E>
void from_columns(const float* src, float* dst, int64_t sn, int64_t n) {
  for (int64_t j = 0; j < n; ++j)
#pragma GCC unroll 4
    for (int c = 0; c < E; ++c) dst[j * sn + c] = src[c * n + j];
}

// One (b, h) task forward: out rows and log-sum-exp of N queries over N keys.
template <int E>
void forward_task(const float* q, const float* k, const float* v, int64_t sn, float* o, int64_t so,
                  float* lse, int64_t n, float sc, float* __restrict__ kt, float* __restrict__ vt,
                  float* __restrict__ s) {
  to_columns<E>(k, sn, kt, n);
  to_columns<E>(v, sn, vt, n);
  for (int64_t i = 0; i < n; ++i) {
    float qs[E];
#pragma GCC unroll 4
    for (int c = 0; c < E; ++c) qs[c] = q[i * sn + c] * sc;
    float m = -std::numeric_limits<float>::infinity();
    for (int64_t j = 0; j < n; ++j) {  // pass 1: scores and their maximum
      float d = 0.f;
#pragma GCC unroll 4
      for (int c = 0; c < E; ++c) d += qs[c] * kt[c * n + j];
      s[j] = d;
      m = d > m ? d : m;
    }
    float l = 0.f, a0 = 0.f, a1 = 0.f, a2 = 0.f, a3 = 0.f;  // scalars: the loop vectorises
    for (int64_t j = 0; j < n; ++j) {  // pass 2: exp, normaliser and P V
      const float p = exp_nonpositive(s[j] - m);
      l += p;
      a0 += p * vt[j];
      if (E > 1) a1 += p * vt[n + j];
      if (E > 2) a2 += p * vt[2 * n + j];
      if (E > 3) a3 += p * vt[3 * n + j];
    }
    const float inv = 1.f / l, acc[4] = {a0, a1, a2, a3};
#pragma GCC unroll 4
    for (int c = 0; c < E; ++c) o[i * so + c] = acc[c] * inv;
    lse[i] = m + std::log(l);
  }
}

// One (b, h) task backward: dQ rows, and dK, dV accumulated over the queries.
template <int E>
void backward_task(const float* q, const float* k, const float* v, int64_t sn, const float* g, const float* o,
                   int64_t so, const float* lse, float* dq, float* dk, float* dv, int64_t n, float sc,
                   float* __restrict__ kt, float* __restrict__ vt, float* __restrict__ dkt,
                   float* __restrict__ dvt) {
  to_columns<E>(k, sn, kt, n);
  to_columns<E>(v, sn, vt, n);
  std::fill(dkt, dkt + E * n, 0.f);
  std::fill(dvt, dvt + E * n, 0.f);
  for (int64_t i = 0; i < n; ++i) {
    float qs[E], qd[E], gs[E];
    float di = 0.f;  // rowsum(dO * O)
#pragma GCC unroll 4
    for (int c = 0; c < E; ++c) {
      qd[c] = q[i * sn + c];
      qs[c] = qd[c] * sc;
      gs[c] = g[i * so + c];
      di += gs[c] * o[i * so + c];
    }
    const float li = lse[i];
    float d0 = 0.f, d1 = 0.f, d2 = 0.f, d3 = 0.f;  // dQ, as scalars so the loop vectorises
    for (int64_t j = 0; j < n; ++j) {
      float sj = 0.f, dp = 0.f;
#pragma GCC unroll 4
      for (int c = 0; c < E; ++c) {
        sj += qs[c] * kt[c * n + j];
        dp += gs[c] * vt[c * n + j];
      }
      const float p = exp_nonpositive(sj - li);
      const float ds = p * (dp - di) * sc;
#pragma GCC unroll 4
      for (int c = 0; c < E; ++c) {
        dvt[c * n + j] += p * gs[c];
        dkt[c * n + j] += ds * qd[c];
      }
      d0 += ds * kt[j];
      if (E > 1) d1 += ds * kt[n + j];
      if (E > 2) d2 += ds * kt[2 * n + j];
      if (E > 3) d3 += ds * kt[3 * n + j];
    }
    const float acc[4] = {d0, d1, d2, d3};
#pragma GCC unroll 4
    for (int c = 0; c < E; ++c) dq[i * sn + c] = acc[c];
  }
  from_columns<E>(dkt, dk, sn, n);
  from_columns<E>(dvt, dv, sn, n);
}

// Q, K, V (and dQ, dK, dV) share layout `in`; O and dO share `out`; LSE is (B, H, N).
struct Problem {
  int64_t B, H, N, E;
  Layout in, out;
};

template <int E>
void forward_all(const Problem& pr, const float* Q, const float* K, const float* V, float* O, float* L, float sc) {
  at::parallel_for(0, pr.B * pr.H, 1, [&](int64_t t0, int64_t t1) {
    std::vector<float> kt(E * pr.N), vt(E * pr.N), s(pr.N);
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t b = t / pr.H, h = t % pr.H, a = pr.in.at(b, h);
      forward_task<E>(Q + a, K + a, V + a, pr.in.sn, O + pr.out.at(b, h), pr.out.sn, L + t * pr.N, pr.N, sc,
                      kt.data(), vt.data(), s.data());
    }
  });
}

template <int E>
void backward_all(const Problem& pr, const float* Q, const float* K, const float* V, const float* G,
                  const float* O, const float* L, float* DQ, float* DK, float* DV, float sc) {
  at::parallel_for(0, pr.B * pr.H, 1, [&](int64_t t0, int64_t t1) {
    std::vector<float> kt(E * pr.N), vt(E * pr.N), dkt(E * pr.N), dvt(E * pr.N);
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t b = t / pr.H, h = t % pr.H, a = pr.in.at(b, h), ao = pr.out.at(b, h);
      backward_task<E>(Q + a, K + a, V + a, pr.in.sn, G + ao, O + ao, pr.out.sn, L + t * pr.N, DQ + a, DK + a,
                       DV + a, pr.N, sc, kt.data(), vt.data(), dkt.data(), dvt.data());
    }
  });
}

// Calls fn<E>(args...) for the run-time head dimension e.
#define BY_HEAD_DIM(e, fn, ...)                                            \
  switch (e) {                                                             \
    case 1: fn<1>(__VA_ARGS__); break;                                     \
    case 2: fn<2>(__VA_ARGS__); break;                                     \
    case 3: fn<3>(__VA_ARGS__); break;                                     \
    case 4: fn<4>(__VA_ARGS__); break;                                     \
    default: TORCH_CHECK(false, "head dimension must be 1 to 4; got ", e); \
  }

void check_float(const torch::Tensor& t, const char* name) {
  TORCH_CHECK(t.scalar_type() == torch::kFloat32 && t.is_contiguous() && t.device().is_cpu(), name,
              " must be a contiguous float32 CPU tensor");
}

}  // namespace

// q, k, v (BH, N, E) -> (out (BH, N, E), lse (BH, N)).
std::vector<torch::Tensor> small_head_forward(torch::Tensor q, torch::Tensor k, torch::Tensor v, double scale) {
  TORCH_CHECK(q.dim() == 3 && q.sizes() == k.sizes() && q.sizes() == v.sizes(), "q, k, v must all be (BH, N, E)");
  q = q.contiguous(); k = k.contiguous(); v = v.contiguous();
  check_float(q, "q"); check_float(k, "k"); check_float(v, "v");
  const int64_t bh = q.size(0), n = q.size(1), e = q.size(2);
  auto out = torch::empty_like(q);
  auto lse = torch::empty({bh, n}, q.options());
  const Problem pr{bh, 1, n, e, {n * e, 0, e}, {n * e, 0, e}};
  BY_HEAD_DIM(e, forward_all, pr, q.data_ptr<float>(), k.data_ptr<float>(), v.data_ptr<float>(),
                             out.data_ptr<float>(), lse.data_ptr<float>(), static_cast<float>(scale));
  return {out, lse};
}

// Gradients of small_head_forward: (dq, dk, dv).
std::vector<torch::Tensor> small_head_backward(torch::Tensor grad_out, torch::Tensor q, torch::Tensor k,
                                               torch::Tensor v, torch::Tensor out, torch::Tensor lse,
                                               double scale) {
  grad_out = grad_out.contiguous(); q = q.contiguous(); k = k.contiguous(); v = v.contiguous();
  out = out.contiguous(); lse = lse.contiguous();
  const int64_t bh = q.size(0), n = q.size(1), e = q.size(2);
  TORCH_CHECK(grad_out.sizes() == q.sizes() && out.sizes() == q.sizes() && lse.numel() == bh * n,
              "grad_out, out and lse do not match q");
  auto dq = torch::empty_like(q), dk = torch::empty_like(k), dv = torch::empty_like(v);
  const Problem pr{bh, 1, n, e, {n * e, 0, e}, {n * e, 0, e}};
  BY_HEAD_DIM(e, backward_all, pr, q.data_ptr<float>(), k.data_ptr<float>(), v.data_ptr<float>(),
                              grad_out.data_ptr<float>(), out.data_ptr<float>(), lse.data_ptr<float>(),
                              dq.data_ptr<float>(), dk.data_ptr<float>(), dv.data_ptr<float>(),
                              static_cast<float>(scale));
  return {dq, dk, dv};
}

// Self-attention straight from a fused projection qkv (B, N, 3, H, E): (out (B, N, H, E), lse (B, H, N)).
std::vector<torch::Tensor> packed_forward(torch::Tensor qkv, double scale) {
  TORCH_CHECK(qkv.dim() == 5 && qkv.size(2) == 3, "qkv must be (B, N, 3, H, E)");
  check_float(qkv, "qkv");
  const int64_t B = qkv.size(0), N = qkv.size(1), H = qkv.size(3), E = qkv.size(4);
  auto out = torch::empty({B, N, H, E}, qkv.options());
  auto lse = torch::empty({B, H, N}, qkv.options());
  const float* P = qkv.data_ptr<float>();
  const Problem pr{B, H, N, E, {N * 3 * H * E, E, 3 * H * E}, {N * H * E, E, H * E}};
  BY_HEAD_DIM(E, forward_all, pr, P, P + H * E, P + 2 * H * E, out.data_ptr<float>(), lse.data_ptr<float>(),
                             static_cast<float>(scale));
  return {out, lse};
}

// Gradient of packed_forward with respect to qkv, (B, N, 3, H, E).
torch::Tensor packed_backward(torch::Tensor grad_out, torch::Tensor qkv, torch::Tensor out, torch::Tensor lse,
                              double scale) {
  grad_out = grad_out.contiguous();
  check_float(qkv, "qkv"); check_float(out, "out"); check_float(lse, "lse");
  const int64_t B = qkv.size(0), N = qkv.size(1), H = qkv.size(3), E = qkv.size(4);
  TORCH_CHECK(grad_out.sizes() == out.sizes() && out.numel() == B * N * H * E && lse.numel() == B * H * N,
              "grad_out, out and lse do not match qkv");
  auto dqkv = torch::empty_like(qkv);
  const float* P = qkv.data_ptr<float>();
  float* D = dqkv.data_ptr<float>();
  const int64_t o = H * E;
  const Problem pr{B, H, N, E, {N * 3 * H * E, E, 3 * H * E}, {N * H * E, E, H * E}};
  BY_HEAD_DIM(E, backward_all, pr, P, P + o, P + 2 * o, grad_out.data_ptr<float>(), out.data_ptr<float>(),
                              lse.data_ptr<float>(), D, D + o, D + 2 * o, static_cast<float>(scale));
  return dqkv;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &small_head_forward, "small-head attention forward");
  m.def("backward", &small_head_backward, "small-head attention backward");
  m.def("packed_forward", &packed_forward, "self-attention from a fused (B, N, 3, H, E) projection");
  m.def("packed_backward", &packed_backward, "gradient of packed_forward with respect to qkv");
}
