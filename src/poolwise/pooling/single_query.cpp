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
#define ACC_S 8
#define ACC_A 8
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

// query (B, H, D) -> (B, H, D); path "" = the best the CPU has.
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
  if (path == "avx512") { avx512::attend(X, I, O, C, U, B, H, D, Y); return out; }
  if (path == "avx2") { avx2::attend(X, I, O, C, U, B, H, D, Y); return out; }
#endif
  generic::attend(X, I, O, C, U, B, H, D, Y);
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
  TORCH_CHECK(x.dim() == 3 && x.dtype() == torch::kFloat32 && x.is_contiguous(), "x must be contiguous float32 (B, N, D)");
  const bool masked = mask.numel() > 0;
  TORCH_CHECK(!masked || (mask.dtype() == torch::kBool && mask.is_contiguous() && mask.dim() == 2 &&
                          mask.size(0) == x.size(0) && mask.size(1) == x.size(1)),
              "mask must be a contiguous bool (B, N) tensor");
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
  m.def("weighted_sum", &weighted_sum, "weighted sums of each row's real tokens", py::arg("table"),
        py::arg("index"), py::arg("offsets"), py::arg("counts"), py::arg("weights"), py::arg("path") = "");
  m.def("masked_sum", &masked_sum, "(rank-weighted) sums of the real tokens of a padded batch", py::arg("x"),
        py::arg("mask"), py::arg("by_rank") = false, py::arg("path") = "");
  m.def("available_paths", &available_paths, "instruction-set paths this CPU runs, best first");
}
