#pragma once
// The tape. A Node is one primitive application recorded during the forward pass: the primitive,
// its inputs (which carry their own history) and its outputs (detached, to break the cycle
// output -> meta -> node -> output). Gradients flow along Edges to the nodes that made the inputs.
#include <functional>
#include <memory>
#include <vector>

#include "core/primitive.h"

namespace sparta::autograd {

struct Node;

struct AutogradMeta : AutogradMetaBase {
  bool requires_grad = false;
  Tensor grad;                    // leaves only
  std::shared_ptr<Node> grad_fn;  // null for leaves
  int output_nr = 0;
  std::vector<std::function<void(Tensor&)>> grad_ready_hooks;  // leaves only
};

struct Node {
  std::shared_ptr<Primitive> primitive;
  Tensors inputs;    // with their autograd meta: the edges of the graph
  Tensors primals;   // the same tensors, detached, for the vjp
  Tensors outputs;   // detached
  std::vector<int> argnums;  // inputs that need a gradient
  uint64_t sequence = 0;     // creation order; later nodes run first among the ready ones
};

// nullptr when t has no autograd state.
AutogradMeta* meta_of(const Tensor& t);
AutogradMeta& ensure_meta(const Tensor& t);

}  // namespace sparta::autograd
