// ngx.socket.tcp, reading: receive (the *l, *a and size patterns), receiveany and
// receiveuntil over the socket's buffer, the reads from the connection (plain or TLS),
// the lazy read timer, and serving a parked read when its event comes.
#include <cerrno>
#include <cstring>

#include <event2/event.h>
#include <openssl/err.h>

#include "loop/epoll_tap.h"
#include "runtime/lua_util.h"
#include "net/tcp/tcp_sock.h"

namespace cosocket::tcp {

namespace {

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

// The reading thread was killed (or the script ends): as lua-nginx-module's coctx
// cleanup, the socket is closed, so no later operation reads what the killed reader
// left half-read; a writer parked on it gets `nil, "closed"`.
void cancel_read(TcpSock* s) {
  s->rtimer.disarm();
  s->reader = 0;
  release_until(s);
  close_sock(s);
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

int check_readable(lua_State* L, TcpSock* s) {
  if (s->st != St::connected || s->rclosed) return push_err(L, "closed");
  if (s->reader) return push_err(L, "socket busy reading");
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

}  // namespace

void on_read_timer(int, short, void* arg) {
  auto* s = static_cast<TcpSock*>(arg);
  if (s->rtimer.due() && s->reader) on_read(-1, EV_TIMEOUT, s);
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

}  // namespace cosocket::tcp
