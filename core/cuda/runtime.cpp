#include "core/cuda/runtime.h"

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "core/cuda/check.h"

namespace sparta::cuda {
namespace {

constexpr int kMaxDevices = 16;

// Keep freed blocks in the pool instead of returning them to the driver at every synchronise:
// a training step frees and reallocates the same sizes over and over.
void configure_pool(int device) {
  static std::once_flag flags[kMaxDevices];
  std::call_once(flags[device % kMaxDevices], [device] {
    cudaMemPool_t pool;
    SPARTA_CUDA_CHECK("cuda.malloc", cudaDeviceGetDefaultMemPool(&pool, device));
    uint64_t threshold = UINT64_MAX;
    SPARTA_CUDA_CHECK("cuda.malloc", cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &threshold));
  });
}

void use_device(int device, const char* op) {
  const int n = device_count();
  SPARTA_CHECK(device >= 0 && device < n && device < kMaxDevices, op, "device cuda:", device, " does not exist (", n,
               " visible)");
  SPARTA_CUDA_CHECK(op, cudaSetDevice(device));
}

bool sync_every_launch() {
  static const bool on = [] {
    const char* v = std::getenv("SPARTA_CUDA_SYNC");
    return v != nullptr && v[0] == '1';
  }();
  return on;
}

}  // namespace

bool available() { return device_count() > 0; }

int device_count() {
  static const int n = [] {
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess) {
      cudaGetLastError();  // clear the sticky "no device" error so later calls start clean
      return 0;
    }
    return count;
  }();
  return n;
}

int compute_capability(int device) {
  int major = 0, minor = 0;
  SPARTA_CUDA_CHECK("cuda.compute_capability", cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
  SPARTA_CUDA_CHECK("cuda.compute_capability", cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device));
  return major * 10 + minor;
}

cudaStream_t stream() {
  // One non-blocking stream per device, created on first use and kept for the process's life
  // (destroying it at exit would race with static destructors that free device memory on it).
  static std::once_flag flags[kMaxDevices];
  static cudaStream_t streams[kMaxDevices];
  int device = 0;
  SPARTA_CUDA_CHECK("cuda.stream", cudaGetDevice(&device));
  std::call_once(flags[device % kMaxDevices], [device] {
    SPARTA_CUDA_CHECK("cuda.stream", cudaStreamCreateWithFlags(&streams[device % kMaxDevices], cudaStreamNonBlocking));
  });
  return streams[device % kMaxDevices];
}

void check_launch(const char* op) {
  SPARTA_CUDA_CHECK(op, cudaGetLastError());
  if (sync_every_launch()) SPARTA_CUDA_CHECK(op, cudaStreamSynchronize(stream()));
}

void* device_malloc(size_t nbytes, int device) {
  use_device(device, "cuda.malloc");
  configure_pool(device);
  void* p = nullptr;
  cudaError_t e = cudaMallocAsync(&p, nbytes, stream());
  if (e == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    size_t free_bytes = 0, total = 0;
    cudaMemGetInfo(&free_bytes, &total);
    SPARTA_FAIL("cuda.malloc", "out of memory on cuda:", device, " allocating ", nbytes, " bytes (", free_bytes >> 20,
                " MiB free of ", total >> 20, " MiB)");
  }
  SPARTA_CUDA_CHECK("cuda.malloc", e);
  return p;
}

void device_free(void* p, int device) {
  cudaSetDevice(device);
  cudaFreeAsync(p, stream());  // no throw from destructors
}

void* pinned_malloc(size_t nbytes) {
  void* p = nullptr;
  SPARTA_CUDA_CHECK("cuda.pinned_malloc", cudaMallocHost(&p, nbytes == 0 ? 1 : nbytes));
  return p;
}

void pinned_free(void* p) { cudaFreeHost(p); }

void memcpy(void* dst, const void* src, size_t nbytes, CopyKind kind, int device) {
  use_device(device, "cuda.memcpy");
  cudaMemcpyKind k = kind == CopyKind::host_to_device   ? cudaMemcpyHostToDevice
                     : kind == CopyKind::device_to_host ? cudaMemcpyDeviceToHost
                                                        : cudaMemcpyDeviceToDevice;
  SPARTA_CUDA_CHECK("cuda.memcpy", cudaMemcpyAsync(dst, src, nbytes, k, stream()));
  if (kind == CopyKind::device_to_host) SPARTA_CUDA_CHECK("cuda.memcpy", cudaStreamSynchronize(stream()));
}

void synchronize(int device) {
  use_device(device, "cuda.synchronize");
  SPARTA_CUDA_CHECK("cuda.synchronize", cudaStreamSynchronize(stream()));
}

void upload(void* dst, const void* src, size_t nbytes, int device) {
  struct Slot {
    void* buf = nullptr;
    size_t capacity = 0;
    cudaEvent_t done = nullptr;
  };
  constexpr int kSlots = 4;
  static std::mutex mutex;
  static Slot slots[kSlots];
  static int next = 0;
  use_device(device, "cuda.upload");
  std::lock_guard<std::mutex> lock(mutex);
  Slot& s = slots[next];
  next = (next + 1) % kSlots;
  if (s.done == nullptr) {
    SPARTA_CUDA_CHECK("cuda.upload", cudaEventCreateWithFlags(&s.done, cudaEventDisableTiming));
  } else {
    SPARTA_CUDA_CHECK("cuda.upload", cudaEventSynchronize(s.done));  // the slot's last copy has left it
  }
  if (s.capacity < nbytes) {
    if (s.buf) cudaFreeHost(s.buf);
    s.buf = nullptr;
    s.capacity = 0;
    SPARTA_CUDA_CHECK("cuda.upload", cudaMallocHost(&s.buf, nbytes));
    s.capacity = nbytes;
  }
  std::memcpy(s.buf, src, nbytes);
  SPARTA_CUDA_CHECK("cuda.upload", cudaMemcpyAsync(dst, s.buf, nbytes, cudaMemcpyHostToDevice, stream()));
  SPARTA_CUDA_CHECK("cuda.upload", cudaEventRecord(s.done, stream()));
}

}  // namespace sparta::cuda
