#pragma once
// Note [Determinism]
// Whether ops must give bitwise-identical results from run to run on the same device. On by
// default would cost speed where the fast algorithm sums in an order the hardware picks: today the
// tensor-core attention backward, whose dQ is added into an f32 buffer by atomic adds in the order
// they arrive (its results differ between runs in the last bits of f32 before rounding to bf16 or
// f16). On, that backward runs a second pass over query tiles instead (one writer per dQ tile;
// 1.13x slower on mma.sync, more against the wgmma kernels, which it does not use). The CPU
// backend and every other op are deterministic either way.
//
// Off unless SPARTA_DETERMINISTIC=1 is set in the environment or a program turns it on (the
// trainer does from its config's `train.deterministic`). Process-wide, like PyTorch's
// torch.use_deterministic_algorithms.
namespace sparta {

bool deterministic_algorithms();
void set_deterministic_algorithms(bool on);

}  // namespace sparta
