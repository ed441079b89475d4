// The TCP rendezvous of torchrun-style launches (train/dist/rendezvous.h): rank 0 hands its bytes
// to the other rank, and the heartbeat tells a rank that died or hangs from one that said goodbye.
// Rank 1 is a forked child process; it needs no MPI, NCCL or GPU.
#include <boost/test/unit_test.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "tests/child_process.h"
#include "train/dist/rendezvous.h"

using namespace sparta::test;
using namespace sparta::train::dist;

namespace {

LaunchInfo launch(int rank, int port) {
  LaunchInfo l;
  l.launcher = Launcher::env;
  l.rank = rank;
  l.size = 2;
  l.master_addr = "127.0.0.1";
  l.master_port = port;
  return l;
}

enum class Child { dies, says_goodbye, goes_silent, throws };

// Rank 1 in a child: receives the bytes (exit status 3 if they are wrong), then dies, leaves
// normally, stays connected without a heartbeat, or closes without a goodbye.
pid_t start_rank1(int port, Child how) {
  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t pid = ::fork();
  if (pid != 0) return pid;
  {
    Rendezvous r(launch(1, port), 10);
    std::vector<char> bytes;
    r.broadcast(bytes);
    if (std::string(bytes.begin(), bytes.end()) != "nccl-id") std::_Exit(3);
    if (how == Child::goes_silent) {
      ::pause();
      std::_Exit(0);
    }
    if (how != Child::throws) {  // throws: ~Rendezvous without leave(), as when a constructor throws
      r.watch(30, [](int, const std::string&) {});
      std::this_thread::sleep_for(std::chrono::milliseconds(1500));
      if (how == Child::dies) std::_Exit(0);  // no goodbye: as if killed
      r.leave();
    }
  }
  std::_Exit(0);
}

struct Lost {
  std::mutex mu;
  std::condition_variable cv;
  int rank = -1;
  std::string how;
  bool wait(double seconds) {
    std::unique_lock<std::mutex> lock(mu);
    return cv.wait_for(lock, std::chrono::duration<double>(seconds), [&] { return rank >= 0; });
  }
};

void run_rank0(Child how, Lost& lost, double wait_s) {
  const int port = free_port();
  const pid_t child = start_rank1(port, how);
  {
    Rendezvous r(launch(0, port), 10);
    std::vector<char> bytes{'n', 'c', 'c', 'l', '-', 'i', 'd'};
    r.broadcast(bytes);
    r.watch(2, [&](int rank, const std::string& h) {
      std::lock_guard<std::mutex> lock(lost.mu);
      lost.rank = rank;
      lost.how = h;
      lost.cv.notify_all();
    });
    lost.wait(wait_s);
    if (how == Child::goes_silent) ::kill(child, SIGKILL);
  }
  const int status = exit_status(child);
  BOOST_TEST((status == 0 || (how == Child::goes_silent && status == 128 + SIGKILL)), "rank 1 exited with " << status);
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_rank_that_dies_is_lost_at_once) {
  Lost lost;
  const auto t0 = std::chrono::steady_clock::now();
  run_rank0(Child::dies, lost, 10);
  BOOST_TEST(lost.rank == 1);
  BOOST_TEST(lost.how.find("closed") != std::string::npos, lost.how);
  BOOST_TEST(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() < 5.0);
}

BOOST_AUTO_TEST_CASE(a_rank_that_closes_without_goodbye_is_lost) {
  Lost lost;
  run_rank0(Child::throws, lost, 10);
  BOOST_TEST(lost.rank == 1);
}

BOOST_AUTO_TEST_CASE(a_rank_that_says_goodbye_is_not_lost) {
  Lost lost;
  run_rank0(Child::says_goodbye, lost, 4);
  BOOST_TEST(lost.rank == -1, "rank " << lost.rank << " lost: " << lost.how);
}

BOOST_AUTO_TEST_CASE(a_silent_rank_is_lost_after_the_silence_limit) {
  Lost lost;
  run_rank0(Child::goes_silent, lost, 10);
  BOOST_TEST(lost.rank == 1);
  BOOST_TEST(lost.how.find("no heartbeat for 2 s") != std::string::npos, lost.how);
}
