// Creation of fresh tensors: constants, ranges, random draws, wrapped memory.
#include <cmath>
#include <cstring>

#include "core/cpu/convert.h"
#include "core/cpu/loop.h"
#include "core/dispatch.h"
#include "core/ops.h"
#include "core/ops/view/view.h"

namespace sparta {

Tensor empty(const Shape& shape, DType dtype, Device device) { return Tensor::empty(shape, dtype, device); }

Tensor full(const Shape& shape, double value, DType dtype, Device device) {
  if (device.is_cuda()) {
    Tensor t = Tensor::empty(shape, dtype, device);
    fill_(t, value);
    return t;
  }
  Tensor host = Tensor::empty(shape, dtype);
  SPARTA_DISPATCH_ALL(dtype, "full", [&] {
    using T = scalar_t;
    T v = cpu::convert<T>(value);
    cpu::map_elements<T>(host, {}, [v]() { return v; });
  });
  return host;
}

Tensor zeros(const Shape& shape, DType dtype, Device device) { return full(shape, 0, dtype, device); }
Tensor ones(const Shape& shape, DType dtype, Device device) { return full(shape, 1, dtype, device); }
Tensor zeros_like(const Tensor& t) { return zeros(t.shape(), t.dtype(), t.device()); }
Tensor ones_like(const Tensor& t) { return ones(t.shape(), t.dtype(), t.device()); }
Tensor full_like(const Tensor& t, double v) { return full(t.shape(), v, t.dtype(), t.device()); }
Tensor scalar(double value, DType dtype, Device device) { return full({}, value, dtype, device); }

Tensor arange(double start, double end, double step, DType dtype) {
  SPARTA_CHECK(step != 0, "arange", "step must be non-zero");
  SPARTA_CHECK(std::isfinite(start) && std::isfinite(end), "arange", "bounds must be finite, got ", start, " and ", end);
  int64_t n = std::max<int64_t>(0, int64_t(std::ceil((end - start) / step)));
  Tensor out = Tensor::empty({n}, dtype);
  SPARTA_DISPATCH_ALL(dtype, "arange", [&] {
    auto* p = out.data<scalar_t>();
    for (int64_t i = 0; i < n; ++i) p[i] = cpu::convert<scalar_t>(start + double(i) * step);
  });
  return out;
}

namespace {

// Element i of a uniform draw reads lane i % 4 of Philox block (offset + i / 4).
template <typename F>
Tensor draw(const Shape& shape, DType dtype, Generator* gen, uint64_t values_per_block, const char* op, F&& value) {
  SPARTA_CHECK(is_floating(dtype), op, "needs a floating dtype, got ", dtype_name(dtype));
  Generator& g = gen ? *gen : default_generator();
  int64_t n = numel_of(shape);
  PhiloxKey key = g.take((uint64_t(n) + values_per_block - 1) / values_per_block);
  Tensor out = Tensor::empty(shape, dtype);
  SPARTA_DISPATCH_FLOAT(dtype, op, [&] {
    auto* p = out.data<scalar_t>();
    tbb::parallel_for(tbb::blocked_range<int64_t>(0, n, 4096), [&](const tbb::blocked_range<int64_t>& r) {
      for (int64_t i = r.begin(); i < r.end(); ++i) p[i] = cpu::convert<scalar_t>(value(key, i));
    });
  });
  return out;
}

}  // namespace

Tensor uniform(const Shape& shape, double low, double high, DType dtype, Generator* gen) {
  SPARTA_CHECK(low < high, "uniform", "low ", low, " must be below high ", high);
  return draw(shape, dtype, gen, 4, "uniform", [low, high](PhiloxKey k, int64_t i) {
    Philox4 b = philox4x32(k.seed, k.offset + uint64_t(i) / 4, 0);
    return low + (high - low) * double(uint_to_unit(b.v[i % 4]));
  });
}

Tensor rand(const Shape& shape, DType dtype, Generator* gen, Device device) {
  Tensor t = uniform(shape, 0, 1, dtype, gen);
  return device.is_cpu() ? t : to_device(t, device);
}

// Box-Muller on lanes (0,1) for even i and (2,3) for odd i of block (offset + i / 2).
Tensor randn(const Shape& shape, DType dtype, Generator* gen, Device device) {
  Tensor t = draw(shape, dtype, gen, 2, "randn", [](PhiloxKey k, int64_t i) {
    Philox4 b = philox4x32(k.seed, k.offset + uint64_t(i) / 2, 0);
    int lane = 2 * int(i % 2);
    double u1 = (double(b.v[lane] >> 8) + 1.0) / 16777217.0;  // (0, 1]: log is finite
    double u2 = double(uint_to_unit(b.v[lane + 1]));
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
  });
  return device.is_cpu() ? t : to_device(t, device);
}

Tensor randint(int64_t low, int64_t high, const Shape& shape, DType dtype, Generator* gen) {
  SPARTA_CHECK(low < high, "randint", "low ", low, " must be below high ", high);
  SPARTA_CHECK(is_integral(dtype), "randint", "needs an integer dtype, got ", dtype_name(dtype));
  Generator& g = gen ? *gen : default_generator();
  int64_t n = numel_of(shape);
  PhiloxKey key = g.take((uint64_t(n) + 1) / 2);
  uint64_t range = uint64_t(high - low);
  Tensor out = Tensor::empty(shape, DType::i64);
  auto* p = out.data<int64_t>();
  for (int64_t i = 0; i < n; ++i) {
    Philox4 b = philox4x32(key.seed, key.offset + uint64_t(i) / 2, 0);
    int lane = 2 * int(i % 2);
    uint64_t r = (uint64_t(b.v[lane]) << 32) | b.v[lane + 1];
    p[i] = low + int64_t(r % range);  // 64 random bits: the modulo bias is below 2^-32 for any range used here
  }
  return cast(out, dtype);
}

Tensor from_blob(void* data, const Shape& shape, DType dtype) {
  auto st = std::make_shared<Storage>(data, size_t(numel_of(shape)) * dtype_size(dtype), Device::cpu(), nullptr);
  return Tensor(std::move(st), shape, contiguous_strides(shape), 0, dtype);
}

Tensor from_vector(const std::vector<double>& values, const Shape& shape, DType dtype) {
  SPARTA_CHECK(int64_t(values.size()) == numel_of(shape), "from_vector", "got ", values.size(),
               " values for shape ", shape_str(shape));
  Tensor src = from_blob(const_cast<double*>(values.data()), shape, DType::f64);
  Tensor out = Tensor::empty(shape, dtype);
  cpu::copy_into(out, src);
  return out;
}

Tensor from_vector_i64(const std::vector<int64_t>& values, const Shape& shape, DType dtype) {
  SPARTA_CHECK(int64_t(values.size()) == numel_of(shape), "from_vector", "got ", values.size(),
               " values for shape ", shape_str(shape));
  Tensor src = from_blob(const_cast<int64_t*>(values.data()), shape, DType::i64);
  Tensor out = Tensor::empty(shape, dtype);
  cpu::copy_into(out, src);
  return out;
}

}  // namespace sparta
