// codec.cc -- ngx.encode_base64, ngx.decode_base64, ngx.crc32_short and ngx.crc32_long.
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

#include "ngx/families.h"
#include "ngx/lua_args.h"

namespace cosocket {
namespace {

const char kBase64Chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int l_ngx_encode_base64(lua_State* L) {
  lua_settop(L, 2);  // coerce_string may push
  size_t len;
  const char* src = coerce_string(L, 1, &len);
  bool pad = true;
  int t = lua_type(L, 2);
  if (t == LUA_TBOOLEAN) {
    pad = !lua_toboolean(L, 2);
  } else if (t != LUA_TNONE && t != LUA_TNIL) {
    return luaL_error(L, "bad no_padding: boolean expected, got %s", lua_typename(L, t));
  }
  const auto* s = reinterpret_cast<const unsigned char*>(src);
  std::string out;
  out.reserve((len + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < len; i += 3) {
    uint32_t v = (uint32_t{s[i]} << 16) | (uint32_t{s[i + 1]} << 8) | s[i + 2];
    out.push_back(kBase64Chars[(v >> 18) & 63]);
    out.push_back(kBase64Chars[(v >> 12) & 63]);
    out.push_back(kBase64Chars[(v >> 6) & 63]);
    out.push_back(kBase64Chars[v & 63]);
  }
  if (i < len) {
    uint32_t v = uint32_t{s[i]} << 16;
    if (i + 1 < len) v |= uint32_t{s[i + 1]} << 8;
    out.push_back(kBase64Chars[(v >> 18) & 63]);
    out.push_back(kBase64Chars[(v >> 12) & 63]);
    if (i + 1 < len) {
      out.push_back(kBase64Chars[(v >> 6) & 63]);
    } else if (pad) {
      out.push_back('=');
    }
    if (pad) out.push_back('=');
  }
  lua_pushlstring(L, out.data(), out.size());
  return 1;
}

int base64_value(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

// nginx's rules: decoding stops at the first '=', anything else outside the alphabet
// is an error, and so is a length of 4n+1.
bool decode_base64(const unsigned char* s, size_t slen, std::string* out) {
  size_t len = 0;
  for (; len < slen; ++len) {
    if (s[len] == '=') break;
    if (base64_value(s[len]) < 0) return false;
  }
  if (len % 4 == 1) return false;
  out->reserve(len / 4 * 3 + 2);
  size_t i = 0;
  for (; i + 3 < len; i += 4) {
    uint32_t v = (uint32_t(base64_value(s[i])) << 18) | (uint32_t(base64_value(s[i + 1])) << 12) |
                 (uint32_t(base64_value(s[i + 2])) << 6) | uint32_t(base64_value(s[i + 3]));
    out->push_back(static_cast<char>(v >> 16));
    out->push_back(static_cast<char>((v >> 8) & 0xff));
    out->push_back(static_cast<char>(v & 0xff));
  }
  if (len - i >= 2) {
    uint32_t v = (uint32_t(base64_value(s[i])) << 18) | (uint32_t(base64_value(s[i + 1])) << 12);
    if (len - i == 3) v |= uint32_t(base64_value(s[i + 2])) << 6;
    out->push_back(static_cast<char>(v >> 16));
    if (len - i == 3) out->push_back(static_cast<char>((v >> 8) & 0xff));
  }
  return true;
}

int l_ngx_decode_base64(lua_State* L) {
  if (lua_type(L, 1) != LUA_TSTRING) return luaL_error(L, "string argument only");
  size_t len;
  const char* s = lua_tolstring(L, 1, &len);
  std::string out;
  if (!decode_base64(reinterpret_cast<const unsigned char*>(s), len, &out)) {
    lua_pushnil(L);
    return 1;
  }
  lua_pushlstring(L, out.data(), out.size());
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

// nginx has a short and a long variant that differ only in speed; both give the
// standard CRC-32.
int l_ngx_crc32(lua_State* L) {
  size_t len;
  const char* s = coerce_string(L, 1, &len);
  lua_pushnumber(L, crc32(reinterpret_cast<const unsigned char*>(s), len));
  return 1;
}

const luaL_Reg kCodecFuncs[] = {
    {"encode_base64", l_ngx_encode_base64},
    {"decode_base64", l_ngx_decode_base64},
    {"crc32_short", l_ngx_crc32},
    {"crc32_long", l_ngx_crc32},
    {nullptr, nullptr},
};

}  // namespace

void open_ngx_codec(lua_State* L, int ngx) { set_functions(L, ngx, kCodecFuncs); }

}  // namespace cosocket
