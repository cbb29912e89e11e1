// ngx.socket.tcp, writing: send (one send or sendmsg of the pieces, the rest kept
// pending), TLS sends, flushing what is pending when the socket is writable again, and
// the writer slot that a send, a connect or a handshake parks in.
#include <algorithm>
#include <cerrno>
#include <vector>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <event2/event.h>
#include <openssl/err.h>

#include "runtime/lua_util.h"
#include "net/tcp/tcp_sock.h"

namespace cosocket::tcp {

namespace {

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

// The writing thread was killed: the socket is closed (part of a request may be sent),
// as lua-nginx-module's coctx cleanup does; a reader parked on it gets `nil, "closed"`.
void cancel_write(TcpSock* s) {
  if (s->wtimer) evtimer_del(s->wtimer.get());
  s->writer = 0;
  s->wpending.clear();
  close_sock(s);
  unpin_sock(s);
}

int push_sent(lua_State* L, TcpSock* s, const char* err) {
  if (err) return push_err(L, err);
  lua_pushinteger(L, static_cast<lua_Integer>(s->wtotal));
  return 1;
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

}  // namespace

void arm_write(TcpSock* s, long timeout_ms) { evtimer_add(s->wtimer.get(), runtime().timeout_for(timeout_ms)); }

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

void send_failed(TcpSock* s, const std::string& err) {
  s->wpending.clear();
  if (s->wtimer) evtimer_del(s->wtimer.get());
  uint64_t w = s->writer;
  s->writer = 0;
  close_write_side(s);  // may close the connection when the read side is done too
  s->writer = w;
  finish_writer(s, push_sent, err.c_str());
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

}  // namespace cosocket::tcp
