#include "core/cuda/runtime.h"

#include <cuda_runtime.h>

#include <cstdint>
#include <mutex>

#include "core/error.h"

#define SPARTA_CUDA_CHECK(op, expr)                                                 \
  do {                                                                              \
    cudaError_t e_ = (expr);                                                        \
    if (e_ != cudaSuccess) SPARTA_FAIL(op, #expr, ": ", cudaGetErrorString(e_));    \
  } while (0)

namespace sparta::cuda {
namespace {

// Keep freed blocks in the pool instead of returning them to the driver at every synchronise:
// a training step frees and reallocates the same sizes over and over.
void configure_pool(int device) {
  static std::once_flag flags[16];
  std::call_once(flags[device & 15], [device] {
    cudaMemPool_t pool;
    SPARTA_CUDA_CHECK("cuda.malloc", cudaDeviceGetDefaultMemPool(&pool, device));
    uint64_t threshold = UINT64_MAX;
    SPARTA_CUDA_CHECK("cuda.malloc", cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &threshold));
  });
}

}  // namespace

bool available() { return device_count() > 0; }

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no device" error so later calls start clean
    return 0;
  }
  return n;
}

void* device_malloc(size_t nbytes, int device) {
  const int n = device_count();
  SPARTA_CHECK(device >= 0 && device < n, "cuda.malloc", "device cuda:", device, " does not exist (", n,
               " visible)");
  SPARTA_CUDA_CHECK("cuda.malloc", cudaSetDevice(device));
  configure_pool(device);
  void* p = nullptr;
  SPARTA_CUDA_CHECK("cuda.malloc", cudaMallocAsync(&p, nbytes, cudaStreamPerThread));
  return p;
}

void device_free(void* p, int device) {
  cudaSetDevice(device);
  cudaFreeAsync(p, cudaStreamPerThread);  // no throw from destructors
}

void memcpy(void* dst, const void* src, size_t nbytes, CopyKind kind, int device) {
  SPARTA_CUDA_CHECK("cuda.memcpy", cudaSetDevice(device));
  cudaMemcpyKind k = kind == CopyKind::host_to_device   ? cudaMemcpyHostToDevice
                     : kind == CopyKind::device_to_host ? cudaMemcpyDeviceToHost
                                                        : cudaMemcpyDeviceToDevice;
  SPARTA_CUDA_CHECK("cuda.memcpy", cudaMemcpyAsync(dst, src, nbytes, k, cudaStreamPerThread));
  if (kind == CopyKind::device_to_host) SPARTA_CUDA_CHECK("cuda.memcpy", cudaStreamSynchronize(cudaStreamPerThread));
}

void synchronize(int device) {
  SPARTA_CUDA_CHECK("cuda.synchronize", cudaSetDevice(device));
  SPARTA_CUDA_CHECK("cuda.synchronize", cudaStreamSynchronize(cudaStreamPerThread));
}

}  // namespace sparta::cuda
