#include "core/storage.h"

#include <tbb/scalable_allocator.h>

#include <atomic>
#include <cstring>

#include "core/cuda/runtime.h"
#include "core/error.h"

namespace sparta {
namespace {

struct Counters {
  std::atomic<int64_t> current{0}, peak{0}, allocations{0};
  void add(int64_t n) {
    int64_t now = current.fetch_add(n) + n;
    int64_t p = peak.load();
    while (now > p && !peak.compare_exchange_weak(p, now)) {
    }
    allocations.fetch_add(1);
  }
  void sub(int64_t n) { current.fetch_sub(n); }
};

constexpr int kMaxCudaDevices = 16;
Counters& counters(Device d) {
  static Counters cpu;
  static Counters cuda[kMaxCudaDevices];
  if (d.is_cpu()) return cpu;
  SPARTA_CHECK(d.index >= 0 && d.index < kMaxCudaDevices, "storage", "device index ", d.index, " out of range");
  return cuda[d.index];
}

}  // namespace

Device device_from_name(const std::string& n) {
  if (n == "cpu") return Device::cpu();
  if (n == "cuda") return Device::cuda(0);
  if (n.rfind("cuda:", 0) == 0) {
    try {
      size_t used = 0;
      int i = std::stoi(n.substr(5), &used);
      if (used == n.size() - 5 && i >= 0) return Device::cuda(i);
    } catch (const std::exception&) {
    }
  }
  SPARTA_FAIL("device", "unknown device '", n, "' (expected cpu, cuda or cuda:N)");
}

namespace {
// TBB's allocator hands blocks above a size back to the OS on free, so every large temporary of a
// training step would fault in fresh zeroed pages (measured: an add of two 256 MB tensors ran at
// half the copy bandwidth, all of it page faults). Blocks from 1 MiB up are kept for reuse
// instead, as a caching allocator would.
void keep_large_blocks() {
  static const bool once = [] {
    scalable_allocation_mode(TBBMALLOC_SET_HUGE_SIZE_THRESHOLD, intptr_t(1) << 20);
    return true;
  }();
  (void)once;
}
}  // namespace

Storage::Storage(size_t nbytes, Device device) : nbytes_(nbytes), device_(device), owned_(true) {
  size_t n = nbytes == 0 ? 1 : nbytes;
  if (device.is_cpu()) {
    keep_large_blocks();
    data_ = scalable_aligned_malloc(n, 64);
    SPARTA_CHECK(data_ != nullptr, "storage", "out of host memory allocating ", nbytes, " bytes");
  } else {
    data_ = cuda::device_malloc(n, device.index);
  }
  counters(device).add(int64_t(nbytes));
}

Storage::Storage(void* data, size_t nbytes, Device device, std::function<void(void*)> deleter)
    : data_(data), nbytes_(nbytes), device_(device), owned_(false), deleter_(std::move(deleter)) {}

Storage::~Storage() {
  if (!owned_) {
    if (deleter_) deleter_(data_);
    return;
  }
  counters(device_).sub(int64_t(nbytes_));
  if (device_.is_cpu()) {
    scalable_aligned_free(data_);
  } else {
    cuda::device_free(data_, device_.index);
  }
}

MemoryStats memory_stats(Device d) {
  auto& c = counters(d);
  return {c.current.load(), c.peak.load(), c.allocations.load()};
}

void reset_peak_memory(Device d) {
  auto& c = counters(d);
  c.peak.store(c.current.load());
}

}  // namespace sparta
