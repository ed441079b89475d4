#include "core/autocast.h"

#include "core/error.h"
#include "core/ops.h"

namespace sparta {
namespace {
thread_local std::optional<DType> t_autocast;
}

AutocastGuard::AutocastGuard(std::optional<DType> low) : previous_(t_autocast) {
  SPARTA_CHECK(!low || *low == DType::bf16 || *low == DType::f16, "autocast", "the low precision must be bf16 or f16, got ",
               dtype_name(*low));
  t_autocast = low;
}

AutocastGuard::~AutocastGuard() { t_autocast = previous_; }

std::optional<DType> autocast_dtype() { return t_autocast; }

Tensor autocast_low(const Tensor& x) {
  return t_autocast && x.defined() && x.dtype() == DType::f32 ? cast(x, *t_autocast) : x;
}

Tensor autocast_full(const Tensor& x) {
  return t_autocast && x.defined() && (x.dtype() == DType::bf16 || x.dtype() == DType::f16) ? cast(x, DType::f32) : x;
}

}  // namespace sparta
