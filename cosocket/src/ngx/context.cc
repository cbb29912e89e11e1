// The request-less context, C side: ngx.ctx per request (runtime/request.h), the
// request's start time. The rest of that context -- the request and
// response APIs that exist but are disabled, as under resty-cli -- is Lua (lua/context.lua),
// which receives these as primitives.
#include "ngx/context.h"

#include "runtime/runtime.h"

namespace cosocket {

namespace {

uint32_t request_or_error(lua_State* L) {
  uint32_t req = runtime().sched().current_request();
  if (!req) luaL_error(L, "no request found");
  return req;
}

// ctx(): ngx.ctx of the running request
int l_ctx(lua_State* L) {
  uint32_t req = request_or_error(L);
  runtime().sched().requests().push_ctx(L, req);
  return 1;
}

// set_ctx(t): ngx.ctx = t
int l_set_ctx(lua_State* L) {
  uint32_t req = request_or_error(L);
  if (!lua_istable(L, 1)) return luaL_error(L, "ctx should be a table while getting a %s", luaL_typename(L, 1));
  lua_settop(L, 1);
  runtime().sched().requests().set_ctx(L, req);
  return 0;
}

// start_time(): when the running request began (seconds, ms resolution)
int l_start_time(lua_State* L) {
  uint32_t req = request_or_error(L);
  lua_pushnumber(L, runtime().sched().requests().at(req).start);
  return 1;
}

}  // namespace

void open_context_primitives(lua_State* L, int priv) {
  static const luaL_Reg fns[] = {
      {"ctx", l_ctx}, {"set_ctx", l_set_ctx}, {"start_time", l_start_time}, {nullptr, nullptr}};
  for (const luaL_Reg* r = fns; r->name; ++r) {
    lua_pushcfunction(L, r->func);
    lua_setfield(L, priv, r->name);
  }
}

}  // namespace cosocket
