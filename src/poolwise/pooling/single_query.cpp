// Single-query attention pooling in one pass over the real tokens (inference, float32):
//   out[b] = sum_i softmax_i(x_i . u_b) x_i,  i over the real tokens of row b,
// with an online softmax (running maximum and normaliser), so the tokens are read once and no
// score vector is stored. Rows are independent: OpenMP splits them between threads.
#include <torch/extension.h>

#include <cmath>
#include <algorithm>
#include <limits>
#include <type_traits>
#include <vector>

// The real tokens: rows of a float32 (T, D) table, row b at index[offsets[b] : + counts[b]].
struct Rows {
  const float* X;
  const int64_t *I, *O, *C;
};

static Rows rows_of(const torch::Tensor& table, const torch::Tensor& index, const torch::Tensor& offsets,
                    const torch::Tensor& counts, const torch::Tensor& u) {
  TORCH_CHECK(table.dtype() == torch::kFloat32 && u.dtype() == torch::kFloat32, "float32 only");
  TORCH_CHECK(table.is_contiguous() && u.is_contiguous(), "contiguous inputs only");
  TORCH_CHECK(table.size(1) == u.size(-1), "table and query widths differ");
  return {table.data_ptr<float>(), index.data_ptr<int64_t>(), offsets.data_ptr<int64_t>(),
          counts.data_ptr<int64_t>()};
}

torch::Tensor attend(torch::Tensor table, torch::Tensor index, torch::Tensor offsets,
                     torch::Tensor counts, torch::Tensor u) {
  const Rows r = rows_of(table, index, offsets, counts, u);
  const float* X = r.X;  // plain pointers: OpenMP and C++17 lambdas cannot use structured bindings
  const int64_t *I = r.I, *O = r.O, *C = r.C;
  const int64_t B = u.size(0), D = u.size(1);
  auto out = torch::zeros({B, D}, u.options());
  const float* U = u.data_ptr<float>();
  float* Y = out.data_ptr<float>();
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t b = 0; b < B; ++b) {
    const float* ub = U + b * D;
    float* acc = Y + b * D;
    float m = -std::numeric_limits<float>::infinity(), l = 0.f;
    for (int64_t j = 0; j < C[b]; ++j) {
      const float* xi = X + I[O[b] + j] * D;
      float s = 0.f;
#pragma omp simd reduction(+ : s)
      for (int64_t k = 0; k < D; ++k) s += xi[k] * ub[k];
      if (s > m) {  // new maximum: rescale what was accumulated so far
        const float r = std::exp(m - s);
        l *= r;
#pragma omp simd
        for (int64_t k = 0; k < D; ++k) acc[k] *= r;
        m = s;
      }
      const float w = std::exp(s - m);
      l += w;
#pragma omp simd
      for (int64_t k = 0; k < D; ++k) acc[k] += w * xi[k];
    }
    if (l > 0.f) {  // an empty row stays zero; the pooler's empty policy decides the rest
      const float inv = 1.f / l;
#pragma omp simd
      for (int64_t k = 0; k < D; ++k) acc[k] *= inv;
    }
  }
  return out;
}

// Several heads, u (B, H, D) -> (B, H, D). Two passes per row instead of an online softmax: the
// first computes the row's (count, H) scores, the second adds the tokens into H accumulators
// with final weights (no rescaling of H*D accumulators). Both passes walk D in 16-float
// vectors and keep up to 8 heads' partial results in registers (GCC/Clang vector extensions:
// zmm registers with AVX-512, pairs of ymm otherwise), so each token chunk is loaded once per
// block of heads. The row's tokens are mostly still in L2/L3 for the second pass.
typedef float v16 __attribute__((vector_size(64)));

static inline v16 load16(const float* p) {
  v16 v;
  __builtin_memcpy(&v, p, sizeof(v));
  return v;
}

static inline float hsum(v16 v) {
  float s = 0.f;
  for (int i = 0; i < 16; ++i) s += v[i];
  return s;
}

// w[(h0 + h) * n + j] = x_j . u_{h0 + h} for HB heads starting at h0 (head-major scores).
template <int HB>
static void scores_block(const float* X, const int64_t* I, int64_t n, int64_t D, const float* ub,
                         int64_t H, int64_t h0, float* w) {
  const int64_t D16 = D / 16 * 16;
  int64_t j = 0;
  for (; j + 2 <= n; j += 2) {  // two tokens share every load of u
    const float* xa = X + I[j] * D;
    const float* xb = X + I[j + 1] * D;
    v16 acc[2 * HB] = {};
    for (int64_t k = 0; k < D16; k += 16) {
      const v16 va = load16(xa + k), vb = load16(xb + k);
      for (int h = 0; h < HB; ++h) {
        const v16 uv = load16(ub + (h0 + h) * D + k);
        acc[h] += va * uv;
        acc[HB + h] += vb * uv;
      }
    }
    for (int h = 0; h < HB; ++h) {
      float sa = hsum(acc[h]), sb = hsum(acc[HB + h]);
      for (int64_t k = D16; k < D; ++k) {
        sa += xa[k] * ub[(h0 + h) * D + k];
        sb += xb[k] * ub[(h0 + h) * D + k];
      }
      w[(h0 + h) * n + j] = sa;
      w[(h0 + h) * n + j + 1] = sb;
    }
  }
  for (; j < n; ++j) {
    const float* xi = X + I[j] * D;
    v16 acc[HB] = {};
    for (int64_t k = 0; k < D16; k += 16) {
      const v16 xv = load16(xi + k);
      for (int h = 0; h < HB; ++h) acc[h] += xv * load16(ub + (h0 + h) * D + k);
    }
    for (int h = 0; h < HB; ++h) {
      float s = hsum(acc[h]);
      for (int64_t k = D16; k < D; ++k) s += xi[k] * ub[(h0 + h) * D + k];
      w[(h0 + h) * n + j] = s;
    }
  }
}

// out[h0 + h] = sum_j w[(h0 + h) * n + j] * x_j for HB heads, 16 floats of D at a time.
template <int HB>
static void sums_block(const float* X, const int64_t* I, int64_t n, int64_t D, const float* w,
                       int64_t H, int64_t h0, float* out) {
  const int64_t D16 = D / 16 * 16;
  for (int64_t k = 0; k < D16; k += 16) {
    v16 acc[HB] = {};
    for (int64_t j = 0; j < n; ++j) {
      const v16 xv = load16(X + I[j] * D + k);
      for (int h = 0; h < HB; ++h) acc[h] += w[(h0 + h) * n + j] * xv;
    }
    for (int h = 0; h < HB; ++h) __builtin_memcpy(out + (h0 + h) * D + k, &acc[h], sizeof(v16));
  }
  for (int64_t k = D16; k < D; ++k)
    for (int h = 0; h < HB; ++h) {
      float s = 0.f;
      for (int64_t j = 0; j < n; ++j) s += w[(h0 + h) * n + j] * X[I[j] * D + k];
      out[(h0 + h) * D + k] = s;
    }
}

// Calls f(std::integral_constant<int, HB>, h0) over blocks of 8, then 4, 2 and 1 heads.
template <typename F>
static void by_head_blocks(int64_t H, F f) {
  int64_t h0 = 0;
  for (; h0 + 8 <= H; h0 += 8) f(std::integral_constant<int, 8>{}, h0);
  if (h0 + 4 <= H) { f(std::integral_constant<int, 4>{}, h0); h0 += 4; }
  if (h0 + 2 <= H) { f(std::integral_constant<int, 2>{}, h0); h0 += 2; }
  if (h0 < H) f(std::integral_constant<int, 1>{}, h0);
}

torch::Tensor attend_heads(torch::Tensor table, torch::Tensor index, torch::Tensor offsets,
                           torch::Tensor counts, torch::Tensor u) {
  TORCH_CHECK(u.dim() == 3, "query must be (B, H, D)");
  const Rows r = rows_of(table, index, offsets, counts, u);
  const float* X = r.X;  // plain pointers: OpenMP and C++17 lambdas cannot use structured bindings
  const int64_t *I = r.I, *O = r.O, *C = r.C;
  const int64_t B = u.size(0), H = u.size(1), D = u.size(2);
  auto out = torch::zeros({B, H, D}, u.options());
  const float* U = u.data_ptr<float>();
  float* Y = out.data_ptr<float>();
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t b = 0; b < B; ++b) {
    const int64_t n = C[b];
    if (n == 0) continue;  // an empty row stays zero; the pooler's empty policy decides the rest
    const int64_t* Ib = I + O[b];
    const float* ub = U + b * H * D;
    float* yb = Y + b * H * D;
    std::vector<float> w(n * H);
    by_head_blocks(H, [&](auto hb, int64_t h0) {
      scores_block<decltype(hb)::value>(X, Ib, n, D, ub, H, h0, w.data());
    });
    for (int64_t h = 0; h < H; ++h) {  // softmax over the row's tokens, per head (head-major w)
      float* wh = w.data() + h * n;
      float m = -std::numeric_limits<float>::infinity(), l = 0.f;
      for (int64_t j = 0; j < n; ++j) m = std::max(m, wh[j]);
#pragma omp simd reduction(+ : l)
      for (int64_t j = 0; j < n; ++j) {
        wh[j] = std::exp(wh[j] - m);
        l += wh[j];
      }
      const float inv = 1.f / l;
      for (int64_t j = 0; j < n; ++j) wh[j] *= inv;
    }
    by_head_blocks(H, [&](auto hb, int64_t h0) {
      sums_block<decltype(hb)::value>(X, Ib, n, D, w.data(), H, h0, yb);
    });
  }
  return out;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("attend", &attend, "single-query attention pooling");
  m.def("attend_heads", &attend_heads, "single-query attention pooling, several heads");
}
