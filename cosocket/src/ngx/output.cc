// output.cc -- ngx.say, ngx.print, ngx.flush and the global print(): the writers into
// the stdout buffer that they share (runtime/output.h). The whole ngx.say path (check,
// format, append) is in this file.
//
// Behaviour (including error strings) was checked against lua-nginx-module 0.10.23 +
// lua-resty-core through /work/shared/tools/openresty-run; the unit tests in
// tests/ngx_output_test.cc record the oracle's answers.
#include <climits>
#include <cmath>
#include <cstdio>
#include <string>

extern "C" {
#include <lauxlib.h>
#include <lua.h>
}

#include "ngx/families.h"
#include "runtime/output.h"

namespace cosocket {
namespace {

constexpr int kMaxNesting = 100;  // ngx.say of nested tables; guards self-references

void format_number(lua_Number d, std::string* out) {
  char buf[64];
  int n;
  if (d >= INT_MIN && d <= INT_MAX && std::floor(d) == d) {
    n = std::snprintf(buf, sizeof buf, "%d", static_cast<int>(d));
  } else {
    n = std::snprintf(buf, sizeof buf, "%.14g", static_cast<double>(d));
  }
  out->append(buf, static_cast<size_t>(n));
}

int echo_type_error(lua_State* L, int argn, const char* fmt, const char* tname) {
  return luaL_argerror(L, argn, lua_pushfstring(L, fmt, tname));
}

// First pass: validates a table argument (array of printable values) before any
// output is produced.
void echo_check_table(lua_State* L, int idx, int argn, int depth) {
  if (depth > kMaxNesting) luaL_argerror(L, argn, "table nested too deep");
  luaL_checkstack(L, 3, "table nested too deep");
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    if (lua_type(L, -2) != LUA_TNUMBER) luaL_argerror(L, argn, "non-array table found");
    lua_Number k = lua_tonumber(L, -2);
    if (k < 1 || std::floor(k) != k) luaL_argerror(L, argn, "non-array table found");
    switch (lua_type(L, -1)) {
      case LUA_TNIL:
      case LUA_TBOOLEAN:
      case LUA_TNUMBER:
      case LUA_TSTRING:
        break;
      case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, -1) != nullptr) {
          echo_type_error(L, argn, "bad data type %s found", luaL_typename(L, -1));
        }
        break;
      case LUA_TTABLE:
        echo_check_table(L, lua_gettop(L), argn, depth + 1);
        break;
      default:
        echo_type_error(L, argn, "bad data type %s found", luaL_typename(L, -1));
    }
    lua_pop(L, 1);
  }
}

void echo_check(lua_State* L, int idx) {
  switch (lua_type(L, idx)) {
    case LUA_TNIL:
    case LUA_TBOOLEAN:
    case LUA_TNUMBER:
    case LUA_TSTRING:
      return;
    case LUA_TLIGHTUSERDATA:
      if (lua_touserdata(L, idx) == nullptr) return;
      break;
    case LUA_TTABLE:
      echo_check_table(L, idx, idx, 0);
      return;
    default:
      break;
  }
  echo_type_error(L, idx,
                  "string, number, boolean, nil, ngx.null, or array table expected, "
                  "but got %s",
                  luaL_typename(L, idx));
}

// Second pass: appends a validated value. Cannot raise (apart from memory errors).
void echo_append(lua_State* L, int idx, std::string* out) {
  switch (lua_type(L, idx)) {
    case LUA_TNIL:
      out->append("nil");
      break;
    case LUA_TBOOLEAN:
      out->append(lua_toboolean(L, idx) ? "true" : "false");
      break;
    case LUA_TNUMBER:
      format_number(lua_tonumber(L, idx), out);
      break;
    case LUA_TSTRING: {
      size_t len;
      const char* s = lua_tolstring(L, idx, &len);
      out->append(s, len);
      break;
    }
    case LUA_TLIGHTUSERDATA:
      out->append("null");
      break;
    case LUA_TTABLE: {
      lua_Number max = 0;
      lua_pushnil(L);
      while (lua_next(L, idx) != 0) {
        lua_Number k = lua_tonumber(L, -2);
        if (k > max) max = k;
        lua_pop(L, 1);
      }
      for (lua_Number i = 1; i <= max; ++i) {
        lua_rawgeti(L, idx, static_cast<int>(i));
        echo_append(L, lua_gettop(L), out);
        lua_pop(L, 1);
      }
      break;
    }
    default:
      break;
  }
}

int echo(lua_State* L, bool newline) {
  int n = lua_gettop(L);
  for (int i = 1; i <= n; ++i) echo_check(L, i);
  std::string& buf = out_buffer();
  for (int i = 1; i <= n; ++i) echo_append(L, i, &buf);
  if (newline) buf.push_back('\n');
  flush_if_full();
  lua_pushinteger(L, 1);
  return 1;
}

int l_ngx_say(lua_State* L) { return echo(L, true); }
int l_ngx_print(lua_State* L) { return echo(L, false); }

int l_ngx_flush(lua_State* L) {
  flush_stdout();
  lua_pushinteger(L, 1);
  return 1;
}

// The global print(): Lua's print, but into the stdout buffer so that it keeps its
// order relative to ngx.say.
int l_print(lua_State* L) {
  int n = lua_gettop(L);
  lua_getfield(L, LUA_GLOBALSINDEX, "tostring");
  for (int i = 1; i <= n; ++i) {
    lua_pushvalue(L, -1);
    lua_pushvalue(L, i);
    lua_call(L, 1, 1);
    size_t len;
    const char* s = lua_tolstring(L, -1, &len);
    if (s == nullptr) return luaL_error(L, "'tostring' must return a string to 'print'");
    if (i > 1) out_append("\t", 1);
    out_append(s, len);
    lua_pop(L, 1);
  }
  out_append("\n", 1);
  return 0;
}

const luaL_Reg kOutputFuncs[] = {
    {"say", l_ngx_say},
    {"print", l_ngx_print},
    {"flush", l_ngx_flush},
    {nullptr, nullptr},
};

}  // namespace

void open_ngx_output(lua_State* L, int ngx) {
  set_functions(L, ngx, kOutputFuncs);
  lua_pushcfunction(L, l_print);
  lua_setfield(L, LUA_GLOBALSINDEX, "print");
}

}  // namespace cosocket
