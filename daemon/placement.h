#pragma once
// Which queued jobs start now. Two lanes, each first in, first out: CPU jobs (one slot each, up to
// cpu_slots at once) and GPU jobs (their count of GPUs, from the free set). The first job of a lane
// that does not fit holds back the rest of its lane, so a job that needs four GPUs is not starved by
// one-GPU jobs queued after it, while the other lane goes on (a CPU job never waits for a GPU).
#include <cstdint>
#include <vector>

#include "daemon/job.h"

namespace sparta::daemon {

struct FreeResources {
  int cpu_slots = 0;
  std::vector<int> gpus;  // free GPU indices, ascending
};

struct Placement {
  int64_t job_id = 0;
  std::vector<int> gpus;  // empty for a CPU job
};

// `queued` in queue order (queue_seq ascending).
std::vector<Placement> place_jobs(const std::vector<Job>& queued, FreeResources free);

}  // namespace sparta::daemon
