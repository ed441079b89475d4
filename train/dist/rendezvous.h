#pragma once
// The TCP rendezvous of an environment-variable launch (torchrun, SLURM): rank 0 listens on
// MASTER_PORT, every other rank connects to MASTER_ADDR:MASTER_PORT, and rank 0 sends them a few
// bytes (the NCCL unique id). The connections then stay open and carry a heartbeat: a rank whose
// connection closes without a goodbye, or that says nothing for the silence limit, is lost, and
// rank 0 tells the others which one it was. This is the only networking sparta writes itself;
// the collectives themselves are NCCL's.
#include <atomic>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "train/dist/launch.h"

namespace sparta::train::dist {

class Rendezvous {
 public:
  // Connects the star rank 0 - every other rank; waits at most timeout_s for everyone to arrive
  // (throws naming who is missing, or where rank 0 was expected, when they do not).
  Rendezvous(const LaunchInfo& launch, double timeout_s);
  // Closes the connections: without leave() first, the peers take this rank for lost (which is
  // right when a constructor throws on the way, say NCCL failing to start).
  ~Rendezvous();
  // Says goodbye: a rank that ends normally is not "lost".
  void leave();
  Rendezvous(const Rendezvous&) = delete;
  Rendezvous& operator=(const Rendezvous&) = delete;

  // Rank 0's `bytes` on every rank (before watch()).
  void broadcast(std::vector<char>& bytes);
  // Starts the heartbeat thread: beats every second, and calls on_lost once, from that thread,
  // with the lost rank and how it was lost, when a peer closes its connection without a goodbye
  // or is silent for `silence_s`.
  void watch(double silence_s, std::function<void(int rank, const std::string& how)> on_lost);

 private:
  struct Peer {
    int fd = -1;
    int rank = -1;
    double last_heard = 0;  // seconds on the steady clock
    bool gone = false;      // said goodbye, or lost
  };
  void beat_loop(double silence_s);
  void send_frame(Peer& p, int32_t kind, int32_t value);

  LaunchInfo launch_;
  std::vector<Peer> peers_;  // rank 0: every other rank; others: rank 0 alone
  std::mutex send_mu_;
  std::function<void(int, const std::string&)> on_lost_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace sparta::train::dist
