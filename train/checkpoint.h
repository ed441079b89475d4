#pragma once
// Training checkpoints: one HDF5 file holding everything a run needs to continue bit for bit.
//
//   /                  attributes format_version (1), config (the resolved YAML), checksum
//   /model/<name>      parameters, named as PyTorch names them: /model/blocks.0.attn.qkv.weight
//   /optim/<a>/<b>     optimizer tensors; a '/' in a name makes groups: exp_avg/blocks.0.w is
//                      /optim/exp_avg/blocks.0.w, as h5py users would expect
//   /state             attribute step; /state/counters and /state/scalars hold one attribute each
//
// Every dataset carries attributes dtype (sparta's name: bf16 and f16 are stored as uint16, their
// bits unchanged) and checksum (FNV-1a 64 of its bytes). The root checksum covers the names,
// dtypes, shapes and checksums of all datasets, the state and the config, so load_checkpoint
// notices flipped bits, renamed or missing datasets and edited state alike.
//
// Order: tensors load in the order they were saved, except that names sharing a group (the part
// before a '/') load together, in the order the group was first used.
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace sparta::train {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

constexpr int64_t kCheckpointFormatVersion = 1;

struct CheckpointState {
  NamedTensors model;      // blocks.0.attn.qkv.weight, ... (any dtype, any device, any strides)
  NamedTensors optimizer;  // exp_avg/blocks.0.attn.qkv.weight, ...
  int64_t step = 0;
  std::map<std::string, int64_t> counters;  // rng.seed, rng.offset, data.epoch, data.index, ...
  std::map<std::string, double> scalars;    // loss_scale, best_val_loss, ...
  std::string config_yaml;
};

// Writes `<path>.tmp-<pid>`, flushes, fsyncs and renames it over path, then fsyncs the directory:
// path is the previous checkpoint or the whole new one, never a part. On failure the temporary
// file is removed. Names must be unique, non-empty, and must not start or end with '/' or hold
// empty, "." or ".." parts.
void save_checkpoint(const std::string& path, const CheckpointState& state);

// Reads a checkpoint into fresh CPU tensors. Errors name the path: missing file, not HDF5,
// truncated, wrong format version, missing groups, and "checkpoint <path> is corrupt (checksum
// ...)" when any byte disagrees with the checksums.
CheckpointState load_checkpoint(const std::string& path);

// Throws naming the first parameter the model has and the checkpoint lacks, the first one whose
// shape differs ("parameter blocks.0.attn.qkv.weight: checkpoint has shape (48, 16), the model
// (96, 32)"), or the first the checkpoint has and the model does not. Dtypes may differ (loading
// converts).
void check_compatible(const CheckpointState& state, const NamedTensors& model_params);

namespace detail {
// Test hook: save_checkpoint throws after writing n datasets (n < 0, the default: never), as a
// crash or a full disk would stop it part way.
void set_checkpoint_fault_after_datasets(int n);
}  // namespace detail

}  // namespace sparta::train
