#include "core/ops/view/view.h"

#include <algorithm>
#include <numeric>

#include "core/cuda/runtime.h"
#include "core/ops.h"

namespace sparta {
namespace {

Tensor make_view(const Tensor& x, Shape shape, Shape strides, int64_t offset) {
  return Tensor(x.storage(), std::move(shape), std::move(strides), offset, x.dtype());
}

}  // namespace

Shape infer_shape(const Shape& shape, int64_t numel, const char* op) {
  Shape out = shape;
  int infer = -1;
  int64_t known = 1;
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] == -1) {
      SPARTA_CHECK(infer < 0, op, "only one dimension can be -1 in ", shape_str(shape));
      infer = int(i);
    } else {
      SPARTA_CHECK(out[i] >= 0, op, "invalid dimension ", out[i], " in ", shape_str(shape));
      known *= out[i];
    }
  }
  if (infer >= 0) {
    SPARTA_CHECK(known != 0 && numel % known == 0, op, "shape ", shape_str(shape), " is invalid for ", numel,
                 " elements");
    out[infer] = numel / known;
  }
  SPARTA_CHECK(numel_of(out) == numel, op, "shape ", shape_str(shape), " is invalid for an input of ", numel,
               " elements");
  return out;
}

// Walks the old dimensions in chunks that are contiguous among themselves; each chunk must map
// onto a run of new dimensions with the same element count (PyTorch's computeStride).
std::optional<Shape> view_strides(const Shape& shape, const Shape& strides, const Shape& new_shape) {
  Shape out(new_shape.size());
  if (numel_of(shape) == 0 || shape.empty()) return contiguous_strides(new_shape);
  int64_t view_d = int64_t(new_shape.size()) - 1;
  int64_t chunk_base = strides.empty() ? 1 : strides.back();
  int64_t tensor_numel = 1, view_numel = 1;
  for (int64_t d = int64_t(shape.size()) - 1; d >= 0; --d) {
    tensor_numel *= shape[d];
    if (d == 0 || (shape[d - 1] != 1 && strides[d - 1] != tensor_numel * chunk_base)) {
      while (view_d >= 0 && (view_numel < tensor_numel || new_shape[view_d] == 1)) {
        out[view_d] = view_numel * chunk_base;
        view_numel *= new_shape[view_d];
        --view_d;
      }
      if (view_numel != tensor_numel) return std::nullopt;
      if (d > 0) {
        chunk_base = strides[d - 1];
        tensor_numel = 1;
        view_numel = 1;
      }
    }
  }
  if (view_d != -1) return std::nullopt;
  return out;
}

// ---- Reshape --------------------------------------------------------------------------------
Tensors Reshape::eval_cpu(const Tensors& in) {
  const Tensor& x = in[0];
  if (auto st = view_strides(x.shape(), x.strides(), shape_)) return {make_view(x, shape_, *st, x.offset())};
  SPARTA_CHECK(!view_only_, "view", "cannot view a tensor of shape ", shape_str(x.shape()), " and strides ",
               shape_str(x.strides()), " as ", shape_str(shape_),
               " without copying; call reshape() or contiguous() first");
  Tensor c = Tensor::empty(x.shape(), x.dtype(), x.device());
  copy_values(c, x);
  return {make_view(c, shape_, contiguous_strides(shape_), 0)};
}

Tensors Reshape::vjp(const Tensors& primals, const Tensors& cot, const std::vector<int>&, const Tensors&) {
  return {reshape(cot[0], primals[0].shape())};
}

Tensor reshape(const Tensor& x, Shape shape) {
  shape = infer_shape(shape, x.numel(), "reshape");
  if (shape == x.shape()) return x;
  return run1(std::make_shared<Reshape>(shape, false), {x});
}

Tensor view(const Tensor& x, Shape shape) {
  shape = infer_shape(shape, x.numel(), "view");
  if (shape == x.shape()) return x;
  return run1(std::make_shared<Reshape>(shape, true), {x});
}

Tensor squeeze(const Tensor& x, int axis) {
  int a = normalize_axis(axis, x.dim(), "squeeze");
  SPARTA_CHECK(x.shape()[a] == 1, "squeeze", "dimension ", axis, " of shape ", shape_str(x.shape()),
               " has size ", x.shape()[a], ", not 1");
  Shape s = x.shape();
  s.erase(s.begin() + a);
  return view(x, s);
}

Tensor unsqueeze(const Tensor& x, int axis) {
  int a = normalize_axis(axis, x.dim() + 1, "unsqueeze");
  Shape s = x.shape();
  s.insert(s.begin() + a, 1);
  return view(x, s);
}

Tensor flatten(const Tensor& x, int start_axis, int end_axis) {
  if (x.dim() == 0) return reshape(x, {1});
  int s = normalize_axis(start_axis, x.dim(), "flatten");
  int e = normalize_axis(end_axis, x.dim(), "flatten");
  SPARTA_CHECK(s <= e, "flatten", "start axis ", start_axis, " is after end axis ", end_axis);
  Shape out(x.shape().begin(), x.shape().begin() + s);
  int64_t n = 1;
  for (int i = s; i <= e; ++i) n *= x.shape()[i];
  out.push_back(n);
  out.insert(out.end(), x.shape().begin() + e + 1, x.shape().end());
  return reshape(x, out);
}

// ---- Permute --------------------------------------------------------------------------------
Tensors Permute::eval_cpu(const Tensors& in) {
  const Tensor& x = in[0];
  Shape sh(dims_.size()), st(dims_.size());
  for (size_t i = 0; i < dims_.size(); ++i) {
    sh[i] = x.shape()[dims_[i]];
    st[i] = x.strides()[dims_[i]];
  }
  return {make_view(x, sh, st, x.offset())};
}

Tensors Permute::vjp(const Tensors&, const Tensors& cot, const std::vector<int>&, const Tensors&) {
  std::vector<int> inv(dims_.size());
  for (size_t i = 0; i < dims_.size(); ++i) inv[dims_[i]] = int(i);
  return {permute(cot[0], inv)};
}

Tensor permute(const Tensor& x, const std::vector<int>& dims) {
  SPARTA_CHECK(int(dims.size()) == x.dim(), "permute", "got ", dims.size(), " dimensions for a tensor of shape ",
               shape_str(x.shape()));
  std::vector<int> d(dims.size());
  std::vector<bool> seen(dims.size(), false);
  for (size_t i = 0; i < dims.size(); ++i) {
    d[i] = normalize_axis(dims[i], x.dim(), "permute");
    SPARTA_CHECK(!seen[d[i]], "permute", "dimension ", dims[i], " repeated");
    seen[d[i]] = true;
  }
  bool identity = true;
  for (size_t i = 0; i < d.size(); ++i) identity = identity && d[i] == int(i);
  if (identity) return x;
  return run1(std::make_shared<Permute>(d), {x});
}

Tensor transpose(const Tensor& x, int a, int b) {
  std::vector<int> d(x.dim());
  std::iota(d.begin(), d.end(), 0);
  std::swap(d[normalize_axis(a, x.dim(), "transpose")], d[normalize_axis(b, x.dim(), "transpose")]);
  return permute(x, d);
}

// ---- Slice ----------------------------------------------------------------------------------
Tensors Slice::eval_cpu(const Tensors& in) {
  const Tensor& x = in[0];
  Shape sh = x.shape(), st = x.strides();
  sh[axis_] = end_ > start_ ? (end_ - start_ + step_ - 1) / step_ : 0;
  int64_t off = x.offset() + start_ * st[axis_];
  st[axis_] *= step_;
  return {make_view(x, sh, st, off)};
}

Tensors Slice::vjp(const Tensors& primals, const Tensors& cot, const std::vector<int>&, const Tensors&) {
  return {run1(std::make_shared<SliceScatter>(primals[0].shape(), axis_, start_, end_, step_), {cot[0]})};
}

Tensors SliceScatter::eval_cpu(const Tensors& in) {
  Tensor out = zeros(shape_, in[0].dtype(), in[0].device());
  Tensor region = Slice(axis_, start_, end_, step_).eval_cpu({out})[0];
  copy_values(region, in[0]);
  return {out};
}

Tensors SliceScatter::vjp(const Tensors&, const Tensors& cot, const std::vector<int>&, const Tensors&) {
  return {slice(cot[0], axis_, start_, end_, step_)};
}

Tensor slice(const Tensor& x, int axis, int64_t start, int64_t end, int64_t step) {
  int a = normalize_axis(axis, x.dim(), "slice");
  int64_t n = x.shape()[a];
  SPARTA_CHECK(step > 0, "slice", "step must be positive, got ", step);
  // Python semantics: negative indices count from the end, out-of-range ends are clamped.
  if (start < 0) start += n;
  if (end < 0) end += n;
  start = std::clamp<int64_t>(start, 0, n);
  end = std::clamp<int64_t>(end, start, n);
  if (start == 0 && end == n && step == 1) return x;
  return run1(std::make_shared<Slice>(a, start, end, step), {x});
}

// ---- Expand ---------------------------------------------------------------------------------
Tensors Expand::eval_cpu(const Tensors& in) {
  const Tensor& x = in[0];
  int off = int(shape_.size()) - x.dim();
  Shape st(shape_.size(), 0);
  for (int d = 0; d < x.dim(); ++d) st[d + off] = x.shape()[d] == 1 ? 0 : x.strides()[d];
  return {make_view(x, shape_, st, x.offset())};
}

Tensors Expand::vjp(const Tensors& primals, const Tensors& cot, const std::vector<int>&, const Tensors&) {
  return {sum_to(cot[0], primals[0].shape())};
}

Tensor expand(const Tensor& x, const Shape& shape) {
  SPARTA_CHECK(int(shape.size()) >= x.dim(), "expand", "cannot expand shape ", shape_str(x.shape()), " to ",
               shape_str(shape), " (fewer dimensions)");
  Shape target = shape;
  int off = int(shape.size()) - x.dim();
  for (int d = 0; d < int(shape.size()); ++d) {
    int64_t have = d < off ? 1 : x.shape()[d - off];
    if (target[d] == -1) target[d] = have;
    SPARTA_CHECK(have == target[d] || have == 1, "expand", "cannot expand shape ", shape_str(x.shape()), " to ",
                 shape_str(shape), " (dimension ", d, ": ", have, " vs ", target[d], ")");
  }
  if (target == x.shape()) return x;
  return run1(std::make_shared<Expand>(target), {x});
}

Tensor sum_to(const Tensor& x, const Shape& shape) {
  if (x.shape() == shape) return x;
  int lead = x.dim() - int(shape.size());
  SPARTA_CHECK(lead >= 0, "sum_to", "cannot reduce shape ", shape_str(x.shape()), " to ", shape_str(shape));
  std::vector<int> axes;
  for (int d = 0; d < x.dim(); ++d) {
    if (d < lead) {
      axes.push_back(d);
    } else if (shape[d - lead] == 1 && x.shape()[d] != 1) {
      axes.push_back(d);
    } else {
      SPARTA_CHECK(shape[d - lead] == x.shape()[d], "sum_to", "cannot reduce shape ", shape_str(x.shape()),
                   " to ", shape_str(shape));
    }
  }
  Tensor s = axes.empty() ? x : sum(x, axes, true);
  return reshape(s, shape);
}

// ---- Copy, Cast, ToDevice -------------------------------------------------------------------
void copy_values(const Tensor& dst, const Tensor& src) {
  SPARTA_CHECK(dst.device() == src.device(), "copy", "tensors on ", dst.device().str(), " and ", src.device().str());
#ifdef SPARTA_CUDA
  if (dst.device().is_cuda()) return cuda::copy_into(dst, src);
#endif
  cpu::copy_into(dst, src);
}

Tensors Copy::eval_cpu(const Tensors& in) {
  Tensor out = Tensor::empty(in[0].shape(), in[0].dtype(), in[0].device());
  copy_values(out, in[0]);
  return {out};
}

Tensors Copy::vjp(const Tensors&, const Tensors& cot, const std::vector<int>&, const Tensors&) { return {cot[0]}; }

Tensor contiguous(const Tensor& x) {
  if (x.is_contiguous()) return x;
  return run1(std::make_shared<Copy>(), {x});
}

Tensor clone(const Tensor& x) { return run1(std::make_shared<Copy>(), {x}); }

Tensors Cast::eval_cpu(const Tensors& in) {
  Tensor out = Tensor::empty(in[0].shape(), to_, in[0].device());
  copy_values(out, in[0]);
  return {out};
}

Tensors Cast::vjp(const Tensors& primals, const Tensors& cot, const std::vector<int>&, const Tensors&) {
  return {cast(cot[0], primals[0].dtype())};
}

Tensor cast(const Tensor& x, DType dtype) {
  if (x.dtype() == dtype) return x;
  return run1(std::make_shared<Cast>(dtype), {x});
}

Tensors ToDevice::move(const Tensors& in) {
  Tensor src = in[0].detach();
  SPARTA_CHECK(src.is_contiguous(), "to_device", "source must be contiguous on ", src.device().str());
  Tensor out = Tensor::empty(src.shape(), src.dtype(), to_);
  if (out.nbytes() == 0) return {out};
  Device from = src.device();
  if (from.is_cpu() && to_.is_cuda()) {
    // Small transfers (batches, tables) are staged in pinned memory and go asynchronously; large
    // ones (a model's weights, once) go directly.
    constexpr size_t kStaged = size_t(64) << 20;
    if (out.nbytes() <= kStaged) {
      cuda::upload(out.data_ptr(), src.data_ptr(), out.nbytes(), to_.index);
    } else {
      cuda::memcpy(out.data_ptr(), src.data_ptr(), out.nbytes(), cuda::CopyKind::host_to_device, to_.index);
    }
  } else if (from.is_cuda() && to_.is_cpu()) {
    cuda::memcpy(out.data_ptr(), src.data_ptr(), out.nbytes(), cuda::CopyKind::device_to_host, from.index);
  } else {
    cuda::memcpy(out.data_ptr(), src.data_ptr(), out.nbytes(), cuda::CopyKind::device_to_device, to_.index);
  }
  return {out};
}

Tensors ToDevice::vjp(const Tensors& primals, const Tensors& cot, const std::vector<int>&, const Tensors&) {
  return {to_device(cot[0], primals[0].device())};
}

Tensor to_device(const Tensor& x, Device device) {
  if (x.device() == device) return x;
  return run1(std::make_shared<ToDevice>(device), {contiguous(x)});
}

}  // namespace sparta
