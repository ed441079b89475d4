#pragma once
// Programmatic dependent launch (sm_90): a kernel queued with launch_dependent() may be scheduled
// while the kernel before it on the stream is still running, so its launch and whatever it does
// before wait_for_prior_grid() overlap that kernel's last wave. In the attention backward at 16K
// (four kernels of 17 to 180 us) this saved 0.5 to 2% of fwd+bwd on an H200 (docs/benchmarks.md,
// eleventh round): less than the gaps had seemed to cost, but never a loss.
//
// The rules a kernel launched this way keeps:
//   - before wait_for_prior_grid() it only reads inputs that the prior kernel does not write, and
//     writes nothing (a buffer freed after the prior kernel was queued can be this kernel's now);
//   - it calls let_dependents_start() only after wait_for_prior_grid(), so that a dependent of
//     its own, once started, knows every kernel before this one has finished too.
// On other architectures both calls compile to nothing and the launch is an ordinary one.
#include <cuda_runtime.h>

#include <cstdlib>
#include <utility>

#include "core/cuda/check.h"

namespace sparta::cuda {

// Waits until the prior kernel on the stream has finished and its memory is visible (at once for
// a kernel launched the ordinary way).
__device__ __forceinline__ void wait_for_prior_grid() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}

// Lets the next kernel on the stream, if launched with launch_dependent(), be scheduled once every
// CTA of this one has called this or exited.
__device__ __forceinline__ void let_dependents_start() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}

// Whether launch_dependent() lets kernels overlap on the current device: compute capability 9.0 or
// later, unless SPARTA_DEPENDENT_LAUNCH=0 (for A/B timings).
inline bool dependent_launches() {
  if (const char* v = std::getenv("SPARTA_DEPENDENT_LAUNCH"); v != nullptr && v[0] == '0') return false;
  int dev = 0, major = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) return false;
  if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess) return false;
  return major >= 9;
}

// kernel<<<grid, block, smem, stream>>>(args...), allowed to start before the prior kernel ends
// where dependent_launches() holds (an ordinary launch elsewhere).
template <typename... Params, typename... Args>
void launch_dependent(const char* op, void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem,
                      cudaStream_t stream, Args&&... args) {
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = dependent_launches() ? 1 : 0;
  cudaLaunchConfig_t config = {};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = smem;
  config.stream = stream;
  config.attrs = attr;
  config.numAttrs = 1;
  SPARTA_CUDA_CHECK(op, cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...));
}

}  // namespace sparta::cuda
