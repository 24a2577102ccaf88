// Pooling kernels over the real tokens of a batch (float32 CPU): single-query attention
//   out[b, h] = sum_i softmax_i(x_i . u_{b,h}) x_i,  i over the real tokens of row b,
// the weighted sums behind mean / sum / weighted_mean, and GeM and softmax aggregation with
// their gradients. The kernels are in token_kernels.inc, compiled here once per instruction set
// (AVX-512, AVX2+FMA, and the compiler's baseline) and chosen at run time from what the CPU
// reports, so one build serves every x86-64 CPU and a cached build copied to another machine
// still runs. Rows are independent: OpenMP splits them between threads.
#include <torch/extension.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

namespace generic {
#define VW 4
#define ACC_S 8
#define ACC_A 8
#define ACC_W 8
#define MAXH 4
#include "token_kernels.inc"
#undef VW
#undef ACC_S
#undef ACC_A
#undef ACC_W
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
#define ACC_W 12
#define MAXH 4
#include "token_kernels.inc"
#undef VW
#undef ACC_S
#undef ACC_A
#undef ACC_W
#undef MAXH
}  // namespace avx2
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,avx512dq,avx2,fma")
namespace avx512 {
#define VW 16
#define ACC_S 16
#define ACC_A 16
#define ACC_W 32
#define MAXH 8
#include "token_kernels.inc"
#undef VW
#undef ACC_S
#undef ACC_A
#undef ACC_W
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

// The path to run: "" = $POOLWISE_KERNEL_PATH if set (to time another CPU's path on this
// one), else the best the CPU has; a path the CPU lacks is refused.
static std::string resolve(const std::string& path) {
  static const std::vector<std::string> ok = available_paths();
  std::string known;
  for (const auto& p : ok) known += (known.empty() ? "" : ", ") + p;
  if (path.empty()) {
    const char* forced = std::getenv("POOLWISE_KERNEL_PATH");
    if (!forced || !*forced) return ok.front();
    TORCH_CHECK(std::find(ok.begin(), ok.end(), forced) != ok.end(), "POOLWISE_KERNEL_PATH=", forced,
                ": kernel path '", forced, "' is not available on this CPU (it runs ", known, ")");
    return forced;
  }
  TORCH_CHECK(std::find(ok.begin(), ok.end(), path) != ok.end(), "kernel path '", path,
              "' is not available on this CPU (it runs ", known, ")");
  return path;
}

// Runs `call` (a kernel function and its arguments) from the namespace of the chosen path.
#ifdef POOLWISE_X86_PATHS
#define DISPATCH(path, call)                \
  do {                                      \
    const std::string p_ = resolve(path);   \
    if (p_ == "avx512") avx512::call;       \
    else if (p_ == "avx2") avx2::call;      \
    else generic::call;                     \
  } while (0)
#else
#define DISPATCH(path, call) \
  do {                       \
    resolve(path);           \
    generic::call;           \
  } while (0)
#endif

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

// A query (B, H, D) the kernels read in place: float32, each query vector contiguous; rows and
// heads may have any strides (an expanded shared query has row stride 0).
static void check_query(const torch::Tensor& u, int64_t B, int64_t D) {
  TORCH_CHECK(u.dim() == 3 && u.dtype() == torch::kFloat32 && u.size(0) == B && u.size(2) == D &&
              (u.stride(2) == 1 || D == 1), "query must be float32 (B, H, D) = (", B, ", H, ", D,
              ") with contiguous query vectors; got ", u.sizes(), " with strides ", u.strides());
}

// The (B, H, D) output: heads_first allocates (H, B, D) and returns its (B, H, D) view, the
// layout the value projection's batched GEMM (one per head) reads without a copy.
static torch::Tensor attend_out(int64_t B, int64_t H, int64_t D, bool heads_first, const torch::Tensor& like) {
  return heads_first ? torch::empty({H, B, D}, like.options()).permute({1, 0, 2})
                     : torch::empty({B, H, D}, like.options());
}

// query (B, H, D) -> (B, H, D) over the real tokens of an index table; path "" = the best the CPU has.
torch::Tensor attend_heads(torch::Tensor table, torch::Tensor index, torch::Tensor offsets, torch::Tensor counts,
                           torch::Tensor u, std::string path) {
  TORCH_CHECK(table.dim() == 2 && table.dtype() == torch::kFloat32 && table.is_contiguous(),
              "table must be contiguous float32 (T, D)");
  check_query(u, counts.size(0), table.size(1));
  const int64_t B = u.size(0), H = u.size(1), D = u.size(2);
  auto out = attend_out(B, H, D, false, table);
  DISPATCH(path, attend(table.data_ptr<float>(), index.data_ptr<int64_t>(), offsets.data_ptr<int64_t>(),
                        counts.data_ptr<int64_t>(), nullptr, u.data_ptr<float>(), u.stride(0), u.stride(1), B, 0, H,
                        D, out.data_ptr<float>(), out.stride(0), out.stride(1)));
  return out;
}

// query (B, D) -> (B, D): one head.
torch::Tensor attend_one(torch::Tensor table, torch::Tensor index, torch::Tensor offsets, torch::Tensor counts,
                         torch::Tensor u, std::string path) {
  TORCH_CHECK(u.dim() == 2, "query must be (B, D)");
  return attend_heads(table, index, offsets, counts, u.unsqueeze(1), path).squeeze(1);
}

static const bool* mask_ptr(const torch::Tensor& mask) { return mask.numel() ? mask.data_ptr<bool>() : nullptr; }

// The same over padded x (B, N, D) and its bool keep-mask (an empty tensor: every token).
torch::Tensor attend_masked(torch::Tensor x, torch::Tensor mask, torch::Tensor u, std::string path,
                            bool heads_first) {
  check_padded(x, mask);
  check_query(u, x.size(0), x.size(2));
  const int64_t B = x.size(0), N = x.size(1), H = u.size(1), D = x.size(2);
  auto out = attend_out(B, H, D, heads_first, u);
  DISPATCH(path, attend(x.data_ptr<float>(), nullptr, nullptr, nullptr, mask_ptr(mask), u.data_ptr<float>(),
                        u.stride(0), u.stride(1), B, N, H, D, out.data_ptr<float>(), out.stride(0), out.stride(1)));
  return out;
}

// W (R, C) @ r (C,) for contiguous float32 W and r, both threads at memory speed.
torch::Tensor row_dots(torch::Tensor w, torch::Tensor r, std::string path) {
  TORCH_CHECK(w.dim() == 2 && r.dim() == 1 && w.size(1) == r.size(0), "row_dots needs W (R, C) and r (C,); got ",
              w.sizes(), " and ", r.sizes());
  TORCH_CHECK(w.dtype() == torch::kFloat32 && r.dtype() == torch::kFloat32 && w.device().is_cpu() &&
              r.device().is_cpu(), "row_dots: float32 CPU tensors only");
  auto wc = w.contiguous();
  auto rc = r.contiguous();
  auto out = torch::empty({w.size(0)}, w.options());
  DISPATCH(path, row_dots(wc.data_ptr<float>(), wc.size(0), wc.size(1), rc.data_ptr<float>(), out.data_ptr<float>()));
  return out;
}

// out[b] = sum_t w_t x_t over the real tokens of row b; weights (T,) aligned with index.
torch::Tensor weighted_sum(torch::Tensor table, torch::Tensor index, torch::Tensor offsets, torch::Tensor counts,
                           torch::Tensor weights, std::string path) {
  TORCH_CHECK(table.dtype() == torch::kFloat32 && weights.dtype() == torch::kFloat32, "float32 only");
  TORCH_CHECK(table.is_contiguous() && weights.is_contiguous(), "contiguous inputs only");
  TORCH_CHECK(weights.numel() == index.numel(), "one weight per real token");
  const int64_t B = counts.size(0), D = table.size(1);
  auto out = torch::zeros({B, D}, table.options());
  DISPATCH(path, weighted_sum(table.data_ptr<float>(), index.data_ptr<int64_t>(), offsets.data_ptr<int64_t>(),
                              counts.data_ptr<int64_t>(), weights.data_ptr<float>(), B, D, out.data_ptr<float>()));
  return out;
}

// out[b] = the weighted sum of the real tokens of padded x (B, N, D) under the bool keep-mask
// (B, N) (an empty tensor: every token) for mode 0 sum, 1 mean, 2 sum / sqrt(n), 3 weighted
// by rank / (n (n + 1) / 2); an empty row is zero.
torch::Tensor masked_sum(torch::Tensor x, torch::Tensor mask, int64_t mode, std::string path) {
  check_padded(x, mask);
  TORCH_CHECK(mode >= 0 && mode <= 3, "mode must be 0 (sum), 1 (mean), 2 (sqrt_len) or 3 (by rank); got ", mode);
  const int64_t B = x.size(0), N = x.size(1), D = x.size(2);
  auto out = torch::zeros({B, D}, x.options());
  DISPATCH(path, masked_sum(x.data_ptr<float>(), mask_ptr(mask), B, N, D, static_cast<int>(mode),
                            out.data_ptr<float>()));
  return out;
}

// GeM pooling of padded x (B, N, D) under the bool keep-mask (an empty tensor: every token);
// power: 1 or D values. With keep (training), also returns what gem_backward needs.
std::vector<torch::Tensor> gem(torch::Tensor x, torch::Tensor mask, torch::Tensor power, double eps, bool keep,
                               std::string path) {
  check_padded(x, mask);
  const int64_t B = x.size(0), N = x.size(1), D = x.size(2);
  auto p = per_feature(power, D, "power");
  auto out = torch::zeros({B, D}, x.options());
  auto saved = keep ? torch::zeros({B, 6, D}, x.options()) : torch::empty({0}, x.options());
  DISPATCH(path, gem(x.data_ptr<float>(), mask_ptr(mask), p.data_ptr<float>(), B, N, D, static_cast<float>(eps),
                     out.data_ptr<float>(), keep ? saved.data_ptr<float>() : nullptr));
  return {out, saved};
}

// Gradients of gem() for the output gradient g (B, D): (d x (B, N, D), d power per row (B, D)).
std::vector<torch::Tensor> gem_backward(torch::Tensor x, torch::Tensor mask, torch::Tensor power, double eps,
                                        torch::Tensor saved, torch::Tensor g, bool need_x, std::string path) {
  check_padded(x, mask);
  const int64_t B = x.size(0), N = x.size(1), D = x.size(2);
  auto p = per_feature(power, D, "power");
  TORCH_CHECK(saved.numel() == B * 6 * D && g.numel() == B * D, "saved/g do not match x");
  auto gc = g.contiguous();
  auto gx = need_x ? torch::zeros_like(x) : torch::empty({0}, x.options());
  auto gp = torch::zeros({B, D}, x.options());
  DISPATCH(path, gem_backward(x.data_ptr<float>(), mask_ptr(mask), p.data_ptr<float>(), B, N, D,
                              static_cast<float>(eps), saved.data_ptr<float>(), gc.data_ptr<float>(),
                              need_x ? gx.data_ptr<float>() : nullptr, gp.data_ptr<float>()));
  return {gx, gp};
}

// Softmax aggregation of padded x (B, N, D); temperature: 1 or D values. With keep
// (training), also returns what softmax_pool_backward needs.
std::vector<torch::Tensor> softmax_pool(torch::Tensor x, torch::Tensor mask, torch::Tensor temperature, bool keep,
                                        std::string path) {
  check_padded(x, mask);
  const int64_t B = x.size(0), N = x.size(1), D = x.size(2);
  auto t = per_feature(temperature, D, "temperature");
  auto out = torch::zeros({B, D}, x.options());
  auto saved = keep ? torch::zeros({B, 3, D}, x.options()) : torch::empty({0}, x.options());
  DISPATCH(path, softmax_pool(x.data_ptr<float>(), mask_ptr(mask), t.data_ptr<float>(), B, N, D,
                              out.data_ptr<float>(), keep ? saved.data_ptr<float>() : nullptr));
  return {out, saved};
}

// Gradients of softmax_pool(): (d x (B, N, D), d temperature per row (B, D)).
std::vector<torch::Tensor> softmax_pool_backward(torch::Tensor x, torch::Tensor mask, torch::Tensor temperature,
                                                 torch::Tensor y, torch::Tensor saved, torch::Tensor g,
                                                 bool need_x, std::string path) {
  check_padded(x, mask);
  const int64_t B = x.size(0), N = x.size(1), D = x.size(2);
  auto t = per_feature(temperature, D, "temperature");
  TORCH_CHECK(saved.numel() == B * 3 * D && g.numel() == B * D && y.numel() == B * D, "saved/y/g do not match x");
  auto gc = g.contiguous();
  auto yc = y.contiguous();
  auto gx = need_x ? torch::zeros_like(x) : torch::empty({0}, x.options());
  auto gt = torch::zeros({B, D}, x.options());
  DISPATCH(path, softmax_pool_backward(x.data_ptr<float>(), mask_ptr(mask), t.data_ptr<float>(), B, N, D,
                                       yc.data_ptr<float>(), saved.data_ptr<float>(), gc.data_ptr<float>(),
                                       need_x ? gx.data_ptr<float>() : nullptr, gt.data_ptr<float>()));
  return {gx, gt};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  using namespace pybind11::literals;
  m.def("attend", &attend_one, "single-query attention pooling", "table"_a, "index"_a, "offsets"_a, "counts"_a,
        "u"_a, "path"_a = "");
  m.def("attend_heads", &attend_heads, "single-query attention pooling, several heads", "table"_a, "index"_a,
        "offsets"_a, "counts"_a, "u"_a, "path"_a = "");
  m.def("attend_masked", &attend_masked, "single-query attention pooling of a padded batch", "x"_a, "mask"_a,
        "u"_a, "path"_a = "", "heads_first"_a = false);
  m.def("weighted_sum", &weighted_sum, "weighted sums of each row's real tokens", "table"_a, "index"_a,
        "offsets"_a, "counts"_a, "weights"_a, "path"_a = "");
  m.def("masked_sum", &masked_sum, "sum / mean / sqrt_len / rank-weighted mean of a padded batch", "x"_a,
        "mask"_a, "mode"_a = 0, "path"_a = "");
  m.def("gem", &gem, "GeM pooling of a padded batch: (y, saved)", "x"_a, "mask"_a, "power"_a, "eps"_a,
        "keep"_a = false, "path"_a = "");
  m.def("gem_backward", &gem_backward, "GeM gradients: (dx, dpower per row)", "x"_a, "mask"_a, "power"_a, "eps"_a,
        "saved"_a, "g"_a, "need_x"_a = true, "path"_a = "");
  m.def("softmax_pool", &softmax_pool, "softmax aggregation of a padded batch: (y, saved)", "x"_a, "mask"_a,
        "temperature"_a, "keep"_a = false, "path"_a = "");
  m.def("softmax_pool_backward", &softmax_pool_backward, "softmax aggregation gradients: (dx, dt per row)", "x"_a,
        "mask"_a, "temperature"_a, "y"_a, "saved"_a, "g"_a, "need_x"_a = true, "path"_a = "");
  m.def("row_dots", &row_dots, "W @ r for a float32 matrix and vector, on every thread", "w"_a, "r"_a,
        "path"_a = "");
  m.def("available_paths", &available_paths, "instruction-set paths this CPU runs, best first");
}
