#include "loop/epoll_tap.h"

#include <cstddef>
#include <cstdint>
#include <vector>
#include <sys/epoll.h>

namespace cosocket::epoll_tap {
namespace {

bool g_live = false;
std::vector<uint8_t> g_gone;  // by descriptor

void note(const epoll_event* ev, int n) {
  g_live = true;
  for (int i = 0; i < n; ++i) {
    if (!(ev[i].events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))) continue;
    // libevent's epoll backend keys its registrations by data.fd
    int fd = ev[i].data.fd;
    if (fd < 0) continue;
    auto at = static_cast<size_t>(fd);
    if (at >= g_gone.size()) g_gone.resize(at + 256, 0);
    g_gone[at] = 1;
  }
}

}  // namespace

bool live() { return g_live; }

bool peer_gone(int fd) {
  auto at = static_cast<size_t>(fd);
  return fd >= 0 && at < g_gone.size() && g_gone[at];
}

void forget(int fd) {
  auto at = static_cast<size_t>(fd);
  if (fd >= 0 && at < g_gone.size()) g_gone[at] = 0;
}

}  // namespace cosocket::epoll_tap

// The executable's definition comes first in symbol lookup, so libevent's epoll_wait
// calls land here; epoll_pwait with no signal mask is the same system call.
extern "C" int epoll_wait(int epfd, epoll_event* events, int maxevents, int timeout) {
  int n = epoll_pwait(epfd, events, maxevents, timeout, nullptr);
  if (n >= 0) cosocket::epoll_tap::note(events, n);
  return n;
}
