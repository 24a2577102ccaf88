// Single-query attention pooling in one pass over the real tokens (inference, float32):
//   out[b] = sum_i softmax_i(x_i . u_b) x_i,  i over the real tokens of row b,
// with an online softmax (running maximum and normaliser), so the tokens are read once and no
// score vector is stored. Rows are independent: OpenMP splits them between threads.
#include <torch/extension.h>

#include <cmath>
#include <limits>

torch::Tensor attend(torch::Tensor table, torch::Tensor index, torch::Tensor offsets,
                     torch::Tensor counts, torch::Tensor u) {
  TORCH_CHECK(table.dtype() == torch::kFloat32 && u.dtype() == torch::kFloat32, "float32 only");
  TORCH_CHECK(table.is_contiguous() && u.is_contiguous(), "contiguous inputs only");
  const int64_t B = u.size(0), D = u.size(1);
  TORCH_CHECK(table.size(1) == D, "table and query widths differ");
  auto out = torch::zeros({B, D}, u.options());
  const float* X = table.data_ptr<float>();
  const int64_t* I = index.data_ptr<int64_t>();
  const int64_t* O = offsets.data_ptr<int64_t>();
  const int64_t* C = counts.data_ptr<int64_t>();
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

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) { m.def("attend", &attend, "single-query attention pooling"); }
