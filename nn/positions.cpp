#include "nn/positions.h"

#include <cmath>

#include "core/ops.h"

namespace sparta::nn {

PositionKind position_kind_from_name(const std::string& name) {
  if (name == "learned") return PositionKind::learned;
  if (name == "sinusoidal") return PositionKind::sinusoidal;
  if (name == "rotary") return PositionKind::rotary;
  SPARTA_FAIL("positions", "unknown position encoding '", name, "' (expected learned, sinusoidal or rotary)");
}

Tensor sinusoidal_table(int64_t max_len, int64_t dim) {
  std::vector<double> v(size_t(max_len * dim));
  for (int64_t t = 0; t < max_len; ++t)
    for (int64_t i = 0; i < dim; ++i) {
      const double freq = std::pow(10000.0, -double(2 * (i / 2)) / double(dim));
      v[size_t(t * dim + i)] = i % 2 == 0 ? std::sin(double(t) * freq) : std::cos(double(t) * freq);
    }
  return from_vector(v, {max_len, dim});
}

RotaryTables rotary_tables(int64_t offset, int64_t len, int64_t head_dim, double base) {
  SPARTA_CHECK(head_dim % 2 == 0, "rotary", "head dimension ", head_dim, " must be even");
  const int64_t half = head_dim / 2;
  std::vector<double> c(size_t(len * head_dim)), s(size_t(len * head_dim));
  for (int64_t t = 0; t < len; ++t)
    for (int64_t i = 0; i < head_dim; ++i) {
      const double angle = double(offset + t) * std::pow(base, -double(2 * (i % half)) / double(head_dim));
      c[size_t(t * head_dim + i)] = std::cos(angle);
      s[size_t(t * head_dim + i)] = std::sin(angle);
    }
  return {from_vector(c, {len, head_dim}), from_vector(s, {len, head_dim})};
}

Tensor apply_rotary(const Tensor& x, const RotaryTables& tables) {
  const int64_t d = x.shape(-1), half = d / 2;
  Tensor x1 = slice(x, -1, 0, half), x2 = slice(x, -1, half, d);
  Tensor rotated = concat({neg(x2), x1}, -1);
  return x * cast(tables.cos, x.dtype()) + rotated * cast(tables.sin, x.dtype());
}

}  // namespace sparta::nn
