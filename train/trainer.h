#pragma once
// The training loop of a run described by a RunConfig: model, data, optimizer and schedule from
// the config; a run directory runs/<name>/ with the resolved config.yaml, metrics.jsonl,
// TensorBoard events, log.txt and checkpoints/; resumption from the latest checkpoint that
// continues bit for bit as if the run had never stopped.
#include <functional>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>

#include "data/token_source.h"
#include "nn/transformer.h"
#include "train/config.h"

namespace sparta::train {

struct TrainResult {
  int64_t step = 0;  // the last completed optimizer step
  double last_loss = 0;
  std::optional<double> val_loss, val_bpb;
  std::string run_dir;
  std::string last_checkpoint;
  int64_t skipped_steps = 0;  // steps dropped for a non-finite loss or gradient
  bool stopped = false;       // should_stop asked to stop before the last step (a checkpoint was saved)
};

struct TrainerOptions {
  std::string runs_root = "runs";
  bool resume = false;                 // continue from the run directory's latest checkpoint
  std::optional<int64_t> stop_after;   // stop (with a checkpoint) after this step, as if interrupted
  bool quiet = false;                  // no progress lines on stdout (log.txt still gets them)
  // Polled between steps; when it returns true the run saves a checkpoint of the last completed step
  // and returns early with `stopped` set. `sparta train` wires it to SIGTERM and SIGINT, so a job
  // that is cancelled, or whose daemon stops, can be resumed from where it stood.
  std::function<bool()> should_stop;
};

// The model a config describes (patterns parsed, sizes checked).
nn::TransformerConfig transformer_config(const RunConfig& config);

class Trainer {
 public:
  // Validates everything that can be checked before a step runs (data present and long enough,
  // patterns against the sequence length, a resumable checkpoint matching the model), then
  // creates the run directory. Throws sparta::Error naming the file or key at fault.
  Trainer(RunConfig config, TrainerOptions options = {});
  ~Trainer();
  TrainResult run();

  const nn::SparseTransformer& model() const;
  const std::string& run_dir() const;

 private:
  struct State;
  std::unique_ptr<State> s_;
};

// Mean next-token loss (nats) over consecutive windows of seq_len + 1 tokens from the start of a
// source (at most max_windows of them; 0: all), in eval mode, under autocast to `low` if given
// (core/autocast.h); with byte tokens, bits per byte = loss / ln 2.
double evaluate_loss(const nn::SparseTransformer& model, const data::TokenSourcePtr& source, int64_t seq_len,
                     int64_t batch, int64_t max_windows, std::optional<DType> low = std::nullopt);

// The sums behind evaluate_loss over this shard's windows (window w belongs to shard w % shards),
// so data-parallel ranks can split an evaluation and add their sums: loss_sum / windows is the mean.
struct EvalSums {
  double loss_sum = 0;  // per-window mean losses, added
  int64_t windows = 0;
};
EvalSums evaluate_sums(const nn::SparseTransformer& model, const data::TokenSourcePtr& source, int64_t seq_len,
                       int64_t batch, int64_t max_windows, std::optional<DType> low, int64_t shard, int64_t shards);

// The autocast precision of a run's `precision` (nullopt for fp32).
std::optional<DType> autocast_precision(Precision p);

// The token source a data config names (a text file, a directory of text files, or shards).
data::TokenSourcePtr open_data(const DataConfig& data);

// Reads runs/<name>/config.yaml back (for `sparta resume`), with `overrides` as load_config takes
// them (a new train.batch_size for another number of processes, more train.steps).
RunConfig load_run_config(const std::string& run_dir, const std::vector<std::string>& overrides = {});

}  // namespace sparta::train
