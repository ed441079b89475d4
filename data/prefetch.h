#pragma once
// Prefetcher: a background thread that keeps up to `depth` batches ready, so that the trainer
// never waits on the disk while the worker can keep ahead of it.
//
// Note [prefetch cursor]: the worker runs ahead of the trainer, so the sampler's own cursor
// counts batches that were read but never trained on. Each queued batch carries the cursor as it
// was just after that batch was drawn, and state() reports the cursor of the last batch handed out
// by next(): a checkpoint saved between two next() calls resumes with exactly the batch that next()
// would have returned, and the queued batches are simply drawn again.
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>

#include "data/sampler.h"

namespace sparta::data {

class Prefetcher {
 public:
  // Takes the sampler (restore its cursor first, with set_state) and starts the worker.
  explicit Prefetcher(WindowSampler sampler, int64_t depth = 4);
  // Stops the worker (it finishes the batch in hand, if any) and joins it.
  ~Prefetcher();
  Prefetcher(const Prefetcher&) = delete;
  Prefetcher& operator=(const Prefetcher&) = delete;

  // The next batch, in the sampler's order; blocks only while the queue is empty. An exception
  // thrown by the worker is re-thrown here once the batches drawn before it are handed out, and
  // again by every later call.
  Batch next();
  // See Note [prefetch cursor].
  SamplerState state() const;
  int64_t depth() const { return depth_; }

 private:
  struct Item {
    Batch batch;
    SamplerState after;
  };
  void work();

  WindowSampler sampler_;  // touched only by the worker once it runs
  const int64_t depth_;
  mutable std::mutex mu_;
  std::condition_variable changed_;
  std::deque<Item> queue_;
  std::exception_ptr error_;
  SamplerState handed_out_;
  bool stop_ = false;
  std::thread worker_;  // last: starts once everything above is constructed
};

}  // namespace sparta::data
