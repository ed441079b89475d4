#pragma once
// GradReducer: data-parallel gradient averaging overlapped with backward (PyTorch DDP's reducer).
//
// Parameters are grouped into buckets of about `bucket_mb` MiB, filled in reverse parameter order
// (the order in which backward completes their gradients). Each parameter's grad-ready hook copies
// its gradient into its bucket's flat buffer (cast to the reduce dtype); when a bucket's last
// gradient arrives the bucket is all-reduced (averaged) asynchronously, while backward goes on with
// the layers below. Buckets are launched strictly in index order on every rank (Note [collective
// order] in communicator.h), so a bucket completed early waits for the ones before it. After
// backward a post-backward callback launches what is left (a parameter that got no gradient on
// this rank contributes zeros), waits for every bucket and copies the averages back into the
// gradients, in the parameters' dtype.
//
// Gradient accumulation: set_sync(false) before the backward passes of non-final micro-steps; their
// gradients just accumulate locally, and the final micro-step's backward reduces the sums.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "train/config.h"
#include "train/dist/communicator.h"

namespace sparta::train::dist {

class GradReducer {
 public:
  GradReducer(CommunicatorPtr comm, std::vector<std::pair<std::string, Tensor>> params, double bucket_mb,
              ReduceDType reduce_dtype);
  GradReducer(const GradReducer&) = delete;
  GradReducer& operator=(const GradReducer&) = delete;

  // Whether the next backward pass reduces (call before each backward).
  void set_sync(bool sync);
  int64_t bucket_count() const { return int64_t(buckets_.size()); }

 private:
  struct Slot {
    size_t param;     // index into params_
    int64_t offset;   // in elements of the bucket's buffer
    bool ready = false;
  };
  struct Bucket {
    std::vector<Slot> slots;
    Tensor flat;  // (numel,) in the reduce dtype, on the parameters' device
    int64_t pending = 0;
    std::shared_ptr<Work> work;
  };

  void on_grad_ready(size_t bucket, size_t slot, const Tensor& grad);
  void launch_ready();
  void launch(size_t bucket);
  void finish();

  CommunicatorPtr comm_;
  std::vector<std::pair<std::string, Tensor>> params_;
  DType dtype_;
  std::vector<Bucket> buckets_;
  bool sync_ = true;
  bool armed_ = false;      // a post-backward callback is queued for this pass
  size_t next_launch_ = 0;  // buckets below this index are launched
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);  // hooks outlive us: they check this
};

}  // namespace sparta::train::dist
