// ngx.socket.udp: datagram cosockets (UDP and unix-datagram).
#include <cerrno>
#include <cstring>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>

#include "loop/clock.h"
#include "runtime/lua_util.h"
#include "net/resolver.h"
#include "runtime/runtime.h"
#include "net/sockets.h"

namespace cosocket {

namespace {

const char* const kUdpMeta = "cosocket.udp";
constexpr size_t kMaxDatagram = 65536;

struct UdpSock {
  int fd = -1;
  long read_timeout = 0;
  std::string bind_ip;
  int self_ref = LUA_NOREF;
  uint64_t waiter = 0;     // the thread in receive() or setpeername()
  size_t rsize = kMaxDatagram;
  EventPtr rev{nullptr, event_free};
  std::unique_ptr<Lookup> lookup;
  Owned owner;             // the request that called setpeername (closed when it ends)
};

Scheduler& sched() { return runtime().sched(); }

UdpSock* check_udp(lua_State* L, int idx) { return static_cast<UdpSock*>(luaL_checkudata(L, idx, kUdpMeta)); }

int push_err(lua_State* L, const char* err) {
  lua_pushnil(L);
  lua_pushstring(L, err);
  return 2;
}

void unpin(UdpSock* s) {
  if (s->self_ref != LUA_NOREF) luaL_unref(runtime().L(), LUA_REGISTRYINDEX, s->self_ref);
  s->self_ref = LUA_NOREF;
}

void close_udp(UdpSock* s) {
  s->lookup.reset();
  s->rev.reset();
  if (s->fd >= 0) ::close(s->fd);
  s->fd = -1;
}

void on_read(int, short what, void* arg);

// Creates the socket for addr and connects it: "" or the error text.
std::string open_peer(UdpSock* s, const Address& addr) {
  close_udp(s);
  int fd = ::socket(addr.family(), SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno_text(errno);
  s->fd = fd;
  if (addr.family() == AF_UNIX) {
    // autobind so that a unix-datagram server can answer
    sockaddr_un local{};
    local.sun_family = AF_UNIX;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof(sa_family_t)) < 0) return errno_text(errno);
  } else if (!s->bind_ip.empty()) {
    Address local;
    if (!parse_numeric(s->bind_ip, 0, local) || ::bind(fd, reinterpret_cast<sockaddr*>(&local.ss), local.len) < 0)
      return errno_text(errno ? errno : EINVAL);
  }
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr.ss), addr.len) < 0) {
    std::string e = errno_text(errno);
    close_udp(s);
    return e;
  }
  s->rev.reset(event_new(runtime().base(), fd, EV_READ, &on_read, s));
  return "";
}

int push_ok_or(lua_State* L, const std::string& err) {
  if (!err.empty()) return push_err(L, err.c_str());
  lua_pushinteger(L, 1);
  return 1;
}

void finish(UdpSock* s, const std::function<int(lua_State*)>& push) {
  LuaThread* t = sched().find(s->waiter);
  s->waiter = 0;
  if (!t) {
    unpin(s);
    return;
  }
  int n = push(t->co);
  unpin(s);
  sched().resume(t, n);
}

int l_setpeername(lua_State* L) {
  UdpSock* s = check_udp(L, 1);
  int n = lua_gettop(L);
  if (n != 2 && n != 3)
    return luaL_error(L, "ngx.socket.udp setpeername: expecting 2 or 3 arguments (including the object), but seen %d", n);
  std::string host = luaL_checkstring(L, 2);
  if (s->waiter) return push_err(L, "socket busy");
  sched().requests().own(sched().current_request(), &s->owner);
  Address addr;
  std::string perr;
  if (parse_unix(host, addr, perr)) {
    if (!perr.empty()) return push_err(L, perr.c_str());
    return push_ok_or(L, open_peer(s, addr));
  }
  // no port: port 0, as OpenResty does (sends go nowhere; a receive gets "connection refused")
  lua_Integer port = n == 3 ? luaL_checkinteger(L, 3) : 0;
  if (port < 0 || port > 65535) {
    lua_pushnil(L);
    lua_pushfstring(L, "bad port number: %d", static_cast<int>(port));
    return 2;
  }
  if (parse_numeric(host, static_cast<int>(port), addr)) return push_ok_or(L, open_peer(s, addr));
  LuaThread* cur = sched().current();
  if (!cur) return luaL_error(L, "no running light thread");
  close_udp(s);
  s->self_ref = pin(L, 1);
  s->waiter = cur->id;
  long timeout = runtime().cfg().resolver_timeout_ms;
  s->lookup = std::make_unique<Lookup>(runtime(), host, static_cast<int>(port), timeout,
                                       [s](std::string err, Address a) {
                                         s->lookup.reset();
                                         std::string e = err.empty() ? open_peer(s, a) : err;
                                         finish(s, [&](lua_State* co) { return push_ok_or(co, e); });
                                       });
  sched().suspend(cur, [s] {
    s->lookup.reset();
    s->waiter = 0;
    unpin(s);
  });
  return yield_op(L);
}

int l_send(lua_State* L) {
  UdpSock* s = check_udp(L, 1);
  if (lua_gettop(L) != 2) return luaL_error(L, "expecting 2 arguments (including the object), but got %d", lua_gettop(L));
  std::vector<iovec> iov;
  collect_send_data(L, 2, iov);
  if (s->fd < 0) return push_err(L, "closed");
  if (s->waiter) return push_err(L, "socket busy");
  msghdr msg{};
  msg.msg_iov = iov.data();
  msg.msg_iovlen = iov.size();
  ssize_t r;
  do r = ::sendmsg(s->fd, &msg, MSG_NOSIGNAL);
  while (r < 0 && errno == EINTR);
  if (r < 0) return push_err(L, errno_text(errno).c_str());
  lua_pushinteger(L, 1);
  return 1;
}

// One datagram: pushes it (or nil, err) and returns the count, or -1 to wait.
int try_recv(lua_State* L, UdpSock* s) {
  char buf[kMaxDatagram];
  ssize_t r;
  do r = ::recv(s->fd, buf, s->rsize, 0);
  while (r < 0 && errno == EINTR);
  if (r >= 0) {
    lua_pushlstring(L, buf, static_cast<size_t>(r));
    return 1;
  }
  if (errno == EAGAIN || errno == EWOULDBLOCK) return -1;
  return push_err(L, errno_text(errno).c_str());
}

void on_read(int, short what, void* arg) {
  clock_update();
  auto* s = static_cast<UdpSock*>(arg);
  if (what & EV_TIMEOUT) {
    finish(s, [](lua_State* co) { return push_err(co, "timeout"); });
    return;
  }
  LuaThread* t = sched().find(s->waiter);
  if (!t) return;
  int n = try_recv(t->co, s);
  if (n < 0) {
    long ms = s->read_timeout > 0 ? s->read_timeout : runtime().cfg().read_timeout_ms;
    timeval tv{ms / 1000, (ms % 1000) * 1000};
    event_add(s->rev.get(), &tv);
    return;
  }
  s->waiter = 0;
  unpin(s);
  sched().resume(t, n);
}

int l_receive(lua_State* L) {
  UdpSock* s = check_udp(L, 1);
  int n = lua_gettop(L);
  if (n != 1 && n != 2) return luaL_error(L, "expecting 1 or 2 arguments (including the object), but got %d", n);
  size_t size = kMaxDatagram;
  if (n == 2 && !lua_isnil(L, 2)) {
    lua_Number v = luaL_checknumber(L, 2);
    // 0 or less: the largest datagram, as OpenResty does
    size = v <= 0 || v > kMaxDatagram ? kMaxDatagram : static_cast<size_t>(v);
  }
  if (s->fd < 0) return push_err(L, "closed");
  if (s->waiter) return push_err(L, "socket busy");
  s->rsize = size;
  int r = try_recv(L, s);
  if (r >= 0) return r;
  LuaThread* cur = sched().current();
  if (!cur) return luaL_error(L, "no running light thread");
  s->self_ref = pin(L, 1);
  s->waiter = cur->id;
  long ms = s->read_timeout > 0 ? s->read_timeout : runtime().cfg().read_timeout_ms;
  timeval tv{ms / 1000, (ms % 1000) * 1000};
  event_add(s->rev.get(), &tv);
  // killed while it waits: the socket is closed, as lua-nginx-module finalizes it
  sched().suspend(cur, [s] {
    s->waiter = 0;
    close_udp(s);
    unpin(s);
  });
  return yield_op(L);
}

int l_settimeout(lua_State* L) {
  UdpSock* s = check_udp(L, 1);
  if (lua_gettop(L) != 2)
    return luaL_error(L, "ngx.socket settimeout: expecting 2 arguments (including the object) but seen %d", lua_gettop(L));
  lua_Number t = luaL_checknumber(L, 2);
  // nginx keeps a negative timeout as a huge unsigned one; here it is the longest we allow
  if (t < 0 || t > 2147483647.0) t = 2147483647.0;
  s->read_timeout = static_cast<long>(t);
  return 0;
}

// close(), and the end of the owning request: a thread waiting on it gets nil, "closed"
void shut_udp(UdpSock* s) {
  if (s->waiter) {
    LuaThread* t = sched().find(s->waiter);
    s->waiter = 0;
    unpin(s);
    if (t) {
      t->cancel = nullptr;
      lua_pushnil(t->co);
      lua_pushliteral(t->co, "closed");
      sched().post(t, 2);
    }
  }
  close_udp(s);
}

int l_close(lua_State* L) {
  UdpSock* s = check_udp(L, 1);
  if (s->fd < 0 && !s->lookup) return push_err(L, "closed");
  shut_udp(s);
  lua_pushinteger(L, 1);
  return 1;
}

int l_bind(lua_State* L) {
  UdpSock* s = check_udp(L, 1);
  const char* ip = luaL_checkstring(L, 2);
  Address a;
  if (!parse_numeric(ip, 0, a)) return push_err(L, "bad address");
  s->bind_ip = ip;
  lua_pushinteger(L, 1);
  return 1;
}

int l_gc(lua_State* L) {
  auto* s = static_cast<UdpSock*>(lua_touserdata(L, 1));
  sched().requests().disown(&s->owner);
  close_udp(s);
  s->~UdpSock();
  return 0;
}

int l_tostring(lua_State* L) {
  lua_pushfstring(L, "udp socket: %p", lua_touserdata(L, 1));
  return 1;
}

int l_udp_new(lua_State* L) {
  if (lua_gettop(L) != 0) return luaL_error(L, "expecting zero arguments, but got %d", lua_gettop(L));
  void* mem = lua_newuserdata(L, sizeof(UdpSock));
  auto* s = new (mem) UdpSock();
  s->owner.obj = s;
  s->owner.end = [](void* obj) { shut_udp(static_cast<UdpSock*>(obj)); };
  luaL_getmetatable(L, kUdpMeta);
  lua_setmetatable(L, -2);
  return 1;
}

const luaL_Reg kUdpMethods[] = {
    {"setpeername", l_setpeername}, {"send", l_send}, {"receive", l_receive}, {"settimeout", l_settimeout},
    {"close", l_close},             {"bind", l_bind}, {nullptr, nullptr},
};

}  // namespace

void open_udp(lua_State* L) {
  luaL_newmetatable(L, kUdpMeta);
  lua_newtable(L);
  luaL_register(L, nullptr, kUdpMethods);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, l_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, l_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);
  lua_pushcfunction(L, l_udp_new);
}

}  // namespace cosocket
