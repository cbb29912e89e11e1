// ngx.socket.tcp, connecting: connect with its options, a pooled connection or a new
// one (resolving the host without blocking, then a non-blocking connect), and the
// pool's slot and backlog (waiting for a connection to be given back).
#include <cerrno>
#include <cstdio>

#include <sys/socket.h>

#include <event2/event.h>

#include "runtime/lua_util.h"
#include "net/tcp/tcp_sock.h"

namespace cosocket::tcp {

namespace {

int push_connected(lua_State* L, TcpSock*, const char* err) {
  if (err) return push_err(L, err);
  lua_pushinteger(L, 1);
  return 1;
}

// Opens the socket and starts connecting: 0 connected, 1 in progress, -errno.
int begin_connect(TcpSock* s) {
  int family = s->addr.family();
  int fd = ::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  s->fd = fd;
  s->is_unix = family == AF_UNIX;
  if (!s->bind_ip.empty()) {
    Address local;
    if (!parse_numeric(s->bind_ip, 0, local) || ::bind(fd, reinterpret_cast<sockaddr*>(&local.ss), local.len) < 0)
      return -(errno ? errno : EINVAL);
  }
  make_events(s);
  int rc;
  do rc = ::connect(fd, reinterpret_cast<sockaddr*>(&s->addr.ss), s->addr.len);
  while (rc < 0 && errno == EINTR);
  if (rc == 0) return 0;
  if (errno == EINPROGRESS) {
    s->writable = false;
    return 1;
  }
  return -errno;
}

void cancel_connect(TcpSock* s) {
  s->lookup.reset();
  s->ctimer.reset();
  if (s->waiting_pool) s->waiting_pool->cancel(s->ticket);
  s->waiting_pool = nullptr;
  s->writer = 0;
  close_fd(s);
  unpin_sock(s);
}

// From an address on: connect now or wait for it (async continuation).
void continue_connect(TcpSock* s) {
  int r = begin_connect(s);
  if (r == 0) {
    s->st = St::connected;
    s->reused = 0;
    finish_writer(s, push_connected, nullptr);
  } else if (r == 1) {
    arm_write(s, connect_timeout(s));
  } else {
    connect_failed(s, errno_text(-r));
  }
}

void on_resolved(TcpSock* s, std::string err, Address addr) {
  s->lookup.reset();  // err and addr were copied out of it first
  if (!err.empty()) {
    connect_failed(s, err);
    return;
  }
  s->addr = addr;
  continue_connect(s);
}

// Resolves s->host without blocking (nginx's resolver timeout, not the connect one).
void start_lookup(TcpSock* s) {
  s->lookup = std::make_unique<Lookup>(runtime(), s->host, s->port, runtime().cfg().resolver_timeout_ms,
                                       [s](const std::string& e, const Address& a) { on_resolved(s, e, a); });
}

// Opens a new connection for s (pool accounting done): returns values or yields.
int open_connection(lua_State* L, TcpSock* s, LuaThread* cur, bool numeric) {
  if (numeric) {
    int r = begin_connect(s);
    if (r == 0) {
      s->st = St::connected;
      s->reused = 0;
      lua_pushinteger(L, 1);
      return 1;
    }
    if (r < 0) {
      std::string err = errno_text(-r);
      close_fd(s);
      return push_err(L, err.c_str());
    }
    s->st = St::connecting;
    pin_sock(L, s, 1);
    s->writer = cur->id;
    arm_write(s, connect_timeout(s));
  } else {
    s->st = St::connecting;
    pin_sock(L, s, 1);
    s->writer = cur->id;
    start_lookup(s);
  }
  sched().suspend(cur, [s] { cancel_connect(s); });
  return yield_op(L);
}

void on_slot(TcpSock* s, PooledConn& conn) {
  s->ctimer.reset();
  Pool* p = s->waiting_pool;
  s->waiting_pool = nullptr;
  if (conn.fd >= 0) {  // a connection handed over by setkeepalive
    adopt(s, conn.fd, p, conn.reused + 1, std::move(conn.ssl), std::move(conn.io), conn.nodelay_done);
    finish_writer(s, push_connected, nullptr);
    return;
  }
  p->opened();
  s->pool = p;
  if (s->addr.len) {
    continue_connect(s);
  } else {
    start_lookup(s);
  }
}

}  // namespace

void connect_failed(TcpSock* s, const std::string& err) {
  close_fd(s);  // also gives the pool slot back
  finish_writer(s, push_connected, err.c_str());
}

int connect_step_done(TcpSock* s) {
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
  if (err) {
    connect_failed(s, errno_text(err));
    return 0;
  }
  if (s->wtimer) evtimer_del(s->wtimer.get());
  s->st = St::connected;
  s->reused = 0;
  finish_writer(s, push_connected, nullptr);
  return 0;
}

long connect_timeout(TcpSock* s) { return eff(s->connect_timeout, runtime().cfg().connect_timeout_ms); }

int l_connect(lua_State* L) {
  TcpSock* s = check_tcp(L, 1);
  sched().requests().own(sched().current_request(), &s->owner);
  int n = lua_gettop(L);
  if (n < 2 || n > 4)
    return luaL_error(L, "ngx.socket connect: expecting 2, 3, or 4 arguments (including the object), but seen %d", n);
  size_t hl;
  const char* h = luaL_checklstring(L, 2, &hl);
  std::string host(h, hl);
  Address addr;
  std::string perr;
  bool is_unix = parse_unix(host, addr, perr);
  int port = 0, opts = 0;
  if (is_unix) {
    if (n >= 3 && lua_istable(L, 3)) opts = 3;
    else if (n == 4 && lua_istable(L, 4)) opts = 4;
  } else {
    if (host.empty()) return push_err(L, "failed to parse host name \"\": no host");
    if (n < 3 || !lua_isnumber(L, 3)) return push_err(L, "missing the port number");
    lua_Integer p = lua_tointeger(L, 3);
    if (p < 0 || p > 65535) {
      lua_pushnil(L);
      lua_pushfstring(L, "bad port number: %d", static_cast<int>(p));
      return 2;
    }
    port = static_cast<int>(p);
    if (n == 4 && lua_istable(L, 4)) opts = 4;  // anything else is ignored, as OpenResty does
  }
  std::string key;
  long pool_size = 0, backlog = 0;
  bool has_size = false, has_backlog = false;
  if (opts) {
    lua_getfield(L, opts, "pool");
    if (lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER) {
      size_t kl;
      const char* k = lua_tolstring(L, -1, &kl);
      key.assign(k, kl);
    } else if (!lua_isnil(L, -1)) {
      return luaL_argerror(L, opts, lua_pushfstring(L, "bad \"pool\" option type: %s", luaL_typename(L, -1)));
    }
    lua_pop(L, 1);
    has_size = opt_integer(L, opts, "pool_size", pool_size, "pool_size");
    if (has_size && pool_size <= 0)
      return luaL_argerror(L, opts, lua_pushfstring(L, "bad \"pool_size\" option value: %d", static_cast<int>(pool_size)));
    has_backlog = opt_integer(L, opts, "backlog", backlog, "backlog");
    if (has_backlog && backlog < 0)
      return luaL_argerror(L, opts, lua_pushfstring(L, "bad \"backlog\" option value: %d", static_cast<int>(backlog)));
  }
  if (key.empty()) {
    key = host;
    if (!is_unix) {
      char buf[8];
      int len = snprintf(buf, sizeof buf, ":%d", port);
      key.append(buf, static_cast<size_t>(len));
    }
  }
  if (s->writer) return push_err(L, s->st == St::connecting ? "socket busy connecting" : "socket busy writing");
  if (s->reader) return push_err(L, "socket busy reading");
  LuaThread* cur = sched().current();
  if (!cur) return luaL_error(L, "no running light thread");
  if (s->st != St::closed) close_sock(s);
  s->key = key;
  s->reused = 0;
  if (!perr.empty()) return push_err(L, perr.c_str());
  s->host = host;
  s->port = port;
  PoolSet& pool_set = pools();
  Pool* pool = pool_set.find(key);
  if (!pool && (has_size || has_backlog)) pool = pool_set.get_or_create(key, has_size ? pool_size : runtime().cfg().pool_size);
  if (pool) {
    PooledConn conn = pool->take();
    if (conn.fd >= 0) {
      adopt(s, conn.fd, pool, conn.reused + 1, std::move(conn.ssl), std::move(conn.io), conn.nodelay_done);
      lua_pushinteger(L, 1);
      return 1;
    }
  }
  // a new connection: the address is only parsed now
  bool numeric = is_unix || parse_numeric(host, port, addr);
  s->addr = numeric ? addr : Address{};
  if (pool) {
    if (has_backlog && pool->connections() >= pool->size()) {
      if (pool->waiting() >= static_cast<size_t>(backlog)) return push_err(L, "too many waiting connect operations");
      s->st = St::connecting;
      pin_sock(L, s, 1);
      s->writer = cur->id;
      s->waiting_pool = pool;
      s->ticket = pool->wait([s](PooledConn& conn2) { on_slot(s, conn2); });
      s->ctimer = std::make_unique<Timer>(runtime().base(), connect_timeout(s), [s] {
        s->ctimer.reset();
        if (s->waiting_pool) s->waiting_pool->cancel(s->ticket);
        s->waiting_pool = nullptr;
        s->st = St::closed;
        finish_writer(s, push_connected, "timeout");
      });
      sched().suspend(cur, [s] { cancel_connect(s); });
      return yield_op(L);
    }
    pool->opened();
    s->pool = pool;
  }
  return open_connection(L, s, cur, numeric);
}

}  // namespace cosocket::tcp
