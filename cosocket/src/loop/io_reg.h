#pragma once
// The event registration of a TCP connection: one edge-triggered libevent event for both
// directions, added to epoll once when the connection opens and kept, with the
// connection, through the keepalive pool, so a pooled request (connect from the pool, a
// command, setkeepalive) makes no epoll_ctl call, as in nginx. Its callback goes to
// whoever holds the connection now: the socket object, or the pool while it is idle. It
// also carries the pool's idle timer, lazy (as the sockets' read timers are): a pool cycle
// (setkeepalive, connect) makes no timer call when the last one is still armed.
#include <memory>

#include "loop/lazy_timer.h"

struct event;
struct event_base;

namespace cosocket {

class IoReg {
 public:
  // what: EV_READ (also for EV_CLOSED, the peer's FIN), EV_WRITE or EV_TIMEOUT (the idle
  // timer), one at a time
  using Fn = void (*)(void* owner, short what);

  // Registers fd; nullptr if libevent refuses it.
  static std::unique_ptr<IoReg> open(event_base* base, int fd, Fn fn, void* owner);
  ~IoReg();  // unregisters (before the fd is closed)
  IoReg(const IoReg&) = delete;
  IoReg& operator=(const IoReg&) = delete;

  void retarget(Fn fn, void* owner) {
    fn_ = fn;
    owner_ = owner;
  }

  // EV_TIMEOUT goes to the holder ms from now, unless disarm_idle() comes first.
  void arm_idle(long ms) { idle_.arm(ms); }
  void disarm_idle() { idle_.disarm(); }

 private:
  IoReg() = default;
  static void on_event(int fd, short what, void* arg);
  static void on_timer(int fd, short what, void* arg);
  event* ev_ = nullptr;
  LazyTimer idle_;
  Fn fn_ = nullptr;
  void* owner_ = nullptr;
};

using IoRegPtr = std::unique_ptr<IoReg>;

}  // namespace cosocket
