#pragma once
// Note [Primitives]
// An op is one primitive: a class that knows its name, computes its outputs (eval_cpu, eval_cuda)
// and gives its vector-Jacobian product written with other ops (vjp). Public functions in
// core/ops.h validate arguments, build the primitive and call run(). The autograd layer observes
// run() through one hook and records the primitive on its tape; core itself keeps no tape.
#include <functional>
#include <memory>
#include <vector>

#include "core/tensor.h"

namespace sparta {

using Tensors = std::vector<Tensor>;

class Primitive {
 public:
  virtual ~Primitive() = default;
  virtual const char* name() const = 0;
  virtual Tensors eval_cpu(const Tensors& inputs) = 0;
  virtual Tensors eval_cuda(const Tensors& inputs);  // default: "[name] has no CUDA kernel"
  // Cotangents of the inputs listed in argnums (one per entry; may be undefined for "zero"), given
  // the primals, one cotangent per output (never undefined) and the outputs.
  virtual Tensors vjp(const Tensors& primals, const Tensors& cotangents, const std::vector<int>& argnums,
                      const Tensors& outputs);
  // False for ops whose outputs carry no gradient (comparisons, argmax, integer results).
  virtual bool differentiable() const { return true; }
};

// Evaluates p on the inputs' device and lets the autograd hook (if any) record it.
Tensors run(const std::shared_ptr<Primitive>& p, const Tensors& inputs);
Tensor run1(const std::shared_ptr<Primitive>& p, const Tensors& inputs);

namespace detail {
using RecordHook = void (*)(const std::shared_ptr<Primitive>&, const Tensors& inputs, Tensors& outputs);
void set_record_hook(RecordHook hook);
}  // namespace detail

}  // namespace sparta
