#include "train/dist/communicator.h"

#include <cstdio>
#include <cstdlib>
#include <mutex>

#include "core/cuda/runtime.h"
#include "core/error.h"
#include "train/dist/backends.h"

namespace sparta::train::dist {
namespace {

class DoneWork final : public Work {
 public:
  void wait() override {}
};

CommunicatorPtr make(const LaunchInfo& l, Device device, double timeout_s) {
  if (l.size == 1) return std::make_shared<SoloCommunicator>(device);
  if (device.is_cpu()) {
#ifdef SPARTA_MPI
    SPARTA_CHECK(l.launcher == Launcher::mpirun, "dist", "data parallelism on the cpu runs over MPI: launch with `mpirun -np ",
                 l.size, " sparta train ...`, not with ", launcher_name(l.launcher));
    return make_mpi_communicator(l, timeout_s);
#else
    SPARTA_FAIL("dist", "launched as rank ", l.rank, " of ", l.size, " by ", launcher_name(l.launcher),
                " on the cpu, but this build of sparta has no MPI (install libopenmpi-dev and rebuild)");
#endif
  }
#ifdef SPARTA_NCCL
  CommunicatorPtr bootstrap;
  if (l.launcher == Launcher::mpirun) {
#ifdef SPARTA_MPI
    bootstrap = make_mpi_communicator(l, timeout_s);
#else
    SPARTA_FAIL("dist", "launched by mpirun, but this build of sparta has no MPI to exchange the NCCL id over; "
                "install libopenmpi-dev and rebuild, or launch with torchrun-style variables (docs/distributed.md)");
#endif
  }
  return make_nccl_communicator(l, device, timeout_s, bootstrap);
#else
  SPARTA_FAIL("dist", "launched as rank ", l.rank, " of ", l.size, " on ", device.str(),
              ", but this build of sparta has no NCCL (it needs the CUDA backend and NCCL's nccl.h and libnccl)");
#endif
}

}  // namespace

std::shared_ptr<Work> SoloCommunicator::all_reduce_async(Tensor t, ReduceOp op, const std::string& what) {
  return std::make_shared<DoneWork>();
}

void SoloCommunicator::abort(const std::string& why) { die(0, why); }

void die(int rank, const std::string& why) {
  std::fprintf(stderr, "[dist] rank %d: %s\n", rank, why.c_str());
  std::fflush(stderr);
  std::fflush(stdout);
  std::_Exit(1);
}

namespace {
std::mutex g_world_mu;
CommunicatorPtr g_world;
}  // namespace

CommunicatorPtr world(Device device, double timeout_s) {
  std::lock_guard<std::mutex> lock(g_world_mu);
  CommunicatorPtr& made = g_world;
  if (!made || (made->size() == 1 && made->device() != device)) {
    // A world of one has no peers to agree with: a process may train on the cpu, then on a GPU.
    made = make(launch_info(), device, timeout_s);
  } else {
    SPARTA_CHECK(made->device() == device, "dist", "this process's communicator works on ", made->device().str(),
                 ", asked for ", device.str());
  }
  return made;
}

void shutdown_world() {
  CommunicatorPtr w;
  {
    std::lock_guard<std::mutex> lock(g_world_mu);
    w = std::move(g_world);
  }
}

void abort_job_if_distributed(const std::string& why) {
  const LaunchInfo* l = nullptr;
  try {
    l = &launch_info();
  } catch (const Error&) {
    return;  // a malformed launch environment: its error is the one to report
  }
  if (l->size == 1) return;
  CommunicatorPtr w;
  {
    std::lock_guard<std::mutex> lock(g_world_mu);
    w = g_world;
  }
  if (w) w->abort(why);
  die(l->rank, why);
}

Device rank_device(Device configured) {
  const LaunchInfo& l = launch_info();
  if (!configured.is_cuda() || l.size == 1) return configured;
  // One GPU per process: cuda:LOCAL_RANK, unless the launcher already gave each process its own
  // (CUDA_VISIBLE_DEVICES set per rank, as SLURM's --gpus-per-task does).
  return Device::cuda(cuda::device_count() == 1 ? 0 : l.local_rank);
}

}  // namespace sparta::train::dist
