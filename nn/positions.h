#pragma once
// Position information: learned absolute embeddings, fixed sinusoids (Vaswani et al.), and rotary
// embeddings (Su et al., RoFormer) applied to queries and keys in the GPT-NeoX half-split layout.
#include "nn/module.h"

namespace sparta::nn {

enum class PositionKind { learned, sinusoidal, rotary };
PositionKind position_kind_from_name(const std::string& name);

// Table (max_len, dim) of sin/cos at geometric frequencies; rows t..t+n for positions t..t+n.
Tensor sinusoidal_table(int64_t max_len, int64_t dim);

// cos and sin tables (len, head_dim) for positions offset..offset+len.
struct RotaryTables {
  Tensor cos, sin;
};
RotaryTables rotary_tables(int64_t offset, int64_t len, int64_t head_dim, double base = 10000);
// x (..., T, D) with D even: x * cos + rotate_half(x) * sin, rotate_half(x) = (-x2, x1).
Tensor apply_rotary(const Tensor& x, const RotaryTables& tables);

}  // namespace sparta::nn
