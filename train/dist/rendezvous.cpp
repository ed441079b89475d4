#include "train/dist/rendezvous.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "core/error.h"

namespace sparta::train::dist {
namespace {

// Frames are two int32s, kind and value; a DATA frame's value is the length of the bytes after it.
enum Kind : int32_t { kHello = 1, kData = 2, kBeat = 3, kLost = 4, kBye = 5 };

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

bool send_all(int fd, const void* p, size_t n) {
  const char* c = static_cast<const char*>(p);
  while (n > 0) {
    const ssize_t k = ::send(fd, c, n, MSG_NOSIGNAL);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return false;
    c += k;
    n -= size_t(k);
  }
  return true;
}

// Reads exactly n bytes, waiting at most until `deadline` (0: no limit). False on EOF, error or time.
bool recv_all(int fd, void* p, size_t n, double deadline) {
  char* c = static_cast<char*>(p);
  while (n > 0) {
    if (deadline > 0) {
      pollfd pfd{fd, POLLIN, 0};
      const int left_ms = int((deadline - now_s()) * 1000);
      if (left_ms <= 0 || ::poll(&pfd, 1, left_ms) <= 0) return false;
    }
    const ssize_t k = ::recv(fd, c, n, 0);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) return false;
    c += k;
    n -= size_t(k);
  }
  return true;
}

void no_delay(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

}  // namespace

Rendezvous::Rendezvous(const LaunchInfo& launch, double timeout_s) : launch_(launch) {
  const double deadline = now_s() + timeout_s;
  const std::string where = launch.master_addr + ":" + std::to_string(launch.master_port);
  if (launch.rank == 0) {
    const int lfd = ::socket(AF_INET6, SOCK_STREAM, 0);
    SPARTA_CHECK(lfd >= 0, "dist", "[rendezvous] socket: ", std::strerror(errno));
    int one = 1, zero = 0;
    ::setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    ::setsockopt(lfd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);  // IPv4 peers too
    sockaddr_in6 addr{};
    addr.sin6_family = AF_INET6;
    addr.sin6_addr = in6addr_any;
    addr.sin6_port = htons(uint16_t(launch.master_port));
    if (::bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(lfd, 128) != 0) {
      const std::string e = std::strerror(errno);
      ::close(lfd);
      SPARTA_FAIL("dist", "[rendezvous] rank 0 cannot listen on port ", launch.master_port, " (MASTER_PORT): ", e);
    }
    std::vector<bool> arrived(size_t(launch.size), false);
    arrived[0] = true;
    while (int(peers_.size()) < launch.size - 1) {
      pollfd pfd{lfd, POLLIN, 0};
      const int left_ms = int((deadline - now_s()) * 1000);
      if (left_ms <= 0 || ::poll(&pfd, 1, left_ms) <= 0) {
        std::string missing;
        for (int r = 1; r < launch.size; ++r)
          if (!arrived[size_t(r)]) missing += (missing.empty() ? "" : ", ") + std::to_string(r);
        ::close(lfd);
        SPARTA_FAIL("dist", "[rendezvous] rank(s) ", missing, " did not connect to port ", launch.master_port,
                    " within ", timeout_s, " s (distributed.timeout_s)");
      }
      const int fd = ::accept(lfd, nullptr, nullptr);
      if (fd < 0) continue;
      int32_t hello[2];
      if (!recv_all(fd, hello, sizeof hello, deadline) || hello[0] != kHello || hello[1] <= 0 ||
          hello[1] >= launch.size || arrived[size_t(hello[1])]) {
        ::close(fd);  // not one of ours (a port scanner, a rank of another job): ignore it
        continue;
      }
      no_delay(fd);
      arrived[size_t(hello[1])] = true;
      peers_.push_back(Peer{fd, hello[1], now_s(), false});
    }
    ::close(lfd);
  } else {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int fd = -1;
    std::string last_error = "nothing answered";
    // Rank 0 may start later than we do: retry until the deadline.
    while (fd < 0) {
      addrinfo* found = nullptr;
      const int g = ::getaddrinfo(launch.master_addr.c_str(), std::to_string(launch.master_port).c_str(), &hints, &found);
      if (g != 0) {
        last_error = ::gai_strerror(g);
      } else {
        for (addrinfo* a = found; a && fd < 0; a = a->ai_next) {
          const int s = ::socket(a->ai_family, a->ai_socktype, a->ai_protocol);
          if (s < 0) continue;
          if (::connect(s, a->ai_addr, a->ai_addrlen) == 0) {
            fd = s;
          } else {
            last_error = std::strerror(errno);
            ::close(s);
          }
        }
        ::freeaddrinfo(found);
      }
      if (fd >= 0) break;
      SPARTA_CHECK(now_s() < deadline, "dist", "[rendezvous] rank ", launch.rank, " could not reach rank 0 at ", where,
                   " (MASTER_ADDR:MASTER_PORT) within ", timeout_s, " s: ", last_error);
      ::usleep(100 * 1000);
    }
    no_delay(fd);
    const int32_t hello[2] = {kHello, launch.rank};
    SPARTA_CHECK(send_all(fd, hello, sizeof hello), "dist", "[rendezvous] rank ", launch.rank, ": lost ", where,
                 " while saying hello");
    peers_.push_back(Peer{fd, 0, now_s(), false});
  }
}

Rendezvous::~Rendezvous() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  for (Peer& p : peers_) ::close(p.fd);
}

void Rendezvous::leave() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  for (Peer& p : peers_) {
    if (!p.gone) send_frame(p, kBye, launch_.rank);
    p.gone = true;
  }
}

void Rendezvous::send_frame(Peer& p, int32_t kind, int32_t value) {
  const int32_t f[2] = {kind, value};
  std::lock_guard<std::mutex> lock(send_mu_);
  send_all(p.fd, f, sizeof f);  // a failure shows as EOF on the reading side
}

void Rendezvous::broadcast(std::vector<char>& bytes) {
  if (launch_.rank == 0) {
    for (Peer& p : peers_) {
      const int32_t f[2] = {kData, int32_t(bytes.size())};
      SPARTA_CHECK(send_all(p.fd, f, sizeof f) && send_all(p.fd, bytes.data(), bytes.size()), "dist",
                   "[rendezvous] rank ", p.rank, " lost while rank 0 sent it the NCCL id");
    }
    return;
  }
  int32_t f[2];
  SPARTA_CHECK(recv_all(peers_[0].fd, f, sizeof f, 0) && f[0] == kData && f[1] >= 0, "dist", "[rendezvous] rank ",
               launch_.rank, ": rank 0 closed the connection before sending the NCCL id");
  bytes.resize(size_t(f[1]));
  SPARTA_CHECK(recv_all(peers_[0].fd, bytes.data(), bytes.size(), 0), "dist", "[rendezvous] rank ", launch_.rank,
               ": rank 0 closed the connection while sending the NCCL id");
}

void Rendezvous::watch(double silence_s, std::function<void(int, const std::string&)> on_lost) {
  on_lost_ = std::move(on_lost);
  for (Peer& p : peers_) p.last_heard = now_s();
  thread_ = std::thread([this, silence_s] { beat_loop(silence_s); });
}

void Rendezvous::beat_loop(double silence_s) {
  double last_beat = 0;
  auto lose = [&](int rank, const std::string& how) {
    // Rank 0 is the only one that sees every peer: it tells the others whom it lost.
    if (launch_.rank == 0)
      for (Peer& q : peers_)
        if (!q.gone && q.rank != rank) send_frame(q, kLost, rank);
    stop_ = true;
    on_lost_(rank, how);
  };
  while (!stop_) {
    const double t = now_s();
    if (t - last_beat >= 1.0) {
      for (Peer& p : peers_)
        if (!p.gone) send_frame(p, kBeat, launch_.rank);
      last_beat = t;
    }
    std::vector<pollfd> fds;
    for (Peer& p : peers_) fds.push_back(pollfd{p.fd, POLLIN, 0});
    ::poll(fds.data(), fds.size(), 200);
    for (size_t i = 0; i < peers_.size() && !stop_; ++i) {
      Peer& p = peers_[i];
      if (p.gone) continue;
      if (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) {
        int32_t f[2];
        if (!recv_all(p.fd, f, sizeof f, now_s() + 5)) {
          p.gone = true;
          lose(p.rank, "its connection to the rendezvous closed (the process died)");
          return;
        }
        p.last_heard = now_s();
        if (f[0] == kBye) {
          p.gone = true;
          // Rank 0 leaving normally means the job is over: nothing left to watch.
          if (p.rank == 0) return;
        } else if (f[0] == kLost) {
          lose(f[1], "rank 0 lost it");
          return;
        }
      } else if (now_s() - p.last_heard > silence_s) {
        p.gone = true;
        char buf[32];
        std::snprintf(buf, sizeof buf, "%g", silence_s);
        lose(p.rank, std::string("no heartbeat for ") + buf + " s (it hangs, or its host is unreachable)");
        return;
      }
    }
  }
}

}  // namespace sparta::train::dist
