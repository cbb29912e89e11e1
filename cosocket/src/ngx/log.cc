// log.cc -- ngx.log and the level constants ngx.STDERR .. ngx.DEBUG. The current level
// and the stdout buffer flushed before each line are the runtime's (runtime/log.h,
// runtime/output.h).
//
// Behaviour (including error strings) was checked against lua-nginx-module 0.10.23 +
// lua-resty-core through /work/shared/tools/openresty-run; the unit tests in
// tests/ngx_log_test.cc record the oracle's answers.
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <ctime>
#include <string>

extern "C" {
#include <lauxlib.h>
#include <lua.h>
}

#include "loop/clock.h"
#include "ngx/families.h"
#include "runtime/log.h"
#include "runtime/output.h"

namespace cosocket {
namespace {

const char* const kLevelNames[] = {"",     "emerg",  "alert", "crit", "error",
                                   "warn", "notice", "info",  "debug"};

int l_ngx_log(lua_State* L) {
  int level = luaL_checkint(L, 1);
  if (level < kStderr || level > kDebug) {
    return luaL_argerror(L, 1, lua_pushfstring(L, "bad log level: %d", level));
  }
  if (level > log_level()) return 0;
  lua_remove(L, 1);  // message arguments are numbered from 1 in errors, as ngx_lua does

  int n = lua_gettop(L);
  for (int i = 1; i <= n; ++i) {
    int t = lua_type(L, i);
    if (t == LUA_TNIL || t == LUA_TBOOLEAN || t == LUA_TNUMBER || t == LUA_TSTRING) continue;
    if (t == LUA_TLIGHTUSERDATA && lua_touserdata(L, i) == nullptr) continue;
    if (t == LUA_TTABLE) {
      if (!luaL_getmetafield(L, i, "__tostring")) {
        return luaL_argerror(L, i, "expected table to have __tostring metamethod");
      }
      lua_pop(L, 1);
      continue;
    }
    return luaL_argerror(L, i,
                         lua_pushfstring(L, "string, number, boolean, or nil expected, got %s",
                                         lua_typename(L, t)));
  }

  lua_Debug ar;
  std::memset(&ar, 0, sizeof ar);
  char where[LUA_IDSIZE + 128] = "";
  if (lua_getstack(L, 1, &ar) && lua_getinfo(L, "Snl", &ar)) {
    const char* src = ar.short_src;
    const char* slash = std::strrchr(src, '/');
    if (slash != nullptr) src = slash + 1;
    if (ar.name != nullptr && *ar.namewhat != '\0' && *ar.what == 'L') {
      std::snprintf(where, sizeof where, "%s:%d: %s(): ", src, ar.currentline, ar.name);
    } else {
      std::snprintf(where, sizeof where, "%s:%d: ", src, ar.currentline);
    }
  }

  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (int i = 1; i <= n; ++i) {
    switch (lua_type(L, i)) {
      case LUA_TNIL:
        luaL_addstring(&b, "nil");
        break;
      case LUA_TBOOLEAN:
        luaL_addstring(&b, lua_toboolean(L, i) ? "true" : "false");
        break;
      case LUA_TLIGHTUSERDATA:
        luaL_addstring(&b, "null");
        break;
      case LUA_TTABLE:
        luaL_callmeta(L, i, "__tostring");
        if (!lua_isstring(L, -1)) lua_pushliteral(L, "");
        luaL_addvalue(&b);
        break;
      default:
        lua_pushvalue(L, i);
        luaL_addvalue(&b);
        break;
    }
  }
  luaL_pushresult(&b);
  size_t msg_len;
  const char* msg = lua_tolstring(L, -1, &msg_len);

  time_t now = static_cast<time_t>(clock_time());
  struct tm tm;
  localtime_r(&now, &tm);
  char head[64];
  std::snprintf(head, sizeof head, "%04d/%02d/%02d %02d:%02d:%02d [%s] %d#0: [lua] ",
                tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                tm.tm_sec, kLevelNames[level], static_cast<int>(getpid()));
  std::string line(head);
  line.append(where);
  line.append(msg, msg_len);
  emit_log_line(level, std::move(line));  // after stdout, in the order the script wrote them
  return 0;
}

const char* const kLevelConstants[] = {"STDERR", "EMERG",  "ALERT", "CRIT", "ERR",
                                       "WARN",   "NOTICE", "INFO",  "DEBUG"};

}  // namespace

void open_ngx_log(lua_State* L, int ngx) {
  lua_pushcfunction(L, l_ngx_log);
  lua_setfield(L, ngx, "log");
  for (int level = kStderr; level <= kDebug; ++level) {
    lua_pushinteger(L, level);
    lua_setfield(L, ngx, kLevelConstants[level]);
  }
}

}  // namespace cosocket
