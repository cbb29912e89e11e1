// uri.cc -- ngx.escape_uri, ngx.unescape_uri, ngx.encode_args and ngx.decode_args, and the
// FFI functions of resty.core.uri behind the first two (string_ffi.h), which all four use.
//
// Behaviour (including error strings) was checked against lua-nginx-module 0.10.23 +
// lua-resty-core through /work/shared/tools/openresty-run; the unit tests in
// tests/ngx_uri_test.cc record the oracle's answers.
#include <cstring>
#include <string>

extern "C" {
#include <lauxlib.h>
#include <lua.h>
}

#include "ngx/families.h"
#include "ngx/lua_args.h"
#include "ngx/string_ffi.h"

namespace cosocket {
namespace {

// Raises `msg` prefixed by the position of the caller's caller (Lua's error(msg, 3)
// from inside the called function), as resty.core does for escape_uri's type.
int error_at_level2(lua_State* L, const char* msg) {
  luaL_where(L, 2);
  lua_pushstring(L, msg);
  lua_concat(L, 2);
  return lua_error(L);
}

enum EscapeType { kEscUri = 0, kEscArgs, kEscUriComponent, kEscHtml, kEscRefresh,
                  kEscMemcached, kEscMailAuth };

// Which bytes each ngx.escape_uri type escapes (taken byte by byte from the oracle).
bool must_escape(int type, unsigned char c) {
  if (c <= 0x20) return true;  // control characters and space: every type
  switch (type) {
    case kEscUri:
      return c >= 0x7f || c == '#' || c == '%' || c == '?';
    case kEscArgs:
      return c >= 0x7f || c == '#' || c == '%' || c == '+' || c == '?';
    case kEscUriComponent:
      if (c >= 0x7f) return true;
      if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
        return false;
      }
      return std::strchr("-._~!*'()", c) == nullptr;
    case kEscHtml:
      return c >= 0x7f || c == '"' || c == '#' || c == '%' || c == '\'';
    case kEscRefresh:
      return c >= 0x7f || c == '"' || c == '\'';
    default:  // memcached, mail_auth
      return c == '%';
  }
}

// Per-type tables of the bytes to escape, built once.
struct EscapeTables {
  bool v[kEscMailAuth + 1][256];
  EscapeTables() {
    for (int t = kEscUri; t <= kEscMailAuth; ++t)
      for (int c = 0; c < 256; ++c) v[t][c] = must_escape(t, static_cast<unsigned char>(c));
  }
};

const bool* escape_table(int type) {
  static const EscapeTables tables;
  if (type < kEscUri || type > kEscMailAuth) type = kEscUriComponent;  // callers check first
  return tables.v[type];
}

// Appends src[0, len) escaped as `type` (ngx.encode_args' pieces), through the FFI functions.
void escape_uri(const char* src, size_t len, int type, std::string* out) {
  auto s = reinterpret_cast<const unsigned char*>(src);
  size_t at = out->size();
  out->resize(at + ngx_http_lua_ffi_uri_escaped_length(s, len, type));
  ngx_http_lua_ffi_escape_uri(s, len, reinterpret_cast<unsigned char*>(&(*out)[at]), type);
}

int hex_value(unsigned char c) {
  if (c >= '0' && c <= '9') return c - '0';
  c |= 0x20;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// Appends src[0, len) unescaped (ngx_http_lua_ffi_unescape_uri) to out.
void unescape_uri(const char* src, size_t len, std::string* out) {
  size_t at = out->size();
  out->resize(at + len);  // unescaping never lengthens
  size_t n = ngx_http_lua_ffi_unescape_uri(reinterpret_cast<const unsigned char*>(src), len,
                                           reinterpret_cast<unsigned char*>(&(*out)[at]));
  out->resize(at + n);
}

int l_ngx_escape_uri(lua_State* L) {
  lua_settop(L, 2);  // coerce_string may push
  size_t len;
  const char* s = coerce_string(L, 1, &len);
  int type = kEscUriComponent;
  if (!lua_isnoneornil(L, 2)) {
    if (lua_type(L, 2) != LUA_TNUMBER) return error_at_level2(L, "\"type\" is not a number");
    lua_Number t = lua_tonumber(L, 2);
    if (!(t >= kEscUri && t <= kEscMailAuth)) {
      lua_pushvalue(L, 2);
      const char* num = lua_tostring(L, -1);
      return error_at_level2(L, lua_pushfstring(L, "\"type\" %s out of range", num));
    }
    type = static_cast<int>(t);
  }
  // nothing to escape (the common case for keys) returns the string itself, no copy
  auto src = reinterpret_cast<const unsigned char*>(s);
  size_t out_len = ngx_http_lua_ffi_uri_escaped_length(src, len, type);
  if (out_len == len) {
    if (lua_type(L, 1) == LUA_TSTRING) lua_pushvalue(L, 1);
    else lua_pushlstring(L, s, len);
    return 1;
  }
  // one copy into a stack buffer (or one allocation)
  unsigned char small[512];
  std::string big;
  unsigned char* out = small;
  if (out_len > sizeof small) {
    big.resize(out_len);
    out = reinterpret_cast<unsigned char*>(&big[0]);
  }
  ngx_http_lua_ffi_escape_uri(src, len, out, type);
  lua_pushlstring(L, reinterpret_cast<const char*>(out), out_len);
  return 1;
}

int l_ngx_unescape_uri(lua_State* L) {
  size_t len;
  const char* s = coerce_string(L, 1, &len);
  std::string out;
  out.reserve(len);
  unescape_uri(s, len, &out);
  lua_pushlstring(L, out.data(), out.size());
  return 1;
}

int args_value_error(lua_State* L, int idx) {
  return luaL_error(L, "attempt to use %s as query arg value", luaL_typename(L, idx));
}

// First pass of ngx.encode_args: every error is raised before anything is built.
void encode_args_check(lua_State* L, int tbl) {
  lua_pushnil(L);
  while (lua_next(L, tbl) != 0) {
    if (lua_type(L, -2) != LUA_TSTRING) {
      luaL_error(L, "attempt to use a non-string key in the \"args\" option table");
    }
    switch (lua_type(L, -1)) {
      case LUA_TSTRING:
      case LUA_TNUMBER:
      case LUA_TBOOLEAN:
        break;
      case LUA_TTABLE: {
        int inner = lua_gettop(L);
        lua_pushnil(L);
        while (lua_next(L, inner) != 0) {
          int t = lua_type(L, -1);
          if (t != LUA_TSTRING && t != LUA_TNUMBER && t != LUA_TBOOLEAN) {
            args_value_error(L, -1);
          }
          lua_pop(L, 1);
        }
        break;
      }
      default:
        args_value_error(L, -1);
    }
    lua_pop(L, 1);
  }
}

// Appends "key" or "key=value" for the scalar at `val`; false adds nothing.
void encode_arg(lua_State* L, const char* key, size_t klen, int val, std::string* out) {
  if (lua_type(L, val) == LUA_TBOOLEAN) {
    if (!lua_toboolean(L, val)) return;
    if (!out->empty()) out->push_back('&');
    escape_uri(key, klen, kEscUriComponent, out);
    return;
  }
  lua_pushvalue(L, val);  // tolstring converts numbers in place: work on a copy
  size_t vlen;
  const char* v = lua_tolstring(L, -1, &vlen);
  if (!out->empty()) out->push_back('&');
  escape_uri(key, klen, kEscUriComponent, out);
  out->push_back('=');
  escape_uri(v, vlen, kEscUriComponent, out);
  lua_pop(L, 1);
}

int l_ngx_encode_args(lua_State* L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  encode_args_check(L, 1);
  std::string out;
  lua_pushnil(L);
  while (lua_next(L, 1) != 0) {
    size_t klen;
    const char* key = lua_tolstring(L, -2, &klen);
    if (lua_type(L, -1) == LUA_TTABLE) {
      int inner = lua_gettop(L);
      lua_pushnil(L);
      while (lua_next(L, inner) != 0) {
        encode_arg(L, key, klen, lua_gettop(L), &out);
        lua_pop(L, 1);
      }
    } else {
      encode_arg(L, key, klen, lua_gettop(L), &out);
    }
    lua_pop(L, 1);
  }
  lua_pushlstring(L, out.data(), out.size());
  return 1;
}

// Stack: ... key value. Stores them into the table at `tbl`, turning a repeated key
// into an array of its values. Pops both.
void set_multi_value(lua_State* L, int tbl) {
  lua_pushvalue(L, -2);
  lua_rawget(L, tbl);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    lua_rawset(L, tbl);
  } else if (lua_istable(L, -1)) {
    int n = static_cast<int>(lua_objlen(L, -1));
    lua_insert(L, -2);           // key existing value
    lua_rawseti(L, -2, n + 1);   // key existing
    lua_pop(L, 2);
  } else {
    lua_createtable(L, 4, 0);    // key value old arr
    lua_insert(L, -2);           // key value arr old
    lua_rawseti(L, -2, 1);       // key value arr
    lua_insert(L, -2);           // key arr value
    lua_rawseti(L, -2, 2);       // key arr
    lua_rawset(L, tbl);
  }
}

// Pushes the unescaped piece [from, to) of `s`.
void push_unescaped(lua_State* L, const char* s, size_t from, size_t to) {
  std::string piece;
  unescape_uri(s + from, to - from, &piece);
  lua_pushlstring(L, piece.data(), piece.size());
}

// Stack: ... key value. Drops pairs with an empty key, stores the others.
void store_arg(lua_State* L, int tbl) {
  size_t klen = 0;
  lua_tolstring(L, -2, &klen);
  if (klen == 0) {
    lua_pop(L, 2);
  } else {
    set_multi_value(L, tbl);
  }
}

int l_ngx_decode_args(lua_State* L) {
  int nargs = lua_gettop(L);
  if (nargs != 1 && nargs != 2) {
    return luaL_error(L, "expecting 1 or 2 arguments but seen %d", nargs);
  }
  size_t len;
  const char* s = luaL_checklstring(L, 1, &len);
  int max = 100;
  if (nargs == 2) max = luaL_checkint(L, 2);

  lua_createtable(L, 0, 4);
  int tbl = lua_gettop(L);
  size_t p = 0, q = 0;
  bool parsing_value = false;
  int count = 0;
  while (p != len) {
    if (s[p] == '=' && !parsing_value) {
      push_unescaped(L, s, q, p);  // the key
      q = ++p;
      parsing_value = true;
    } else if (s[p] == '&') {
      push_unescaped(L, s, q, p);  // a value, or a key without one
      if (!parsing_value) lua_pushboolean(L, 1);
      parsing_value = false;
      q = ++p;
      store_arg(L, tbl);
      if (max > 0 && ++count == max) {
        lua_pushliteral(L, "truncated");
        return 2;
      }
    } else {
      ++p;
    }
  }
  if (p != q || parsing_value) {
    push_unescaped(L, s, q, p);
    if (!parsing_value) lua_pushboolean(L, 1);
    store_arg(L, tbl);
  }
  return 1;
}

const luaL_Reg kUriFuncs[] = {
    {"escape_uri", l_ngx_escape_uri},
    {"unescape_uri", l_ngx_unescape_uri},
    {"encode_args", l_ngx_encode_args},
    {"decode_args", l_ngx_decode_args},
    {nullptr, nullptr},
};

}  // namespace

void open_ngx_uri(lua_State* L, int ngx) { set_functions(L, ngx, kUriFuncs); }

}  // namespace cosocket

extern "C" {

size_t ngx_http_lua_ffi_uri_escaped_length(const unsigned char* src, size_t len, int type) {
  const bool* esc = cosocket::escape_table(type);
  size_t n = 0;
  for (size_t i = 0; i < len; ++i) n += esc[src[i]];
  return len + 2 * n;
}

void ngx_http_lua_ffi_escape_uri(const unsigned char* src, size_t len, unsigned char* dst, int type) {
  static const char kHex[] = "0123456789ABCDEF";
  const bool* esc = cosocket::escape_table(type);
  for (size_t i = 0; i < len; ++i) {
    unsigned char c = src[i];
    if (esc[c]) {
      *dst++ = '%';
      *dst++ = static_cast<unsigned char>(kHex[c >> 4]);
      *dst++ = static_cast<unsigned char>(kHex[c & 15]);
    } else {
      *dst++ = c;
    }
  }
}

// ngx_lua's unescaping: "%XX" decodes, '+' becomes a space, a '%' not followed by two hex
// digits is kept as is.
size_t ngx_http_lua_ffi_unescape_uri(const unsigned char* src, size_t len, unsigned char* dst) {
  unsigned char* d = dst;
  for (size_t i = 0; i < len; ++i) {
    unsigned char c = src[i];
    if (c == '%' && i + 2 < len) {
      int hi = cosocket::hex_value(src[i + 1]);
      int lo = cosocket::hex_value(src[i + 2]);
      if (hi >= 0 && lo >= 0) {
        *d++ = static_cast<unsigned char>(hi * 16 + lo);
        i += 2;
        continue;
      }
      *d++ = '%';
    } else if (c == '+') {
      *d++ = ' ';
    } else {
      *d++ = c;
    }
  }
  return static_cast<size_t>(d - dst);
}

}  // extern "C"
