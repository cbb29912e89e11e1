// The ngx table: light threads, sleep, timers, sockets, exit, config, worker; plus the
// private primitives the Lua prelude builds on (park/wake, the yield sentinel).
#include <cstdlib>
#include <cstring>
#include <string>
#include <sys/random.h>
#include <unistd.h>

#include <event2/event.h>

#include "loop/clock.h"
#include "ngx/api.h"
#include "ngx/context.h"
#include "ngx/process_ffi.h"
#include "ngx/embedded_lua.h"
#include "ngx/families.h"
#include "ngx/package_path.h"
#include "net/listen.h"
#include "ngx/regex.h"
#include "runtime/output.h"
#include "runtime/runtime.h"
#include "runtime/traceback.h"
#include "net/sockets.h"
#include "net/tls.h"

#ifndef COSOCKET_VERSION
#define COSOCKET_VERSION "0.0.0"
#endif

namespace cosocket {

namespace {

LuaThread* current_or_error(lua_State* L) {
  LuaThread* cur = runtime().sched().current();
  if (!cur) luaL_error(L, "no running light thread");
  return cur;
}

int l_sleep(lua_State* L) {
  if (lua_gettop(L) != 1) return luaL_error(L, "attempt to pass %d arguments, but accepted 1", lua_gettop(L));
  lua_Number sec = luaL_checknumber(L, 1);
  long ms = static_cast<long>(sec * 1000);
  if (ms < 0) return luaL_error(L, "invalid sleep duration \"%d\"", static_cast<int>(ms));
  LuaThread* cur = current_or_error(L);
  Scheduler& s = runtime().sched();
  if (ms == 0) {
    s.post(cur, 0);
    return yield_op(L);
  }
  s.wake_after(cur, ms, WakeKind::sleep);
  return yield_op(L);
}

// __cosocket.park(timeout_ms | nil): waits until wake(co, ...) (returns its values) or
// the timeout (returns nil, "timeout").
int l_park(lua_State* L) {
  LuaThread* cur = current_or_error(L);
  Scheduler& s = runtime().sched();
  if (!lua_isnoneornil(L, 1)) {
    long ms = static_cast<long>(luaL_checknumber(L, 1));
    s.wake_after(cur, ms < 0 ? 0 : ms, WakeKind::park_timeout);
  } else {
    s.suspend(cur, [] {});
  }
  cur->parked = true;
  return yield_op(L);
}

// __cosocket.wake(co, ...) -> true if co was parked and will resume with the values.
int l_wake(lua_State* L) {
  lua_State* co = lua_tothread(L, 1);
  luaL_argcheck(L, co != nullptr, 1, "thread expected");
  Scheduler& s = runtime().sched();
  LuaThread* t = s.find(co);
  if (!t || !t->parked || t->state != ThreadState::waiting) {
    lua_pushboolean(L, 0);
    return 1;
  }
  t->parked = false;
  s.cancel_wake(t);  // its timeout
  t->cancel = nullptr;
  int n = lua_gettop(L) - 1;
  lua_xmove(L, t->co, n);
  s.post(t, n);
  lua_pushboolean(L, 1);
  return 1;
}

int l_is_light_thread(lua_State* L) {
  lua_State* co = lua_tothread(L, 1);
  lua_pushboolean(L, co && runtime().sched().find(co) != nullptr);
  return 1;
}

// __cosocket.ffi_waiting(): whether the running light thread is parked on an operation that
// an ngx_http_lua_ffi_* function started (which then returned NGX_AGAIN, FFI_AGAIN in Lua):
// coroutine._yield then yields to the scheduler (prelude.lua).
int l_ffi_waiting(lua_State* L) {
  LuaThread* t = runtime().sched().current();
  lua_pushboolean(L, t && t->state == ThreadState::waiting);
  return 1;
}

// __cosocket.thread_status(co): OpenResty's view of a light thread ("running" while it
// lives, even parked; "zombie" when it ended unwaited; "dead" when waited or killed);
// nil for other coroutines.
int l_thread_status(lua_State* L) {
  lua_State* co = lua_tothread(L, 1);
  if (!co) return 0;
  Scheduler& s = runtime().sched();
  LuaThread* t = s.find(co);
  if (!t) {
    if (s.is_dead(L, 1)) {
      lua_pushliteral(L, "dead");
      return 1;
    }
    return 0;
  }
  lua_pushstring(L, t->state == ThreadState::zombie ? "zombie" : "running");
  return 1;
}

int l_is_parked(lua_State* L) {
  lua_State* co = lua_tothread(L, 1);
  LuaThread* t = co ? runtime().sched().find(co) : nullptr;
  lua_pushboolean(L, t && t->parked && t->state == ThreadState::waiting);
  return 1;
}

int l_current(lua_State* L) {
  LuaThread* cur = current_or_error(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, cur->ref);
  return 1;
}

int l_exit(lua_State* L) {
  int status = 0;
  if (lua_type(L, 1) == LUA_TBOOLEAN) status = lua_toboolean(L, 1) ? 0 : 1;
  else if (!lua_isnoneornil(L, 1)) status = static_cast<int>(luaL_checkinteger(L, 1));
  flush_stdout();
  runtime().request_exit(status & 0xff);
  if (!runtime().sched().current()) return 0;
  return yield_op(L);
}

int l_timer_at(lua_State* L) { return runtime().timers().create(L, false); }
int l_timer_every(lua_State* L) { return runtime().timers().create(L, true); }
int l_timer_running(lua_State* L) {
  lua_pushinteger(L, runtime().timers().running());
  return 1;
}
int l_timer_pending(lua_State* L) {
  lua_pushinteger(L, runtime().timers().pending());
  return 1;
}

// Every request here is request-less, as resty-cli runs a script: the main chunk, the
// timers, the cosocket.listen handlers and their light threads are all in "timer".
// The same function as resty.core.phase's (process.cc); outside any request (a __gc run by
// the collector between threads), "init", as resty.core answers without a request.
int l_get_phase(lua_State* L) {
  char* err = nullptr;
  void* r = request_handle(runtime().sched().current_request());
  if (!r || ngx_http_lua_ffi_get_phase(r, &err) != kNgxLuaContextTimer) {
    lua_pushliteral(L, "init");
  } else {
    lua_pushliteral(L, "timer");
  }
  return 1;
}

int l_prefix(lua_State* L) {
  lua_pushstring(L, runtime().cfg().prefix.c_str());
  return 1;
}

int l_nginx_configure(lua_State* L) {
  lua_pushliteral(L, "");
  return 1;
}

void set_fn(lua_State* L, const char* name, lua_CFunction f) {
  lua_pushcfunction(L, f);
  lua_setfield(L, -2, name);
}

}  // namespace

void open_api(lua_State* L) {
  lua_newtable(L);  // ngx
  int ngx = lua_gettop(L);
  lua_pushlightuserdata(L, nullptr);
  lua_setfield(L, ngx, "null");

  lua_newtable(L);  // ngx.socket
  open_tcp(L);
  lua_pushvalue(L, -1);
  lua_setfield(L, -3, "stream");
  lua_setfield(L, -2, "tcp");
  open_udp(L);
  lua_setfield(L, -2, "udp");
  lua_setfield(L, ngx, "socket");

  lua_newtable(L);
  set_fn(L, "spawn", Scheduler::l_spawn);
  set_fn(L, "wait", Scheduler::l_wait);
  set_fn(L, "kill", Scheduler::l_kill);
  lua_setfield(L, ngx, "thread");

  lua_newtable(L);
  set_fn(L, "at", l_timer_at);
  set_fn(L, "every", l_timer_every);
  set_fn(L, "running_count", l_timer_running);
  set_fn(L, "pending_count", l_timer_pending);
  lua_setfield(L, ngx, "timer");

  open_ngx_worker(L, ngx);

  lua_newtable(L);
  lua_pushinteger(L, 10023);
  lua_setfield(L, -2, "ngx_lua_version");
  lua_pushinteger(L, 1022001);  // the nginx of Debian's ngx_lua 0.10.23
  lua_setfield(L, -2, "nginx_version");
  lua_pushliteral(L, "http");
  lua_setfield(L, -2, "subsystem");
  lua_pushboolean(L, 0);
  lua_setfield(L, -2, "debug");
  lua_pushboolean(L, 1);  // a command-line runner, as resty-cli says
  lua_setfield(L, -2, "is_console");
  lua_pushliteral(L, "cosocket " COSOCKET_VERSION);
  lua_setfield(L, -2, "cosocket_version");
  set_fn(L, "prefix", l_prefix);
  set_fn(L, "nginx_configure", l_nginx_configure);
  lua_setfield(L, ngx, "config");

  set_fn(L, "sleep", l_sleep);
  set_fn(L, "exit", l_exit);
  set_fn(L, "get_phase", l_get_phase);

  open_ngx_output(L, ngx);
  open_ngx_log(L, ngx);
  open_ngx_time(L, ngx);
  open_ngx_codec(L, ngx);
  open_ngx_digest(L, ngx);
  open_ngx_uri(L, ngx);
  open_ngx_sql(L, ngx);
  open_ngx_re(L, ngx);
  open_ngx_shared(L, ngx);

  lua_pushvalue(L, ngx);
  lua_setglobal(L, "ngx");

  // private primitives for the prelude
  lua_newtable(L);
  lua_pushlightuserdata(L, &kYieldSentinel);
  lua_setfield(L, -2, "sentinel");
  set_fn(L, "park", l_park);
  set_fn(L, "wake", l_wake);
  set_fn(L, "is_light_thread", l_is_light_thread);
  set_fn(L, "current", l_current);
  set_fn(L, "thread_status", l_thread_status);
  set_fn(L, "is_parked", l_is_parked);
  set_fn(L, "ffi_waiting", l_ffi_waiting);
  set_fn(L, "traceback_handler", traceback_handler);
  set_fn(L, "exit", l_exit);
  set_fn(L, "ssl_server_context", l_ssl_server_context);
  open_listen(L);  // listen, udp_bind: served by require "cosocket"
  int priv = lua_gettop(L);
  open_context_primitives(L, priv);

  set_package_path(L);
  open_tls(L);

  // math.random seeded from the OS, so two runs differ
  uint32_t seed = 0;
  if (getrandom(&seed, sizeof seed, 0) != static_cast<ssize_t>(sizeof seed)) seed = static_cast<uint32_t>(getpid());
  lua_getglobal(L, "math");
  lua_getfield(L, -1, "randomseed");
  lua_pushnumber(L, static_cast<lua_Number>(seed));
  lua_call(L, 1, 0);
  lua_pop(L, 1);

  // run the start-up Lua files in order, each with (ngx, private): the prelude, then the
  // request-less context
  static const char* const kStartup[] = {"prelude", "context"};
  for (const char* name : kStartup) {
    const EmbeddedLua* e = kEmbeddedLua;
    while (e->name && strcmp(e->name, name) != 0) ++e;
    std::string chunk = std::string("=[cosocket ") + name + "]";
    if (!e->name || luaL_loadbuffer(L, e->source, strlen(e->source), chunk.c_str()) != 0 ||
        (lua_pushvalue(L, ngx), lua_pushvalue(L, priv), lua_pcall(L, 2, 0, 0)) != 0) {
      fprintf(stderr, "cosocket: %s failed: %s\n", name, e->name ? lua_tostring(L, -1) : "not embedded");
      abort();
    }
  }
  // the other embedded files become preloadable modules: "ngx.semaphore" <- ngx_semaphore
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "preload");
  for (const EmbeddedLua* e = kEmbeddedLua; e->name; ++e) {
    if (strcmp(e->name, "prelude") == 0 || strcmp(e->name, "context") == 0) continue;
    std::string mod = e->name;
    for (char& c : mod)
      if (c == '_') c = '.';
    std::string chunk = "=[cosocket " + mod + "]";
    if (luaL_loadbuffer(L, e->source, strlen(e->source), chunk.c_str()) != 0) {
      fprintf(stderr, "cosocket: %s\n", lua_tostring(L, -1));
      abort();
    }
    lua_setfield(L, -2, mod.c_str());
  }
  lua_pop(L, 2);
  bind_ngx_shared(L);  // ngx.shared.DICT's FFI methods, as OpenResty loads resty.core
  lua_settop(L, ngx - 1);
}

}  // namespace cosocket
