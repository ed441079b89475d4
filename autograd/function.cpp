#include "autograd/function.h"

namespace sparta::autograd::detail {

Tensors FunctionPrimitive::vjp(const Tensors& primals, const Tensors& cot, const std::vector<int>& argnums,
                               const Tensors&) {
  Tensors all = backward_(ctx_, cot);
  SPARTA_CHECK(all.size() == primals.size(), name_, "backward returned ", all.size(), " gradients for ",
               primals.size(), " inputs");
  Tensors picked;
  for (int a : argnums) picked.push_back(all[size_t(a)]);
  return picked;
}

}  // namespace sparta::autograd::detail
