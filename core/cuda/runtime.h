#pragma once
// The narrow device interface (DESIGN: allocate, free, copy, synchronise). A CPU-only build links
// runtime_stub.cpp, whose functions throw, so asking for a GPU there is a clear error.
#include <cstddef>

namespace sparta::cuda {

bool available();   // a CUDA build with at least one visible device
int device_count();
void* device_malloc(size_t nbytes, int device);  // stream-ordered pool (cudaMallocAsync)
void device_free(void* p, int device);
enum class CopyKind { host_to_device, device_to_host, device_to_device };
void memcpy(void* dst, const void* src, size_t nbytes, CopyKind kind, int device);
void synchronize(int device);

}  // namespace sparta::cuda
