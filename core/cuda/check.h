#pragma once
// Error checks for CUDA calls and kernel launches, and the compute stream. CUDA builds only.
//
// Every kernel and asynchronous call goes on cuda::stream(), the one compute stream of the current
// device, so ops are ordered without synchronising. A failed launch is reported at once, named by
// its op; a fault inside a kernel surfaces at the next synchronising call. SPARTA_CUDA_SYNC=1
// synchronises after every launch so the fault is reported by the op that caused it (debugging).
#include <cuda_runtime.h>

#include "core/error.h"

#define SPARTA_CUDA_CHECK(op, expr)                                                               \
  do {                                                                                            \
    cudaError_t sparta_e_ = (expr);                                                               \
    if (sparta_e_ != cudaSuccess) SPARTA_FAIL(op, #expr, ": ", cudaGetErrorString(sparta_e_));    \
  } while (0)

#define SPARTA_CUDA_LAUNCH_CHECK(op) ::sparta::cuda::check_launch(op)

namespace sparta::cuda {

cudaStream_t stream();
void check_launch(const char* op);

}  // namespace sparta::cuda
