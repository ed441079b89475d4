#include "data/prefetch.h"

#include "core/error.h"

namespace sparta::data {

namespace {
int64_t checked_depth(int64_t depth) {
  SPARTA_CHECK(depth > 0, "prefetch", "depth must be positive, got ", depth);
  return depth;
}
}  // namespace

Prefetcher::Prefetcher(WindowSampler sampler, int64_t depth)
    : sampler_(std::move(sampler)), depth_(checked_depth(depth)), handed_out_(sampler_.state()) {
  worker_ = std::thread([this] { work(); });
}

Prefetcher::~Prefetcher() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  changed_.notify_all();
  if (worker_.joinable()) worker_.join();
}

void Prefetcher::work() {
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      changed_.wait(lock, [&] { return stop_ || int64_t(queue_.size()) < depth_; });
      if (stop_) return;
    }
    // The disk read happens outside the lock, so next() can hand out queued batches meanwhile.
    Item item;
    std::exception_ptr error;
    try {
      item.batch = sampler_.next();
      item.after = sampler_.state();
    } catch (...) {
      error = std::current_exception();
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (error) {
        error_ = error;
      } else {
        queue_.push_back(std::move(item));
      }
    }
    changed_.notify_all();
    if (error) return;
  }
}

Batch Prefetcher::next() {
  std::unique_lock<std::mutex> lock(mu_);
  changed_.wait(lock, [&] { return !queue_.empty() || error_; });
  if (queue_.empty()) std::rethrow_exception(error_);
  Item item = std::move(queue_.front());
  queue_.pop_front();
  handed_out_ = item.after;
  lock.unlock();
  changed_.notify_all();
  return std::move(item.batch);
}

SamplerState Prefetcher::state() const {
  std::lock_guard<std::mutex> lock(mu_);
  return handed_out_;
}

}  // namespace sparta::data
