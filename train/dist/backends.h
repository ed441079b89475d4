#pragma once
// The backends' constructors, for world() in communicator.cpp. Internal to train/dist/.
#include "train/dist/communicator.h"
#include "train/dist/launch.h"

namespace sparta::train::dist {

#ifdef SPARTA_MPI
// CPU tensors over MPI; initialises MPI (MPI_THREAD_MULTIPLE) on first use.
CommunicatorPtr make_mpi_communicator(const LaunchInfo& launch, double timeout_s);
#endif
#ifdef SPARTA_NCCL
// CUDA tensors over NCCL on `device`; the unique id travels over `bootstrap` (an MPI communicator
// under mpirun) or, when it is null, over the TCP rendezvous at MASTER_ADDR:MASTER_PORT, which
// then also carries the heartbeat that detects a lost rank.
CommunicatorPtr make_nccl_communicator(const LaunchInfo& launch, Device device, double timeout_s,
                                       CommunicatorPtr bootstrap);
#endif

// Prints "[dist] rank R: <why>" and ends this process with status 1 at once, from any thread: a
// rank that lost a peer cannot unwind through collectives that will never complete.
[[noreturn]] void die(int rank, const std::string& why);

}  // namespace sparta::train::dist
