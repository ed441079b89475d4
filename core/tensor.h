#pragma once
// Tensor: a handle to a TensorImpl (shared Storage + shape + strides + offset + dtype).
// Copies of a Tensor share one impl, as PyTorch's do; views make a new impl over the same Storage.
#include <memory>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "core/shape.h"
#include "core/storage.h"

namespace sparta {

// Opaque slot for the autograd layer (core knows nothing of the tape; see autograd/meta.h).
struct AutogradMetaBase {
  virtual ~AutogradMetaBase() = default;
};

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  Shape shape;
  Shape strides;  // in elements
  int64_t offset = 0;  // in elements
  DType dtype = DType::f32;
  std::shared_ptr<AutogradMetaBase> autograd;
};

class Tensor {
 public:
  Tensor() = default;
  Tensor(std::shared_ptr<Storage> storage, Shape shape, Shape strides, int64_t offset, DType dtype);
  // A fresh contiguous tensor with uninitialised contents.
  static Tensor empty(const Shape& shape, DType dtype = DType::f32, Device device = Device::cpu());

  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const { return impl().shape; }
  int64_t shape(int64_t axis) const;  // negative counts from the end
  const Shape& strides() const { return impl().strides; }
  int64_t offset() const { return impl().offset; }
  int dim() const { return int(impl().shape.size()); }
  int64_t numel() const { return numel_of(impl().shape); }
  DType dtype() const { return impl().dtype; }
  Device device() const { return impl().storage->device(); }
  size_t itemsize() const { return dtype_size(dtype()); }
  size_t nbytes() const { return size_t(numel()) * itemsize(); }
  const std::shared_ptr<Storage>& storage() const { return impl().storage; }
  bool is_contiguous() const;
  bool is_same(const Tensor& o) const { return impl_ == o.impl_; }

  // Address of element 0 (storage base + offset).
  void* data_ptr() const;
  template <typename T>
  T* data() const {
    SPARTA_CHECK(dtype_of<T>::value == dtype(), "data", "tensor has dtype ", dtype_name(dtype()),
                 ", asked for ", dtype_name(dtype_of<T>::value));
    return static_cast<T*>(data_ptr());
  }
  // The single value of a one-element tensor, converted to T (copied from the GPU if needed).
  template <typename T>
  T item() const;
  // All values in logical (row-major) order, converted to T.
  template <typename T>
  std::vector<T> to_vector() const;

  // Views and conversions: sugar for the functions in core/ops.h (they are differentiable).
  Tensor reshape(const Shape& shape) const;
  Tensor view(const Shape& shape) const;
  Tensor permute(const std::vector<int>& dims) const;
  Tensor transpose(int a, int b) const;
  Tensor slice(int axis, int64_t start, int64_t end, int64_t step = 1) const;
  Tensor expand(const Shape& shape) const;
  Tensor squeeze(int axis) const;
  Tensor unsqueeze(int axis) const;
  Tensor contiguous() const;
  Tensor to(DType dtype) const;
  Tensor to(Device device) const;
  Tensor clone() const;

  // A new handle on the same data with no autograd history (what `detach()` means in PyTorch).
  Tensor detach() const;

  TensorImpl& impl() const {
    SPARTA_CHECK(impl_ != nullptr, "tensor", "use of an undefined tensor");
    return *impl_;
  }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }

 private:
  std::shared_ptr<TensorImpl> impl_;
};

}  // namespace sparta
