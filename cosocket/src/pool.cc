#include "pool.h"

#include <unistd.h>

#include <event2/event.h>
#include <openssl/err.h>

namespace cosocket {

Pool::~Pool() {
  for (auto& c : idle_) {
    c->ssl.reset();
    ::close(c->fd);
  }
}

int Pool::take(int& reused, SslPtr* ssl) {
  if (idle_.empty()) return -1;
  std::unique_ptr<IdleConn> c = std::move(idle_.front());
  idle_.pop_front();
  reused = c->reused;
  if (ssl) *ssl = std::move(c->ssl);
  return c->fd;  // c's event is freed with c; the connection stays counted
}

bool Pool::hand_to_waiter(int fd, int reused, SslPtr& ssl) {
  if (waiters_.empty()) return false;
  SlotWaiter w = std::move(waiters_.front().second);
  waiters_.pop_front();
  w(fd, reused, ssl);
  return true;
}

void Pool::put(int fd, int reused, long idle_timeout_ms, SslPtr ssl) {
  if (hand_to_waiter(fd, reused, ssl)) return;
  auto c = std::make_unique<IdleConn>();
  c->fd = fd;
  c->reused = reused;
  c->ssl = std::move(ssl);
  c->timeout_ms = idle_timeout_ms;
  c->pool = this;
  c->ev = std::unique_ptr<event, void (*)(event*)>(event_new(base_, fd, EV_READ, &Pool::on_idle_event, c.get()),
                                                   event_free);
  watch(c.get());
  idle_.push_front(std::move(c));
  idle_.front()->pos = idle_.begin();
  while (idle_.size() > size_) drop(idle_.back().get());
}

void Pool::watch(IdleConn* c) {
  if (c->timeout_ms > 0) {
    timeval tv{c->timeout_ms / 1000, (c->timeout_ms % 1000) * 1000};
    event_add(c->ev.get(), &tv);
  } else {
    event_add(c->ev.get(), nullptr);
  }
}

void Pool::on_idle_event(int, short what, void* arg) {
  auto* c = static_cast<IdleConn*>(arg);
  // A TLS 1.3 server may send session tickets after the handshake: records that carry
  // no application data leave the connection good (the idle timer starts again).
  if (c->ssl && (what & EV_READ)) {
    char b;
    int r = SSL_peek(c->ssl.get(), &b, 1);
    if (r <= 0 && SSL_get_error(c->ssl.get(), r) == SSL_ERROR_WANT_READ) {
      c->pool->watch(c);
      return;
    }
    ERR_clear_error();
  }
  // timed out, closed by the peer, or unexpected bytes: the connection is no good
  c->pool->drop(c);
}

void Pool::drop(IdleConn* c) {
  c->ssl.reset();
  ::close(c->fd);
  idle_.erase(c->pos);  // frees c and its event
  closed();
}

void Pool::closed() {
  if (connections_ > 0) --connections_;
  SslPtr none;
  hand_to_waiter(-1, 0, none);
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
