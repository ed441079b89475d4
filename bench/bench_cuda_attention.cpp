// Block-sparse attention on the GPU (CUDA builds only): forward and forward+backward time of
// dense causal, local, strided, fixed and top-k (32 of a window of 512) patterns, bf16, at a fixed
// token count per batch (batch x length = --tokens), to set the tensor-core kernels
// (attention_flash_*.cu) against the simple ones and against what the pairs cost. Prints a markdown
// table per row:
//   kernel       which kernels ran (the dispatch's counters): flash (tensor cores) or simple
//                (what flash.cuh does not cover); "fwd/bwd" when the passes differ
//   pairs        allowed (query, key) pairs over all heads and the batch, from the layout (for
//                top-k, the window's pairs: every one is scored, though only k per query are kept)
//   TFLOP/s      effective: 4 D FLOPs per allowed pair forward (Q K^T and P V), 2.5x that
//                backward, so forward+backward counts 3.5x the forward's
//   peak MiB     the device's peak allocation during forward+backward, inputs included
// Timing: CUDA events around each run on the compute stream, after two warm-up runs; the median
// of --reps runs (one run when a run takes seconds). A run is --iters back-to-back calls, its time
// divided by them: with 1 (the default) it includes the host's time to queue the first kernel on
// an idle GPU; with more, the host queues ahead as in a training loop, so it is the device's time
// per call (bench/pytorch_attention.py --iters times SDPA the same way).
//
//   bench_cuda_attention [--seq 4096 16384 65536] [--tokens 16384] [--heads 16] [--dim 64]
//                        [--block 64] [--reps 5] [--iters 1] [--kernel auto|simple] [--no-backward]
//                        [--deterministic]  (the backward without atomics: core/determinism.h)
//                        [--patterns dense local strided fixed topk]  (which rows to run)
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "bench/cuda_timing.h"
#include "core/cuda/runtime.h"
#include "core/determinism.h"
#include "core/ops.h"
#include "core/ops/attention/attention.h"
#include "core/storage.h"
#include "nn/attention/patterns.h"

using namespace sparta;

namespace {

// Milliseconds per call: the median of `reps` timed runs of `iters` calls each, after two warm-up
// calls (the first uploads the layout).
double median_ms(int reps, int iters, const std::function<void()>& f) {
  f();
  const double warm = bench::elapsed_ms(1, f);
  if (warm > 2000) return warm;  // seconds per run: one is enough
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) t.push_back(bench::elapsed_ms(iters, f) / iters);
  return bench::median(std::move(t));
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"block-sparse attention benchmark (CUDA)"};
  std::vector<int64_t> lengths = {4096, 16384, 65536};
  int64_t tokens = 16384, heads = 16, dim = 64, block = 64, window = 256;
  int reps = 5, iters = 1;
  bool backward = true;
  std::string kernel = "auto";
  app.add_option("--seq", lengths, "sequence lengths");
  app.add_option("--tokens", tokens, "batch x length (batch = max(1, tokens / length))");
  app.add_option("--heads", heads, "heads");
  app.add_option("--dim", dim, "head dimension");
  app.add_option("--block", block, "block size of the layouts");
  app.add_option("--window", window, "local window");
  app.add_option("--reps", reps, "timed repetitions (median)");
  app.add_option("--iters", iters, "back-to-back calls per timed repetition")->check(CLI::PositiveNumber);
  app.add_option("--kernel", kernel, "auto: the dispatch chooses; simple: force the simple kernels")
      ->check(CLI::IsMember({"auto", "simple"}));
  app.add_flag("!--no-backward", backward, "time the forward pass only");
  bool deterministic = false;
  app.add_flag("--deterministic", deterministic, "deterministic algorithms (the backward without atomics)");
  std::vector<std::string> only = {"dense", "local", "strided", "fixed", "topk"};
  app.add_option("--patterns", only, "patterns to run (by the first word of their name)")
      ->check(CLI::IsMember({"dense", "local", "strided", "fixed", "topk"}));
  CLI11_PARSE(app, argc, argv);
  set_deterministic_algorithms(deterministic);
  if (!bench::gpu_visible("bench_cuda_attention")) return 1;
  if (kernel == "simple") setenv("SPARTA_ATTENTION_KERNEL", "simple", 1);
  const Device dev = Device::cuda();

  std::printf("bf16, %lld heads, head dim %lld, block %lld, batch x length = %lld tokens%s\n\n",
              static_cast<long long>(heads), static_cast<long long>(dim), static_cast<long long>(block),
              static_cast<long long>(tokens), deterministic ? ", deterministic" : "");
  std::printf("| pattern | N | B | kernel | pairs | density | fwd ms | fwd TFLOP/s | fwd+bwd ms | fwd+bwd TFLOP/s | "
              "peak MiB |\n|---|---|---|---|---|---|---|---|---|---|---|\n");
  for (int64_t n : lengths) {
    const int64_t B = std::max<int64_t>(1, tokens / n);
    const int64_t l = int64_t(std::lround(std::sqrt(double(n))));
    const std::vector<std::pair<std::string, nn::PatternPtr>> patterns = {
        {"dense causal", nn::dense_causal()},
        {"local(" + std::to_string(window) + ")", nn::local(window)},
        {"strided(" + std::to_string(l) + ")", nn::strided(l)},
        {"fixed(" + std::to_string(l) + ",c=" + std::to_string(std::max<int64_t>(1, l / 8)) + ")",
         nn::fixed(l, std::max<int64_t>(1, l / 8))},
        {"topk:32:512", nn::top_k(32, 512)}};
    Generator gen(static_cast<uint64_t>(n));
    auto input = [&] { return to_device(randn({B, heads, n, dim}, DType::bf16, &gen), dev); };
    Tensor q = input(), k = input(), v = input(), g = input();
    for (const auto& [name, pattern] : patterns) {
      const std::string kind = name.substr(0, name.find_first_of(" (:"));
      if (std::find(only.begin(), only.end(), kind) == only.end()) continue;
      try {
        auto L = pattern->layout(n, block, int(heads));
        double pairs = 0;  // counting walks the partial blocks' elements: once per distinct layout
        for (int h = 0; h < L->n_layouts; ++h) pairs += double(L->allowed_pairs(h));
        pairs *= double(B) * double(heads / L->n_layouts);
        const cuda::AttentionKernelCounts before = cuda::attention_kernel_counts();
        const double fwd = median_ms(reps, iters, [&] {
          autograd::NoGradGuard no_grad;
          sparse_attention(q, k, v, L);
        });
        double both = 0, peak_mib = 0;
        if (backward) {
          auto step = [&] {
            Tensor qq = autograd::requires_grad(q.detach()), kk = autograd::requires_grad(k.detach()),
                   vv = autograd::requires_grad(v.detach());
            autograd::backward(sparse_attention(qq, kk, vv, L), g);
          };
          both = median_ms(reps, iters, step);
          cuda::synchronize(dev.index);
          reset_peak_memory(dev);
          step();
          cuda::synchronize(dev.index);
          peak_mib = double(memory_stats(dev).peak_bytes) / (1 << 20);
        }
        // What ran (the dispatch's counters), e.g. "flash", or "flash/simple" if the passes differed.
        const cuda::AttentionKernelCounts after = cuda::attention_kernel_counts();
        std::string ran = after.flash_forward > before.flash_forward ? "flash" : "simple";
        if (backward) {
          const std::string bwd = after.flash_backward > before.flash_backward ? "flash" : "simple";
          if (bwd != ran) ran += "/" + bwd;
        }
        const double flops = 4.0 * double(dim) * pairs;
        std::printf("| %s | %lld | %lld | %s | %.3g | %.4f | %.3f | %.1f | %.3f | %.1f | %.0f |\n", name.c_str(),
                    static_cast<long long>(n), static_cast<long long>(B), ran.c_str(), pairs,
                    pairs / double(B * heads) / (double(n) * double(n)), fwd, flops / (fwd * 1e-3) * 1e-12, both,
                    both > 0 ? 3.5 * flops / (both * 1e-3) * 1e-12 : 0.0, peak_mib);
      } catch (const Error& e) {
        std::printf("| %s | %lld | %lld | | | | %s | | | | |\n", name.c_str(), static_cast<long long>(n),
                    static_cast<long long>(B), e.what());
      }
      std::fflush(stdout);
    }
  }
  return 0;
}
