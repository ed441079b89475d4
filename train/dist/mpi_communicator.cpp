// The MPI backend: CPU tensors, collectives run by one communication thread so that backward goes
// on while a gradient bucket is reduced (OpenMPI progresses a nonblocking collective only inside
// MPI calls, so a thread that runs the blocking call is the simple way to get overlap).
// The C API only: OpenMPI's and MPICH's deprecated C++ bindings would need their own library.
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

#include "core/half.h"
#include "train/dist/backends.h"

namespace sparta::train::dist {
namespace {

std::string mpi_error(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(code, text, &len);
  return std::string(text, size_t(len));
}

// bf16 has no MPI type: a user op over MPI_UINT16_T that adds in float and rounds back.
void bf16_sum(void* in, void* inout, int* len, MPI_Datatype*) {
  const bf16* a = static_cast<const bf16*>(in);
  bf16* b = static_cast<bf16*>(inout);
  for (int i = 0; i < *len; ++i) b[i] = bf16(float(a[i]) + float(b[i]));
}
void bf16_max(void* in, void* inout, int* len, MPI_Datatype*) {
  const bf16* a = static_cast<const bf16*>(in);
  bf16* b = static_cast<bf16*>(inout);
  for (int i = 0; i < *len; ++i) b[i] = float(a[i]) > float(b[i]) ? a[i] : b[i];
}

template <typename T>
void scale(void* p, int64_t n, double s) {
  T* x = static_cast<T*>(p);
  for (int64_t i = 0; i < n; ++i) x[i] = T(float(double(float(x[i])) * s));
}
template <>
void scale<double>(void* p, int64_t n, double s) {
  double* x = static_cast<double*>(p);
  for (int64_t i = 0; i < n; ++i) x[i] *= s;
}

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator(const LaunchInfo& launch, double timeout_s) : timeout_s_(timeout_s) {
    int inited = 0;
    MPI_Initialized(&inited);
    if (!inited) {
      int provided = 0;
      MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided);
      SPARTA_CHECK(provided >= MPI_THREAD_MULTIPLE, "dist", "this MPI gives thread level ", provided,
                   ", below MPI_THREAD_MULTIPLE (the communication thread and a timeout's abort need it)");
      owns_mpi_ = true;
    }
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
    SPARTA_CHECK(rank_ == launch.rank && size_ == launch.size, "dist", "MPI says rank ", rank_, " of ", size_,
                 " but the environment says ", launch.rank, " of ", launch.size);
    local_rank_ = launch.local_rank;
    MPI_Op_create(&bf16_sum, 1, &bf16_sum_);
    MPI_Op_create(&bf16_max, 1, &bf16_max_);
    thread_ = std::thread([this] { loop(); });
  }

  ~MpiCommunicator() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    changed_.notify_all();
    thread_.join();
    MPI_Op_free(&bf16_sum_);
    MPI_Op_free(&bf16_max_);
    if (owns_mpi_) MPI_Finalize();
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int local_rank() const override { return local_rank_; }
  const char* backend() const override { return "mpi"; }
  Device device() const override { return Device::cpu(); }

  std::shared_ptr<Work> all_reduce_async(Tensor t, ReduceOp op, const std::string& what) override {
    check_tensor(t, "all_reduce", what);
    return submit("all-reduce of " + what, [this, t, op, what] {
      const int64_t n = t.numel();
      MPI_Datatype type = mpi_type(t.dtype(), what);
      MPI_Op mop = op == ReduceOp::max ? (t.dtype() == DType::bf16 ? bf16_max_ : MPI_MAX)
                                        : (t.dtype() == DType::bf16 ? bf16_sum_ : MPI_SUM);
      // Counts are ints in MPI: large tensors go in pieces.
      char* p = static_cast<char*>(t.data_ptr());
      for (int64_t done = 0; done < n;) {
        const int64_t count = std::min<int64_t>(n - done, int64_t(1) << 30);
        call(MPI_Allreduce(MPI_IN_PLACE, p + done * int64_t(t.itemsize()), int(count), type, mop, MPI_COMM_WORLD),
             "MPI_Allreduce", what);
        done += count;
      }
      if (op == ReduceOp::avg) {
        const double s = 1.0 / double(size_);
        switch (t.dtype()) {
          case DType::f64: scale<double>(p, n, s); break;
          case DType::f32: scale<float>(p, n, s); break;
          case DType::bf16: scale<bf16>(p, n, s); break;
          default: SPARTA_FAIL("dist", "[all_reduce] ", what, ": cannot average ", dtype_name(t.dtype()));
        }
      }
    });
  }

  void broadcast(Tensor t, int root, const std::string& what) override {
    check_tensor(t, "broadcast", what);
    submit("broadcast of " + what, [this, t, root, what] {
      call(MPI_Bcast(t.data_ptr(), int(t.nbytes()), MPI_BYTE, root, MPI_COMM_WORLD), "MPI_Bcast", what);
    })->wait();
  }

  void all_reduce_host(std::vector<double>& values, ReduceOp op, const std::string& what) override {
    submit(what, [this, &values, op, what] {
      call(MPI_Allreduce(MPI_IN_PLACE, values.data(), int(values.size()), MPI_DOUBLE,
                         op == ReduceOp::max ? MPI_MAX : MPI_SUM, MPI_COMM_WORLD),
           "MPI_Allreduce", what);
      if (op == ReduceOp::avg)
        for (double& v : values) v /= double(size_);
    })->wait();
  }

  void barrier(const std::string& what) override {
    submit(what, [this, what] { call(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier", what); })->wait();
  }

  [[noreturn]] void abort(const std::string& why) override {
    std::fprintf(stderr, "[dist] rank %d: %s; ending the job\n", rank_, why.c_str());
    std::fflush(stderr);
    std::fflush(stdout);
    // mpirun ends every other rank, naming this one.
    MPI_Abort(MPI_COMM_WORLD, 1);
    std::_Exit(1);
  }

 private:
  struct Job {
    std::function<void()> run;
    bool done = false;
    std::string error;
  };

  class MpiWork final : public Work {
   public:
    MpiWork(MpiCommunicator* c, std::shared_ptr<Job> job, std::string what)
        : c_(c), job_(std::move(job)), what_(std::move(what)) {}
    void wait() override { c_->wait(*job_, what_); }

   private:
    MpiCommunicator* c_;
    std::shared_ptr<Job> job_;
    std::string what_;
  };

  static MPI_Datatype mpi_type(DType d, const std::string& what) {
    switch (d) {
      case DType::f64: return MPI_DOUBLE;
      case DType::f32: return MPI_FLOAT;
      case DType::bf16: return MPI_UINT16_T;  // with the bf16 ops
      case DType::i64: return MPI_INT64_T;
      case DType::i32: return MPI_INT32_T;
      default: SPARTA_FAIL("dist", "[mpi] ", what, ": no MPI type for ", dtype_name(d));
    }
  }

  void check_tensor(const Tensor& t, const char* op, const std::string& what) const {
    SPARTA_CHECK(t.device().is_cpu() && t.is_contiguous(), "dist", "[", op, "] ", what,
                 ": the MPI backend takes contiguous cpu tensors, got ", t.device().str(),
                 t.is_contiguous() ? "" : " (strided)");
  }

  void call(int code, const char* fn, const std::string& what) {
    if (code != MPI_SUCCESS) abort(std::string(fn) + " for " + what + " failed: " + mpi_error(code));
  }

  std::shared_ptr<Work> submit(std::string what, std::function<void()> run) {
    auto job = std::make_shared<Job>();
    job->run = std::move(run);
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.push_back(job);
    }
    changed_.notify_all();
    return std::make_shared<MpiWork>(this, job, std::move(what));
  }

  // Note [collective timeout]: a collective that a dead or hung peer never joins blocks forever
  // inside MPI; the waiting thread gives up after timeout_s and ends the job (MPI_Abort), so the
  // run can be resumed from its last checkpoint instead of holding its GPUs or cores forever.
  void wait(Job& job, const std::string& what) {
    std::unique_lock<std::mutex> lock(mu_);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s_);
    if (!changed_.wait_until(lock, deadline, [&] { return job.done; })) {
      lock.unlock();
      char buf[64];
      std::snprintf(buf, sizeof buf, "%g", timeout_s_);
      abort(what + " made no progress for " + buf + " s (distributed.timeout_s): a peer rank died or hung");
    }
    if (!job.error.empty()) {
      const std::string e = job.error;
      lock.unlock();
      SPARTA_FAIL("dist", e);
    }
  }

  void loop() {
    for (;;) {
      std::shared_ptr<Job> job;
      {
        std::unique_lock<std::mutex> lock(mu_);
        changed_.wait(lock, [&] { return stop_ || !queue_.empty(); });
        if (queue_.empty()) return;
        job = queue_.front();
        queue_.pop_front();
      }
      std::string error;
      try {
        job->run();
      } catch (const std::exception& e) {
        error = e.what();
      }
      {
        std::lock_guard<std::mutex> lock(mu_);
        job->done = true;
        job->error = error;
      }
      changed_.notify_all();
    }
  }

  double timeout_s_;
  int rank_ = 0, size_ = 1, local_rank_ = 0;
  bool owns_mpi_ = false;
  MPI_Op bf16_sum_ = MPI_OP_NULL, bf16_max_ = MPI_OP_NULL;
  std::mutex mu_;
  std::condition_variable changed_;
  std::deque<std::shared_ptr<Job>> queue_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace

CommunicatorPtr make_mpi_communicator(const LaunchInfo& launch, double timeout_s) {
  return std::make_shared<MpiCommunicator>(launch, timeout_s);
}

}  // namespace sparta::train::dist
