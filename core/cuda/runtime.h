#pragma once
// The narrow device interface (DESIGN: allocate, free, copy, synchronise). A CPU-only build links
// runtime_stub.cpp, whose functions throw, so asking for a GPU there is a clear error.
#include <cstddef>

namespace sparta::cuda {

bool available();   // a CUDA build with at least one visible device
int device_count();
int compute_capability(int device);  // major * 10 + minor (90: Hopper)
void* device_malloc(size_t nbytes, int device);  // stream-ordered pool (cudaMallocAsync)
void device_free(void* p, int device);
// Page-locked host memory, so that host-to-device copies run asynchronously at full speed.
void* pinned_malloc(size_t nbytes);
void pinned_free(void* p);
enum class CopyKind { host_to_device, device_to_host, device_to_device };
// Ordered on the compute stream. Device-to-host waits for the data; host-to-device from pinned
// memory returns at once (the source must stay alive until the stream has passed the copy).
void memcpy(void* dst, const void* src, size_t nbytes, CopyKind kind, int device);
void synchronize(int device);
// Host-to-device copy through a small ring of pinned staging buffers: returns once the source has
// been staged (it may be freed at once); the transfer runs asynchronously on the compute stream,
// so the data loader's batches never stall the GPU's queue of work.
void upload(void* dst, const void* src, size_t nbytes, int device);

}  // namespace sparta::cuda
