// worker.cc -- ngx.worker.id, pid, count, exiting and pids, and the FFI functions of
// resty.core.worker behind them (worker_ffi.h): cosocket's Lua C API bindings call those.
//
// As resty-cli answers: one worker, id 0, count 1, pids {pid}; with `-w N` the worker's id,
// N, and the running workers' pids from the shared table (runtime/worker_table.h).
#include "ngx/worker_ffi.h"

#include <unistd.h>

#include <algorithm>
#include <vector>

extern "C" {
#include <lauxlib.h>
#include <lua.h>
}

#include "ngx/families.h"
#include "runtime/runtime.h"
#include "runtime/worker_table.h"

namespace cosocket {
namespace {

int l_worker_pid(lua_State* L) {
  lua_pushinteger(L, ngx_http_lua_ffi_worker_pid());
  return 1;
}

int l_worker_id(lua_State* L) {
  int id = ngx_http_lua_ffi_worker_id();
  if (id < 0) {
    lua_pushnil(L);
  } else {
    lua_pushinteger(L, id);
  }
  return 1;
}

int l_worker_count(lua_State* L) {
  lua_pushinteger(L, ngx_http_lua_ffi_worker_count());
  return 1;
}

int l_worker_exiting(lua_State* L) {
  lua_pushboolean(L, ngx_http_lua_ffi_worker_exiting() != 0);
  return 1;
}

int l_worker_pids(lua_State* L) {
  std::vector<int> pids(kNgxMaxProcesses);
  size_t n = 0;
  if (ngx_http_lua_ffi_worker_pids(pids.data(), &n) != 0) n = 0;  // an empty table, as resty.core's
  lua_createtable(L, static_cast<int>(n), 0);
  for (size_t i = 0; i < n; ++i) {
    lua_pushinteger(L, pids[i]);
    lua_rawseti(L, -2, static_cast<int>(i + 1));
  }
  return 1;
}

const luaL_Reg kWorkerFuncs[] = {
    {"pid", l_worker_pid},         {"id", l_worker_id},     {"count", l_worker_count},
    {"exiting", l_worker_exiting}, {"pids", l_worker_pids}, {nullptr, nullptr},
};

}  // namespace

void open_ngx_worker(lua_State* L, int ngx) {
  lua_createtable(L, 0, 5);
  set_functions(L, lua_gettop(L), kWorkerFuncs);
  lua_setfield(L, ngx, "worker");
}

}  // namespace cosocket

extern "C" {

int ngx_http_lua_ffi_worker_id(void) { return cosocket::runtime().cfg().worker_id; }
int ngx_http_lua_ffi_worker_pid(void) { return static_cast<int>(getpid()); }
int ngx_http_lua_ffi_worker_count(void) { return cosocket::runtime().cfg().worker_count; }
int ngx_http_lua_ffi_worker_exiting(void) { return cosocket::runtime().exiting() ? 1 : 0; }

int ngx_http_lua_ffi_worker_pids(int* pids, size_t* pids_len) {
  std::vector<pid_t> running = cosocket::worker_table_pids();
  if (running.empty()) return -1;
  size_t n = std::min(running.size(), kNgxMaxProcesses);
  std::copy_n(running.begin(), n, pids);
  *pids_len = n;
  return 0;
}

}  // extern "C"
