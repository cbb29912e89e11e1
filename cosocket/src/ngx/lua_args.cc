// lua_args.cc -- the argument helpers that several ngx families share (see lua_args.h).
//
// Behaviour (including error strings) was checked against lua-nginx-module 0.10.23 +
// lua-resty-core through /work/shared/tools/openresty-run; the unit tests of the
// families that use them (tests/ngx_codec_test.cc, ngx_digest_test.cc, ngx_uri_test.cc,
// ngx_re_test.cc) record the oracle's answers.
#include "ngx/lua_args.h"

extern "C" {
#include <lauxlib.h>
#include <lua.h>
}

namespace cosocket {
namespace {

int abs_index(lua_State* L, int idx) {
  return (idx < 0 && idx > LUA_REGISTRYINDEX) ? lua_gettop(L) + idx + 1 : idx;
}

}  // namespace

const char* coerce_string(lua_State* L, int idx, size_t* len) {
  int t = lua_type(L, idx);
  if (t == LUA_TSTRING) return lua_tolstring(L, idx, len);
  if (t == LUA_TNONE || t == LUA_TNIL || (t == LUA_TBOOLEAN && !lua_toboolean(L, idx))) {
    *len = 0;
    return "";
  }
  return push_tostring(L, idx, len);
}

const char* push_tostring(lua_State* L, int idx, size_t* len) {
  idx = abs_index(L, idx);
  switch (lua_type(L, idx)) {
    case LUA_TNUMBER:
    case LUA_TSTRING:
      lua_pushvalue(L, idx);
      break;
    case LUA_TNIL:
    case LUA_TNONE:
      lua_pushliteral(L, "nil");
      break;
    case LUA_TBOOLEAN:
      lua_pushstring(L, lua_toboolean(L, idx) ? "true" : "false");
      break;
    default:
      if (luaL_callmeta(L, idx, "__tostring")) {
        if (!lua_isstring(L, -1)) luaL_error(L, "'__tostring' must return a string");
      } else {
        lua_pushfstring(L, "%s: %p", luaL_typename(L, idx), lua_topointer(L, idx));
      }
      break;
  }
  return lua_tolstring(L, -1, len);
}

}  // namespace cosocket
