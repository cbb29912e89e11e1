#include "lua_util.h"

namespace cosocket {

static void add(std::vector<iovec>& iov, const char* p, size_t n) {
  if (n) iov.push_back(iovec{const_cast<char*>(p), n});
}

static size_t collect_table(lua_State* L, int idx, std::vector<iovec>& iov, int depth, int argidx, int anchor,
                            int& anchored) {
  if (depth > 100) luaL_argerror(L, argidx, "table too deeply nested");
  size_t total = 0;
  size_t n = lua_objlen(L, idx);
  // only arrays: every key must be an integer in 1..n
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    if (lua_type(L, -1) != LUA_TNUMBER || lua_tonumber(L, -1) < 1 || lua_tonumber(L, -1) > static_cast<double>(n)) {
      lua_pop(L, 1);
      luaL_argerror(L, argidx, "non-array table found");
    }
  }
  for (size_t i = 1; i <= n; ++i) {
    lua_rawgeti(L, idx, static_cast<int>(i));
    int t = lua_type(L, -1);
    size_t len = 0;
    const char* p = nullptr;
    switch (t) {
      case LUA_TNUMBER:
        p = lua_tolstring(L, -1, &len);  // the stack copy becomes a string
        lua_pushvalue(L, -1);
        lua_rawseti(L, anchor, ++anchored);  // which the anchor table keeps alive
        break;
      case LUA_TSTRING: p = lua_tolstring(L, -1, &len); break;
      case LUA_TTABLE: total += collect_table(L, lua_gettop(L), iov, depth + 1, argidx, anchor, anchored); break;
      default: luaL_argerror(L, argidx, lua_pushfstring(L, "bad data type %s found", luaL_typename(L, -1)));
    }
    if (p) {
      add(iov, p, len);
      total += len;
    }
    lua_pop(L, 1);  // strings are referenced by the table, which is on the stack
  }
  return total;
}

size_t collect_send_data(lua_State* L, int idx, std::vector<iovec>& iov) {
  int t = lua_type(L, idx);
  size_t len = 0;
  const char* p = nullptr;
  switch (t) {
    case LUA_TNUMBER:
      p = lua_tolstring(L, idx, &len);  // converts the stack slot itself
      break;
    case LUA_TSTRING: p = lua_tolstring(L, idx, &len); break;
    case LUA_TNIL: p = "nil"; len = 3; break;
    case LUA_TBOOLEAN:
      p = lua_toboolean(L, idx) ? "true" : "false";
      len = lua_toboolean(L, idx) ? 4 : 5;
      break;
    case LUA_TTABLE: {
      lua_newtable(L);  // anchors the strings made from numbers; stays on the stack
      int anchored = 0;
      return collect_table(L, idx, iov, 0, idx, lua_gettop(L), anchored);
    }
    default:
      return luaL_argerror(L, idx, lua_pushfstring(L, "string, number, boolean, nil, or array table expected, got %s",
                                                 lua_typename(L, t)));
  }
  add(iov, p, len);
  return len;
}

bool opt_integer(lua_State* L, int tbl, const char* name, long& out, const char* what) {
  lua_getfield(L, tbl, name);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return false;
  }
  if (lua_type(L, -1) != LUA_TNUMBER) {
    luaL_argerror(L, tbl, lua_pushfstring(L, "bad \"%s\" option type: %s", what, luaL_typename(L, -1)));
  }
  out = static_cast<long>(lua_tointeger(L, -1));
  lua_pop(L, 1);
  return true;
}

}  // namespace cosocket
