// ngx.socket.tcp: the TCP / unix-stream cosocket.
#include <cerrno>
#include <cstring>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/err.h>

#include "net/buffer.h"
#include "loop/clock.h"
#include "loop/epoll_tap.h"
#include "loop/io_reg.h"
#include "loop/lazy_timer.h"
#include "runtime/lua_util.h"
#include "net/pool.h"
#include "net/resolver.h"
#include "runtime/runtime.h"
#include "net/sockets.h"
#include "net/tls.h"
#include "net/until_matcher.h"

namespace cosocket {

namespace {

const char* const kTcpMeta = "cosocket.tcp";
const char* const kUntilMeta = "cosocket.until";

enum class St { closed, connecting, connected };
enum class ReadKind { size, line, all, any, until };

constexpr uint64_t kTcpMagic = 0x636f736f636b7470ull;  // "cosocktp"

struct TcpSock {
  uint64_t magic = kTcpMagic;
  int fd = -1;
  St st = St::closed;
  bool is_unix = false;
  // TCP_NODELAY is set on a connection's first send, as OpenResty does (tcp_nodelay on):
  // once per connection, which keeps the flag through the pool
  bool nodelay_done = false;
  Buffer rbuf;
  long connect_timeout = 0, send_timeout = 0, read_timeout = 0;  // 0: the defaults
  int reused = 0;
  bool eof = false;      // the peer closed (no more bytes will come)
  bool rclosed = false;  // read side finalized: an EOF or error was reported
  bool wclosed = false;  // write side closed: a send error or timeout
  Pool* pool = nullptr;  // the pool this connection is counted in
  std::string key;
  std::string bind_ip;
  int self_ref = LUA_NOREF;  // a registry slot reserved at creation: the socket while pinned
  int pins = 0;
  // the read operation in progress
  uint64_t reader = 0;
  ReadKind rkind = ReadKind::size;
  size_t rsize = 0;
  UntilState* until = nullptr;
  int until_ref = LUA_NOREF;
  // The connection's edge-triggered event registration (io_reg.h: added once per
  // connection and kept through the pool, no epoll_ctl per wait or per pooled use), and
  // the timers of the waits; `readable`/`writable` say whether the kernel may have more
  // (cleared by EAGAIN or a short read, set by the events), as nginx's ready flags do.
  IoRegPtr io;
  LazyTimer rtimer;  // armed while a read waits
  bool readable = true;
  // the write (or connect) operation in progress
  uint64_t writer = 0;
  std::string wpending;
  size_t woff = 0;
  size_t wtotal = 0;
  EventPtr wtimer{nullptr, event_free};
  bool writable = true;
  // connect in progress
  std::unique_ptr<Lookup> lookup;
  std::unique_ptr<Timer> ctimer;
  Pool* waiting_pool = nullptr;
  uint64_t ticket = 0;
  std::string host;
  int port = 0;
  Address addr;
  // TLS: the connection's SSL once sslhandshake began (kept through the pool), the
  // handshake in progress (parked in the writer slot), and the cross-wants: an SSL_read
  // that needs the socket writable, an SSL_write that needs it readable.
  SslPtr ssl;
  bool hs = false;
  bool hs_done = false;
  bool hs_server = false;
  bool hs_want_session = true;
  bool hs_verify = false;
  std::string hs_host;
  bool read_wants_write = false;
  bool write_wants_read = false;
  std::string ssl_err;
  std::shared_ptr<SessionBox> session;
  std::shared_ptr<CertChain> client_cert;
  std::shared_ptr<PrivKey> client_key;
};

Scheduler& sched() { return runtime().sched(); }

long eff(long v, int def) { return v > 0 ? v : def; }

// Every socket call checks its object: a size and magic check instead of luaL_checkudata,
// which re-hashes the metatable's name each time; luaL_checkudata raises the error.
TcpSock* check_tcp(lua_State* L, int idx) {
  if (lua_type(L, idx) == LUA_TUSERDATA && lua_objlen(L, idx) == sizeof(TcpSock)) {
    auto* s = static_cast<TcpSock*>(lua_touserdata(L, idx));
    if (s->magic == kTcpMagic) return s;
  }
  return static_cast<TcpSock*>(luaL_checkudata(L, idx, kTcpMeta));
}

// A parked operation keeps its socket alive: the reserved registry slot holds the socket
// while pinned and `false` otherwise (one rawseti each way, no free-list work).
void pin_sock(lua_State* L, TcpSock* s, int idx) {
  if (s->pins++ == 0) {
    lua_pushvalue(L, idx);
    lua_rawseti(L, LUA_REGISTRYINDEX, s->self_ref);
  }
}

void unpin_sock(TcpSock* s) {
  if (s->pins > 0 && --s->pins == 0) {
    lua_State* L = runtime().L();
    lua_pushboolean(L, 0);
    lua_rawseti(L, LUA_REGISTRYINDEX, s->self_ref);
  }
}

void release_until(TcpSock* s) {
  if (s->until_ref != LUA_NOREF) luaL_unref(runtime().L(), LUA_REGISTRYINDEX, s->until_ref);
  s->until_ref = LUA_NOREF;
  s->until = nullptr;
}

void on_read(int, short what, void* arg);
void on_write(int, short what, void* arg);

void on_read_timer(int, short, void* arg);

void on_io(void* owner, short what) {
  auto* s = static_cast<TcpSock*>(owner);
  if (what & EV_TIMEOUT) return;  // the pool's idle timer: disarmed when it was taken
  if (what & EV_READ) on_read(-1, EV_READ, s);
  else on_write(-1, EV_WRITE, s);
}

// The connection's events: a new registration, or the one a pooled connection kept (the
// pool saw no event for it since its receive queue was found empty: nothing to read).
void make_events(TcpSock* s, IoRegPtr io = nullptr) {
  event_base* base = runtime().base();
  if (io) {
    io->retarget(&on_io, s);
    s->io = std::move(io);
    s->readable = false;
  } else {
    epoll_tap::forget(s->fd);
    s->io = IoReg::open(base, s->fd, &on_io, s);
    s->readable = true;
  }
  s->writable = true;
  if (!s->rtimer.initialized()) s->rtimer.init(base, &on_read_timer, s);
  if (!s->wtimer) s->wtimer.reset(evtimer_new(base, &on_write, s));
}

// (The read timer stays as it is: armed, it fires once for no reader, or serves the next
// connection's first read.)
void free_events(TcpSock* s) {
  s->io.reset();
  if (s->wtimer) evtimer_del(s->wtimer.get());
}

// Closes the connection; the socket can connect again.
void close_fd(TcpSock* s) {
  free_events(s);
  if (s->ssl) {
    // one non-blocking close_notify, as nginx sends; the answer is not waited for
    if (s->hs_done && !s->wclosed && !runtime().closing()) SSL_shutdown(s->ssl.get());
    ERR_clear_error();
    s->ssl.reset();
  }
  s->hs = s->hs_done = s->read_wants_write = s->write_wants_read = false;
  s->session.reset();
  if (s->fd >= 0) ::close(s->fd);
  s->fd = -1;
  s->st = St::closed;
  s->rbuf.clear();
  s->eof = false;
  s->rclosed = false;
  s->wclosed = false;
  Pool* p = s->pool;
  s->pool = nullptr;
  if (p && !runtime().closing()) p->closed();
}

// OpenResty finalizes the read and write parts separately; when both are, the
// connection is closed.
void close_read_side(TcpSock* s) {
  s->rclosed = true;
  if (s->wclosed && !s->writer) close_fd(s);
}

void close_write_side(TcpSock* s) {
  s->wclosed = true;
  if (s->fd >= 0) ::shutdown(s->fd, SHUT_WR);
  if (s->rclosed && !s->reader) close_fd(s);
}

// Wakes a thread parked on this socket with nil, "closed" (another thread closed it).
void abort_op(TcpSock* s, uint64_t& slot) {
  LuaThread* t = sched().find(slot);
  slot = 0;
  unpin_sock(s);
  if (!t) return;
  t->cancel = nullptr;
  lua_pushnil(t->co);
  lua_pushliteral(t->co, "closed");
  sched().post(t, 2);
}

void close_sock(TcpSock* s) {
  s->lookup.reset();
  s->ctimer.reset();
  if (s->waiting_pool) s->waiting_pool->cancel(s->ticket);
  s->waiting_pool = nullptr;
  if (s->reader) {
    release_until(s);
    abort_op(s, s->reader);
  }
  if (s->writer) abort_op(s, s->writer);
  close_fd(s);
}

void adopt(TcpSock* s, int fd, Pool* pool, int reused, SslPtr ssl = nullptr, IoRegPtr io = nullptr,
           bool nodelay_done = false) {
  s->fd = fd;
  s->ssl = std::move(ssl);
  s->hs_done = s->ssl != nullptr;
  s->st = St::connected;
  s->pool = pool;
  s->reused = reused;
  s->eof = false;
  s->rclosed = false;
  s->wclosed = false;
  s->nodelay_done = nodelay_done;
  make_events(s, std::move(io));
}

int push_err(lua_State* L, const char* err) {
  lua_pushnil(L);
  lua_pushstring(L, err);
  return 2;
}

// ---- reading ----------------------------------------------------------------------

void push_line(lua_State* L, const char* p, size_t n) {
  const void* cr = n ? memchr(p, '\r', n) : nullptr;
  if (!cr) {
    lua_pushlstring(L, p, n);
    return;
  }
  size_t at = static_cast<size_t>(static_cast<const char*>(cr) - p);
  if (at == n - 1) {  // the usual CRLF ending: no copy
    lua_pushlstring(L, p, at);
    return;
  }
  std::string out(p, at);  // CRs inside the line are dropped too (as nginx's *l reader)
  for (size_t i = at + 1; i < n; ++i)
    if (p[i] != '\r') out.push_back(p[i]);
  lua_pushlstring(L, out.data(), out.size());
}

// nil, err, partial. A line read drops its CRs; receiveuntil hands over only the bytes
// known not to start the pattern: on a timeout the possible prefix stays for the next
// call, at EOF or on an error it is dropped (as OpenResty does).
int push_partial_err(lua_State* L, TcpSock* s, const char* err, bool timeout) {
  lua_pushnil(L);
  lua_pushstring(L, err);
  Buffer& b = s->rbuf;
  if (s->rkind == ReadKind::until && s->until) {
    UntilState* u = s->until;
    size_t confirmed = u->mark == b.consumed_total() ? u->scan_pos - u->k : 0;
    if (u->mark != b.consumed_total()) confirmed = b.size();
    lua_pushlstring(L, b.data(), confirmed);
    if (timeout) {
      b.consume(confirmed);
      u->scan_pos -= confirmed;
      u->mark = b.consumed_total();
    } else {
      b.consume(b.size());
      u->reset();
    }
    return 3;
  }
  if (s->rkind == ReadKind::line) push_line(L, b.data(), b.size());
  else lua_pushlstring(L, b.data(), b.size());
  b.consume(b.size());
  return 3;
}

// receiveuntil over the buffer: values pushed, or -1 when more input is needed.
int until_step(lua_State* L, TcpSock* s) {
  UntilState* u = s->until;
  Buffer& b = s->rbuf;
  if (u->mark != b.consumed_total()) {
    u->scan_pos = 0;
    u->k = 0;
    u->found = false;
    u->mark = b.consumed_total();
  }
  const size_t size = s->rsize;
  const size_t m = u->matcher.size();
  if (!u->found && u->scan_pos < b.size()) {
    if (!size) {
      size_t k = u->k;
      size_t r = u->matcher.scan(b.view().substr(u->scan_pos), k);
      if (r != UntilMatcher::npos) {
        u->found = true;
        u->scan_pos += r;
        u->k = 0;
      } else {
        u->scan_pos = b.size();
        u->k = k;
      }
    } else {
      // a byte at a time, returning as soon as `size` bytes are known to be data
      const char* d = b.data();
      while (u->scan_pos < b.size()) {
        char c = d[u->scan_pos];
        if (u->k > 0 && c != u->matcher.pattern()[u->k]) {
          u->k = u->matcher.fallback(u->k, c);
          if (u->scan_pos - u->k >= size) break;  // the bytes that fell out, before c
        }
        if (c == u->matcher.pattern()[u->k]) ++u->k;
        ++u->scan_pos;
        if (u->k == m) {
          u->found = true;
          u->k = 0;
          break;
        }
        if (u->scan_pos - u->k >= size) break;
      }
    }
  }
  if (u->found) {
    size_t data = u->scan_pos - m;
    if (size && data >= size) {  // the pattern is "reached" by the next call
      lua_pushlstring(L, b.data(), data);
      b.consume(data);
      u->scan_pos -= data;
      u->mark = b.consumed_total();
      return 1;
    }
    lua_pushlstring(L, b.data(), u->inclusive ? u->scan_pos : data);
    b.consume(u->scan_pos);
    u->reset();
    if (size) u->done = true;
    return 1;
  }
  if (size) {
    size_t confirmed = u->scan_pos - u->k;
    if (confirmed >= size) {
      lua_pushlstring(L, b.data(), confirmed);
      b.consume(confirmed);
      u->scan_pos -= confirmed;
      u->mark = b.consumed_total();
      return 1;
    }
  }
  return -1;
}

// One read from the connection into the buffer: >0 bytes, 0 at EOF, -1 with errno
// (EAGAIN when it must wait; for TLS, read_wants_write says which event).
ssize_t ssl_read_some(void* ctx, char* p, size_t room) {
  if (room > 65536) room = 65536;
  return SSL_read(static_cast<SSL*>(ctx), p, static_cast<int>(room));
}

ssize_t sock_read(TcpSock* s, bool* drained) {
  *drained = false;  // TLS reads stay greedy: OpenSSL may hold decrypted bytes
  if (!s->ssl) return s->rbuf.read_fd(s->fd, drained);
  ssize_t n = s->rbuf.read_with(ssl_read_some, s->ssl.get());
  if (n > 0) return n;
  int e = SSL_get_error(s->ssl.get(), static_cast<int>(n));
  switch (e) {
    case SSL_ERROR_ZERO_RETURN:
      return 0;
    case SSL_ERROR_WANT_READ:
      errno = EAGAIN;
      return -1;
    case SSL_ERROR_WANT_WRITE:
      s->read_wants_write = true;
      errno = EAGAIN;
      return -1;
    case SSL_ERROR_SYSCALL:
      ERR_clear_error();
      if (errno == 0 || errno == EAGAIN) errno = ECONNRESET;
      return -1;
    default: {
      // the peer's alert or a bad record: "ssl error: <reason>" (e.g. "tlsv13 alert
      // certificate required"), clearer than nginx's bare "error"
      const char* why = ERR_reason_error_string(ERR_peek_last_error());
      s->ssl_err = std::string("ssl error: ") + (why ? why : "protocol error");
      log_message(kInfo, "SSL_read() failed: " + ssl_error_text());
      errno = EPROTO;
      return -1;
    }
  }
}

// Tries to finish the read operation from the buffer and the socket: values pushed, or
// -1 when it must wait for the socket to become readable.
int try_read_buffered(lua_State* L, TcpSock* s);

int try_read(lua_State* L, TcpSock* s) {
  int n = try_read_buffered(L, s);
  s->rbuf.settle();  // before the loop runs again (no buffer memory while idle)
  return n;
}

int try_read_buffered(lua_State* L, TcpSock* s) {
  Buffer& b = s->rbuf;
  for (;;) {
    switch (s->rkind) {
      case ReadKind::size:
        if (b.size() >= s->rsize) {
          lua_pushlstring(L, b.data(), s->rsize);
          b.consume(s->rsize);
          return 1;
        }
        break;
      case ReadKind::line: {
        const char* nl = b.empty() ? nullptr : static_cast<const char*>(memchr(b.data(), '\n', b.size()));
        if (nl) {
          size_t n = static_cast<size_t>(nl - b.data());
          push_line(L, b.data(), n);
          b.consume(n + 1);
          return 1;
        }
        break;
      }
      case ReadKind::any:
        if (!b.empty()) {
          size_t n = b.size() < s->rsize ? b.size() : s->rsize;
          lua_pushlstring(L, b.data(), n);
          b.consume(n);
          return 1;
        }
        break;
      case ReadKind::all: break;
      case ReadKind::until: {
        int r = until_step(L, s);
        if (r >= 0) return r;
        break;
      }
    }
    if (s->eof) {
      if (s->rkind == ReadKind::all) {
        lua_pushlstring(L, b.data(), b.size());
        b.consume(b.size());
        return 1;
      }
      int r = push_partial_err(L, s, "closed", false);
      close_read_side(s);
      return r;
    }
    if (!s->readable || s->read_wants_write) return -1;
    bool drained;
    ssize_t n = sock_read(s, &drained);
    if (n > 0) {
      // A short read emptied the kernel's queue: the next read waits for the next event
      // rather than failing with EAGAIN first, unless a FIN or RST already came with this
      // data (its event is spent, so reading on is the only way to see it).
      if (drained && epoll_tap::live() && !epoll_tap::peer_gone(s->fd)) s->readable = false;
      continue;
    }
    if (n == 0) {
      s->eof = true;
      continue;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (s->read_wants_write) s->writable = false;
      else s->readable = false;
      return -1;
    }
    std::string err = errno == EPROTO && !s->ssl_err.empty() ? s->ssl_err : errno_text(errno);
    int r = push_partial_err(L, s, err.c_str(), false);
    s->eof = true;
    close_read_side(s);
    return r;
  }
}

// The read timer is lazy (lazy_timer.h): a request/response connection makes no timer
// call per read.
void arm_read(TcpSock* s) {
  long ms = eff(s->read_timeout, runtime().cfg().read_timeout_ms);
  s->rtimer.arm(ms, runtime().timeout_for(ms));
}

void on_read_timer(int, short, void* arg) {
  auto* s = static_cast<TcpSock*>(arg);
  if (s->rtimer.due() && s->reader) on_read(-1, EV_TIMEOUT, s);
}

void cancel_read(TcpSock* s) {
  s->rtimer.disarm();
  s->reader = 0;
  release_until(s);
  unpin_sock(s);
}

// Starts a read whose kind is set in s: returns the values, or yields.
int start_read(lua_State* L, TcpSock* s, int sock_idx, int until_idx) {
  int n = try_read(L, s);
  if (n >= 0) {
    s->until = nullptr;
    return n;
  }
  LuaThread* cur = sched().current();
  if (!cur) return luaL_error(L, "no running light thread");
  pin_sock(L, s, sock_idx);
  if (until_idx) s->until_ref = pin(L, until_idx);
  s->reader = cur->id;
  arm_read(s);
  sched().suspend(cur, [s] { cancel_read(s); });
  return yield_op(L);
}

void hs_step(TcpSock* s);
void service_write(TcpSock* s);
void service_read(TcpSock* s, short what);

void on_read(int, short what, void* arg) {
  auto* s = static_cast<TcpSock*>(arg);
  if (what & EV_READ) {
    s->readable = true;
    if (s->hs && s->writer) {
      hs_step(s);
      return;
    }
    if (s->write_wants_read && s->writer) {
      s->write_wants_read = false;
      service_write(s);
      if (s->fd < 0 || !s->io) return;
    }
  }
  service_read(s, what);
}

void service_read(TcpSock* s, short what) {
  if (!s->reader) return;
  LuaThread* t = sched().find(s->reader);
  if (!t) return;
  int n;
  if (what & EV_TIMEOUT) {  // not fatal, and (as in OpenResty) no bar to setkeepalive
    n = push_partial_err(t->co, s, "timeout", true);
  } else {
    n = try_read(t->co, s);
    if (n < 0) return;  // still waiting; the timer runs on
  }
  s->rtimer.disarm();  // stays added (lazy): the next read only moves its deadline
  s->reader = 0;
  release_until(s);
  unpin_sock(s);
  sched().resume(t, n);
}

int check_readable(lua_State* L, TcpSock* s) {
  if (s->st != St::connected || s->rclosed) return push_err(L, "closed");
  if (s->reader) return push_err(L, "socket busy reading");
  return 0;
}

int l_receive(lua_State* L) {
  TcpSock* s = check_tcp(L, 1);
  int n = lua_gettop(L);
  if (n > 2) return luaL_error(L, "expecting 1 or 2 arguments (including the object), but got %d", n);
  if (int r = check_readable(L, s)) return r;
  ReadKind kind = ReadKind::line;
  size_t size = 0;
  if (n == 2) {
    if (lua_type(L, 2) == LUA_TSTRING && !lua_isnumber(L, 2)) {
      size_t len;
      const char* p = lua_tolstring(L, 2, &len);
      if (len != 2 || p[0] != '*') return luaL_argerror(L, 2, lua_pushfstring(L, "bad pattern argument: %s", p));
      if (p[1] == 'l') kind = ReadKind::line;
      else if (p[1] == 'a') kind = ReadKind::all;
      else return luaL_argerror(L, 2, "bad pattern argument");
    } else if (lua_isnumber(L, 2)) {
      lua_Number v = lua_tonumber(L, 2);
      if (v < 0) return luaL_argerror(L, 2, "bad pattern argument");
      kind = ReadKind::size;
      size = static_cast<size_t>(v);
    } else {
      return luaL_argerror(L, 2, "bad pattern argument");
    }
  }
  if (kind == ReadKind::size && size == 0) {
    lua_pushliteral(L, "");
    return 1;
  }
  s->rkind = kind;
  s->rsize = size;
  return start_read(L, s, 1, 0);
}

int l_receiveany(lua_State* L) {
  TcpSock* s = check_tcp(L, 1);
  int n = lua_gettop(L);
  if (n != 2) return luaL_error(L, "expecting 2 arguments (including the object), but got %d", n);
  if (int r = check_readable(L, s)) return r;
  if (!lua_isnumber(L, 2)) return luaL_argerror(L, 2, "bad max argument");
  lua_Number max = lua_tonumber(L, 2);
  if (max <= 0) return luaL_argerror(L, 2, "bad max argument");
  s->rkind = ReadKind::any;
  s->rsize = static_cast<size_t>(max);
  return start_read(L, s, 1, 0);
}

int l_until_gc(lua_State* L) {
  static_cast<UntilState*>(lua_touserdata(L, 1))->~UntilState();
  return 0;
}

int l_until_iter(lua_State* L) {
  TcpSock* s = check_tcp(L, lua_upvalueindex(1));
  auto* u = static_cast<UntilState*>(lua_touserdata(L, lua_upvalueindex(2)));
  int n = lua_gettop(L);
  if (n > 1) return luaL_error(L, "expecting 0 or 1 arguments, but seen %d", n);
  size_t size = 0;
  if (n == 1 && !lua_isnil(L, 1)) {
    lua_Number v = luaL_checknumber(L, 1);
    if (v < 0) return luaL_argerror(L, 1, "bad size argument");
    size = static_cast<size_t>(v);
  }
  if (int r = check_readable(L, s)) return r;
  if (u->done) {
    u->done = false;
    lua_pushnil(L);
    lua_pushnil(L);
    lua_pushnil(L);
    return 3;
  }
  s->rkind = ReadKind::until;
  s->rsize = size;
  s->until = u;
  return start_read(L, s, lua_upvalueindex(1), lua_upvalueindex(2));
}

int l_receiveuntil(lua_State* L) {
  check_tcp(L, 1);
  int n = lua_gettop(L);
  if (n != 2 && n != 3) return luaL_error(L, "expecting 2 or 3 arguments (including the object), but got %d", n);
  size_t len;
  const char* p = luaL_checklstring(L, 2, &len);
  if (len == 0) return push_err(L, "pattern is empty");
  bool inclusive = false;
  if (n == 3) {
    luaL_checktype(L, 3, LUA_TTABLE);
    lua_getfield(L, 3, "inclusive");
    int t = lua_type(L, -1);
    if (t == LUA_TBOOLEAN) inclusive = lua_toboolean(L, -1);
    else if (t != LUA_TNIL) return luaL_error(L, "bad \"inclusive\" option value type: %s", luaL_typename(L, -1));
    lua_pop(L, 1);
  }
  lua_pushvalue(L, 1);
  void* mem = lua_newuserdata(L, sizeof(UntilState));
  new (mem) UntilState(std::string(p, len), inclusive);
  luaL_getmetatable(L, kUntilMeta);
  lua_setmetatable(L, -2);
  lua_pushcclosure(L, l_until_iter, 2);
  return 1;
}

// ---- writing ----------------------------------------------------------------------

void arm_write(TcpSock* s, long timeout_ms) { evtimer_add(s->wtimer.get(), runtime().timeout_for(timeout_ms)); }

// Sends what is pending in s->wpending: 0 done, 1 again, -errno on error.
int flush_pending(TcpSock* s) {
  if (s->ssl) {
    while (s->woff < s->wpending.size()) {
      size_t len = s->wpending.size() - s->woff;
      if (len > (1u << 30)) len = 1u << 30;
      int n = SSL_write(s->ssl.get(), s->wpending.data() + s->woff, static_cast<int>(len));
      if (n > 0) {
        s->woff += static_cast<size_t>(n);
        continue;
      }
      int e = SSL_get_error(s->ssl.get(), n);
      if (e == SSL_ERROR_WANT_WRITE) {
        s->writable = false;
        return 1;
      }
      if (e == SSL_ERROR_WANT_READ) {
        s->write_wants_read = true;
        s->readable = false;
        return 1;
      }
      int err = (e == SSL_ERROR_SYSCALL && errno) ? errno : EPIPE;
      ERR_clear_error();
      return -err;
    }
    return 0;
  }
  while (s->woff < s->wpending.size()) {
    ssize_t n = ::send(s->fd, s->wpending.data() + s->woff, s->wpending.size() - s->woff, MSG_NOSIGNAL);
    if (n > 0) {
      s->woff += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      s->writable = false;
      return 1;
    }
    return -(n < 0 ? errno : EPIPE);
  }
  return 0;
}

void cancel_write(TcpSock* s) {
  if (s->wtimer) evtimer_del(s->wtimer.get());
  s->writer = 0;
  s->wpending.clear();
  unpin_sock(s);
}

void finish_writer(TcpSock* s, int (*push)(lua_State*, TcpSock*, const char*), const char* err) {
  LuaThread* t = sched().find(s->writer);
  s->writer = 0;
  if (!t) {
    unpin_sock(s);
    return;
  }
  int n = push(t->co, s, err);
  unpin_sock(s);
  if (sched().current()) sched().post(t, n);
  else sched().resume(t, n);
}

int push_sent(lua_State* L, TcpSock* s, const char* err) {
  if (err) return push_err(L, err);
  lua_pushinteger(L, static_cast<lua_Integer>(s->wtotal));
  return 1;
}

void send_failed(TcpSock* s, const std::string& err) {
  s->wpending.clear();
  if (s->wtimer) evtimer_del(s->wtimer.get());
  uint64_t w = s->writer;
  s->writer = 0;
  close_write_side(s);  // may close the connection when the read side is done too
  s->writer = w;
  finish_writer(s, push_sent, err.c_str());
}

int connect_step_done(TcpSock* s);
void connect_failed(TcpSock* s, const std::string& err);

void hs_failed(TcpSock* s, const std::string& err);

void on_write(int, short what, void* arg) {
  auto* s = static_cast<TcpSock*>(arg);
  // the EPOLLOUT that comes with every reply: writable already, and nothing waits on it
  if (what == EV_WRITE && s->writable && !s->writer && !s->read_wants_write) return;
  if (what & EV_WRITE) {
    s->writable = true;
    if (s->read_wants_write && s->reader) {
      s->read_wants_write = false;
      service_read(s, EV_READ);
      if (s->fd < 0 || !s->io) return;
    }
  }
  if (!s->writer) return;
  clock_update();
  if (s->hs) {
    if (what & EV_TIMEOUT) hs_failed(s, "timeout");
    else hs_step(s);
    return;
  }
  if (s->st == St::connecting) {
    if (what & EV_TIMEOUT) {
      connect_failed(s, "timeout");
      return;
    }
    connect_step_done(s);
    return;
  }
  if (what & EV_TIMEOUT) {
    send_failed(s, "timeout");
    return;
  }
  service_write(s);
}

void service_write(TcpSock* s) {
  if (!s->writer || s->hs) return;
  int r = flush_pending(s);
  if (r == 1) return;  // still waiting; the timer runs on
  if (r < 0) {
    send_failed(s, errno_text(-r));
    return;
  }
  if (s->wtimer) evtimer_del(s->wtimer.get());
  s->wpending.clear();
  finish_writer(s, push_sent, nullptr);
}

// Parks the current thread until s->wpending is sent (or the send timeout).
int park_writer(lua_State* L, TcpSock* s, LuaThread* cur) {
  pin_sock(L, s, 1);
  s->writer = cur->id;
  arm_write(s, eff(s->send_timeout, runtime().cfg().send_timeout_ms));
  sched().suspend(cur, [s] { cancel_write(s); });
  return yield_op(L);
}

// A send over TLS: the pieces are gathered for SSL_write, which may need to wait for
// the socket to be writable (or readable).
int ssl_send(lua_State* L, TcpSock* s, const std::vector<iovec>& iov, size_t total) {
  s->wpending.clear();
  s->wpending.reserve(total);
  for (const iovec& v : iov) s->wpending.append(static_cast<const char*>(v.iov_base), v.iov_len);
  s->woff = 0;
  s->wtotal = total;
  int r = flush_pending(s);
  if (r == 0) {
    s->wpending.clear();
    lua_pushinteger(L, static_cast<lua_Integer>(total));
    return 1;
  }
  if (r < 0) {
    s->wpending.clear();
    std::string err = errno_text(-r);
    close_write_side(s);
    return push_err(L, err.c_str());
  }
  LuaThread* cur = sched().current();
  if (!cur) return luaL_error(L, "no running light thread");
  return park_writer(L, s, cur);
}

int l_send(lua_State* L) {
  TcpSock* s = check_tcp(L, 1);
  if (lua_gettop(L) != 2)
    return luaL_error(L, "expecting 2 arguments (including the object), but got %d", lua_gettop(L));
  // reused from call to call (a send never runs inside another): no allocation per send
  static std::vector<iovec> iov;
  iov.clear();
  size_t total = collect_send_data(L, 2, iov);
  if (s->st != St::connected || s->wclosed) return push_err(L, "closed");
  if (s->writer) return push_err(L, "socket busy writing");
  if (total == 0) {
    lua_pushinteger(L, 0);
    return 1;
  }
  if (!s->nodelay_done) {
    s->nodelay_done = true;
    if (!s->is_unix) {
      int one = 1;
      setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
  }
  if (s->ssl) return ssl_send(L, s, iov, total);
  size_t sent = 0, i = 0;
  while (i < iov.size()) {
    ssize_t n;
    if (iov.size() - i == 1) {  // the common case: one piece, plain send
      n = ::send(s->fd, iov[i].iov_base, iov[i].iov_len, MSG_NOSIGNAL);
    } else {
      msghdr msg{};
      msg.msg_iov = iov.data() + i;
      msg.msg_iovlen = std::min<size_t>(iov.size() - i, 1024);
      n = ::sendmsg(s->fd, &msg, MSG_NOSIGNAL);
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        s->writable = false;
        break;
      }
      std::string err = errno_text(errno);
      close_write_side(s);
      return push_err(L, err.c_str());
    }
    sent += static_cast<size_t>(n);
    size_t left = static_cast<size_t>(n);
    while (i < iov.size() && left >= iov[i].iov_len) left -= iov[i++].iov_len;
    if (left) {
      iov[i].iov_base = static_cast<char*>(iov[i].iov_base) + left;
      iov[i].iov_len -= left;
    }
  }
  if (i == iov.size()) {
    lua_pushinteger(L, static_cast<lua_Integer>(total));
    return 1;
  }
  LuaThread* cur = sched().current();
  if (!cur) return luaL_error(L, "no running light thread");
  s->wpending.clear();
  s->wpending.reserve(total - sent);
  for (; i < iov.size(); ++i) s->wpending.append(static_cast<const char*>(iov[i].iov_base), iov[i].iov_len);
  s->woff = 0;
  s->wtotal = total;
  return park_writer(L, s, cur);
}

// ---- connecting -------------------------------------------------------------------

int push_connected(lua_State* L, TcpSock*, const char* err) {
  if (err) return push_err(L, err);
  lua_pushinteger(L, 1);
  return 1;
}

void connect_failed(TcpSock* s, const std::string& err) {
  close_fd(s);  // also gives the pool slot back
  finish_writer(s, push_connected, err.c_str());
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

void cancel_connect(TcpSock* s) {
  s->lookup.reset();
  s->ctimer.reset();
  if (s->waiting_pool) s->waiting_pool->cancel(s->ticket);
  s->waiting_pool = nullptr;
  s->writer = 0;
  close_fd(s);
  unpin_sock(s);
}

long connect_timeout(TcpSock* s) { return eff(s->connect_timeout, runtime().cfg().connect_timeout_ms); }

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

int l_connect(lua_State* L) {
  TcpSock* s = check_tcp(L, 1);
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

// ---- TLS ---------------------------------------------------------------------------

// One step of the handshake: 1 done (verified when asked), 0 must wait, -1 failed (err).
int hs_try(TcpSock* s, std::string& err) {
  ERR_clear_error();
  int r = SSL_do_handshake(s->ssl.get());
  if (r == 1) {
    if (s->hs_verify) {
      err = verify_peer(s->ssl.get(), s->hs_host);
      if (!err.empty()) return -1;
    }
    if (!s->hs_server && s->session && !s->session->sess) s->session->set(SSL_get1_session(s->ssl.get()));
    s->hs_done = true;
    return 1;
  }
  int e = SSL_get_error(s->ssl.get(), r);
  if (e == SSL_ERROR_WANT_READ) {
    s->readable = false;
    return 0;
  }
  if (e == SSL_ERROR_WANT_WRITE) {
    s->writable = false;
    return 0;
  }
  std::string why = e == SSL_ERROR_SYSCALL ? (errno ? errno_text(errno) : "peer closed connection in SSL handshake")
                                           : ssl_error_text();
  ERR_clear_error();
  log_message(kInfo, "SSL_do_handshake() failed (" + why + ")");
  err = "handshake failed";
  return -1;
}

int push_hs(lua_State* L, TcpSock* s, const char* err) {
  if (err) return push_err(L, err);
  if (!s->hs_want_session) {
    lua_pushboolean(L, 1);
    return 1;
  }
  if (!s->session) {
    s->session = std::make_shared<SessionBox>();
    s->session->set(SSL_get1_session(s->ssl.get()));
  }
  push_session(L, s->session);
  return 1;
}

void hs_failed(TcpSock* s, const std::string& err) {
  if (s->wtimer) evtimer_del(s->wtimer.get());
  s->hs = false;
  if (s->reader) {
    release_until(s);
    abort_op(s, s->reader);
  }
  close_fd(s);
  finish_writer(s, push_hs, err.c_str());
}

void hs_step(TcpSock* s) {
  std::string err;
  int r = hs_try(s, err);
  if (r == 0) return;  // the timer runs on
  if (r < 0) {
    hs_failed(s, err);
    return;
  }
  if (s->wtimer) evtimer_del(s->wtimer.get());
  s->hs = false;
  finish_writer(s, push_hs, nullptr);
}

void cancel_hs(TcpSock* s) {
  if (s->wtimer) evtimer_del(s->wtimer.get());
  s->hs = false;
  s->writer = 0;
  close_fd(s);  // a half-done handshake leaves nothing usable
  unpin_sock(s);
}

// Runs the handshake set up in s->ssl: the values now, or yields until it is done.
int run_handshake(lua_State* L, TcpSock* s) {
  std::string err;
  int r = hs_try(s, err);
  if (r > 0) return push_hs(L, s, nullptr);
  if (r < 0) {
    close_sock(s);
    return push_err(L, err.c_str());
  }
  LuaThread* cur = sched().current();
  if (!cur) return luaL_error(L, "no running light thread");
  pin_sock(L, s, 1);
  s->writer = cur->id;
  s->hs = true;
  arm_write(s, connect_timeout(s));
  sched().suspend(cur, [s] { cancel_hs(s); });
  return yield_op(L);
}

bool is_ip_literal(const std::string& h) {
  unsigned char buf[16];
  return inet_pton(AF_INET, h.c_str(), buf) == 1 || inet_pton(AF_INET6, h.c_str(), buf) == 1;
}

int check_hs_state(lua_State* L, TcpSock* s) {
  if (s->st != St::connected || s->rclosed || s->wclosed) return push_err(L, "closed");
  if (s->writer) return push_err(L, "socket busy writing");
  if (s->reader) return push_err(L, "socket busy reading");
  return 0;
}

// sslhandshake(reused_session?, server_name?, ssl_verify?, send_status_req?)
int l_sslhandshake(lua_State* L) {
  int n = lua_gettop(L);
  if (n < 1 || n > 5)
    return luaL_error(L, "ngx.socket sslhandshake: expecting 1 ~ 5 arguments (including the object), but seen %d", n);
  TcpSock* s = check_tcp(L, 1);
  SessionBox* reuse = n >= 2 ? test_session(L, 2) : nullptr;
  bool want_session = !(n >= 2 && lua_type(L, 2) == LUA_TBOOLEAN && !lua_toboolean(L, 2));
  std::string name;
  if (n >= 3 && !lua_isnil(L, 3)) {
    if (lua_type(L, 3) != LUA_TSTRING) return luaL_argerror(L, 3, "bad server_name argument: string expected");
    size_t len;
    const char* p = lua_tolstring(L, 3, &len);
    name.assign(p, len);
  }
  bool verify = (n >= 4 && !lua_isnil(L, 4)) ? lua_toboolean(L, 4) : runtime().cfg().ssl_verify_default;
  bool status_req = n >= 5 && lua_toboolean(L, 5);
  if (int r = check_hs_state(L, s)) return r;
  s->hs_want_session = want_session;
  if (s->hs_done) return push_hs(L, s, nullptr);  // already encrypted (a pooled connection)
  if (s->ssl) return push_err(L, "closed");
  std::string err;
  SSL_CTX* ctx = client_ctx(err);
  if (!ctx) return push_err(L, err.c_str());
  s->session = std::make_shared<SessionBox>();
  s->ssl = new_client_ssl(ctx, s->fd, s->session);
  if (!s->ssl) {
    err = "failed to create the ssl connection: " + ssl_error_text();
    return push_err(L, err.c_str());
  }
  SSL* ssl = s->ssl.get();
  s->hs_server = false;
  if (reuse && reuse->sess) SSL_set_session(ssl, reuse->sess);
  // the name to verify: server_name, else the host connected to (nginx verifies only
  // server_name; here the host is checked too, so verification is never chain-only)
  std::string host = name.empty() && !s->is_unix ? s->host : name;
  if (!host.empty() && !is_ip_literal(host)) SSL_set_tlsext_host_name(ssl, host.c_str());
  s->hs_verify = verify;
  s->hs_host = host;
  if (status_req) SSL_set_tlsext_status_type(ssl, TLSEXT_STATUSTYPE_ocsp);
  if (s->client_cert && !use_client_cert(ssl, *s->client_cert, *s->client_key, err)) {
    s->ssl.reset();
    s->session.reset();
    return push_err(L, err.c_str());
  }
  return run_handshake(L, s);
}

// setclientcert(cert, pkey): ngx.ssl objects or PEM text; no arguments clear them.
int l_setclientcert(lua_State* L) {
  TcpSock* s = check_tcp(L, 1);
  bool has_cert = !lua_isnoneornil(L, 2), has_key = !lua_isnoneornil(L, 3);
  if (!has_cert && !has_key) {
    s->client_cert.reset();
    s->client_key.reset();
    lua_pushboolean(L, 1);
    return 1;
  }
  if (!has_cert || !has_key) return push_err(L, "client certificate must be supplied with corresponding private key");
  std::string err;
  auto cert = get_cert(L, 2, err);
  if (!cert) return push_err(L, err.c_str());
  auto key = get_key(L, 3, err);
  if (!key) return push_err(L, err.c_str());
  s->client_cert = std::move(cert);
  s->client_key = std::move(key);
  lua_pushboolean(L, 1);
  return 1;
}

// sslaccept(ctx): the server side of a handshake, on an accepted connection (also for
// STARTTLS-style protocols): true, or nil, err.
int l_sslaccept(lua_State* L) {
  TcpSock* s = check_tcp(L, 1);
  std::shared_ptr<SSL_CTX> ctx = check_server_ctx(L, 2);
  if (int r = check_hs_state(L, s)) return r;
  if (s->ssl) return push_err(L, "already encrypted");
  s->ssl.reset(SSL_new(ctx.get()));
  if (!s->ssl) {
    std::string err = "failed to create the ssl connection: " + ssl_error_text();
    return push_err(L, err.c_str());
  }
  SSL_set_fd(s->ssl.get(), s->fd);
  SSL_set_accept_state(s->ssl.get());
  s->hs_server = true;
  s->hs_verify = false;
  s->hs_want_session = false;
  return run_handshake(L, s);
}

// ---- the rest -------------------------------------------------------------------

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

void push_accepted_tcp(lua_State* L, int fd, bool is_unix) {
  l_tcp_new_impl(L);
  auto* s = static_cast<TcpSock*>(lua_touserdata(L, -1));
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
