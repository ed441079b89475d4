#pragma once
// WindowSampler: batches of training windows drawn from a token source in a seeded shuffled order,
// with a cursor small enough to live in a checkpoint.
//
// Note [windows and epochs]: a source of N tokens holds W = (N - 1) / seq_len non-overlapping
// windows; window w covers tokens [w * seq_len, w * seq_len + seq_len + 1) (seq_len inputs plus
// the one extra token that the last target needs, so neighbouring windows share one token). An
// epoch visits every window exactly once, in an order that is a pseudo-random permutation keyed
// by (seed, epoch); the cursor {epoch, index} says how many windows of that epoch have been handed
// out, and a batch may run on from the end of one epoch into the next. Because the permutation is
// a function of (seed, epoch, index) alone (a Feistel network over Philox, not a shuffled array),
// restoring a cursor costs nothing and the batches after it are exactly those an uninterrupted
// run would have drawn.
//
// Note [global batches]: with `world` processes, the stream of windows is cut into global batches
// of world * batch windows, and rank r takes windows [r * batch, (r + 1) * batch) of each. The
// stream and the cursor (which counts global windows) do not depend on the world size, so two
// ranks with batch b train on exactly what one process with batch 2b does, and a checkpoint
// resumes under any world size.
#include <cstdint>
#include <map>
#include <string>

#include "core/tensor.h"
#include "data/token_source.h"

namespace sparta::data {

struct SamplerState {
  int64_t epoch = 0;
  int64_t index = 0;  // windows of `epoch` already handed out, in [0, windows per epoch)

  // Keys "<prefix>epoch" and "<prefix>index", for the checkpoint's /state.
  std::map<std::string, int64_t> to_map(const std::string& prefix = "") const;
  // Errors name a missing key or a negative value.
  static SamplerState from_map(const std::map<std::string, int64_t>& values, const std::string& prefix = "");
  bool operator==(const SamplerState& o) const { return epoch == o.epoch && index == o.index; }
  bool operator!=(const SamplerState& o) const { return !(*this == o); }
};

struct Batch {
  Tensor inputs;   // (batch, seq_len) i64
  Tensor targets;  // (batch, seq_len) i64: the inputs shifted left by one token
};

struct SamplerOptions {
  int64_t batch = 1;
  int64_t seq_len = 1;
  uint64_t seed = 0;
  // Off: windows in order 0, 1, 2, ... (a deterministic pass for evaluation).
  bool shuffle = true;
  // Data parallelism (Note [global batches]): this process is `rank` of `world`.
  int64_t rank = 0;
  int64_t world = 1;
};

class WindowSampler {
 public:
  // Throws, naming the source, its size and the size needed, when it holds no full window.
  WindowSampler(TokenSourcePtr source, SamplerOptions options);

  // The next `batch` windows (this rank's share of the next global batch); the cursor moves past
  // the whole global batch, and only once this rank's part of it has been read.
  Batch next();

  const SamplerState& state() const { return state_; }
  // Throws when the cursor does not fit this source (a dataset changed since the checkpoint).
  void set_state(const SamplerState& state);

  int64_t windows_per_epoch() const { return windows_; }
  // The window drawn at position `index` of `epoch` (see Note [windows and epochs]).
  int64_t window_at(int64_t epoch, int64_t index) const;
  const SamplerOptions& options() const { return options_; }
  const TokenSource& source() const { return *source_; }

 private:
  TokenSourcePtr source_;
  SamplerOptions options_;
  int64_t windows_ = 0;
  int half_bits_ = 1;  // the Feistel network permutes [0, 4^half_bits_) and walks back into [0, windows_)
  SamplerState state_;
};

}  // namespace sparta::data
