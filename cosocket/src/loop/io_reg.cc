#include "loop/io_reg.h"

#include <event2/event.h>

namespace cosocket {
namespace {

// the registration whose callback runs now; cleared if it is freed meanwhile
IoReg* g_dispatching = nullptr;

}  // namespace

std::unique_ptr<IoReg> IoReg::open(event_base* base, int fd, Fn fn, void* owner) {
  std::unique_ptr<IoReg> r(new IoReg());
  r->fn_ = fn;
  r->owner_ = owner;
  // EV_CLOSED asks epoll for EPOLLRDHUP too, which the epoll tap notes
  r->ev_ = event_new(base, fd, EV_READ | EV_WRITE | EV_CLOSED | EV_PERSIST | EV_ET, &IoReg::on_event, r.get());
  if (!r->ev_ || event_add(r->ev_, nullptr) != 0) return nullptr;
  if (!r->idle_.init(base, &IoReg::on_timer, r.get())) return nullptr;
  return r;
}

IoReg::~IoReg() {
  if (g_dispatching == this) g_dispatching = nullptr;
  if (ev_) event_free(ev_);
}

void IoReg::on_timer(int, short, void* arg) {
  auto* r = static_cast<IoReg*>(arg);
  if (r->idle_.due()) r->fn_(r->owner_, EV_TIMEOUT);
}

void IoReg::on_event(int, short what, void* arg) {
  auto* r = static_cast<IoReg*>(arg);
  // the read side first, then the write side, unless the first freed the registration
  // (the connection was closed, its socket collected); each goes to the holder of the time
  g_dispatching = r;
  if (what & (EV_READ | EV_CLOSED)) r->fn_(r->owner_, EV_READ);
  if (g_dispatching == r && (what & EV_WRITE)) r->fn_(r->owner_, EV_WRITE);
  g_dispatching = nullptr;
}

}  // namespace cosocket
