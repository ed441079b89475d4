#pragma once
// Timing for the CUDA benchmarks: CUDA events recorded on the compute stream (cuda::stream())
// around the calls, so a time is the device's for the work the calls queue, not the host's.
#include <algorithm>
#include <cstdio>
#include <functional>
#include <vector>

#include "core/cuda/check.h"
#include "core/cuda/runtime.h"

namespace sparta::bench {

// Milliseconds from before the first to after the last of `calls` back-to-back calls of f.
inline double elapsed_ms(int calls, const std::function<void()>& f) {
  cudaStream_t s = cuda::stream();
  cudaEvent_t start, stop;
  SPARTA_CUDA_CHECK("bench", cudaEventCreate(&start));
  SPARTA_CUDA_CHECK("bench", cudaEventCreate(&stop));
  SPARTA_CUDA_CHECK("bench", cudaEventRecord(start, s));
  for (int i = 0; i < calls; ++i) f();
  SPARTA_CUDA_CHECK("bench", cudaEventRecord(stop, s));
  SPARTA_CUDA_CHECK("bench", cudaEventSynchronize(stop));
  float ms = 0;
  SPARTA_CUDA_CHECK("bench", cudaEventElapsedTime(&ms, start, stop));
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return double(ms);
}

// The median of repeated timings (the upper middle one of an even count).
inline double median(std::vector<double> t) {
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// False, after saying so on stderr, where no CUDA device is visible.
inline bool gpu_visible(const char* program) {
  if (cuda::available()) return true;
  std::fprintf(stderr, "%s: no CUDA device visible\n", program);
  return false;
}

}  // namespace sparta::bench
