// ngx.socket.tcp, the TCP / unix-stream cosocket: the private header of its parts
// (net/tcp/*.cc; the public interface is net/sockets.h). It holds the socket object
// (TcpSock), the small helpers every part calls on its hot paths (inline here, so that
// they stay inlined now that the parts are separate files), and the functions one part
// calls in another.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include <event2/event.h>
#include <lua.hpp>

#include "net/buffer.h"
#include "loop/io_reg.h"
#include "loop/lazy_timer.h"
#include "net/pool.h"
#include "net/resolver.h"
#include "runtime/runtime.h"
#include "net/tls.h"
#include "net/until_matcher.h"

namespace cosocket::tcp {

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
  // the request that connected it (or accepted it): closed when that request ends
  Owned owner;
};

inline Scheduler& sched() { return runtime().sched(); }

inline long eff(long v, int def) { return v > 0 ? v : def; }

// Every socket call checks its object: a size and magic check instead of luaL_checkudata,
// which re-hashes the metatable's name each time; luaL_checkudata raises the error.
inline TcpSock* check_tcp(lua_State* L, int idx) {
  if (lua_type(L, idx) == LUA_TUSERDATA && lua_objlen(L, idx) == sizeof(TcpSock)) {
    auto* s = static_cast<TcpSock*>(lua_touserdata(L, idx));
    if (s->magic == kTcpMagic) return s;
  }
  return static_cast<TcpSock*>(luaL_checkudata(L, idx, kTcpMeta));
}

// A parked operation keeps its socket alive: the reserved registry slot holds the socket
// while pinned and `false` otherwise (one rawseti each way, no free-list work).
inline void pin_sock(lua_State* L, TcpSock* s, int idx) {
  if (s->pins++ == 0) {
    lua_pushvalue(L, idx);
    lua_rawseti(L, LUA_REGISTRYINDEX, s->self_ref);
  }
}

inline void unpin_sock(TcpSock* s) {
  if (s->pins > 0 && --s->pins == 0) {
    lua_State* L = runtime().L();
    lua_pushboolean(L, 0);
    lua_rawseti(L, LUA_REGISTRYINDEX, s->self_ref);
  }
}

inline void release_until(TcpSock* s) {
  if (s->until_ref != LUA_NOREF) luaL_unref(runtime().L(), LUA_REGISTRYINDEX, s->until_ref);
  s->until_ref = LUA_NOREF;
  s->until = nullptr;
}

inline int push_err(lua_State* L, const char* err) {
  lua_pushnil(L);
  lua_pushstring(L, err);
  return 2;
}

// ---- the socket and its events (sock.cc) -------------------------------------------

// The connection's event callbacks, which hand each event to the operation it serves.
void on_read(int, short what, void* arg);
void on_write(int, short what, void* arg);
void make_events(TcpSock* s, IoRegPtr io = nullptr);
void free_events(TcpSock* s);
void close_fd(TcpSock* s);
void close_read_side(TcpSock* s);
void close_write_side(TcpSock* s);
void abort_op(TcpSock* s, uint64_t& slot);
void close_sock(TcpSock* s);
void adopt(TcpSock* s, int fd, Pool* pool, int reused, SslPtr ssl = nullptr, IoRegPtr io = nullptr,
           bool nodelay_done = false);

// ---- reading (read.cc) -------------------------------------------------------------

void on_read_timer(int, short, void* arg);
void service_read(TcpSock* s, short what);
int l_receive(lua_State* L);
int l_receiveany(lua_State* L);
int l_until_gc(lua_State* L);
int l_receiveuntil(lua_State* L);

// ---- writing (write.cc): the writer slot, where a send, a connect or a handshake waits

void arm_write(TcpSock* s, long timeout_ms);
void finish_writer(TcpSock* s, int (*push)(lua_State*, TcpSock*, const char*), const char* err);
void send_failed(TcpSock* s, const std::string& err);
void service_write(TcpSock* s);
int l_send(lua_State* L);

// ---- connecting (connect.cc) -------------------------------------------------------

void connect_failed(TcpSock* s, const std::string& err);
int connect_step_done(TcpSock* s);
long connect_timeout(TcpSock* s);
int l_connect(lua_State* L);

// ---- TLS (handshake.cc) ------------------------------------------------------------

void hs_failed(TcpSock* s, const std::string& err);
void hs_step(TcpSock* s);
int l_sslhandshake(lua_State* L);
int l_setclientcert(lua_State* L);
int l_sslaccept(lua_State* L);

}  // namespace cosocket::tcp
