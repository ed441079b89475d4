#pragma once
// Fused optimiser updates and gradient-norm clipping on CUDA (train/optimizer_cuda.cu): one
// multi-tensor launch covers every parameter. The launchers know device pointers, not tensors;
// train/optimizer.cpp gathers the pointers. CUDA builds only.
//
// Work is split into chunks of a fixed number of elements; block b of a launch handles chunk b,
// whose descriptor names its parameter and first element, so one grid covers tensors of any sizes.
#include <cstdint>
#include <memory>
#include <vector>

#include "core/dtype.h"

namespace sparta::train::fused {

// One parameter: its weights and moment buffers (v is null for SGD), all of the group's dtype,
// contiguous, on the group's device.
struct Slot {
  void* param = nullptr;
  void* m = nullptr;
  void* v = nullptr;
  int64_t numel = 0;
  double weight_decay = 0;
};

// Host-computed scalars of one AdamW step (train/optimizer.cpp computes them as the CPU path does).
struct AdamWArgs {
  double lr, beta1, beta2, eps, inv_c1, inv_sqrt_c2;
};

// The device-side descriptors of one parameter group (one device, dtype f32 or f64): slots and
// chunks uploaded once at construction, gradient pointers uploaded again only when they change.
class MultiTensor {
 public:
  MultiTensor(int device, DType dtype, const std::vector<Slot>& slots);
  ~MultiTensor();
  MultiTensor(const MultiTensor&) = delete;
  MultiTensor& operator=(const MultiTensor&) = delete;

  // grads[i]: slot i's gradient (the group's dtype, contiguous), or null to leave the slot as it is.
  void adamw(const std::vector<const void*>& grads, const AdamWArgs& args);
  void sgd(const std::vector<const void*>& grads, double lr, double momentum);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// A contiguous floating tensor (any float dtype) on the device.
struct GradRef {
  void* data = nullptr;
  int64_t numel = 0;
  DType dtype = DType::f32;
};

// A list of gradients on one device, uploaded once for the norm and the scaling that may follow.
class GradSet {
 public:
  GradSet(int device, const std::vector<GradRef>& grads);
  ~GradSet();
  GradSet(const GradSet&) = delete;
  GradSet& operator=(const GradSet&) = delete;

  // The sum of squares of every element, in f64 (one reduction, one synchronisation to read it).
  double sum_of_squares();
  // Every gradient *= scale, in the dtype's compute type as mul_ does (one launch).
  void scale(double scale);

 private:
  int device_ = 0;
  int64_t chunks_ = 0;
  void* table_ = nullptr;     // device array of chunk descriptors
  double* partial_ = nullptr;  // device: one partial sum per chunk, then the total
};

}  // namespace sparta::train::fused
