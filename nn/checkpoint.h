#pragma once
// Activation checkpointing: run a piece of the model without keeping its activations, and
// recompute them in the backward pass. Memory falls to the piece's input; the time is one more
// forward of the piece. Gradients are bit-identical to a run without it: the recomputation draws
// the same dropout masks (the generator is rewound to where the forward started) under the same
// autocast precision.
#include <functional>

#include "core/random.h"
#include "core/tensor.h"

namespace sparta::nn {

// fn(x) with its activations recomputed in backward; gen is the generator fn's dropout draws from.
// Without grad mode (evaluation) it is simply fn(x).
Tensor checkpoint(std::function<Tensor(const Tensor&)> fn, const Tensor& x, Generator* gen);

}  // namespace sparta::nn
