#include "net/pool.h"

#include <unistd.h>

#include <event2/event.h>
#include <openssl/err.h>

#include "runtime/runtime.h"

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
  for (auto& c : idle_) close_conn(c.conn);
}

PooledConn Pool::take() {
  if (idle_.empty()) return {};
  IdleConn& c = idle_.front();
  PooledConn out = std::move(c.conn);
  c.conn.fd = -1;
  spare_.splice(spare_.begin(), idle_, idle_.begin());
  if (out.io) {
    out.io->disarm_idle();
    out.io->retarget(&on_unowned, nullptr);
  }
  return out;  // the connection stays counted
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
  if (spare_.empty()) spare_.emplace_front();
  idle_.splice(idle_.begin(), spare_, spare_.begin());
  IdleConn& c = idle_.front();
  c.conn = std::move(conn);
  c.pool = this;
  c.pos = idle_.begin();
  // watched for the peer's bytes or close: through the registration the connection kept,
  // else a new one (which reports what is already pending)
  if (c.conn.io) c.conn.io->retarget(&Pool::on_idle_io, &c);
  else c.conn.io = IoReg::open(base_, c.conn.fd, &Pool::on_idle_io, &c);
  if (!c.conn.io) {
    drop(&c);  // cannot be watched: not kept
    return;
  }
  if (idle_timeout_ms > 0) c.conn.io->arm_idle(idle_timeout_ms);
  while (idle_.size() > size_) drop(&idle_.back());
}

void Pool::on_idle_io(void* arg, short what) {
  auto* c = static_cast<IdleConn*>(arg);
  if (what & EV_WRITE) return;  // the send buffer drained: nothing to see
  // A TLS 1.3 server may send session tickets after the handshake: records that carry
  // no application data leave the connection good.
  if (c->conn.ssl && (what & EV_READ)) {
    char b;
    int r = SSL_peek(c->conn.ssl.get(), &b, 1);
    if (r <= 0 && SSL_get_error(c->conn.ssl.get(), r) == SSL_ERROR_WANT_READ) return;
    ERR_clear_error();
  }
  // timed out, closed by the peer, or unexpected bytes: the connection is no good
  c->pool->drop(c);
}

void Pool::drop(IdleConn* c) {
  close_conn(c->conn);
  spare_.splice(spare_.begin(), idle_, c->pos);
  if (spare_.size() > size_ + 1) spare_.pop_back();
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

namespace {
struct PoolsExt : Extension {
  explicit PoolsExt(Runtime& rt) : set(rt.base()) {}
  PoolSet set;
};
}  // namespace

PoolSet& pools() { return runtime().ext<PoolsExt>().set; }

}  // namespace cosocket
