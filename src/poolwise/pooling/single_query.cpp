// Single-query attention pooling over the real tokens (inference, float32):
//   out[b, h] = sum_i softmax_i(x_i . u_{b,h}) x_i,  i over the real tokens of row b.
// The kernel itself is in single_query_impl.inc, compiled here once per instruction set
// (AVX-512, AVX2+FMA, and the compiler's baseline) and chosen at run time from what the CPU
// reports, so one build serves every x86-64 CPU and a cached build copied to another machine
// still runs. Rows are independent: OpenMP splits them between threads.
#include <torch/extension.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

namespace generic {
#define VW 4
#define ACC_S 8
#define ACC_A 8
#define MAXH 4
#include "single_query_impl.inc"
#undef VW
#undef ACC_S
#undef ACC_A
#undef MAXH
}  // namespace generic

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define POOLWISE_X86_PATHS 1
#pragma GCC push_options
#pragma GCC target("avx2,fma")
namespace avx2 {
#define VW 8
#define ACC_S 12
#define ACC_A 12
#define MAXH 4
#include "single_query_impl.inc"
#undef VW
#undef ACC_S
#undef ACC_A
#undef MAXH
}  // namespace avx2
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,avx512dq,avx2,fma")
namespace avx512 {
#define VW 16
#define ACC_S 16
#define ACC_A 16
#define MAXH 8
#include "single_query_impl.inc"
#undef VW
#undef ACC_S
#undef ACC_A
#undef MAXH
}  // namespace avx512
#pragma GCC pop_options
#endif

// The instruction sets this CPU can run, best first.
std::vector<std::string> available_paths() {
  std::vector<std::string> paths;
#ifdef POOLWISE_X86_PATHS
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq")) paths.push_back("avx512");
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) paths.push_back("avx2");
#endif
  paths.push_back("generic");
  return paths;
}

// The path to run: "" = the best the CPU has; a path the CPU lacks is refused.
static std::string resolve(const std::string& path) {
  static const std::vector<std::string> ok = available_paths();
  if (path.empty()) return ok.front();
  TORCH_CHECK(std::find(ok.begin(), ok.end(), path) != ok.end(), "kernel path '", path,
              "' is not available on this CPU");
  return path;
}

static void check_padded(const torch::Tensor& x, const torch::Tensor& mask) {
  TORCH_CHECK(x.dim() == 3 && x.dtype() == torch::kFloat32 && x.is_contiguous(), "x must be contiguous float32 (B, N, D)");
  TORCH_CHECK(mask.numel() == 0 || (mask.dtype() == torch::kBool && mask.is_contiguous() && mask.dim() == 2 &&
                                    mask.size(0) == x.size(0) && mask.size(1) == x.size(1)),
              "mask must be a contiguous bool (B, N) tensor");
}

static torch::Tensor per_feature(const torch::Tensor& v, int64_t D, const char* what) {
  TORCH_CHECK(v.dtype() == torch::kFloat32 && (v.numel() == 1 || v.numel() == D), what,
              " must be float32 with 1 or D values");
  return v.reshape(-1).expand({D}).contiguous();
}

// query (B, H, D) -> (B, H, D) over the real tokens of an index table; path "" = the best the CPU has.
torch::Tensor attend_heads(torch::Tensor table, torch::Tensor index, torch::Tensor offsets, torch::Tensor counts,
                           torch::Tensor u, std::string path) {
  TORCH_CHECK(u.dim() == 3, "query must be (B, H, D)");
  TORCH_CHECK(table.dtype() == torch::kFloat32 && u.dtype() == torch::kFloat32, "float32 only");
  TORCH_CHECK(table.is_contiguous() && u.is_contiguous(), "contiguous inputs only");
  TORCH_CHECK(table.size(1) == u.size(2), "table and query widths differ");
  path = resolve(path);
  const int64_t B = u.size(0), H = u.size(1), D = u.size(2);
  auto out = torch::zeros({B, H, D}, u.options());
  const float* X = table.data_ptr<float>();
  const int64_t *I = index.data_ptr<int64_t>(), *O = offsets.data_ptr<int64_t>(), *C = counts.data_ptr<int64_t>();
  const float* U = u.data_ptr<float>();
  float* Y = out.data_ptr<float>();
#ifdef POOLWISE_X86_PATHS
  if (path == "avx512") { avx512::attend(X, I, O, C, nullptr, U, B, 0, H, D, Y); return out; }
  if (path == "avx2") { avx2::attend(X, I, O, C, nullptr, U, B, 0, H, D, Y); return out; }
#endif
  generic::attend(X, I, O, C, nullptr, U, B, 0, H, D, Y);
  return out;
}

// The same over padded x (B, N, D) and its bool keep-mask (an empty tensor: every token).
torch::Tensor attend_masked(torch::Tensor x, torch::Tensor mask, torch::Tensor u, std::string path) {
  check_padded(x, mask);
  TORCH_CHECK(u.dim() == 3 && u.dtype() == torch::kFloat32 && u.is_contiguous() && u.size(0) == x.size(0) &&
              u.size(2) == x.size(2), "query must be contiguous float32 (B, H, D)");
  path = resolve(path);
  const int64_t B = x.size(0), N = x.size(1), H = u.size(1), D = x.size(2);
  auto out = torch::zeros({B, H, D}, u.options());
  const bool* M = mask.numel() ? mask.data_ptr<bool>() : nullptr;
  const float *X = x.data_ptr<float>(), *U = u.data_ptr<float>();
  float* Y = out.data_ptr<float>();
#ifdef POOLWISE_X86_PATHS
  if (path == "avx512") { avx512::attend(X, nullptr, nullptr, nullptr, M, U, B, N, H, D, Y); return out; }
  if (path == "avx2") { avx2::attend(X, nullptr, nullptr, nullptr, M, U, B, N, H, D, Y); return out; }
#endif
  generic::attend(X, nullptr, nullptr, nullptr, M, U, B, N, H, D, Y);
  return out;
}

// out[b] = sum_t w_t x_t over the real tokens of row b; weights (T,) aligned with index.
torch::Tensor weighted_sum(torch::Tensor table, torch::Tensor index, torch::Tensor offsets, torch::Tensor counts,
                           torch::Tensor weights, std::string path) {
  TORCH_CHECK(table.dtype() == torch::kFloat32 && weights.dtype() == torch::kFloat32, "float32 only");
  TORCH_CHECK(table.is_contiguous() && weights.is_contiguous(), "contiguous inputs only");
  TORCH_CHECK(weights.numel() == index.numel(), "one weight per real token");
  path = resolve(path);
  const int64_t B = counts.size(0), D = table.size(1);
  auto out = torch::zeros({B, D}, table.options());
  const float* X = table.data_ptr<float>();
  const int64_t *I = index.data_ptr<int64_t>(), *O = offsets.data_ptr<int64_t>(), *C = counts.data_ptr<int64_t>();
  const float* W = weights.data_ptr<float>();
  float* Y = out.data_ptr<float>();
#ifdef POOLWISE_X86_PATHS
  if (path == "avx512") { avx512::weighted_sum(X, I, O, C, W, B, D, Y); return out; }
  if (path == "avx2") { avx2::weighted_sum(X, I, O, C, W, B, D, Y); return out; }
#endif
  generic::weighted_sum(X, I, O, C, W, B, D, Y);
  return out;
}

// out[b] = sum of the real tokens of padded x (B, N, D) under the bool keep-mask (B, N) (an
// empty tensor: every token), each weighted by its rank among the row's real tokens if by_rank.
torch::Tensor masked_sum(torch::Tensor x, torch::Tensor mask, bool by_rank, std::string path) {
  check_padded(x, mask);
  const bool masked = mask.numel() > 0;
  path = resolve(path);
  const int64_t B = x.size(0), N = x.size(1), D = x.size(2);
  auto out = torch::zeros({B, D}, x.options());
  const float* X = x.data_ptr<float>();
  const bool* M = masked ? mask.data_ptr<bool>() : nullptr;
  float* Y = out.data_ptr<float>();
#ifdef POOLWISE_X86_PATHS
  if (path == "avx512") { avx512::masked_sum(X, M, B, N, D, by_rank, Y); return out; }
  if (path == "avx2") { avx2::masked_sum(X, M, B, N, D, by_rank, Y); return out; }
#endif
  generic::masked_sum(X, M, B, N, D, by_rank, Y);
  return out;
}

// GeM pooling of padded x (B, N, D) under the bool keep-mask (an empty tensor: every token);
// power: 1 or D values.
torch::Tensor gem(torch::Tensor x, torch::Tensor mask, torch::Tensor power, double eps, std::string path) {
  check_padded(x, mask);
  path = resolve(path);
  const int64_t B = x.size(0), N = x.size(1), D = x.size(2);
  auto p = per_feature(power, D, "power");
  auto out = torch::zeros({B, D}, x.options());
  const bool* M = mask.numel() ? mask.data_ptr<bool>() : nullptr;
  const float *X = x.data_ptr<float>(), *P = p.data_ptr<float>();
  float* Y = out.data_ptr<float>();
#ifdef POOLWISE_X86_PATHS
  if (path == "avx512") { avx512::gem(X, M, P, B, N, D, eps, Y); return out; }
  if (path == "avx2") { avx2::gem(X, M, P, B, N, D, eps, Y); return out; }
#endif
  generic::gem(X, M, P, B, N, D, eps, Y);
  return out;
}

// Softmax aggregation of padded x (B, N, D); temperature: 1 or D values.
torch::Tensor softmax_pool(torch::Tensor x, torch::Tensor mask, torch::Tensor temperature, std::string path) {
  check_padded(x, mask);
  path = resolve(path);
  const int64_t B = x.size(0), N = x.size(1), D = x.size(2);
  auto t = per_feature(temperature, D, "temperature");
  auto out = torch::zeros({B, D}, x.options());
  const bool* M = mask.numel() ? mask.data_ptr<bool>() : nullptr;
  const float *X = x.data_ptr<float>(), *T = t.data_ptr<float>();
  float* Y = out.data_ptr<float>();
#ifdef POOLWISE_X86_PATHS
  if (path == "avx512") { avx512::softmax_pool(X, M, T, B, N, D, Y); return out; }
  if (path == "avx2") { avx2::softmax_pool(X, M, T, B, N, D, Y); return out; }
#endif
  generic::softmax_pool(X, M, T, B, N, D, Y);
  return out;
}

// query (B, D) -> (B, D): one head.
torch::Tensor attend(torch::Tensor table, torch::Tensor index, torch::Tensor offsets, torch::Tensor counts,
                     torch::Tensor u, std::string path) {
  TORCH_CHECK(u.dim() == 2, "query must be (B, D)");
  return attend_heads(table, index, offsets, counts, u.unsqueeze(1).contiguous(), path).squeeze(1);
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("attend", &attend, "single-query attention pooling", py::arg("table"), py::arg("index"),
        py::arg("offsets"), py::arg("counts"), py::arg("u"), py::arg("path") = "");
  m.def("attend_heads", &attend_heads, "single-query attention pooling, several heads", py::arg("table"),
        py::arg("index"), py::arg("offsets"), py::arg("counts"), py::arg("u"), py::arg("path") = "");
  m.def("attend_masked", &attend_masked, "single-query attention pooling of a padded batch", py::arg("x"),
        py::arg("mask"), py::arg("u"), py::arg("path") = "");
  m.def("weighted_sum", &weighted_sum, "weighted sums of each row's real tokens", py::arg("table"),
        py::arg("index"), py::arg("offsets"), py::arg("counts"), py::arg("weights"), py::arg("path") = "");
  m.def("masked_sum", &masked_sum, "(rank-weighted) sums of the real tokens of a padded batch", py::arg("x"),
        py::arg("mask"), py::arg("by_rank") = false, py::arg("path") = "");
  m.def("gem", &gem, "GeM pooling of a padded batch", py::arg("x"), py::arg("mask"), py::arg("power"),
        py::arg("eps"), py::arg("path") = "");
  m.def("softmax_pool", &softmax_pool, "softmax aggregation of a padded batch", py::arg("x"), py::arg("mask"),
        py::arg("temperature"), py::arg("path") = "");
  m.def("available_paths", &available_paths, "instruction-set paths this CPU runs, best first");
}
