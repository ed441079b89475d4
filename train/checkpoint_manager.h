#pragma once
// Retention of checkpoints in one directory: dir/step_<8 digits>.h5 for each save, the last K of
// them by step plus (optionally) the one with the lowest validation loss; older files are deleted.
//
// dir/index.json records what is kept and each file's validation loss (written atomically after
// the checkpoint itself, before anything is deleted, so a crash at any point loses nothing it
// promised to keep). The files on disk are the truth: index entries whose file has gone are
// dropped, and step_*.h5 files the index does not know (a crash between the save and the index)
// are adopted without a validation loss, to be pruned by the next save like any old checkpoint.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "train/checkpoint.h"

namespace sparta::train {

class CheckpointManager {
 public:
  struct Entry {
    int64_t step = 0;
    std::string file;                // name inside the directory
    std::optional<double> val_loss;  // finite values only
  };

  // Creates dir if needed. keep_last >= 1.
  CheckpointManager(std::string dir, int keep_last, bool keep_best);

  // Saves the checkpoint of `step` (replacing one of the same step), updates the index and deletes
  // what is no longer kept. A NaN or infinite val_loss counts as none. Returns the file's path.
  std::string save(int64_t step, const CheckpointState& state, std::optional<double> val_loss = std::nullopt);

  std::optional<std::string> latest() const;  // the highest step
  std::optional<std::string> best() const;    // the lowest validation loss (earliest on ties)
  const std::vector<Entry>& entries() const { return entries_; }  // kept, by step
  const std::string& dir() const { return dir_; }

  static std::string file_name(int64_t step);  // step_00000042.h5

 private:
  void read_index();
  void write_index() const;
  std::string path_of(const Entry& e) const;
  const Entry* best_entry() const;

  std::string dir_;
  int keep_last_;
  bool keep_best_;
  std::vector<Entry> entries_;
};

}  // namespace sparta::train
