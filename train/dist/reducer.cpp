#include "train/dist/reducer.h"

#include "autograd/autograd.h"
#include "core/ops.h"

namespace sparta::train::dist {

GradReducer::GradReducer(CommunicatorPtr comm, std::vector<std::pair<std::string, Tensor>> params, double bucket_mb,
                         ReduceDType reduce_dtype)
    : comm_(std::move(comm)),
      params_(std::move(params)),
      dtype_(reduce_dtype == ReduceDType::bf16 ? DType::bf16 : DType::f32) {
  SPARTA_CHECK(bucket_mb > 0, "dist", "[GradReducer] bucket_mb must be > 0, got ", bucket_mb);
  const int64_t cap = std::max<int64_t>(1, int64_t(bucket_mb * 1024 * 1024) / int64_t(dtype_size(dtype_)));
  // Reverse order: the last parameters' gradients are complete first.
  std::vector<std::pair<std::vector<Slot>, int64_t>> groups;
  int64_t filled = cap;
  for (size_t i = params_.size(); i-- > 0;) {
    const Tensor& p = params_[i].second;
    SPARTA_CHECK(p.device() == comm_->device(), "dist", "[GradReducer] parameter '", params_[i].first, "' is on ",
                 p.device().str(), " but the ", comm_->backend(), " communicator works on ", comm_->device().str());
    if (filled + p.numel() > cap && filled > 0) {
      groups.emplace_back();
      filled = 0;
    }
    groups.back().first.push_back(Slot{i, filled});
    filled += p.numel();
    groups.back().second = filled;
  }
  buckets_.resize(groups.size());
  for (size_t b = 0; b < groups.size(); ++b) {
    buckets_[b].slots = std::move(groups[b].first);
    buckets_[b].flat = Tensor::empty({groups[b].second}, dtype_, comm_->device());
    for (size_t s = 0; s < buckets_[b].slots.size(); ++s) {
      std::weak_ptr<bool> alive = alive_;
      autograd::register_grad_ready_hook(params_[buckets_[b].slots[s].param].second,
                                         [this, alive, b, s](Tensor& g) {
                                           if (alive.lock()) on_grad_ready(b, s, g);
                                         });
    }
  }
}

void GradReducer::set_sync(bool sync) { sync_ = sync; }

void GradReducer::on_grad_ready(size_t b, size_t s, const Tensor& grad) {
  if (!sync_) return;
  if (!armed_) {
    // First gradient of a reducing pass: reset the buckets, and finish after backward.
    armed_ = true;
    next_launch_ = 0;
    for (Bucket& bucket : buckets_) {
      bucket.pending = int64_t(bucket.slots.size());
      bucket.work.reset();
      for (Slot& slot : bucket.slots) slot.ready = false;
    }
    std::weak_ptr<bool> alive = alive_;
    autograd::queue_post_backward_callback([this, alive] {
      if (alive.lock()) finish();
    });
  }
  Bucket& bucket = buckets_[b];
  Slot& slot = bucket.slots[s];
  if (slot.ready) return;  // (a second backward in one pass would have to be reduced again)
  Tensor dst = bucket.flat.slice(0, slot.offset, slot.offset + grad.numel()).reshape(grad.shape());
  copy_(dst, grad);
  slot.ready = true;
  if (--bucket.pending == 0) launch_ready();
}

void GradReducer::launch_ready() {
  while (next_launch_ < buckets_.size() && buckets_[next_launch_].pending == 0) launch(next_launch_++);
}

void GradReducer::launch(size_t b) {
  buckets_[b].work = comm_->all_reduce_async(buckets_[b].flat, ReduceOp::avg,
                                             "gradient bucket " + std::to_string(b + 1) + " of " +
                                                 std::to_string(buckets_.size()));
}

void GradReducer::finish() {
  armed_ = false;
  // Parameters this rank's graph did not reach still take part, with zeros: every rank reduces
  // the same buckets whatever its batch exercised.
  for (size_t b = next_launch_; b < buckets_.size(); ++b) {
    Bucket& bucket = buckets_[b];
    for (Slot& slot : bucket.slots) {
      if (slot.ready) continue;
      const Tensor& p = params_[slot.param].second;
      Tensor dst = bucket.flat.slice(0, slot.offset, slot.offset + p.numel());
      fill_(dst, 0.0);
      slot.ready = true;
    }
    bucket.pending = 0;
  }
  launch_ready();
  autograd::NoGradGuard no_grad;
  for (Bucket& bucket : buckets_) {
    bucket.work->wait();
    for (const Slot& slot : bucket.slots) {
      const Tensor& p = params_[slot.param].second;
      Tensor avg = bucket.flat.slice(0, slot.offset, slot.offset + p.numel()).reshape(p.shape());
      Tensor g = autograd::grad(p);
      if (g.defined()) {
        copy_(g, avg);
      } else {
        autograd::set_grad(p, contiguous(cast(avg, p.dtype())).clone());
      }
    }
    bucket.work.reset();
  }
}

}  // namespace sparta::train::dist
