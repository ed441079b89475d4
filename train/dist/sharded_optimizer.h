#pragma once
// ZeRO stage 1 (Rajbhandari et al. 2020, "ZeRO: Memory Optimizations Toward Training Trillion
// Parameter Models"): each rank of a data-parallel job keeps the optimizer state (AdamW's two
// moments, SGD's momentum) of its share of the parameters only, steps that share, and then every
// parameter is broadcast from the rank that owns it. Gradients are still all-reduced whole (by the
// GradReducer, during backward): the saving is the optimizer state, (N - 1) / N of it on N ranks,
// at the price of one broadcast of the parameters per step.
//
// Parameters go to ranks largest first, each to the rank with the fewest elements so far (ties to
// the lowest rank), so every rank derives the same partition from the parameter list alone.
//
// Checkpoints hold the whole state, as an unsharded optimizer's: full_state() gathers it (every
// rank calls it; the owners broadcast), and load_state() takes this rank's share of a whole state.
// A sharded run therefore resumes unsharded, on another number of ranks, or sharded again.
#include <functional>
#include <memory>
#include <vector>

#include "train/dist/communicator.h"
#include "train/optimizer.h"

namespace sparta::train::dist {

// The rank that owns each parameter (see the file comment), for `world` ranks.
std::vector<int> partition_parameters(const NamedTensors& params, int world);

class ShardedOptimizer final : public Optimizer {
 public:
  // make_inner builds the real optimizer (AdamW, SGD) over the parameters it is given: this
  // rank's share. Needs at least as many parameters as ranks (each rank owns one or more).
  ShardedOptimizer(NamedTensors params, CommunicatorPtr comm,
                   const std::function<std::unique_ptr<Optimizer>(NamedTensors)>& make_inner);
  void step(double lr) override;
  NamedTensors state() const override;  // this rank's share
  NamedTensors full_state() override;
  void load_state(const NamedTensors& saved) override;
  const std::vector<int>& owners() const { return owner_; }

 private:
  CommunicatorPtr comm_;
  std::vector<int> owner_;
  std::unique_ptr<Optimizer> inner_;
};

}  // namespace sparta::train::dist
