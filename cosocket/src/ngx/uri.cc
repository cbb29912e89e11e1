// uri.cc -- ngx.escape_uri, ngx.unescape_uri, ngx.encode_args and ngx.decode_args.
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

void escape_uri(const char* src, size_t len, int type, std::string* out) {
  static const char kHex[] = "0123456789ABCDEF";
  for (size_t i = 0; i < len; ++i) {
    auto c = static_cast<unsigned char>(src[i]);
    if (must_escape(type, c)) {
      out->push_back('%');
      out->push_back(kHex[c >> 4]);
      out->push_back(kHex[c & 15]);
    } else {
      out->push_back(static_cast<char>(c));
    }
  }
}

int hex_value(unsigned char c) {
  if (c >= '0' && c <= '9') return c - '0';
  c |= 0x20;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// ngx_lua's unescaping: "%XX" decodes, '+' becomes a space, a '%' not followed by two
// hex digits is kept as is.
void unescape_uri(const char* src, size_t len, std::string* out) {
  for (size_t i = 0; i < len; ++i) {
    auto c = static_cast<unsigned char>(src[i]);
    if (c == '%' && i + 2 < len) {
      int hi = hex_value(static_cast<unsigned char>(src[i + 1]));
      int lo = hex_value(static_cast<unsigned char>(src[i + 2]));
      if (hi >= 0 && lo >= 0) {
        out->push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
      out->push_back('%');
    } else if (c == '+') {
      out->push_back(' ');
    } else {
      out->push_back(static_cast<char>(c));
    }
  }
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
  // Per-type table of the bytes to escape, built once; nothing to escape (the common case
  // for keys) returns the string itself, no copy.
  static bool table[kEscMailAuth + 1][256];
  static bool built = false;
  if (!built) {
    for (int t = kEscUri; t <= kEscMailAuth; ++t)
      for (int c = 0; c < 256; ++c) table[t][c] = must_escape(t, static_cast<unsigned char>(c));
    built = true;
  }
  const bool* esc = table[type];
  size_t n = 0;
  for (size_t i = 0; i < len; ++i) n += esc[static_cast<unsigned char>(s[i])];
  if (n == 0) {
    if (lua_type(L, 1) == LUA_TSTRING) lua_pushvalue(L, 1);
    else lua_pushlstring(L, s, len);
    return 1;
  }
  // the result's size is known: one copy into a stack buffer (or one allocation)
  static const char kHex[] = "0123456789ABCDEF";
  size_t out_len = len + 2 * n;
  char small[512];
  std::string big;
  char* out = small;
  if (out_len > sizeof small) {
    big.resize(out_len);
    out = &big[0];
  }
  char* o = out;
  for (size_t i = 0; i < len; ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (esc[c]) {
      *o++ = '%';
      *o++ = kHex[c >> 4];
      *o++ = kHex[c & 15];
    } else {
      *o++ = static_cast<char>(c);
    }
  }
  lua_pushlstring(L, out, out_len);
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
