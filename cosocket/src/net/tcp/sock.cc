// ngx.socket.tcp, the socket's lifecycle: the connection's events (one edge-triggered
// registration and the timers) and their dispatch to the read and write operations
// parked on the socket, the close paths, and adopting a connection (pooled or accepted).
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/err.h>

#include "loop/clock.h"
#include "loop/epoll_tap.h"
#include "net/tcp/tcp_sock.h"

namespace cosocket::tcp {

namespace {

void on_io(void* owner, short what) {
  auto* s = static_cast<TcpSock*>(owner);
  if (what & EV_TIMEOUT) return;  // the pool's idle timer: disarmed when it was taken
  if (what & EV_READ) on_read(-1, EV_READ, s);
  else on_write(-1, EV_WRITE, s);
}

}  // namespace

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

// The connection's events: a new registration, or the one a pooled connection kept (the
// pool saw no event for it since its receive queue was found empty: nothing to read).
void make_events(TcpSock* s, IoRegPtr io) {
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

void adopt(TcpSock* s, int fd, Pool* pool, int reused, SslPtr ssl, IoRegPtr io, bool nodelay_done) {
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

}  // namespace cosocket::tcp
