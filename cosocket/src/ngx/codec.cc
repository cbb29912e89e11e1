// codec.cc -- ngx.encode_base64, ngx.decode_base64, ngx.crc32_short and ngx.crc32_long,
// and the FFI functions of resty.core.base64 and resty.core.hash behind them (string_ffi.h).
//
// Behaviour (including error strings) was checked against lua-nginx-module 0.10.23 +
// lua-resty-core through /work/shared/tools/openresty-run; the unit tests in
// tests/ngx_codec_test.cc record the oracle's answers.
#include <cstdint>
#include <string>

extern "C" {
#include <lauxlib.h>
#include <lua.h>
}

#include "ngx/core_symbols.h"
#include "ngx/families.h"
#include "ngx/lua_args.h"
#include "ngx/string_ffi.h"

namespace cosocket {
namespace {

// Both are bindings of the FFI functions below, which resty.core.base64 calls; those are
// nginx's own ngx_encode_base64/ngx_decode_base64 (core_symbols.h).
int l_ngx_encode_base64(lua_State* L) {
  lua_settop(L, 2);  // coerce_string may push
  size_t len;
  const char* src = coerce_string(L, 1, &len);
  int no_padding = 0;
  int t = lua_type(L, 2);
  if (t == LUA_TBOOLEAN) {
    no_padding = lua_toboolean(L, 2);
  } else if (t != LUA_TNONE && t != LUA_TNIL) {
    return luaL_error(L, "bad no_padding: boolean expected, got %s", lua_typename(L, t));
  }
  std::string out(base64_encoded_length(len), '\0');
  size_t n = ngx_http_lua_ffi_encode_base64(reinterpret_cast<const unsigned char*>(src), len,
                                            reinterpret_cast<unsigned char*>(&out[0]), no_padding);
  lua_pushlstring(L, out.data(), n);
  return 1;
}

int l_ngx_decode_base64(lua_State* L) {
  if (lua_type(L, 1) != LUA_TSTRING) return luaL_error(L, "string argument only");
  size_t len;
  const char* s = lua_tolstring(L, 1, &len);
  std::string out(base64_decoded_length(len), '\0');
  size_t n = 0;
  if (!ngx_http_lua_ffi_decode_base64(reinterpret_cast<const unsigned char*>(s), len,
                                      reinterpret_cast<unsigned char*>(&out[0]), &n)) {
    lua_pushnil(L);
    return 1;
  }
  lua_pushlstring(L, out.data(), n);
  return 1;
}

struct Crc32Table {
  uint32_t v[256];
  Crc32Table() {
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      v[i] = c;
    }
  }
};

uint32_t crc32(const unsigned char* p, size_t len) {
  static const Crc32Table table;
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < len; ++i) c = table.v[(c ^ p[i]) & 0xff] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

// Bindings of the FFI functions below, which resty.core.hash calls.
template <unsigned int (*Fn)(const unsigned char*, size_t)>
int l_ngx_crc32(lua_State* L) {
  size_t len;
  const char* s = coerce_string(L, 1, &len);
  lua_pushnumber(L, Fn(reinterpret_cast<const unsigned char*>(s), len));
  return 1;
}

const luaL_Reg kCodecFuncs[] = {
    {"encode_base64", l_ngx_encode_base64},
    {"decode_base64", l_ngx_decode_base64},
    {"crc32_short", l_ngx_crc32<ngx_http_lua_ffi_crc32_short>},
    {"crc32_long", l_ngx_crc32<ngx_http_lua_ffi_crc32_long>},
    {nullptr, nullptr},
};

}  // namespace

void open_ngx_codec(lua_State* L, int ngx) { set_functions(L, ngx, kCodecFuncs); }

}  // namespace cosocket

extern "C" {

size_t ngx_http_lua_ffi_encode_base64(const unsigned char* src, size_t len, unsigned char* dst,
                                      int no_padding) {
  ngx_str_t in{len, const_cast<unsigned char*>(src)};
  ngx_str_t out{0, dst};
  cosocket::encode_base64(&out, &in, no_padding == 0);
  return out.len;
}

int ngx_http_lua_ffi_decode_base64(const unsigned char* src, size_t len, unsigned char* dst,
                                   size_t* dlen) {
  ngx_str_t in{len, const_cast<unsigned char*>(src)};
  ngx_str_t out{0, dst};
  bool ok = ngx_decode_base64(&out, &in) == cosocket::kNgxOk;
  *dlen = out.len;  // 0 when it failed
  return ok;
}

// nginx has a short and a long variant that differ only in speed; both give the standard
// CRC-32.
unsigned int ngx_http_lua_ffi_crc32_short(const unsigned char* src, size_t len) {
  return cosocket::crc32(src, len);
}

unsigned int ngx_http_lua_ffi_crc32_long(const unsigned char* src, size_t len) {
  return cosocket::crc32(src, len);
}

void ngx_http_lua_ffi_str_replace_char(unsigned char* buf, size_t len, const unsigned char find,
                                       const unsigned char replace) {
  for (size_t i = 0; i < len; ++i)
    if (buf[i] == find) buf[i] = replace;
}

}  // extern "C"
