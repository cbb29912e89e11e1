// ngx.socket.tcp, the TLS glue: sslhandshake (the client side, with session reuse,
// SNI and verification), setclientcert and sslaccept (the server side) on a connected
// socket. The OpenSSL contexts, sessions, certificates and keys are net/tls.cc's.
#include <cerrno>

#include <arpa/inet.h>

#include <event2/event.h>
#include <openssl/err.h>

#include "net/tcp/tcp_sock.h"

namespace cosocket::tcp {

namespace {

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

}  // namespace

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

}  // namespace cosocket::tcp
