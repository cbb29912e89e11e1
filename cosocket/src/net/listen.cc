// Servers: cosocket.listen (TCP / unix stream listening sockets, a light thread per
// accepted connection) and cosocket.udp_bind (a bound UDP socket).
#include "net/listen.h"

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <memory>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>

#include "loop/clock.h"
#include "runtime/lua_util.h"
#include "runtime/log.h"
#include "runtime/output.h"
#include "net/resolver.h"
#include "runtime/runtime.h"
#include "net/sockets.h"
#include "net/tls.h"

namespace cosocket {

namespace {

const char* const kServerMeta = "cosocket.server";
const char* const kUdpServerMeta = "cosocket.udp_server";
constexpr int kAcceptsPerWakeup = 64;   // then the loop serves the others first
constexpr long kAcceptPauseMs = 100;    // after EMFILE/ENFILE
constexpr size_t kMaxDatagram = 65536;

// The Lua side of a connection's light thread: runs the handler, logs its error with a
// traceback, and closes the socket unless the handler did (or a child still uses it).
const char* const kRunHandler = R"(
local traceback, log_err, log_info = ...
local xpcall, tostring = xpcall, tostring
return function(handler, sock, peer, ssl_ctx, ssl_timeout)
    if ssl_ctx then
        -- TLS servers handshake before the handler runs, on their own timeout
        sock:settimeout(ssl_timeout)
        local ok, err = sock:sslaccept(ssl_ctx)
        sock:settimeout(0)
        if not ok then
            log_info("SSL handshake with " .. peer .. " failed: " .. tostring(err))
            sock:close()
            return
        end
    end
    local ok, err = xpcall(handler, traceback, sock, peer)
    sock:close()
    if not ok then
        log_err("server handler for " .. peer .. " failed: " .. tostring(err))
    end
end
)";
char kRunHandlerKey;

int l_log_err(lua_State* L) {
  log_message(kErr, luaL_checkstring(L, 1));
  return 0;
}

int l_log_info(lua_State* L) {
  log_message(kInfo, luaL_checkstring(L, 1));
  return 0;
}

void push_run_handler(lua_State* L) {
  lua_pushlightuserdata(L, &kRunHandlerKey);
  lua_rawget(L, LUA_REGISTRYINDEX);
  if (!lua_isnil(L, -1)) return;
  lua_pop(L, 1);
  if (luaL_loadbuffer(L, kRunHandler, strlen(kRunHandler), "=[cosocket listen]") != 0) lua_error(L);
  lua_getglobal(L, "debug");
  lua_getfield(L, -1, "traceback");
  lua_remove(L, -2);
  lua_pushcfunction(L, l_log_err);
  lua_pushcfunction(L, l_log_info);
  lua_call(L, 3, 1);
  lua_pushlightuserdata(L, &kRunHandlerKey);
  lua_pushvalue(L, -2);
  lua_rawset(L, LUA_REGISTRYINDEX);
}

std::string peer_string(const sockaddr_storage& ss, socklen_t len) {
  char ip[INET6_ADDRSTRLEN] = "";
  if (ss.ss_family == AF_INET) {
    auto* sin = reinterpret_cast<const sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof ip);
    return std::string(ip) + ":" + std::to_string(ntohs(sin->sin_port));
  }
  if (ss.ss_family == AF_INET6) {
    auto* sin6 = reinterpret_cast<const sockaddr_in6*>(&ss);
    inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof ip);
    return "[" + std::string(ip) + "]:" + std::to_string(ntohs(sin6->sin6_port));
  }
  if (ss.ss_family == AF_UNIX) {
    auto* sun = reinterpret_cast<const sockaddr_un*>(&ss);
    size_t off = offsetof(sockaddr_un, sun_path);
    if (len > off && sun->sun_path[0] != '\0') return std::string("unix:") + sun->sun_path;
    return "unix:";
  }
  return "";
}

int bound_port(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return 0;
  if (ss.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  if (ss.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
  return 0;
}

// "", "localhost", "*" and numeric addresses (IPv6 possibly in brackets).
bool listen_address(const std::string& host, int port, Address& addr) {
  if (host == "*" || host.empty()) return parse_numeric("0.0.0.0", port, addr);
  if (host == "localhost") return parse_numeric("127.0.0.1", port, addr);
  return parse_numeric(host, port, addr);
}

int push_err(lua_State* L, const std::string& err) {
  lua_pushnil(L);
  lua_pushstring(L, err.c_str());
  return 2;
}

// ---- TCP / unix stream servers -----------------------------------------------------

struct Server {
  int fd = -1;
  bool is_unix = false;
  std::string path;     // unix: the socket file (removed on close if still ours)
  dev_t dev = 0;
  ino_t ino = 0;
  int port = 0;
  int max_connections = 0;
  int live = 0;         // handlers running
  int handler_ref = LUA_NOREF;
  int ssl_ref = LUA_NOREF;   // the server context of a TLS server
  long ssl_timeout = 0;
  int self_ref = LUA_NOREF;  // the userdata, pinned while listening
  uint64_t hold = 0;
  bool paused = false;
  EventPtr ev{nullptr, event_free};
  EventPtr pause_timer{nullptr, event_free};
};

struct ServerBox {
  std::shared_ptr<Server> s;
};

void close_server(Server* s) {
  if (s->fd < 0) return;
  s->ev.reset();
  s->pause_timer.reset();
  ::close(s->fd);
  s->fd = -1;
  if (!s->path.empty()) {
    struct stat st{};
    if (stat(s->path.c_str(), &st) == 0 && st.st_dev == s->dev && st.st_ino == s->ino) unlink(s->path.c_str());
  }
  if (runtime().closing()) return;  // the Lua state is going away: no more bookkeeping
  lua_State* L = runtime().L();
  luaL_unref(L, LUA_REGISTRYINDEX, s->handler_ref);
  s->handler_ref = LUA_NOREF;
  luaL_unref(L, LUA_REGISTRYINDEX, s->ssl_ref);
  s->ssl_ref = LUA_NOREF;
  luaL_unref(L, LUA_REGISTRYINDEX, s->self_ref);
  s->self_ref = LUA_NOREF;
  uint64_t h = s->hold;
  s->hold = 0;
  if (h) runtime().unhold(h);
}

void spawn_handler(const std::shared_ptr<Server>& sp, int fd, const std::string& peer) {
  Server* s = sp.get();
  lua_State* L = runtime().L();
  int top = lua_gettop(L);
  push_run_handler(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, s->handler_ref);
  Scheduler& sc = runtime().sched();
  uint32_t req = sc.requests().open();  // the connection's request: the handler and its threads
  push_accepted_tcp(L, fd, s->is_unix, req);
  lua_pushlstring(L, peer.data(), peer.size());
  int nargs = 3;
  if (s->ssl_ref != LUA_NOREF) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->ssl_ref);
    lua_pushinteger(L, s->ssl_timeout);
    nargs = 5;
  }
  LuaThread* t = sc.create(L, nargs, ThreadKind::user, 0, req);
  ++s->live;
  std::weak_ptr<Server> w = sp;
  t->set_on_finish([w] {
    if (auto p = w.lock()) --p->live;
  });
  sc.post(t, nargs);
  lua_settop(L, top);
}

void on_resume_accept(int, short, void* arg) {
  auto* s = static_cast<Server*>(arg);
  s->paused = false;
  if (s->fd >= 0 && s->ev) event_add(s->ev.get(), nullptr);
}

void on_accept(int, short, void* arg) {
  clock_update();
  auto* box = static_cast<ServerBox*>(arg);
  std::shared_ptr<Server> sp = box->s;  // a handler may not run here, but keep it alive anyway
  Server* s = sp.get();
  for (int i = 0; i < kAcceptsPerWakeup && s->fd >= 0 && !runtime().exiting(); ++i) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    int fd = accept4(s->fd, reinterpret_cast<sockaddr*>(&ss), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      int e = errno;
      if (e == EAGAIN || e == EWOULDBLOCK) return;
      if (e == EINTR || e == ECONNABORTED || e == EPROTO) continue;
      if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
        log_message(kErr, "accept4() failed (" + std::to_string(e) + ": " + errno_text(e) + "), accepting again in " +
                              std::to_string(kAcceptPauseMs) + " ms");
        event_del(s->ev.get());
        s->paused = true;
        timeval tv{0, kAcceptPauseMs * 1000};
        evtimer_add(s->pause_timer.get(), &tv);
        return;
      }
      log_message(kErr, "accept4() failed (" + std::to_string(e) + ": " + errno_text(e) + ")");
      return;
    }
    if (s->live >= s->max_connections) {
      log_message(kWarn, std::to_string(s->max_connections) + " max_connections are not enough, connection from " +
                             peer_string(ss, len) + " refused");
      ::close(fd);
      continue;
    }
    if (!s->is_unix) {
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    spawn_handler(sp, fd, peer_string(ss, len));
  }
}

Server* check_server(lua_State* L) {
  auto* box = static_cast<ServerBox*>(luaL_checkudata(L, 1, kServerMeta));
  return box->s.get();
}

// Opens, binds and listens: "" or the error text.
std::string open_listener(Server* s, const Address& addr, int backlog, bool reuseport) {
  int fd = ::socket(addr.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno_text(errno);
  s->fd = fd;
  int one = 1;
  if (addr.family() != AF_UNIX) {
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) return errno_text(errno);
  }
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&addr.ss), addr.len) != 0) return errno_text(errno);
  if (addr.family() == AF_UNIX) {
    struct stat st{};
    if (stat(s->path.c_str(), &st) == 0) {
      s->dev = st.st_dev;
      s->ino = st.st_ino;
    }
  }
  if (::listen(fd, backlog) != 0) return errno_text(errno);
  s->port = bound_port(fd);
  return "";
}

// A socket file at path: removed when nothing listens on it any more (a stale one);
// "" or the error.
std::string remove_stale(const std::string& path, const Address& addr) {
  struct stat st{};
  if (lstat(path.c_str(), &st) != 0) return "";
  if (!S_ISSOCK(st.st_mode)) return errno_text(EADDRINUSE);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno_text(errno);
  int r = ::connect(fd, reinterpret_cast<const sockaddr*>(&addr.ss), addr.len);
  int e = errno;
  ::close(fd);
  if (r == 0 || e == EAGAIN) return errno_text(EADDRINUSE);  // somebody listens there
  unlink(path.c_str());
  return "";
}

const char* const kListenKeys[] = {"host", "port", "path", "backlog", "handler", "max_connections", "ssl",
                                   "reuseport", nullptr};

void check_keys(lua_State* L, const char* fn, const char* const* keys) {
  lua_pushnil(L);
  while (lua_next(L, 1) != 0) {
    lua_pop(L, 1);
    bool ok = false;
    if (lua_type(L, -1) == LUA_TSTRING) {
      for (const char* const* k = keys; *k; ++k)
        if (strcmp(lua_tostring(L, -1), *k) == 0) ok = true;
    }
    if (!ok) {
      lua_pushvalue(L, -1);
      const char* name = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : luaL_typename(L, -1);
      luaL_error(L, "%s: unknown option \"%s\"", fn, name);
    }
  }
}

long int_opt(lua_State* L, const char* fn, const char* name, long def, long lo, long hi) {
  lua_getfield(L, 1, name);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return def;
  }
  if (lua_type(L, -1) != LUA_TNUMBER) luaL_error(L, "%s: \"%s\" must be a number", fn, name);
  lua_Number v = lua_tonumber(L, -1);
  lua_pop(L, 1);
  if (v != static_cast<long>(v) || v < lo || v > hi)
    luaL_error(L, "%s: bad \"%s\" value %f (expected an integer in %d..%d)", fn, name, v, static_cast<int>(lo),
               static_cast<int>(hi));
  return static_cast<long>(v);
}

std::string str_opt(lua_State* L, const char* fn, const char* name, bool& present) {
  lua_getfield(L, 1, name);
  present = !lua_isnil(L, -1);
  std::string v;
  if (present) {
    if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "%s: \"%s\" must be a string", fn, name);
    v = lua_tostring(L, -1);
  }
  lua_pop(L, 1);
  return v;
}

bool bool_opt(lua_State* L, const char* fn, const char* name, bool def) {
  lua_getfield(L, 1, name);
  bool v = def;
  if (!lua_isnil(L, -1)) {
    if (lua_type(L, -1) != LUA_TBOOLEAN) luaL_error(L, "%s: \"%s\" must be a boolean", fn, name);
    v = lua_toboolean(L, -1);
  }
  lua_pop(L, 1);
  return v;
}

// cosocket.listen{ host =, port =, path =, backlog =, handler =, max_connections =,
// reuseport =, ssl = } -> server | nil, err
int l_listen(lua_State* L) {
  const char* fn = "cosocket.listen";
  if (lua_gettop(L) != 1 || !lua_istable(L, 1)) return luaL_error(L, "%s: expecting one table argument", fn);
  check_keys(L, fn, kListenKeys);
  lua_getfield(L, 1, "handler");
  if (!lua_isfunction(L, -1) || lua_iscfunction(L, -1)) return luaL_error(L, "%s: \"handler\" must be a Lua function", fn);
  lua_pop(L, 1);
  bool has_path = false, has_host = false;
  std::string path = str_opt(L, fn, "path", has_path);
  std::string host = str_opt(L, fn, "host", has_host);
  lua_getfield(L, 1, "port");
  bool has_port = !lua_isnil(L, -1);
  lua_pop(L, 1);
  if (has_path && (has_host || has_port)) return luaL_error(L, "%s: \"path\" excludes \"host\" and \"port\"", fn);
  if (!has_path && !has_port) return luaL_error(L, "%s: \"port\" or \"path\" is required", fn);
  if (has_path && path.empty()) return luaL_error(L, "%s: empty \"path\"", fn);
  long port = int_opt(L, fn, "port", 0, 0, 65535);
  long backlog = int_opt(L, fn, "backlog", 511, 1, 65535);
  long max_conn = int_opt(L, fn, "max_connections", runtime().cfg().max_connections, 1, 1L << 30);
  bool reuseport = bool_opt(L, fn, "reuseport", runtime().cfg().worker_count > 1);
  lua_getfield(L, 1, "ssl");
  bool ssl = !lua_isnil(L, -1);
  if (ssl && !lua_istable(L, -1)) return luaL_error(L, "%s: \"ssl\" must be a table", fn);
  std::shared_ptr<SSL_CTX> ssl_ctx;
  long ssl_timeout = 0;
  if (ssl) {
    // ssl = { cert = PEM text or file, key = PEM text or file, handshake_timeout = ms }
    int t = lua_gettop(L);
    std::string pem[2];
    const char* names[2] = {"cert", "key"};
    for (int k = 0; k < 2; ++k) {
      lua_getfield(L, t, names[k]);
      if (lua_type(L, -1) != LUA_TSTRING) return luaL_error(L, "%s: \"ssl.%s\" must be a string (PEM or a file)", fn, names[k]);
      size_t n;
      const char* p = lua_tolstring(L, -1, &n);
      pem[k].assign(p, n);
      lua_pop(L, 1);
    }
    lua_getfield(L, t, "handshake_timeout");
    if (!lua_isnil(L, -1)) {
      if (!lua_isnumber(L, -1) || lua_tonumber(L, -1) < 0) return luaL_error(L, "%s: bad \"ssl.handshake_timeout\"", fn);
      ssl_timeout = static_cast<long>(lua_tonumber(L, -1));
    }
    lua_pop(L, 1);
    if (ssl_timeout == 0) ssl_timeout = 10000;
    std::string err;
    ssl_ctx = make_server_ctx(pem[0], pem[1], err);
    if (!ssl_ctx) return push_err(L, err);
  }
  lua_pop(L, 1);
  if (runtime().exiting()) return push_err(L, "process exiting");

  Address addr;
  if (has_path) {
    if (path.size() >= sizeof(sockaddr_un::sun_path)) return push_err(L, "unix socket path too long");
    std::string perr;
    parse_unix("unix:" + path, addr, perr);
    if (!perr.empty()) return push_err(L, perr);
    std::string e = remove_stale(path, addr);
    if (!e.empty()) return push_err(L, e);
  } else if (!listen_address(host, static_cast<int>(port), addr)) {
    return push_err(L, "bad host \"" + host + "\" (a numeric address, \"*\" or \"localhost\")");
  }

  auto* box = static_cast<ServerBox*>(lua_newuserdata(L, sizeof(ServerBox)));
  new (box) ServerBox();
  luaL_getmetatable(L, kServerMeta);
  lua_setmetatable(L, -2);
  box->s = std::make_shared<Server>();
  Server* s = box->s.get();
  s->is_unix = has_path;
  s->path = path;
  s->max_connections = static_cast<int>(max_conn);
  std::string err = open_listener(s, addr, static_cast<int>(backlog), reuseport);
  if (!err.empty()) {
    if (s->fd >= 0) ::close(s->fd);
    s->fd = -1;
    if (has_path && s->ino) unlink(path.c_str());
    return push_err(L, err);
  }
  event_base* base = runtime().base();
  s->ev.reset(event_new(base, s->fd, EV_READ | EV_PERSIST, &on_accept, box));
  s->pause_timer.reset(evtimer_new(base, &on_resume_accept, s));
  event_add(s->ev.get(), nullptr);
  lua_getfield(L, 1, "handler");
  s->handler_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  if (ssl_ctx) {
    push_server_ctx(L, std::move(ssl_ctx));
    s->ssl_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    s->ssl_timeout = ssl_timeout;
  }
  s->self_ref = pin(L, -1);
  std::weak_ptr<Server> w = box->s;
  s->hold = runtime().hold([w] {
    if (auto p = w.lock()) close_server(p.get());
  });
  return 1;
}

int l_server_port(lua_State* L) {
  Server* s = check_server(L);
  if (s->is_unix) {
    lua_pushnil(L);
    return 1;
  }
  lua_pushinteger(L, s->port);
  return 1;
}

int l_server_path(lua_State* L) {
  Server* s = check_server(L);
  if (!s->is_unix) return 0;
  lua_pushstring(L, s->path.c_str());
  return 1;
}

int l_server_connections(lua_State* L) {
  lua_pushinteger(L, check_server(L)->live);
  return 1;
}

int l_server_close(lua_State* L) {
  Server* s = check_server(L);
  if (s->fd < 0) return push_err(L, "closed");
  close_server(s);
  lua_pushinteger(L, 1);
  return 1;
}

int l_server_gc(lua_State* L) {
  auto* box = static_cast<ServerBox*>(lua_touserdata(L, 1));
  if (box->s) close_server(box->s.get());
  box->~ServerBox();
  return 0;
}

int l_server_tostring(lua_State* L) {
  Server* s = check_server(L);
  if (s->is_unix) lua_pushfstring(L, "server: unix:%s", s->path.c_str());
  else lua_pushfstring(L, "server: port %d", s->port);
  return 1;
}

// ---- UDP: cosocket.udp_bind ---------------------------------------------------------

struct UdpServer {
  int fd = -1;
  int port = 0;
  long timeout = 0;  // ms; 0: --read-timeout
  uint64_t waiter = 0;
  int self_ref = LUA_NOREF;
  size_t rsize = kMaxDatagram;
  EventPtr rev{nullptr, event_free};
};

UdpServer* check_udp_server(lua_State* L) { return static_cast<UdpServer*>(luaL_checkudata(L, 1, kUdpServerMeta)); }

void udp_unpin(UdpServer* u) {
  if (u->self_ref != LUA_NOREF && !runtime().closing()) luaL_unref(runtime().L(), LUA_REGISTRYINDEX, u->self_ref);
  u->self_ref = LUA_NOREF;
}

// One datagram: pushes data, ip, port (or nil, err) and returns the count; -1 to wait.
int udp_try_recv(lua_State* L, UdpServer* u) {
  char buf[kMaxDatagram];
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  ssize_t r;
  do r = ::recvfrom(u->fd, buf, u->rsize, 0, reinterpret_cast<sockaddr*>(&ss), &len);
  while (r < 0 && errno == EINTR);
  if (r < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return -1;
    return push_err(L, errno_text(errno));
  }
  lua_pushlstring(L, buf, static_cast<size_t>(r));
  char ip[INET6_ADDRSTRLEN] = "";
  int port = 0;
  if (ss.ss_family == AF_INET) {
    auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof ip);
    port = ntohs(sin->sin_port);
  } else if (ss.ss_family == AF_INET6) {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
    inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof ip);
    port = ntohs(sin6->sin6_port);
  }
  lua_pushstring(L, ip);
  lua_pushinteger(L, port);
  return 3;
}

long udp_timeout(UdpServer* u) { return u->timeout > 0 ? u->timeout : runtime().cfg().read_timeout_ms; }

void on_udp_read(int, short what, void* arg) {
  clock_update();
  auto* u = static_cast<UdpServer*>(arg);
  Scheduler& sc = runtime().sched();
  LuaThread* t = sc.find(u->waiter);
  if (!t) {
    u->waiter = 0;
    udp_unpin(u);
    return;
  }
  int n;
  if (what & EV_TIMEOUT) {
    n = push_err(t->co, "timeout");
  } else {
    n = udp_try_recv(t->co, u);
    if (n < 0) {  // spurious wake-up: wait again for what is left of... a fresh timeout
      long ms = udp_timeout(u);
      timeval tv{ms / 1000, (ms % 1000) * 1000};
      event_add(u->rev.get(), &tv);
      return;
    }
  }
  u->waiter = 0;
  udp_unpin(u);
  sc.resume(t, n);
}

// cosocket.udp_bind{ host =, port =, reuseport = } -> socket | nil, err
int l_udp_bind(lua_State* L) {
  const char* fn = "cosocket.udp_bind";
  static const char* const keys[] = {"host", "port", "reuseport", nullptr};
  if (lua_gettop(L) != 1 || !lua_istable(L, 1)) return luaL_error(L, "%s: expecting one table argument", fn);
  check_keys(L, fn, keys);
  bool has_host = false;
  std::string host = str_opt(L, fn, "host", has_host);
  lua_getfield(L, 1, "port");
  bool has_port = !lua_isnil(L, -1);
  lua_pop(L, 1);
  if (!has_port) return luaL_error(L, "%s: \"port\" is required", fn);
  long port = int_opt(L, fn, "port", 0, 0, 65535);
  bool reuseport = bool_opt(L, fn, "reuseport", runtime().cfg().worker_count > 1);
  Address addr;
  if (!listen_address(host, static_cast<int>(port), addr))
    return push_err(L, "bad host \"" + host + "\" (a numeric address, \"*\" or \"localhost\")");
  int fd = ::socket(addr.family(), SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return push_err(L, errno_text(errno));
  int one = 1;
  if (reuseport) setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&addr.ss), addr.len) != 0) {
    std::string e = errno_text(errno);
    ::close(fd);
    return push_err(L, e);
  }
  auto* u = static_cast<UdpServer*>(lua_newuserdata(L, sizeof(UdpServer)));
  new (u) UdpServer();
  luaL_getmetatable(L, kUdpServerMeta);
  lua_setmetatable(L, -2);
  u->fd = fd;
  u->port = bound_port(fd);
  u->rev.reset(event_new(runtime().base(), fd, EV_READ, &on_udp_read, u));
  return 1;
}

// u:receivefrom(max_size?) -> data, ip, port | nil, err
int l_udp_receivefrom(lua_State* L) {
  UdpServer* u = check_udp_server(L);
  int n = lua_gettop(L);
  if (n > 2) return luaL_error(L, "expecting 1 or 2 arguments (including the object), but got %d", n);
  size_t size = kMaxDatagram;
  if (n == 2 && !lua_isnil(L, 2)) {
    lua_Number v = luaL_checknumber(L, 2);
    if (v <= 0) return luaL_argerror(L, 2, "bad size argument");
    size = v > kMaxDatagram ? kMaxDatagram : static_cast<size_t>(v);
  }
  if (u->fd < 0) return push_err(L, "closed");
  if (u->waiter) return push_err(L, "socket busy");
  u->rsize = size;
  int r = udp_try_recv(L, u);
  if (r >= 0) return r;
  Scheduler& sc = runtime().sched();
  LuaThread* cur = sc.current();
  if (!cur) return luaL_error(L, "no running light thread");
  u->self_ref = pin(L, 1);
  u->waiter = cur->id;
  long ms = udp_timeout(u);
  timeval tv{ms / 1000, (ms % 1000) * 1000};
  event_add(u->rev.get(), &tv);
  sc.suspend(cur, [u] {
    if (u->rev) event_del(u->rev.get());
    u->waiter = 0;
    udp_unpin(u);
  });
  return yield_op(L);
}

// u:sendto(ip, port, data) -> 1 | nil, err
int l_udp_sendto(lua_State* L) {
  UdpServer* u = check_udp_server(L);
  if (lua_gettop(L) != 4) return luaL_error(L, "expecting 4 arguments (including the object), but got %d", lua_gettop(L));
  std::string ip = luaL_checkstring(L, 2);
  lua_Integer port = luaL_checkinteger(L, 3);
  std::vector<iovec> iov;
  collect_send_data(L, 4, iov);
  if (u->fd < 0) return push_err(L, "closed");
  if (port <= 0 || port > 65535) return push_err(L, "bad port number: " + std::to_string(port));
  Address addr;
  if (!parse_numeric(ip, static_cast<int>(port), addr)) return push_err(L, "bad address \"" + ip + "\"");
  msghdr msg{};
  msg.msg_name = &addr.ss;
  msg.msg_namelen = addr.len;
  msg.msg_iov = iov.data();
  msg.msg_iovlen = iov.size();
  ssize_t r;
  do r = ::sendmsg(u->fd, &msg, MSG_NOSIGNAL);
  while (r < 0 && errno == EINTR);
  if (r < 0) return push_err(L, errno_text(errno));
  lua_pushinteger(L, 1);
  return 1;
}

int l_udp_settimeout(lua_State* L) {
  UdpServer* u = check_udp_server(L);
  if (lua_gettop(L) != 2) return luaL_error(L, "expecting 2 arguments (including the object), but got %d", lua_gettop(L));
  lua_Number t = luaL_checknumber(L, 2);
  if (t < 0 || t > 2147483647.0) return luaL_error(L, "bad timeout value");
  u->timeout = static_cast<long>(t);
  return 0;
}

int l_udp_port(lua_State* L) {
  lua_pushinteger(L, check_udp_server(L)->port);
  return 1;
}

void udp_close(UdpServer* u) {
  u->rev.reset();
  if (u->fd >= 0) ::close(u->fd);
  u->fd = -1;
}

int l_udp_close(lua_State* L) {
  UdpServer* u = check_udp_server(L);
  if (u->fd < 0) return push_err(L, "closed");
  if (u->waiter) {
    Scheduler& sc = runtime().sched();
    LuaThread* t = sc.find(u->waiter);
    u->waiter = 0;
    udp_unpin(u);
    if (t) {
      t->cancel = nullptr;
      lua_pushnil(t->co);
      lua_pushliteral(t->co, "closed");
      sc.post(t, 2);
    }
  }
  udp_close(u);
  lua_pushinteger(L, 1);
  return 1;
}

int l_udp_gc(lua_State* L) {
  auto* u = static_cast<UdpServer*>(lua_touserdata(L, 1));
  udp_close(u);
  u->~UdpServer();
  return 0;
}

int l_udp_tostring(lua_State* L) {
  lua_pushfstring(L, "udp server socket: port %d", check_udp_server(L)->port);
  return 1;
}

void new_meta(lua_State* L, const char* name, const luaL_Reg* methods, lua_CFunction gc, lua_CFunction tostring) {
  luaL_newmetatable(L, name);
  lua_newtable(L);
  luaL_register(L, nullptr, methods);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);
}

const luaL_Reg kServerMethods[] = {
    {"port", l_server_port},   {"path", l_server_path}, {"connections", l_server_connections},
    {"close", l_server_close}, {nullptr, nullptr},
};

const luaL_Reg kUdpServerMethods[] = {
    {"receivefrom", l_udp_receivefrom}, {"sendto", l_udp_sendto}, {"settimeout", l_udp_settimeout},
    {"port", l_udp_port},               {"close", l_udp_close},   {nullptr, nullptr},
};

}  // namespace

void open_listen(lua_State* L) {
  new_meta(L, kServerMeta, kServerMethods, l_server_gc, l_server_tostring);
  new_meta(L, kUdpServerMeta, kUdpServerMethods, l_udp_gc, l_udp_tostring);
  lua_pushcfunction(L, l_listen);
  lua_setfield(L, -2, "listen");
  lua_pushcfunction(L, l_udp_bind);
  lua_setfield(L, -2, "udp_bind");
}

}  // namespace cosocket
