#pragma once
// Reverse-mode autodiff over core's primitives. Any op in core/ops.h applied to a tensor that
// requires grad is recorded (one hook in core::run); backward() replays each primitive's vjp in
// reverse order and accumulates into the leaves' .grad.
#include <functional>

#include "autograd/grad_mode.h"
#include "autograd/node.h"

namespace sparta::autograd {

// Installs the recording hook into core (idempotent; done by every entry point below).
void install();

// Marks a leaf tensor as a parameter/input whose gradient is wanted. Returns t.
Tensor& requires_grad(Tensor& t, bool flag = true);
Tensor requires_grad(Tensor&& t, bool flag = true);
bool requires_grad_of(const Tensor& t);
bool is_leaf(const Tensor& t);
// The accumulated gradient of a leaf (undefined if none yet).
Tensor grad(const Tensor& t);
void set_grad(const Tensor& t, const Tensor& g);
void zero_grad(const Tensor& t);  // drops the gradient (next backward starts fresh)

// Gradients of `roots` with respect to every leaf that requires grad, accumulated into .grad.
// A non-scalar root needs an explicit gradient of its shape.
void backward(const Tensor& root, const Tensor& gradient = Tensor());
void backward(const Tensors& roots, const Tensors& gradients);

// Runs once per leaf when its gradient for this backward pass is complete (data-parallel
// bucketing listens here). Hooks stay until the tensor dies.
void register_grad_ready_hook(const Tensor& leaf, std::function<void(Tensor&)> hook);
// Runs once after the next backward pass finishes on this thread, then is forgotten. A pass
// nested in another (activation checkpointing recomputes and backpropagates inside a vjp) leaves
// the callbacks to the outermost pass.
void queue_post_backward_callback(std::function<void()> cb);

}  // namespace sparta::autograd
