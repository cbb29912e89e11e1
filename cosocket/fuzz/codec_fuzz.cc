// libFuzzer target: the ngx codecs that parse untrusted bytes -- decode_base64,
// unescape_uri, decode_args, parse_http_time -- through their Lua functions (the families
// of ngx/families.h on a bare Lua state), with round trips that must hold:
// decode(encode(x)) == x for base64 and URI escaping, http_time(parse_http_time(s)) parses
// back to the same time, and decode_base64 of anything gives nil or a string.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include <lua.hpp>

#include "ngx/families.h"

namespace {

lua_State* state() {
  static lua_State* L = [] {
    lua_State* s = luaL_newstate();
    luaL_openlibs(s);
    lua_newtable(s);
    int ngx = lua_gettop(s);
    lua_pushlightuserdata(s, nullptr);
    lua_setfield(s, ngx, "null");
    cosocket::open_ngx_codec(s, ngx);
    cosocket::open_ngx_uri(s, ngx);
    cosocket::open_ngx_time(s, ngx);
    lua_setglobal(s, "ngx");
    // the checks, in Lua: an error() here is a finding (abort below)
    const char* code = R"(
      local ngx, input = ngx, ...
      local d = ngx.decode_base64(input)
      assert(d == nil or type(d) == "string")
      assert(ngx.decode_base64(ngx.encode_base64(input)) == input)
      assert(ngx.decode_base64(ngx.encode_base64(input, true)) == input)
      local u = ngx.unescape_uri(input)
      assert(type(u) == "string")
      assert(ngx.unescape_uri(ngx.escape_uri(input)) == input)
      -- (type 0 leaves "+" as it is, and unescaping makes it a space, as in nginx)
      if not input:find("+", 1, true) then
        assert(ngx.unescape_uri(ngx.escape_uri(input, 0)) == input)
      end
      local args = ngx.decode_args(input, 50)
      assert(type(args) == "table")
      for k, v in pairs(args) do
        assert(type(k) == "string")
        assert(v == true or type(v) == "string" or type(v) == "table")
      end
      local t = ngx.parse_http_time(input)
      -- (http_time clamps times before 1970 to 0, as nginx does)
      if t and t >= 0 then
        assert(ngx.parse_http_time(ngx.http_time(t)) == t)
      end
      local enc = ngx.encode_args({ [input] = input, k = { input, true } })
      assert(type(enc) == "string")
      local back = ngx.decode_args(enc, 0)
      if input ~= "" and input ~= "k" then assert(back[input] == input) end
    )";
    if (luaL_loadstring(s, code) != 0) abort();
    lua_setglobal(s, "check");
    return s;
  }();
  return L;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  lua_State* L = state();
  lua_getglobal(L, "check");
  lua_pushlstring(L, reinterpret_cast<const char*>(data), size);
  if (lua_pcall(L, 1, 0, 0) != 0) {
    fprintf(stderr, "codec_fuzz: %s\n", lua_tostring(L, -1));
    abort();
  }
  lua_settop(L, 0);
  if (size % 64 == 0) lua_gc(L, LUA_GCSTEP, 0);
  return 0;
}
