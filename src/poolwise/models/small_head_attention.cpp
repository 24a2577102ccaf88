// Exact softmax attention for tiny head dimensions on CPU (fp32, no mask).
//
// PyTorch's CPU flash kernel runs its inner products as small GEMM calls; with a head
// dimension of 2 (the AdaPool paper's d=16, 8 heads) the per-call overhead dominates. Here each
// (batch, head) pair is one task: keys and values are transposed to (E, N) so that every inner
// loop runs over the N keys with unit stride and vectorises, exp included (-ffast-math).
// The backward pass recomputes the probabilities from the saved log-sum-exp, as flash
// attention does, so no N x N matrix is stored.
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

// s[j] = scale * q . k_j for every key j, keys stored transposed as (E, N)
inline void row_scores(const float* q, const float* kt, float* s, int64_t n, int64_t e, float scale) {
  for (int64_t j = 0; j < n; ++j) s[j] = 0.f;
  for (int64_t c = 0; c < e; ++c) {
    const float qc = q[c] * scale;
    const float* kc = kt + c * n;
    for (int64_t j = 0; j < n; ++j) s[j] += qc * kc[j];
  }
}

void transpose_into(const float* src, float* dst, int64_t n, int64_t e) {
  for (int64_t j = 0; j < n; ++j)
    for (int64_t c = 0; c < e; ++c) dst[c * n + j] = src[j * e + c];
}

}  // namespace

std::vector<torch::Tensor> small_head_forward(torch::Tensor q, torch::Tensor k, torch::Tensor v,
                                              double scale) {
  TORCH_CHECK(q.dim() == 3 && q.sizes() == k.sizes() && q.sizes() == v.sizes(),
              "q, k, v must all be (BH, N, E)");
  TORCH_CHECK(q.scalar_type() == torch::kFloat32, "float32 only");
  q = q.contiguous(); k = k.contiguous(); v = v.contiguous();
  const int64_t bh = q.size(0), n = q.size(1), e = q.size(2);
  auto out = torch::empty_like(q);
  auto lse = torch::empty({bh, n}, q.options());
  const float* Q = q.data_ptr<float>();
  const float* K = k.data_ptr<float>();
  const float* V = v.data_ptr<float>();
  float* O = out.data_ptr<float>();
  float* L = lse.data_ptr<float>();
  const float sc = static_cast<float>(scale);
  at::parallel_for(0, bh, 1, [&](int64_t b0, int64_t b1) {
    std::vector<float> kt(e * n), vt(e * n), s(n);
    for (int64_t b = b0; b < b1; ++b) {
      const float* qb = Q + b * n * e;
      transpose_into(K + b * n * e, kt.data(), n, e);
      transpose_into(V + b * n * e, vt.data(), n, e);
      for (int64_t i = 0; i < n; ++i) {
        float* sp = s.data();
        row_scores(qb + i * e, kt.data(), sp, n, e, sc);
        float m = -std::numeric_limits<float>::infinity();
        for (int64_t j = 0; j < n; ++j) m = sp[j] > m ? sp[j] : m;
        float l = 0.f;
        for (int64_t j = 0; j < n; ++j) {
          sp[j] = exp_nonpositive(sp[j] - m);
          l += sp[j];
        }
        const float inv = 1.f / l;
        for (int64_t c = 0; c < e; ++c) {
          const float* vc = vt.data() + c * n;
          float acc = 0.f;
          for (int64_t j = 0; j < n; ++j) acc += sp[j] * vc[j];
          O[(b * n + i) * e + c] = acc * inv;
        }
        L[b * n + i] = m + std::log(l);
      }
    }
  });
  return {out, lse};
}

std::vector<torch::Tensor> small_head_backward(torch::Tensor grad_out, torch::Tensor q,
                                               torch::Tensor k, torch::Tensor v,
                                               torch::Tensor out, torch::Tensor lse,
                                               double scale) {
  grad_out = grad_out.contiguous(); q = q.contiguous(); k = k.contiguous(); v = v.contiguous();
  out = out.contiguous(); lse = lse.contiguous();
  const int64_t bh = q.size(0), n = q.size(1), e = q.size(2);
  auto dq = torch::empty_like(q), dk = torch::empty_like(k), dv = torch::empty_like(v);
  const float* Q = q.data_ptr<float>();
  const float* K = k.data_ptr<float>();
  const float* V = v.data_ptr<float>();
  const float* O = out.data_ptr<float>();
  const float* G = grad_out.data_ptr<float>();
  const float* L = lse.data_ptr<float>();
  float* DQ = dq.data_ptr<float>();
  float* DK = dk.data_ptr<float>();
  float* DV = dv.data_ptr<float>();
  const float sc = static_cast<float>(scale);
  at::parallel_for(0, bh, 1, [&](int64_t b0, int64_t b1) {
    std::vector<float> kt(e * n), vt(e * n), dkt(e * n), dvt(e * n), p(n), ds(n);
    for (int64_t b = b0; b < b1; ++b) {
      const float* qb = Q + b * n * e;
      const float* gb = G + b * n * e;
      const float* ob = O + b * n * e;
      transpose_into(K + b * n * e, kt.data(), n, e);
      transpose_into(V + b * n * e, vt.data(), n, e);
      std::fill(dkt.begin(), dkt.end(), 0.f);
      std::fill(dvt.begin(), dvt.end(), 0.f);
      for (int64_t i = 0; i < n; ++i) {
        float* pp = p.data();
        float* dsp = ds.data();
        row_scores(qb + i * e, kt.data(), pp, n, e, sc);
        const float li = L[b * n + i];
        for (int64_t j = 0; j < n; ++j) pp[j] = exp_nonpositive(pp[j] - li);
        float di = 0.f;  // rowsum(dO * O)
        for (int64_t c = 0; c < e; ++c) di += gb[i * e + c] * ob[i * e + c];
        for (int64_t j = 0; j < n; ++j) dsp[j] = 0.f;
        for (int64_t c = 0; c < e; ++c) {  // dP = dO V^T; dV += P^T dO
          const float gc = gb[i * e + c];
          const float* vc = vt.data() + c * n;
          float* dvc = dvt.data() + c * n;
          for (int64_t j = 0; j < n; ++j) {
            dsp[j] += gc * vc[j];
            dvc[j] += pp[j] * gc;
          }
        }
        for (int64_t j = 0; j < n; ++j) dsp[j] = pp[j] * (dsp[j] - di) * sc;
        for (int64_t c = 0; c < e; ++c) {  // dQ = dS K; dK += dS^T Q
          const float* kc = kt.data() + c * n;
          float* dkc = dkt.data() + c * n;
          const float qc = qb[i * e + c];
          float acc = 0.f;
          for (int64_t j = 0; j < n; ++j) {
            acc += dsp[j] * kc[j];
            dkc[j] += dsp[j] * qc;
          }
          DQ[(b * n + i) * e + c] = acc;
        }
      }
      for (int64_t j = 0; j < n; ++j)
        for (int64_t c = 0; c < e; ++c) {
          DK[(b * n + j) * e + c] = dkt[c * n + j];
          DV[(b * n + j) * e + c] = dvt[c * n + j];
        }
    }
  });
  return {dq, dk, dv};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &small_head_forward, "small-head attention forward");
  m.def("backward", &small_head_backward, "small-head attention backward");
}
