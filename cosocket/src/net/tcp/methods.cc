// ngx.socket.tcp, the rest of the Lua face: close, setkeepalive (handing the
// connection to its pool), getreusedtimes, settimeout(s), setoption/getoption, getfd,
// bind, __gc and __tostring, the constructor and the method table; open_tcp and
// push_accepted_tcp (net/sockets.h).
#include <cerrno>
#include <cstring>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>

#include "loop/epoll_tap.h"
#include "net/sockets.h"
#include "net/tcp/tcp_sock.h"

namespace cosocket {

namespace tcp {
namespace {

int l_close(lua_State* L) {
  TcpSock* s = check_tcp(L, 1);
  if (lua_gettop(L) != 1) return luaL_error(L, "expecting 1 argument (including the object) but seen %d", lua_gettop(L));
  if (s->st != St::connected) return push_err(L, "closed");
  if (s->reader) return push_err(L, "socket busy reading");
  if (s->writer) return push_err(L, "socket busy writing");
  close_sock(s);
  lua_pushinteger(L, 1);
  return 1;
}

int l_setkeepalive(lua_State* L) {
  TcpSock* s = check_tcp(L, 1);
  int n = lua_gettop(L);
  if (n > 3) return luaL_error(L, "expecting 1 to 3 arguments (including the object), but got %d", n);
  long timeout = runtime().cfg().keepalive_timeout_ms;
  long size = runtime().cfg().pool_size;
  if (n >= 2 && !lua_isnil(L, 2)) {
    lua_Integer t = luaL_checkinteger(L, 2);
    timeout = t < 0 ? 0 : static_cast<long>(t);  // 0 (or negative, as nginx's unsigned): never expires
  }
  if (n >= 3 && !lua_isnil(L, 3)) {
    lua_Integer sz = luaL_checkinteger(L, 3);
    // the size only matters when the pool is created; an existing pool keeps its own
    if (sz <= 0 && !pools().find(s->key))
      return luaL_argerror(L, 3, lua_pushfstring(L, "bad \"pool_size\" option value: %d", static_cast<int>(sz)));
    size = static_cast<long>(sz);
  }
  if (s->st != St::connected) return push_err(L, "closed");
  if (s->reader) return push_err(L, "socket busy reading");
  if (s->writer) return push_err(L, "socket busy writing");
  if (!s->rbuf.empty()) return push_err(L, "unread data in buffer");
  if (s->eof || s->rclosed || s->wclosed) return push_err(L, "closed");
  // the peer's close since the last read makes it "closed" (left to close()); bytes it
  // sent make it "dubious", and it is closed. A plain connection whose last read found
  // its receive queue empty, with no event since, has neither: no need to look (nginx
  // looks only when its ready flag is set, too); any later byte or FIN is an event that
  // the pool sees.
  char c;
  if (s->ssl) {
    if (!s->hs_done) return push_err(L, "closed");
    // SSL_peek also takes in records without data (TLS 1.3 session tickets)
    int r = SSL_peek(s->ssl.get(), &c, 1);
    if (r > 0) {
      close_sock(s);
      return push_err(L, "connection in dubious state");
    }
    int e = SSL_get_error(s->ssl.get(), r);
    ERR_clear_error();
    if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) return push_err(L, "closed");
  } else if (s->readable || epoll_tap::peer_gone(s->fd)) {
    ssize_t r = ::recv(s->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (r > 0) {
      close_sock(s);
      return push_err(L, "connection in dubious state");
    }
    if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) return push_err(L, "closed");
  }
  Pool* pool = pools().get_or_create(s->key, static_cast<size_t>(size));
  if (s->pool != pool) {
    if (s->pool) s->pool->closed();
    pool->opened();
  }
  PooledConn conn;
  conn.fd = s->fd;
  conn.reused = s->reused;
  conn.io = std::move(s->io);  // stays registered
  conn.nodelay_done = s->nodelay_done;
  free_events(s);
  conn.ssl = std::move(s->ssl);
  s->hs_done = false;
  s->session.reset();
  s->fd = -1;
  s->st = St::closed;
  s->pool = nullptr;
  pool->put(std::move(conn), timeout);
  lua_pushinteger(L, 1);
  return 1;
}

int l_getreusedtimes(lua_State* L) {
  TcpSock* s = check_tcp(L, 1);
  if (lua_gettop(L) != 1)
    return luaL_error(L, "expecting 1 argument (including the object), but got %d", lua_gettop(L));
  if (s->st != St::connected) return push_err(L, "closed");
  lua_pushinteger(L, s->reused);
  return 1;
}

int l_settimeout(lua_State* L) {
  TcpSock* s = check_tcp(L, 1);
  if (lua_gettop(L) != 2)
    return luaL_error(L, "ngx.socket settimeout: expecting 2 arguments (including the object) but seen %d", lua_gettop(L));
  lua_Number t = lua_tonumber(L, 2);  // nil or a non-number: 0, the default
  if (t < 0 || t > 2147483647.0) return luaL_error(L, "bad timeout value");
  s->connect_timeout = s->send_timeout = s->read_timeout = static_cast<long>(t);
  return 0;
}

int l_settimeouts(lua_State* L) {
  TcpSock* s = check_tcp(L, 1);
  if (lua_gettop(L) != 4)
    return luaL_error(L, "ngx.socket settimeout: expecting 4 arguments (including the object) but seen %d",
                      lua_gettop(L));
  long v[3];
  for (int i = 0; i < 3; ++i) {
    lua_Number t = lua_tonumber(L, i + 2);
    if (t < 0 || t > 2147483647.0) return luaL_error(L, "bad timeout value");
    v[i] = static_cast<long>(t);
  }
  s->connect_timeout = v[0];
  s->send_timeout = v[1];
  s->read_timeout = v[2];
  return 0;
}

struct SockOpt {
  const char* name;
  int level;
  int opt;
  bool tcp_only;
};
const SockOpt kOpts[] = {
    {"keepalive", SOL_SOCKET, SO_KEEPALIVE, false}, {"reuseaddr", SOL_SOCKET, SO_REUSEADDR, false},
    {"tcp-nodelay", IPPROTO_TCP, TCP_NODELAY, true}, {"sndbuf", SOL_SOCKET, SO_SNDBUF, false},
    {"rcvbuf", SOL_SOCKET, SO_RCVBUF, false},        {"keepintvl", IPPROTO_TCP, TCP_KEEPINTVL, true},
    {"keepcnt", IPPROTO_TCP, TCP_KEEPCNT, true},     {"keepidle", IPPROTO_TCP, TCP_KEEPIDLE, true},
};

const SockOpt* find_opt(lua_State* L, int idx) {
  const char* name = lua_tostring(L, idx);
  if (!name) return nullptr;
  for (const auto& o : kOpts)
    if (strcmp(o.name, name) == 0) return &o;
  return nullptr;
}

int unsupported(lua_State* L, int idx) {
  if (lua_isnoneornil(L, idx)) return push_err(L, "missing the \"option\" argument");
  lua_pushnil(L);
  lua_pushfstring(L, "unsupported option %s", lua_tostring(L, idx));
  return 2;
}

// socket option errors come from strerror as it is (lua-resty-core's FFI does that)
int raw_err(lua_State* L, int err) { return push_err(L, strerror(err)); }

int l_setoption(lua_State* L) {
  TcpSock* s = check_tcp(L, 1);
  const SockOpt* o = find_opt(L, 2);
  if (!o) return unsupported(L, 2);
  if (lua_isnoneornil(L, 3)) return push_err(L, "missing the \"value\" argument");
  int val;
  if (lua_type(L, 3) == LUA_TBOOLEAN) val = lua_toboolean(L, 3);
  else val = static_cast<int>(luaL_checkinteger(L, 3));
  if (s->st != St::connected) return push_err(L, "closed");
  if (setsockopt(s->fd, o->level, o->opt, &val, sizeof val) < 0) return raw_err(L, errno);
  lua_pushboolean(L, 1);
  return 1;
}

int l_getoption(lua_State* L) {
  TcpSock* s = check_tcp(L, 1);
  const SockOpt* o = find_opt(L, 2);
  if (!o) return unsupported(L, 2);
  if (s->st != St::connected) return push_err(L, "closed");
  int val = 0;
  socklen_t len = sizeof val;
  if (getsockopt(s->fd, o->level, o->opt, &val, &len) < 0) return raw_err(L, errno);
  lua_pushinteger(L, val);
  return 1;
}

int l_getfd(lua_State* L) {
  TcpSock* s = check_tcp(L, 1);
  if (s->fd < 0) return push_err(L, "closed");
  lua_pushinteger(L, s->fd);
  return 1;
}

int l_bind(lua_State* L) {
  TcpSock* s = check_tcp(L, 1);
  if (lua_gettop(L) != 2) return luaL_error(L, "expecting 2 arguments, but got %d", lua_gettop(L));
  const char* ip = luaL_checkstring(L, 2);
  Address a;
  if (!parse_numeric(ip, 0, a)) return push_err(L, "bad address");
  s->bind_ip = ip;
  lua_pushboolean(L, 1);
  return 1;
}

int l_gc(lua_State* L) {
  auto* s = static_cast<TcpSock*>(lua_touserdata(L, 1));
  sched().requests().disown(&s->owner);
  if (!runtime().closing()) {
    close_sock(s);
    luaL_unref(L, LUA_REGISTRYINDEX, s->self_ref);
  } else if (s->fd >= 0) {
    free_events(s);  // before the fd goes, or epoll is told about a closed fd
    ::close(s->fd);
    s->fd = -1;
  }
  s->magic = 0;
  s->~TcpSock();
  return 0;
}

int l_tostring(lua_State* L) {
  lua_pushfstring(L, "tcp socket: %p", lua_touserdata(L, 1));
  return 1;
}

void l_tcp_new_impl(lua_State* L) {
  void* mem = lua_newuserdata(L, sizeof(TcpSock));
  auto* s = new (mem) TcpSock();
  s->owner.obj = s;
  s->owner.end = [](void* obj) { close_sock(static_cast<TcpSock*>(obj)); };
  lua_pushboolean(L, 0);
  s->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  luaL_getmetatable(L, kTcpMeta);
  lua_setmetatable(L, -2);
}

int l_tcp_new(lua_State* L) {
  if (lua_gettop(L) != 0) return luaL_error(L, "expecting zero arguments, but got %d", lua_gettop(L));
  l_tcp_new_impl(L);
  return 1;
}

const luaL_Reg kTcpMethods[] = {
    {"connect", l_connect},
    {"receive", l_receive},
    {"receiveany", l_receiveany},
    {"receiveuntil", l_receiveuntil},
    {"send", l_send},
    {"close", l_close},
    {"setkeepalive", l_setkeepalive},
    {"getreusedtimes", l_getreusedtimes},
    {"settimeout", l_settimeout},
    {"settimeouts", l_settimeouts},
    {"setoption", l_setoption},
    {"getoption", l_getoption},
    {"getfd", l_getfd},
    {"bind", l_bind},
    {"sslhandshake", l_sslhandshake},
    {"setclientcert", l_setclientcert},
    {"sslaccept", l_sslaccept},
    {nullptr, nullptr},
};

}  // namespace
}  // namespace tcp

// the public interface (net/sockets.h), on the parts in namespace tcp
using namespace tcp;

void push_accepted_tcp(lua_State* L, int fd, bool is_unix, uint32_t req) {
  l_tcp_new_impl(L);
  auto* s = static_cast<TcpSock*>(lua_touserdata(L, -1));
  sched().requests().own(req, &s->owner);
  s->is_unix = is_unix;
  s->key.clear();
  adopt(s, fd, nullptr, 0, nullptr, nullptr, true);  // listen.cc set TCP_NODELAY at accept
}

void open_tcp(lua_State* L) {
  luaL_newmetatable(L, kTcpMeta);
  lua_newtable(L);
  luaL_register(L, nullptr, kTcpMethods);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, l_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, l_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);
  luaL_newmetatable(L, kUntilMeta);
  lua_pushcfunction(L, l_until_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  lua_pushcfunction(L, l_tcp_new);
}

}  // namespace cosocket
