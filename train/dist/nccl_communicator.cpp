// The NCCL backend: CUDA tensors, collectives on a communication stream of their own, ordered
// against the compute stream (cuda::stream()) with events, so that gradient buckets are reduced
// while backward runs.
//
// Note [NCCL failures]: a collective whose peer died never completes, and a host thread that waits
// for it (a loss.item(), a synchronize) blocks inside CUDA for good. So failures are detected off
// the training thread, by a watchdog that polls every pending collective's event, NCCL's
// asynchronous error, and (env launches) the rendezvous heartbeat; on any of them it prints which
// rank was lost or what stalled, aborts the communicator (ncclCommAbort) and ends the process.
// Under mpirun, mpirun itself ends the job when a rank dies.
#include <cuda_runtime.h>
#include <nccl.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>

#include "core/cuda/check.h"
#include "train/dist/backends.h"
#include "train/dist/rendezvous.h"

#define SPARTA_NCCL_CHECK(what, expr)                                                              \
  do {                                                                                             \
    ncclResult_t sparta_r_ = (expr);                                                               \
    if (sparta_r_ != ncclSuccess)                                                                  \
      SPARTA_FAIL("dist", "[nccl] ", what, ": ", #expr, ": ", ncclGetErrorString(sparta_r_), " (", \
                  ncclGetLastError(nullptr), ")");                                                 \
  } while (0)

namespace sparta::train::dist {
namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

ncclDataType_t nccl_type(DType d, const std::string& what) {
  switch (d) {
    case DType::f64: return ncclFloat64;
    case DType::f32: return ncclFloat32;
    case DType::bf16: return ncclBfloat16;
    case DType::f16: return ncclFloat16;
    case DType::i64: return ncclInt64;
    case DType::i32: return ncclInt32;
    case DType::u8: return ncclUint8;
    default: SPARTA_FAIL("dist", "[nccl] ", what, ": no NCCL type for ", dtype_name(d));
  }
}

ncclRedOp_t nccl_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum: return ncclSum;
    case ReduceOp::avg: return ncclAvg;
    case ReduceOp::max: return ncclMax;
  }
  return ncclSum;
}

// An event that says when a collective on the communication stream is done.
struct Pending {
  cudaEvent_t done = nullptr;
  std::string what;
  double since = 0;
  ~Pending() {
    if (done) cudaEventDestroy(done);
  }
};

class NcclWork final : public Work {
 public:
  NcclWork(std::shared_ptr<Pending> p, int device) : p_(std::move(p)), device_(device) {}
  void wait() override {
    SPARTA_CUDA_CHECK("dist", cudaSetDevice(device_));
    SPARTA_CUDA_CHECK("dist", cudaStreamWaitEvent(cuda::stream(), p_->done, 0));
  }

 private:
  std::shared_ptr<Pending> p_;
  int device_;
};

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(const LaunchInfo& launch, Device device, double timeout_s, CommunicatorPtr bootstrap)
      : launch_(launch), device_(device), timeout_s_(timeout_s), bootstrap_(std::move(bootstrap)) {
    SPARTA_CHECK(device.is_cuda(), "dist", "[nccl] takes a cuda device, got ", device.str());
    SPARTA_CUDA_CHECK("dist", cudaSetDevice(device.index));
    ncclUniqueId id;
    if (launch.rank == 0) SPARTA_NCCL_CHECK("the unique id", ncclGetUniqueId(&id));
    std::vector<char> bytes(reinterpret_cast<char*>(&id), reinterpret_cast<char*>(&id) + sizeof id);
    if (bootstrap_) {
      Tensor t = Tensor::empty({int64_t(sizeof id)}, DType::u8);
      std::memcpy(t.data_ptr(), bytes.data(), bytes.size());
      bootstrap_->broadcast(t, 0, "the NCCL unique id");
      std::memcpy(bytes.data(), t.data_ptr(), bytes.size());
    } else {
      rendezvous_ = std::make_unique<Rendezvous>(launch, timeout_s);
      rendezvous_->broadcast(bytes);
      SPARTA_CHECK(bytes.size() == sizeof id, "dist", "[nccl] rank ", launch.rank, " got a unique id of ",
                   bytes.size(), " bytes from rank 0, expected ", sizeof id, " (a different NCCL version?)");
    }
    std::memcpy(&id, bytes.data(), sizeof id);
    // The heartbeat watches the peers from here on, through NCCL's start (which waits for every
    // rank) too; until now a missing peer was an error of the rendezvous itself.
    if (rendezvous_)
      rendezvous_->watch(std::min(timeout_s_, 30.0), [this](int rank, const std::string& how) {
        fail("rank " + std::to_string(rank) + " lost: " + how);
      });
    ncclComm_t comm = nullptr;
    SPARTA_NCCL_CHECK("init", ncclCommInitRank(&comm, launch.size, id, launch.rank));
    comm_ = comm;
    int least = 0, greatest = 0;
    cudaDeviceGetStreamPriorityRange(&least, &greatest);
    SPARTA_CUDA_CHECK("dist", cudaStreamCreateWithPriority(&stream_, cudaStreamNonBlocking, greatest));
    SPARTA_CUDA_CHECK("dist", cudaMalloc(&host_buffer_, kHostValues * sizeof(double)));
    watchdog_ = std::thread([this] { watch(); });
  }

  ~NcclCommunicator() override {
    if (rendezvous_) rendezvous_->leave();  // first, so that peers do not take our exit for a death
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    watchdog_.join();
    cudaSetDevice(device_.index);
    cudaStreamSynchronize(stream_);
    ncclCommDestroy(comm_);
    cudaFree(host_buffer_);
    cudaStreamDestroy(stream_);
  }

  int rank() const override { return launch_.rank; }
  int size() const override { return launch_.size; }
  int local_rank() const override { return launch_.local_rank; }
  const char* backend() const override { return "nccl"; }
  Device device() const override { return device_; }

  std::shared_ptr<Work> all_reduce_async(Tensor t, ReduceOp op, const std::string& what) override {
    check_tensor(t, "all_reduce", what);
    after_compute();
    SPARTA_NCCL_CHECK(what, ncclAllReduce(t.data_ptr(), t.data_ptr(), size_t(t.numel()), nccl_type(t.dtype(), what),
                                          nccl_op(op), comm_, stream_));
    return std::make_shared<NcclWork>(track("all-reduce of " + what), device_.index);
  }

  void broadcast(Tensor t, int root, const std::string& what) override {
    check_tensor(t, "broadcast", what);
    after_compute();
    SPARTA_NCCL_CHECK(what, ncclBroadcast(t.data_ptr(), t.data_ptr(), size_t(t.numel()), nccl_type(t.dtype(), what),
                                          root, comm_, stream_));
    NcclWork(track("broadcast of " + what), device_.index).wait();
  }

  void all_reduce_host(std::vector<double>& values, ReduceOp op, const std::string& what) override {
    SPARTA_CUDA_CHECK("dist", cudaSetDevice(device_.index));
    for (size_t i = 0; i < values.size(); i += kHostValues) {
      const size_t n = std::min(kHostValues, values.size() - i);
      SPARTA_CUDA_CHECK("dist", cudaMemcpyAsync(host_buffer_, values.data() + i, n * sizeof(double),
                                                cudaMemcpyHostToDevice, stream_));
      SPARTA_NCCL_CHECK(what, ncclAllReduce(host_buffer_, host_buffer_, n, ncclFloat64, nccl_op(op), comm_, stream_));
      SPARTA_CUDA_CHECK("dist", cudaMemcpyAsync(values.data() + i, host_buffer_, n * sizeof(double),
                                                cudaMemcpyDeviceToHost, stream_));
      track(what);
      // A lost peer leaves this waiting for good: the watchdog ends the process (Note [NCCL failures]).
      SPARTA_CUDA_CHECK("dist", cudaStreamSynchronize(stream_));
    }
  }

  void barrier(const std::string& what) override {
    std::vector<double> one{1.0};
    all_reduce_host(one, ReduceOp::sum, what);
  }

  [[noreturn]] void abort(const std::string& why) override {
    if (bootstrap_) bootstrap_->abort(why);  // MPI_Abort: mpirun ends every rank
    fail(why);
  }

 private:
  static constexpr size_t kHostValues = 64;

  void check_tensor(const Tensor& t, const char* op, const std::string& what) const {
    SPARTA_CHECK(t.device() == device_ && t.is_contiguous(), "dist", "[", op, "] ", what,
                 ": the NCCL communicator of ", device_.str(), " takes contiguous tensors of that device, got ",
                 t.device().str(), t.is_contiguous() ? "" : " (strided)");
  }

  // The communication stream waits for everything queued on the compute stream so far.
  void after_compute() {
    SPARTA_CUDA_CHECK("dist", cudaSetDevice(device_.index));
    cudaEvent_t ready;
    SPARTA_CUDA_CHECK("dist", cudaEventCreateWithFlags(&ready, cudaEventDisableTiming));
    SPARTA_CUDA_CHECK("dist", cudaEventRecord(ready, cuda::stream()));
    SPARTA_CUDA_CHECK("dist", cudaStreamWaitEvent(stream_, ready, 0));
    cudaEventDestroy(ready);  // released once the wait has passed it
  }

  // An event after the last collective queued on the communication stream, watched for progress.
  std::shared_ptr<Pending> track(std::string what) {
    auto p = std::make_shared<Pending>();
    SPARTA_CUDA_CHECK("dist", cudaEventCreateWithFlags(&p->done, cudaEventDisableTiming));
    SPARTA_CUDA_CHECK("dist", cudaEventRecord(p->done, stream_));
    p->what = std::move(what);
    p->since = now_s();
    std::lock_guard<std::mutex> lock(mu_);
    pending_.push_back(p);
    return p;
  }

  // Note [NCCL failures].
  void watch() {
    cudaSetDevice(device_.index);
    for (;;) {
      std::shared_ptr<Pending> oldest;
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (stop_) return;
        // Collectives complete in order on one stream: only the oldest can be late.
        while (!pending_.empty() && cudaEventQuery(pending_.front()->done) == cudaSuccess) pending_.pop_front();
        if (!pending_.empty()) oldest = pending_.front();
      }
      if (oldest && now_s() - oldest->since > timeout_s_) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%g", timeout_s_);
        fail(oldest->what + " made no progress for " + buf + " s (distributed.timeout_s): a peer rank died or hung");
      }
      ncclResult_t async = ncclSuccess;
      if (ncclCommGetAsyncError(comm_, &async) == ncclSuccess && async != ncclSuccess && async != ncclInProgress)
        fail(std::string("NCCL reports an asynchronous error: ") + ncclGetErrorString(async) + " (" +
             ncclGetLastError(comm_) + ")");
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }

  [[noreturn]] void fail(const std::string& why) {
    std::fprintf(stderr, "[dist] rank %d: %s; aborting NCCL and ending the job\n", launch_.rank, why.c_str());
    std::fflush(stderr);
    // ncclCommAbort frees the kernels that wait for the lost peer; should it hang itself, the
    // process still ends.
    std::thread([] {
      std::this_thread::sleep_for(std::chrono::seconds(10));
      std::_Exit(1);
    }).detach();
    if (ncclComm_t c = comm_.load()) ncclCommAbort(c);
    die(launch_.rank, "ended after a distributed failure");
  }

  LaunchInfo launch_;
  Device device_;
  double timeout_s_;
  CommunicatorPtr bootstrap_;
  std::unique_ptr<Rendezvous> rendezvous_;
  std::atomic<ncclComm_t> comm_{nullptr};  // set once NCCL has started; read by fail() from any thread
  cudaStream_t stream_ = nullptr;
  double* host_buffer_ = nullptr;
  std::mutex mu_;
  std::deque<std::shared_ptr<Pending>> pending_;
  bool stop_ = false;
  std::thread watchdog_;
};

}  // namespace

CommunicatorPtr make_nccl_communicator(const LaunchInfo& launch, Device device, double timeout_s,
                                       CommunicatorPtr bootstrap) {
  return std::make_shared<NcclCommunicator>(launch, device, timeout_s, bootstrap);
}

}  // namespace sparta::train::dist
