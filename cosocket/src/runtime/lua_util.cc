#include "runtime/lua_util.h"

#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>

namespace cosocket {

static void add(std::vector<iovec>& iov, const char* p, size_t n) {
  if (n) iov.push_back(iovec{const_cast<char*>(p), n});
}

namespace {

// Numbers inside a send table are formatted here, as Lua's tostring would ("%.14g"),
// instead of becoming Lua strings that must be kept alive. The texts live until the next
// send: every caller sends (or copies) the data before it can yield.
std::deque<std::array<char, 40>>& number_texts() {
  static std::deque<std::array<char, 40>> texts;
  return texts;
}

// Integers the fast way; anything else exactly as Lua's tostring (copied out).
size_t format_number(lua_State* L, char* out) {
  lua_Number v = lua_tonumber(L, -1);
  if (v == static_cast<lua_Number>(static_cast<int64_t>(v)) && v > -1e14 && v < 1e14 && !(v == 0 && std::signbit(v)))
    return static_cast<size_t>(snprintf(out, 40, "%lld", static_cast<long long>(v)));
  lua_pushvalue(L, -1);
  size_t len;
  const char* p = lua_tolstring(L, -1, &len);
  if (len > 39) len = 39;
  memcpy(out, p, len);
  lua_pop(L, 1);
  return len;
}

// One value of a send table (at the top of the stack): pieces added, length returned.
size_t collect_value(lua_State* L, std::vector<iovec>& iov, int depth, int argidx);

size_t collect_table(lua_State* L, int idx, std::vector<iovec>& iov, int depth, int argidx) {
  if (depth > 100) luaL_argerror(L, argidx, "table too deeply nested");
  size_t total = 0;
  size_t n = lua_objlen(L, idx);
  size_t iov_start = iov.size();
  // Only arrays: every key must be an integer in 1..n. One walk checks the keys and, while
  // they come in order (LuaJIT walks the array part first), collects the values too.
  size_t expect = 1;
  bool in_order = true;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    if (lua_type(L, -2) != LUA_TNUMBER || lua_tonumber(L, -2) < 1 || lua_tonumber(L, -2) > static_cast<double>(n)) {
      lua_pop(L, 2);
      luaL_argerror(L, argidx, "non-array table found");
    }
    if (in_order && lua_tonumber(L, -2) == static_cast<double>(expect)) {
      total += collect_value(L, iov, depth, argidx);
      ++expect;
    } else {
      in_order = false;
    }
    lua_pop(L, 1);
  }
  if (in_order && expect == n + 1) return total;
  // keys out of order (some in the hash part): collect again by index
  iov.resize(iov_start);
  total = 0;
  for (size_t i = 1; i <= n; ++i) {
    lua_rawgeti(L, idx, static_cast<int>(i));
    total += collect_value(L, iov, depth, argidx);
    lua_pop(L, 1);
  }
  return total;
}

size_t collect_value(lua_State* L, std::vector<iovec>& iov, int depth, int argidx) {
  switch (lua_type(L, -1)) {
    case LUA_TSTRING: {
      size_t len;
      const char* p = lua_tolstring(L, -1, &len);  // referenced by the table on the stack
      add(iov, p, len);
      return len;
    }
    case LUA_TNUMBER: {
      auto& texts = number_texts();
      texts.emplace_back();
      char* out = texts.back().data();
      size_t len = format_number(L, out);
      add(iov, out, len);
      return len;
    }
    case LUA_TTABLE: return collect_table(L, lua_gettop(L), iov, depth + 1, argidx);
    default:
      luaL_argerror(L, argidx, lua_pushfstring(L, "bad data type %s found", luaL_typename(L, -1)));
      return 0;
  }
}

}  // namespace

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
    case LUA_TTABLE:
      number_texts().clear();
      return collect_table(L, idx < 0 ? lua_gettop(L) + idx + 1 : idx, iov, 0, idx);
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
