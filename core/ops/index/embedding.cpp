// Embedding lookup is index_select along the vocabulary, whose vjp (index_add) is the
// deterministic scatter of the rows' gradients; only the validation is its own.
#include "core/ops.h"
#include "core/ops/index/index.h"

namespace sparta {

Tensor embedding(const Tensor& weight, const Tensor& indices) {
  const char* op = "embedding";
  SPARTA_CHECK(weight.dim() == 2, op, "weight must be (vocabulary, dim), got ", shape_str(weight.shape()));
  SPARTA_CHECK(indices.dtype() == DType::i64 || indices.dtype() == DType::i32, op, "indices must be i32 or i64, got ",
               dtype_name(indices.dtype()));
  const int64_t vocab = weight.shape(0);
  auto check = [&](int64_t i) {
    SPARTA_CHECK(i >= 0 && i < vocab, op, "index ", i, " is outside the vocabulary [0, ", vocab, ") of weight ",
                 shape_str(weight.shape()));
  };
#ifdef SPARTA_CUDA
  if (indices.device().is_cuda()) {
    // The range on the device: two values come back, not every index.
    auto [lo, hi] = cuda::index_bounds(indices);
    if (indices.numel() > 0) check(lo < 0 ? lo : hi);
  } else
#endif
  {
    for (int64_t i : cast(indices, DType::i64).to_vector<int64_t>()) check(i);
  }
  Shape out = indices.shape();
  out.push_back(weight.shape(1));
  return reshape(index_select(weight, 0, reshape(indices, {-1})), out);
}

}  // namespace sparta
