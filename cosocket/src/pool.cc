#include "pool.h"

#include <unistd.h>

#include <event2/event.h>
#include <openssl/err.h>

namespace cosocket {
namespace {

void close_conn(PooledConn& c) {
  c.io.reset();  // unregistered before the fd goes
  c.ssl.reset();
  if (c.fd >= 0) ::close(c.fd);
  c.fd = -1;
}

// a taken connection's events until its new holder retargets them
void on_unowned(void*, short) {}

}  // namespace

Pool::~Pool() {
  for (auto& c : idle_) close_conn(c->conn);
}

PooledConn Pool::take() {
  if (idle_.empty()) return {};
  std::unique_ptr<IdleConn> c = std::move(idle_.front());
  idle_.pop_front();
  if (c->conn.io) c->conn.io->retarget(&on_unowned, nullptr);
  return std::move(c->conn);  // c's timer is freed with c; the connection stays counted
}

bool Pool::hand_to_waiter(PooledConn& conn) {
  if (waiters_.empty()) return false;
  SlotWaiter w = std::move(waiters_.front().second);
  waiters_.pop_front();
  w(conn);
  return true;
}

void Pool::put(PooledConn conn, long idle_timeout_ms) {
  if (hand_to_waiter(conn)) return;
  auto c = std::make_unique<IdleConn>();
  c->conn = std::move(conn);
  c->timeout_ms = idle_timeout_ms;
  c->pool = this;
  // watched for the peer's bytes or close: through the registration the connection kept,
  // else a new one (which reports what is already pending)
  if (c->conn.io) c->conn.io->retarget(&Pool::on_idle_io, c.get());
  else c->conn.io = IoReg::open(base_, c->conn.fd, &Pool::on_idle_io, c.get());
  if (idle_timeout_ms > 0) {
    c->timer = std::unique_ptr<event, void (*)(event*)>(evtimer_new(base_, &Pool::on_idle_timeout, c.get()),
                                                        event_free);
    timeval tv{idle_timeout_ms / 1000, (idle_timeout_ms % 1000) * 1000};
    evtimer_add(c->timer.get(), &tv);
  }
  idle_.push_front(std::move(c));
  idle_.front()->pos = idle_.begin();
  while (idle_.size() > size_) drop(idle_.back().get());
}

void Pool::on_idle_io(void* arg, short what) {
  auto* c = static_cast<IdleConn*>(arg);
  if (!(what & EV_READ)) return;  // the send buffer drained: nothing to see
  // A TLS 1.3 server may send session tickets after the handshake: records that carry
  // no application data leave the connection good.
  if (c->conn.ssl) {
    char b;
    int r = SSL_peek(c->conn.ssl.get(), &b, 1);
    if (r <= 0 && SSL_get_error(c->conn.ssl.get(), r) == SSL_ERROR_WANT_READ) return;
    ERR_clear_error();
  }
  // closed by the peer, or unexpected bytes: the connection is no good
  c->pool->drop(c);
}

void Pool::on_idle_timeout(int, short, void* arg) {
  auto* c = static_cast<IdleConn*>(arg);
  c->pool->drop(c);
}

void Pool::drop(IdleConn* c) {
  close_conn(c->conn);
  idle_.erase(c->pos);  // frees c and its timer
  closed();
}

void Pool::closed() {
  if (connections_ > 0) --connections_;
  PooledConn none;
  hand_to_waiter(none);
}

uint64_t Pool::wait(SlotWaiter w) {
  uint64_t t = next_ticket_++;
  waiters_.emplace_back(t, std::move(w));
  return t;
}

void Pool::cancel(uint64_t ticket) {
  for (auto it = waiters_.begin(); it != waiters_.end(); ++it) {
    if (it->first == ticket) {
      waiters_.erase(it);
      return;
    }
  }
}

Pool* PoolSet::find(const std::string& key) {
  auto it = pools_.find(key);
  return it == pools_.end() ? nullptr : it->second.get();
}

Pool* PoolSet::get_or_create(const std::string& key, size_t size) {
  if (Pool* p = find(key)) return p;
  auto p = std::make_unique<Pool>(base_, key, size);
  Pool* raw = p.get();
  pools_[key] = std::move(p);
  return raw;
}

}  // namespace cosocket
