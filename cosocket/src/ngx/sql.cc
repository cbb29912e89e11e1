// sql.cc -- ngx.quote_sql_str.
//
// Behaviour (including error strings) was checked against lua-nginx-module 0.10.23 +
// lua-resty-core through /work/shared/tools/openresty-run; the unit tests in
// tests/ngx_sql_test.cc record the oracle's answers.
#include <string>

extern "C" {
#include <lauxlib.h>
#include <lua.h>
}

#include "ngx/families.h"

namespace cosocket {
namespace {

int l_ngx_quote_sql_str(lua_State* L) {
  if (lua_gettop(L) != 1) return luaL_error(L, "expecting one argument");
  size_t len;
  const char* s = luaL_checklstring(L, 1, &len);
  std::string out;
  out.reserve(len + 2);
  out.push_back('\'');
  for (size_t i = 0; i < len; ++i) {
    char c = s[i];
    const char* esc = nullptr;
    switch (c) {
      case '\0': esc = "\\0"; break;
      case '\b': esc = "\\b"; break;
      case '\t': esc = "\\t"; break;
      case '\n': esc = "\\n"; break;
      case '\r': esc = "\\r"; break;
      case '\x1a': esc = "\\Z"; break;
      case '"': esc = "\\\""; break;
      case '\'': esc = "\\'"; break;
      case '\\': esc = "\\\\"; break;
      default: break;
    }
    if (esc != nullptr) {
      out.append(esc);
    } else {
      out.push_back(c);
    }
  }
  out.push_back('\'');
  lua_pushlstring(L, out.data(), out.size());
  return 1;
}

}  // namespace

void open_ngx_sql(lua_State* L, int ngx) {
  lua_pushcfunction(L, l_ngx_quote_sql_str);
  lua_setfield(L, ngx, "quote_sql_str");
}

}  // namespace cosocket
