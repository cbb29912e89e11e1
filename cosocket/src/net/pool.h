#pragma once
// Keepalive connection pools, keyed as OpenResty keys them ("host:port", "unix:path" or
// the `pool` option). A pool keeps idle connections most-recent first, closes one when
// its idle timeout passes, when the peer closes it or sends anything, and the least
// recently used one when the pool is over its size. With `backlog`, it also caps the
// open connections of the pool and queues further connects.
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <memory>
#include <string>
#include <unordered_map>

#include "loop/io_reg.h"
#include "net/tls_ptr.h"

struct event;
struct event_base;

namespace cosocket {

class Pool;

// A connection between two users: its fd, its TLS state (a TLS connection stays encrypted
// in the pool) and its event registration (kept registered: no epoll_ctl per use).
struct PooledConn {
  int fd = -1;
  int reused = 0;
  SslPtr ssl;
  IoRegPtr io;
  bool nodelay_done = false;  // TCP_NODELAY was set (on its first send)
};

struct IdleConn {
  PooledConn conn;
  Pool* pool = nullptr;
  std::list<IdleConn>::iterator pos;
};

// A connect waiting in the backlog: called with a connection handed over (the waiter takes
// it), or one with fd -1 when a slot is free and it may open its own.
using SlotWaiter = std::function<void(PooledConn& conn)>;

class Pool {
 public:
  Pool(event_base* base, std::string key, size_t size) : base_(base), key_(std::move(key)), size_(size) {}
  ~Pool();
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  const std::string& key() const { return key_; }
  size_t size() const { return size_; }
  size_t idle_count() const { return idle_.size(); }
  size_t connections() const { return connections_; }
  size_t waiting() const { return waiters_.size(); }

  // An idle connection, most recent first, or one with fd -1. No event came for it since
  // put(): the peer has sent nothing (its io must be retargeted at once).
  PooledConn take();
  // A connection goes idle (or straight to a waiting connect); the pool owns it now. Its
  // receive queue must be empty: anything that comes for it while idle closes it.
  void put(PooledConn conn, long idle_timeout_ms);
  // Accounting of open connections that belong to this pool.
  void opened() { ++connections_; }
  void closed();  // also lets one waiting connect go ahead
  // Backlog queue: returns a ticket for cancel().
  uint64_t wait(SlotWaiter w);
  void cancel(uint64_t ticket);

 private:
  static void on_idle_io(void* arg, short what);
  void drop(IdleConn* c);  // closes an idle connection
  bool hand_to_waiter(PooledConn& conn);

  event_base* base_;
  std::string key_;
  size_t size_;
  size_t connections_ = 0;
  std::list<IdleConn> idle_;   // front: most recently used
  std::list<IdleConn> spare_;  // list nodes kept for the next put (no allocation per cycle)
  std::deque<std::pair<uint64_t, SlotWaiter>> waiters_;
  uint64_t next_ticket_ = 1;
};

class PoolSet {
 public:
  explicit PoolSet(event_base* base) : base_(base) {}
  Pool* find(const std::string& key);
  Pool* get_or_create(const std::string& key, size_t size);

 private:
  event_base* base_;
  std::unordered_map<std::string, std::unique_ptr<Pool>> pools_;
};

// The running runtime's pools (a runtime extension: they outlive its Lua state).
PoolSet& pools();

}  // namespace cosocket
