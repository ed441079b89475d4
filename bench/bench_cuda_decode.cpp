// Decode attention on the GPU (CUDA builds only): one new query per step against a KV cache of
// N positions (the query at position N - 1, so the cache is full and the row is the longest),
// bf16, for dense causal, local, fixed and strided layouts. bench/pytorch_decode.py times PyTorch's
// SDPA on the same shapes (dense cache; the local window as a slice of it). Prints a markdown row
// per (pattern, N, batch):
//   splits      thread blocks per query row the kernel chose (flash-decoding's split-K)
//   keys/row    keys the layout selects for the query (per head)
//   us/call     one decode call (one layer), host work included: the mean over --iters calls
//               between two CUDA events, the median of --reps such runs
//   steps/s     1e6 / us/call: decode steps per second of one layer (= tokens/s for batch 1;
//               the batch's tokens/s is batch x steps/s)
//   GB/s        bytes of the keys and values actually selected (batch x heads x keys/row x
//               2 x D x 2 bytes) per second; q and the output are negligible
//
//   bench_cuda_decode [--cache 4096 16384 65536] [--batch 1 8] [--heads 16] [--dim 64]
//                     [--block 64] [--window 256] [--iters 50] [--reps 7]
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "autograd/autograd.h"
#include "bench/cuda_timing.h"
#include "core/cuda/runtime.h"
#include "core/ops.h"
#include "core/ops/attention/attention_decode.h"
#include "nn/attention/patterns.h"

using namespace sparta;

namespace {

// Microseconds per call of f: the median over `reps` runs of the mean of `iters` calls.
double median_us(int reps, int iters, const std::function<void()>& f) {
  bench::elapsed_ms(2, f);  // the first call uploads the layout
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) t.push_back(bench::elapsed_ms(iters, f) * 1e3 / iters);
  return bench::median(std::move(t));
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"decode attention benchmark (CUDA)"};
  std::vector<int64_t> lengths = {4096, 16384, 65536}, batches = {1, 8};
  int64_t heads = 16, dim = 64, block = 64, window = 256;
  int iters = 50, reps = 7;
  app.add_option("--cache", lengths, "cache lengths");
  app.add_option("--batch", batches, "batch sizes");
  app.add_option("--heads", heads, "heads");
  app.add_option("--dim", dim, "head dimension");
  app.add_option("--block", block, "block size of the layouts");
  app.add_option("--window", window, "local window");
  app.add_option("--iters", iters, "calls per timed run");
  app.add_option("--reps", reps, "timed runs (median)");
  CLI11_PARSE(app, argc, argv);
  if (!bench::gpu_visible("bench_cuda_decode")) return 1;
  const Device dev = Device::cuda();
  std::printf("bf16, %lld heads, head dim %lld, block %lld, one new query per step at position N - 1\n\n",
              static_cast<long long>(heads), static_cast<long long>(dim), static_cast<long long>(block));
  std::printf("| pattern | N | B | splits | keys/row | us/call | steps/s | GB/s |\n|---|---|---|---|---|---|---|---|\n");
  autograd::NoGradGuard no_grad;
  for (int64_t n : lengths) {
    const int64_t l = int64_t(std::lround(std::sqrt(double(n))));
    const std::vector<std::pair<std::string, nn::PatternPtr>> patterns = {
        {"dense causal", nn::dense_causal()},
        {"local(" + std::to_string(window) + ")", nn::local(window)},
        {"fixed(" + std::to_string(l) + ",c=" + std::to_string(std::max<int64_t>(1, l / 8)) + ")",
         nn::fixed(l, std::max<int64_t>(1, l / 8))},
        {"strided(" + std::to_string(l) + ")", nn::strided(l)}};
    // Layouts and the keys each selects for the query at n - 1 (summed over heads).
    std::vector<std::shared_ptr<const attn::BlockLayout>> layouts(patterns.size());
    std::vector<double> keys(patterns.size(), 0);
    for (size_t i = 0; i < patterns.size(); ++i) {
      try {
        layouts[i] = patterns[i].second->layout(n, block, int(heads));
        const attn::BlockLayout& L = *layouts[i];
        for (int h = 0; h < L.n_layouts; ++h)
          for (int64_t k = 0; k < n; ++k) keys[i] += L.allows(h, n - 1, k);
        keys[i] *= double(heads) / double(L.n_layouts);
      } catch (const Error& e) {
        std::printf("| %s | %lld | | | | %s | | |\n", patterns[i].first.c_str(), static_cast<long long>(n), e.what());
      }
    }
    for (int64_t B : batches) {
      Generator gen(static_cast<uint64_t>(n + B));
      Tensor kc = randn({B, heads, n, dim}, DType::bf16, &gen, dev);
      Tensor vc = randn({B, heads, n, dim}, DType::bf16, &gen, dev);
      Tensor q = randn({B, heads, 1, dim}, DType::bf16, &gen, dev);
      for (size_t i = 0; i < patterns.size(); ++i) {
        if (!layouts[i]) continue;
        const std::string& name = patterns[i].first;
        try {
          const auto& L = layouts[i];
          const double us = median_us(reps, iters, [&] { sparse_attention_decode(q, kc, vc, n - 1, L); });
          const double bytes = double(B) * keys[i] * 2.0 * double(dim) * 2.0;
          std::printf("| %s | %lld | %lld | %d | %.0f | %.1f | %.0f | %.0f |\n", name.c_str(),
                      static_cast<long long>(n), static_cast<long long>(B), cuda::last_decode_splits(),
                      keys[i] / double(heads), us, 1e6 / us, bytes / (us * 1e-6) * 1e-9);
        } catch (const Error& e) {
          std::printf("| %s | %lld | %lld | | | %s | | |\n", name.c_str(), static_cast<long long>(n),
                      static_cast<long long>(B), e.what());
        }
        std::fflush(stdout);
      }
    }
  }
  return 0;
}
