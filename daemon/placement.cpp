#include "daemon/placement.h"

namespace sparta::daemon {

std::vector<Placement> place_jobs(const std::vector<Job>& queued, FreeResources free) {
  std::vector<Placement> out;
  bool cpu_blocked = false, gpu_blocked = false;
  for (const Job& j : queued) {
    if (j.gpus == 0) {
      if (cpu_blocked) continue;
      if (free.cpu_slots <= 0) {
        cpu_blocked = true;
        continue;
      }
      --free.cpu_slots;
      out.push_back({j.id, {}});
    } else {
      if (gpu_blocked) continue;
      if (int64_t(free.gpus.size()) < j.gpus) {
        gpu_blocked = true;
        continue;
      }
      Placement p{j.id, std::vector<int>(free.gpus.begin(), free.gpus.begin() + j.gpus)};
      free.gpus.erase(free.gpus.begin(), free.gpus.begin() + j.gpus);
      out.push_back(std::move(p));
    }
  }
  return out;
}

}  // namespace sparta::daemon
