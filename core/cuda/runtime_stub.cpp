#include "core/cuda/runtime.h"
#include "core/error.h"

namespace sparta::cuda {

namespace {
[[noreturn]] void no_cuda() { SPARTA_FAIL("cuda", "this build of sparta has no CUDA support (nvcc was not found at configure time)"); }
}  // namespace

bool available() { return false; }
int device_count() { return 0; }
int compute_capability(int) { no_cuda(); }
void* device_malloc(size_t, int) { no_cuda(); }
void device_free(void*, int) { no_cuda(); }
void* pinned_malloc(size_t) { no_cuda(); }
void pinned_free(void*) { no_cuda(); }
void memcpy(void*, const void*, size_t, CopyKind, int) { no_cuda(); }
void synchronize(int) { no_cuda(); }
void upload(void*, const void*, size_t, int) { no_cuda(); }

}  // namespace sparta::cuda
