// Core kernels against what the machine can do.
//   matmul: GFLOP/s of sparta::matmul (n x n @ n x n) versus a oneDNN matmul primitive created
//     here and timed on execution only. Target: sparta reaches 80% of it at n = 2048. Where oneDNN
//     has no kernel for a type on this CPU (bf16 without AVX-512 in oneDNN 2.x), the baseline is
//     the fastest thing oneDNN does offer for the same shapes, its f32 primitive.
//   add: GB/s of sparta::add on large f32 tensors (2 reads + 1 write per element) versus the copy
//     bandwidth of memcpy (1 read + 1 write), parallel or not, whichever is faster. Target: 60%.
// Each measurement: one warm-up run, then the median of --reps runs; sparta and its baseline are
// timed alternately so that background load hits both alike. Inputs are random normal values.
#include <CLI/CLI.hpp>
#include <dnnl.hpp>
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/ops.h"

using namespace sparta;

namespace {

double seconds(const std::function<void()>& f) {
  auto t0 = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Median seconds of each function, timed round-robin after one warm-up run of each.
std::vector<double> median_seconds(int reps, const std::vector<std::function<void()>>& fs) {
  for (const auto& f : fs) f();
  std::vector<std::vector<double>> t(fs.size());
  for (int r = 0; r < reps; ++r) {
    for (size_t i = 0; i < fs.size(); ++i) t[i].push_back(seconds(fs[i]));
  }
  std::vector<double> out;
  for (auto& v : t) out.push_back(median(v));
  return out;
}

// A oneDNN matmul made directly (not through sparta's cache): c = a @ b, or a @ b^T when
// b_transposed, all n x n. Holds the primitive and memory objects so timing covers execution only.
struct RawMatmul {
  dnnl::engine eng{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{eng};
  dnnl::matmul prim;
  std::string impl;
  std::unordered_map<int, dnnl::memory> args;

  // False when oneDNN has no kernel for the type (it refuses the primitive).
  bool make(int64_t n, dnnl::memory::data_type t, bool b_transposed, void* a, void* b, void* c) {
    using tag = dnnl::memory::format_tag;
    dnnl::memory::desc ma({n, n}, t, tag::ab), mb({n, n}, t, b_transposed ? tag::ba : tag::ab), mc({n, n}, t, tag::ab);
    try {
#if DNNL_VERSION_MAJOR >= 3
      dnnl::matmul::primitive_desc pd(eng, ma, mb, mc);
#else
      dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(ma, mb, mc), eng);
#endif
      prim = dnnl::matmul(pd);
      impl = pd.impl_info_str();
    } catch (const dnnl::error&) {
      return false;
    }
    args = {{DNNL_ARG_SRC, dnnl::memory(ma, eng, a)},
            {DNNL_ARG_WEIGHTS, dnnl::memory(mb, eng, b)},
            {DNNL_ARG_DST, dnnl::memory(mc, eng, c)}};
    return true;
  }
  void run() {
    prim.execute(stream, args);
    stream.wait();
  }
};

struct Verdict {
  std::string what;
  double ratio, target;
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"core kernel benchmarks (CPU): matmul versus raw oneDNN, add versus memcpy"};
  std::vector<int64_t> sizes = {512, 1024, 2048};
  int64_t elements = int64_t(1) << 26;
  int reps = 5;
  app.add_option("--sizes", sizes, "square matmul sizes n (the target applies to the largest)");
  app.add_option("--elements", elements, "f32 elements per tensor for add and copy");
  app.add_option("--reps", reps, "timed repetitions; the median is reported")->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);

  const dnnl_version_t* v = dnnl_version();
  std::printf("oneDNN %d.%d.%d, %d TBB threads\n\n", v->major, v->minor, v->patch,
              tbb::this_task_arena::max_concurrency());
  std::vector<Verdict> verdicts;

  std::printf("## matmul, n x n @ n x n (2 n^3 FLOP)\n\n"
              "| dtype | n | b | sparta GFLOP/s | oneDNN baseline | baseline GFLOP/s | sparta / baseline |\n"
              "|---|---|---|---|---|---|---|\n");
  const int64_t largest = *std::max_element(sizes.begin(), sizes.end());
  for (int64_t n : sizes) {
    const double flop = 2.0 * double(n) * double(n) * double(n);
    Generator gen{uint64_t(n)};
    Tensor a32 = randn({n, n}, DType::f32, &gen), b32 = randn({n, n}, DType::f32, &gen);
    Tensor c32 = empty({n, n}, DType::f32);
    // (b is transposed: sparta gets a transposed view, which it must read through strides.)
    for (bool transposed : {false, true}) {
      for (DType dt : {DType::f32, DType::bf16}) {
        if (transposed && dt != DType::f32) continue;
        Tensor a = cast(a32, dt), b = cast(b32, dt), c = empty({n, n}, dt);
        Tensor b_arg = transposed ? transpose(b, 0, 1) : b;  // a @ (b as stored)^T
        RawMatmul raw;
        std::string baseline;
        const auto dnnl_t = dt == DType::bf16 ? dnnl::memory::data_type::bf16 : dnnl::memory::data_type::f32;
        if (raw.make(n, dnnl_t, transposed, a.data_ptr(), b.data_ptr(), c.data_ptr())) {
          baseline = std::string(dtype_name(dt)) + " " + raw.impl;
        } else {
          raw.make(n, dnnl::memory::data_type::f32, transposed, a32.data_ptr(), b32.data_ptr(), c32.data_ptr());
          baseline = "f32 " + raw.impl + " (no " + dtype_name(dt) + " kernel)";
        }
        const int r = n >= 2048 ? std::min(reps, 5) : reps;
        std::vector<double> t = median_seconds(r, {[&] { matmul(a, b_arg); }, [&] { raw.run(); }});
        const double ratio = t[1] / t[0];
        std::printf("| %s | %lld | %s | %.1f | %s | %.1f | %.0f%% |\n", dtype_name(dt), static_cast<long long>(n),
                    transposed ? "transposed view" : "dense", flop / t[0] * 1e-9, baseline.c_str(),
                    flop / t[1] * 1e-9, 100 * ratio);
        std::fflush(stdout);
        if (n == largest) {
          verdicts.push_back({std::string("matmul ") + dtype_name(dt) + " n=" + std::to_string(n) +
                                  (transposed ? " (b transposed)" : ""),
                              ratio, 0.8});
        }
      }
    }
  }

  std::printf("\n## elementwise, %lld f32 elements per tensor (%.0f MB)\n\n"
              "| op | bytes moved per element | GB/s | vs memcpy |\n|---|---|---|---|\n",
              static_cast<long long>(elements), double(elements) * 4 / 1e6);
  {
    Generator gen{7};
    Tensor x = randn({elements}, DType::f32, &gen), y = randn({elements}, DType::f32, &gen);
    Tensor dst = empty({elements}, DType::f32), acc = clone(x);
    const size_t bytes = size_t(elements) * 4;
    const char* src = static_cast<const char*>(x.data_ptr());
    char* out = static_cast<char*>(dst.data_ptr());
    // glibc's memcpy switches to non-temporal stores (no read-for-ownership of the destination)
    // only for copies larger than a share of the last-level cache, so one memcpy per thread of a
    // large block and one single-threaded memcpy can each be the faster; the baseline is the
    // better of the two.
    const size_t per_thread = bytes / size_t(tbb::this_task_arena::max_concurrency()) + 1;
    auto memcpy_parallel = [&] {
      tbb::parallel_for(tbb::blocked_range<size_t>(0, bytes, per_thread), [&](const tbb::blocked_range<size_t>& r) {
        std::memcpy(out + r.begin(), src + r.begin(), r.size());
      }, tbb::simple_partitioner());
    };
    auto memcpy_single = [&] { std::memcpy(out, src, bytes); };
    std::vector<double> t = median_seconds(reps, {memcpy_parallel, memcpy_single, [&] { copy_(dst, x); },
                                                  [&] { add(x, y); }, [&] { add_(acc, y); }});
    const double copy_s = std::min(t[0], t[1]);
    const double memcpy_gbs = 2.0 * double(bytes) / copy_s * 1e-9;
    struct Row {
      const char* name;
      double moved;
      double s;
    };
    for (const Row& row : {Row{"memcpy, one block per TBB thread", 2, t[0]}, Row{"memcpy, one thread", 2, t[1]},
                           Row{"sparta copy_(dst, x)", 2, t[2]}, Row{"sparta add(x, y) (new output)", 3, t[3]},
                           Row{"sparta add_(acc, y) (in place)", 3, t[4]}}) {
      const double gbs = row.moved * double(bytes) / row.s * 1e-9;
      std::printf("| %s | %.0f x 4 B | %.1f | %.0f%% |\n", row.name, row.moved, gbs, 100 * gbs / memcpy_gbs);
    }
    std::printf("\nbaseline: the faster memcpy, %.1f GB/s\n", memcpy_gbs);
    verdicts.push_back({"add vs memcpy bandwidth", 3.0 * double(bytes) / t[3] * 1e-9 / memcpy_gbs, 0.6});
  }

  std::printf("\n## targets\n\n| measurement | ratio | target | met |\n|---|---|---|---|\n");
  for (const Verdict& v : verdicts) {
    std::printf("| %s | %.0f%% | %.0f%% | %s |\n", v.what.c_str(), 100 * v.ratio, 100 * v.target,
                v.ratio >= v.target ? "yes" : "no");
  }
  return 0;
}
