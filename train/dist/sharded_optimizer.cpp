#include "train/dist/sharded_optimizer.h"

#include <algorithm>
#include <map>
#include <numeric>
#include <set>

#include "core/error.h"
#include "core/ops.h"

namespace sparta::train::dist {

std::vector<int> partition_parameters(const NamedTensors& params, int world) {
  std::vector<size_t> order(params.size());
  std::iota(order.begin(), order.end(), size_t(0));
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return params[a].second.numel() > params[b].second.numel(); });
  std::vector<int64_t> load(size_t(world), 0);
  std::vector<int> owner(params.size(), 0);
  for (size_t i : order) {
    const int r = int(std::min_element(load.begin(), load.end()) - load.begin());
    owner[i] = r;
    load[size_t(r)] += params[i].second.numel();
  }
  return owner;
}

ShardedOptimizer::ShardedOptimizer(NamedTensors params, CommunicatorPtr comm,
                                   const std::function<std::unique_ptr<Optimizer>(NamedTensors)>& make_inner)
    : Optimizer(std::move(params), 0.0, {}), comm_(std::move(comm)) {
  SPARTA_CHECK(int64_t(params_.size()) >= comm_->size(), "distributed.zero1", "sharding the optimizer state needs ",
               "at least one parameter per rank: ", params_.size(), " parameters, ", comm_->size(), " ranks");
  owner_ = partition_parameters(params_, comm_->size());
  NamedTensors mine;
  for (size_t i = 0; i < params_.size(); ++i)
    if (owner_[i] == comm_->rank()) mine.push_back(params_[i]);
  inner_ = make_inner(std::move(mine));
}

void ShardedOptimizer::step(double lr) {
  inner_->step(lr);
  // In parameter order on every rank (Note [collective order]).
  for (size_t i = 0; i < params_.size(); ++i)
    comm_->broadcast(params_[i].second, owner_[i], "parameter '" + params_[i].first + "' from its owner");
}

NamedTensors ShardedOptimizer::state() const { return inner_->state(); }

NamedTensors ShardedOptimizer::full_state() {
  // The inner state's tensors are either per-parameter ("<kind>/<parameter name>") or shared by
  // all ranks (AdamW's step count). Every rank owns a parameter, so every rank sees every kind.
  const NamedTensors local = inner_->state();
  std::map<std::string, Tensor> by_name(local.begin(), local.end());
  std::set<std::string> owned;
  for (size_t i = 0; i < params_.size(); ++i)
    if (owner_[i] == comm_->rank()) owned.insert(params_[i].first);
  std::vector<std::string> kinds;
  NamedTensors out;
  for (const auto& [name, t] : local) {
    const size_t slash = name.find('/');
    if (slash != std::string::npos && owned.count(name.substr(slash + 1))) {
      const std::string kind = name.substr(0, slash + 1);
      if (std::find(kinds.begin(), kinds.end(), kind) == kinds.end()) kinds.push_back(kind);
    } else {
      out.emplace_back(name, t);
    }
  }
  for (const std::string& kind : kinds) {
    for (size_t i = 0; i < params_.size(); ++i) {
      const auto& [pname, p] = params_[i];
      const auto it = by_name.find(kind + pname);
      Tensor t = owner_[i] == comm_->rank() ? it->second : zeros(p.shape(), p.dtype(), p.device());
      comm_->broadcast(t, owner_[i], "optimizer state '" + kind + pname + "' for a checkpoint");
      out.emplace_back(kind + pname, t);
    }
  }
  return out;
}

void ShardedOptimizer::load_state(const NamedTensors& saved) {
  std::set<std::string> wanted;
  for (const auto& [name, _] : inner_->state()) wanted.insert(name);
  NamedTensors mine;
  for (const auto& entry : saved)
    if (wanted.count(entry.first)) mine.push_back(entry);
  inner_->load_state(mine);  // names what this rank's share lacks
}

}  // namespace sparta::train::dist
