#pragma once
// The communicator of a data-parallel job: one process per device, `size()` of them, each with its
// `rank()`. Two backends implement it: MPI for CPU tensors (mpi_communicator.cpp) and NCCL for
// CUDA tensors (nccl_communicator.cpp); both are optional at build time, and a world of one
// process needs neither (SoloCommunicator). docs/distributed.md says how jobs are launched.
//
// Note [collective order]: every rank must issue the same collectives in the same order (MPI and
// NCCL match them by position, not by name). The trainer and the GradReducer keep to this by
// making every decision that leads to a collective from values that all ranks share: the step,
// the config, and results of earlier collectives.
#include <memory>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/tensor.h"

namespace sparta::train::dist {

enum class ReduceOp { sum, avg, max };

// An asynchronous collective. wait() orders its result before what follows: on the CPU the host
// blocks until it is done; on CUDA the compute stream waits for the communication stream (the
// host does not block). A collective that makes no progress for the communicator's timeout is an
// error naming `what` (the process is aborted: a lost peer never comes back).
class Work {
 public:
  virtual ~Work() = default;
  virtual void wait() = 0;
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual int local_rank() const = 0;  // the rank among the processes of this host
  virtual const char* backend() const = 0;
  // The device whose tensors the collectives take.
  virtual Device device() const = 0;

  // In-place all-reduce of a contiguous tensor of device(); `t` must stay alive and untouched until
  // wait() returns. `what` names it in timeout errors ("gradient bucket 3 of 7").
  virtual std::shared_ptr<Work> all_reduce_async(Tensor t, ReduceOp op, const std::string& what) = 0;
  void all_reduce(Tensor t, ReduceOp op, const std::string& what) { all_reduce_async(std::move(t), op, what)->wait(); }
  // Root's values into every rank's `t` (contiguous, device()).
  virtual void broadcast(Tensor t, int root, const std::string& what) = 0;
  // A few host numbers (losses, flags, timings), reduced in f64; blocks until done.
  virtual void all_reduce_host(std::vector<double>& values, ReduceOp op, const std::string& what) = 0;
  virtual void barrier(const std::string& what) = 0;
  // Ends the whole job: prints "[dist] rank R: <why>" to stderr and makes every rank exit.
  [[noreturn]] virtual void abort(const std::string& why) = 0;
};

using CommunicatorPtr = std::shared_ptr<Communicator>;

// The process's communicator, made on first call from the launch environment (launch.h): a
// SoloCommunicator when no launcher started several processes; MPI for a cpu device; NCCL for a
// cuda device (bootstrapped through MPI under mpirun, through the TCP rendezvous otherwise).
// `device` is the device this rank trains on; later calls return the same communicator and must
// pass the same device. A world size > 1 in a build without the backend is an error saying which.
CommunicatorPtr world(Device device, double timeout_s);

// Releases the process's communicator (MPI_Finalize, ncclCommDestroy, the rendezvous' goodbye)
// while the runtimes are still up; `sparta train` calls it once the run is over. A later world()
// of an MPI job cannot start MPI again.
void shutdown_world();

// For an error on one rank of a job of several: ends every rank with `why` (through the world
// communicator when it exists; under mpirun a rank's failing exit ends the others too). Returns
// when this process is alone, so the caller reports the error as usual.
void abort_job_if_distributed(const std::string& why);

// The device a rank trains on when the config names `configured`: under a launcher with several
// processes, cuda becomes cuda:LOCAL_RANK (cuda:0 when each process sees one GPU).
Device rank_device(Device configured);

// What a world of one does: every collective is the identity.
class SoloCommunicator final : public Communicator {
 public:
  explicit SoloCommunicator(Device device) : device_(device) {}
  int rank() const override { return 0; }
  int size() const override { return 1; }
  int local_rank() const override { return 0; }
  const char* backend() const override { return "solo"; }
  Device device() const override { return device_; }
  std::shared_ptr<Work> all_reduce_async(Tensor t, ReduceOp op, const std::string& what) override;
  void broadcast(Tensor t, int root, const std::string& what) override {}
  void all_reduce_host(std::vector<double>& values, ReduceOp op, const std::string& what) override {}
  void barrier(const std::string& what) override {}
  [[noreturn]] void abort(const std::string& why) override;

 private:
  Device device_;
};

}  // namespace sparta::train::dist
