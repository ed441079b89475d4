#include "train/dist/launch.h"

#include <cerrno>
#include <cstdlib>

#include "core/error.h"

namespace sparta::train::dist {
namespace {

const char* env(const char* name) {
  const char* v = std::getenv(name);
  return v && *v ? v : nullptr;
}

int env_int(const char* name, int fallback) {
  const char* v = env(name);
  if (!v) return fallback;
  char* end = nullptr;
  errno = 0;
  const long x = std::strtol(v, &end, 10);
  SPARTA_CHECK(errno == 0 && end && *end == '\0' && x >= 0 && x < (1L << 30), "dist", "environment variable ", name,
               "='", v, "' is not a non-negative integer");
  return int(x);
}

LaunchInfo detect() {
  LaunchInfo l;
  if (env("OMPI_COMM_WORLD_SIZE")) {
    l.launcher = Launcher::mpirun;
    l.size = env_int("OMPI_COMM_WORLD_SIZE", 1);
    l.rank = env_int("OMPI_COMM_WORLD_RANK", 0);
    l.local_rank = env_int("OMPI_COMM_WORLD_LOCAL_RANK", 0);
  } else if (env("WORLD_SIZE") || env("SLURM_NTASKS")) {
    // torchrun's names first; srun's stand in for those it does not set.
    const bool torch = env("WORLD_SIZE") != nullptr;
    l.launcher = Launcher::env;
    l.size = torch ? env_int("WORLD_SIZE", 1) : env_int("SLURM_NTASKS", 1);
    l.rank = torch ? env_int("RANK", 0) : env_int("SLURM_PROCID", 0);
    l.local_rank = torch ? env_int("LOCAL_RANK", 0) : env_int("SLURM_LOCALID", 0);
    if (l.size > 1) {
      const char* addr = env("MASTER_ADDR");
      SPARTA_CHECK(addr != nullptr && env("MASTER_PORT") != nullptr, "dist", "a launch of ", l.size,
                   " processes by environment variables (", torch ? "WORLD_SIZE" : "SLURM_NTASKS",
                   ") needs MASTER_ADDR and MASTER_PORT: the host and port where rank 0 listens");
      l.master_addr = addr;
      l.master_port = env_int("MASTER_PORT", 0);
      SPARTA_CHECK(l.master_port > 0 && l.master_port < 65536, "dist", "MASTER_PORT=", l.master_port,
                   " is not a TCP port");
    }
  }
  SPARTA_CHECK(l.size >= 1 && l.rank < l.size, "dist", "rank ", l.rank, " is not below the world size ", l.size,
               " (launcher ", launcher_name(l.launcher), ")");
  if (l.size == 1) l.launcher = Launcher::none;
  return l;
}

}  // namespace

const LaunchInfo& launch_info() {
  static const LaunchInfo info = detect();
  return info;
}

const char* launcher_name(Launcher l) {
  switch (l) {
    case Launcher::none: return "none";
    case Launcher::mpirun: return "mpirun";
    case Launcher::env: return "environment variables";
  }
  return "?";
}

}  // namespace sparta::train::dist
