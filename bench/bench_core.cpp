// Core kernels against the machine: matmul GFLOP/s through sparta versus a oneDNN matmul primitive
// called directly (the target: sparta reaches 80% of it at 2048^3 in f32), and an elementwise add
// in GB/s versus the machine's copy bandwidth (parallel memcpy; the target: 60%).
#include <CLI/CLI.hpp>
#include <dnnl.hpp>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <vector>

#include "core/ops.h"

using namespace sparta;

namespace {

template <typename F>
double median_seconds(int reps, F&& f) {
  f();
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    f();
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

dnnl::memory::data_type dnnl_type(DType t) {
  return t == DType::bf16 ? dnnl::memory::data_type::bf16 : dnnl::memory::data_type::f32;
}

// The same product through a oneDNN primitive made here, timing execution only; 0 when oneDNN has
// no kernel for the type on this CPU (bf16 needs AVX-512 in oneDNN 2.x).
double raw_onednn_seconds(int64_t n, DType dt, const Tensor& a, const Tensor& b, Tensor& c, int reps) {
  dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  dnnl::stream s(eng);
  dnnl::memory::desc md({n, n}, dnnl_type(dt), dnnl::memory::format_tag::ab);
  dnnl::matmul::primitive_desc pd;
  try {
#if DNNL_VERSION_MAJOR >= 3
    pd = dnnl::matmul::primitive_desc(eng, md, md, md);
#else
    pd = dnnl::matmul::primitive_desc(dnnl::matmul::desc(md, md, md), eng);
#endif
  } catch (const dnnl::error&) {
    std::printf("  (oneDNN has no %s matmul on this CPU)\n", dtype_name(dt));
    return 0;
  }
  dnnl::matmul prim(pd);
  dnnl::memory ma(md, eng, a.data_ptr()), mb(md, eng, b.data_ptr()), mc(md, eng, c.data_ptr());
  std::printf("  (oneDNN kernel for %s: %s)\n", dtype_name(dt), pd.impl_info_str());
  return median_seconds(reps, [&] {
    prim.execute(s, {{DNNL_ARG_SRC, ma}, {DNNL_ARG_WEIGHTS, mb}, {DNNL_ARG_DST, mc}});
    s.wait();
  });
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"core kernel benchmarks (CPU)"};
  std::vector<int64_t> sizes = {256, 512, 1024, 2048};
  std::vector<int64_t> lengths = {1 << 20, 1 << 24, 1 << 26};
  int reps = 5;
  app.add_option("--matmul-sizes", sizes, "square matmul sizes");
  app.add_option("--add-sizes", lengths, "elementwise add lengths (f32 elements)");
  app.add_option("--reps", reps, "timed repetitions (median)");
  CLI11_PARSE(app, argc, argv);

  std::printf("matmul (n x n @ n x n)\n\n| dtype | n | sparta GFLOP/s | raw oneDNN GFLOP/s | sparta / oneDNN |\n"
              "|---|---|---|---|---|\n");
  for (DType dt : {DType::f32, DType::bf16}) {
    for (int64_t n : sizes) {
      Generator gen{static_cast<uint64_t>(n)};
      Tensor a = randn({n, n}, dt, &gen), b = randn({n, n}, dt, &gen), c = empty({n, n}, dt);
      const int r = n >= 2048 ? std::max(3, reps / 2) : reps;
      const double mine = median_seconds(r, [&] { matmul(a, b); });
      const double raw = raw_onednn_seconds(n, dt, a, b, c, r);
      const double flops = 2.0 * double(n) * double(n) * double(n);
      if (raw > 0) {
        std::printf("| %s | %lld | %.1f | %.1f | %.0f%% |\n", dtype_name(dt), static_cast<long long>(n),
                    flops / mine * 1e-9, flops / raw * 1e-9, 100 * raw / mine);
      } else {
        std::printf("| %s | %lld | %.1f | n/a | n/a |\n", dtype_name(dt), static_cast<long long>(n), flops / mine * 1e-9);
      }
      std::fflush(stdout);
    }
  }

  std::printf("\nelementwise add of f32 tensors (bytes moved: 2 reads + 1 write)\n\n"
              "| elements | add GB/s | copy GB/s (parallel memcpy) | add / copy |\n|---|---|---|---|\n");
  for (int64_t n : lengths) {
    Generator gen{static_cast<uint64_t>(n)};
    Tensor x = rand({n}, DType::f32, &gen), y = rand({n}, DType::f32, &gen);
    Tensor dst = empty({n}, DType::f32);
    const double add_s = median_seconds(reps, [&] { add(x, y); });
    const char* src = static_cast<const char*>(x.data_ptr());
    char* out = static_cast<char*>(dst.data_ptr());
    const size_t bytes = size_t(n) * 4;
    const double copy_s = median_seconds(reps, [&] {
      tbb::parallel_for(tbb::blocked_range<size_t>(0, bytes, 1 << 20), [&](const tbb::blocked_range<size_t>& r) {
        std::memcpy(out + r.begin(), src + r.begin(), r.size());
      });
    });
    const double add_gbs = 3.0 * double(bytes) / add_s * 1e-9, copy_gbs = 2.0 * double(bytes) / copy_s * 1e-9;
    std::printf("| %lld | %.1f | %.1f | %.0f%% |\n", static_cast<long long>(n), add_gbs, copy_gbs,
                100 * add_gbs / copy_gbs);
    std::fflush(stdout);
  }
  return 0;
}
