#include "core/tensor.h"

#include <cstring>

#include "core/cuda/runtime.h"
#include "core/ops.h"

namespace sparta {

Tensor::Tensor(std::shared_ptr<Storage> storage, Shape shape, Shape strides, int64_t offset, DType dtype)
    : impl_(std::make_shared<TensorImpl>()) {
  for (int64_t s : shape) SPARTA_CHECK(s >= 0, "tensor", "negative dimension in shape ", shape_str(shape));
  impl_->storage = std::move(storage);
  impl_->shape = std::move(shape);
  impl_->strides = std::move(strides);
  impl_->offset = offset;
  impl_->dtype = dtype;
}

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  for (int64_t s : shape) SPARTA_CHECK(s >= 0, "empty", "negative dimension in shape ", shape_str(shape));
  auto st = std::make_shared<Storage>(size_t(numel_of(shape)) * dtype_size(dtype), device);
  return Tensor(std::move(st), shape, contiguous_strides(shape), 0, dtype);
}

int64_t Tensor::shape(int64_t axis) const { return impl().shape[normalize_axis(axis, dim(), "shape")]; }

bool Tensor::is_contiguous() const {
  if (numel() == 0) return true;  // no element has an address to be out of order (as in PyTorch)
  const auto& sh = impl().shape;
  const auto& st = impl().strides;
  int64_t expected = 1;
  for (int i = int(sh.size()) - 1; i >= 0; --i) {
    if (sh[i] == 1) continue;
    if (st[i] != expected) return false;
    expected *= sh[i];
  }
  return true;
}

void* Tensor::data_ptr() const {
  return static_cast<char*>(impl().storage->data()) + impl().offset * int64_t(itemsize());
}

Tensor Tensor::detach() const {
  Tensor t;
  t.impl_ = std::make_shared<TensorImpl>(impl());
  t.impl_->autograd.reset();
  return t;
}

template <typename T>
std::vector<T> Tensor::to_vector() const {
  Tensor c = sparta::contiguous(sparta::cast(sparta::to_device(detach(), Device::cpu()), dtype_of<T>::value));
  std::vector<T> v(size_t(c.numel()));
  if (!v.empty()) std::memcpy(static_cast<void*>(v.data()), c.data_ptr(), c.nbytes());
  return v;
}

template <typename T>
T Tensor::item() const {
  SPARTA_CHECK(numel() == 1, "item", "tensor of shape ", shape_str(shape()), " has ", numel(),
               " elements, expected exactly 1");
  return to_vector<T>()[0];
}

#define SPARTA_INSTANTIATE(T)                       \
  template std::vector<T> Tensor::to_vector() const; \
  template T Tensor::item() const;
SPARTA_INSTANTIATE(double)
SPARTA_INSTANTIATE(float)
SPARTA_INSTANTIATE(bf16)
SPARTA_INSTANTIATE(f16)
SPARTA_INSTANTIATE(int32_t)
SPARTA_INSTANTIATE(int64_t)
SPARTA_INSTANTIATE(uint8_t)
#undef SPARTA_INSTANTIATE

template <>
std::vector<bool> Tensor::to_vector() const {
  auto u = sparta::cast(detach(), DType::u8).to_vector<uint8_t>();
  return std::vector<bool>(u.begin(), u.end());
}
template <>
bool Tensor::item() const {
  return sparta::cast(detach(), DType::u8).item<uint8_t>() != 0;
}

Tensor Tensor::reshape(const Shape& s) const { return sparta::reshape(*this, s); }
Tensor Tensor::view(const Shape& s) const { return sparta::view(*this, s); }
Tensor Tensor::permute(const std::vector<int>& d) const { return sparta::permute(*this, d); }
Tensor Tensor::transpose(int a, int b) const { return sparta::transpose(*this, a, b); }
Tensor Tensor::slice(int axis, int64_t start, int64_t end, int64_t step) const {
  return sparta::slice(*this, axis, start, end, step);
}
Tensor Tensor::expand(const Shape& s) const { return sparta::expand(*this, s); }
Tensor Tensor::squeeze(int axis) const { return sparta::squeeze(*this, axis); }
Tensor Tensor::unsqueeze(int axis) const { return sparta::unsqueeze(*this, axis); }
Tensor Tensor::contiguous() const { return sparta::contiguous(*this); }
Tensor Tensor::to(DType d) const { return sparta::cast(*this, d); }
Tensor Tensor::to(Device d) const { return sparta::to_device(*this, d); }
Tensor Tensor::clone() const { return sparta::clone(*this); }

}  // namespace sparta
