#pragma once
// How this process was launched: alone, by mpirun (OpenMPI's OMPI_COMM_WORLD_* variables), or by
// torchrun / SLURM (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT; SLURM_PROCID,
// SLURM_NTASKS, SLURM_LOCALID under srun). Read once, from the environment.
#include <string>

namespace sparta::train::dist {

enum class Launcher { none, mpirun, env };

struct LaunchInfo {
  Launcher launcher = Launcher::none;
  int rank = 0;
  int size = 1;
  int local_rank = 0;
  std::string master_addr;  // env launches: the host of rank 0 and the port of its rendezvous
  int master_port = 0;
};

// Throws naming the variable when one is malformed or inconsistent (RANK >= WORLD_SIZE, an env
// launch of several processes without MASTER_ADDR/MASTER_PORT).
const LaunchInfo& launch_info();
const char* launcher_name(Launcher l);

}  // namespace sparta::train::dist
