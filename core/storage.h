#pragma once
// A Storage owns one allocation on one device. Tensors are views into a shared Storage.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>

#include "core/device.h"

namespace sparta {

class Storage {
 public:
  // Allocates nbytes on the device (64-byte aligned on the CPU; the CUDA stream-ordered pool on GPUs).
  Storage(size_t nbytes, Device device);
  // Wraps memory someone else owns; `deleter` (may be empty) runs when the last view goes.
  Storage(void* data, size_t nbytes, Device device, std::function<void(void*)> deleter);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }

 private:
  void* data_ = nullptr;
  size_t nbytes_ = 0;
  Device device_;
  bool owned_ = false;
  std::function<void(void*)> deleter_;
};

struct MemoryStats {
  int64_t current_bytes = 0;
  int64_t peak_bytes = 0;
  int64_t allocations = 0;
};
// Bytes held by sparta's own allocations on a device (wrapped memory is not counted).
MemoryStats memory_stats(Device device);
void reset_peak_memory(Device device);

}  // namespace sparta
