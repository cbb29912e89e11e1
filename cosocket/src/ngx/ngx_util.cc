// ngx_util.cc -- ngx.say/print/flush/log, time and string utilities.
//
// Behaviour (including error strings) was checked against lua-nginx-module 0.10.23 +
// lua-resty-core through /work/shared/tools/openresty-run; the unit tests in
// tests/ngx_util_test.cc record the oracle's answers.
#include "ngx/ngx_util.h"

#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <string>

#include <openssl/evp.h>
#include <openssl/hmac.h>

extern "C" {
#include <lauxlib.h>
#include <lua.h>
}

#include "loop/clock.h"
#include "runtime/log.h"
#include "runtime/output.h"

namespace cosocket {
namespace {

// ---------------------------------------------------------------------------
// stdout buffer shared by ngx.say, ngx.print and print.

constexpr int kMaxNesting = 100;  // ngx.say of nested tables; guards self-references

int abs_index(lua_State* L, int idx) {
  return (idx < 0 && idx > LUA_REGISTRYINDEX) ? lua_gettop(L) + idx + 1 : idx;
}

// Raises `msg` prefixed by the position of the caller's caller (Lua's error(msg, 3)
// from inside the called function), as resty.core does for escape_uri's type.
int error_at_level2(lua_State* L, const char* msg) {
  luaL_where(L, 2);
  lua_pushstring(L, msg);
  lua_concat(L, 2);
  return lua_error(L);
}

// resty.core's argument coercion for md5/escape_uri/...: nil and false become "",
// other non-strings go through tostring().
const char* coerce_string(lua_State* L, int idx, size_t* len) {
  int t = lua_type(L, idx);
  if (t == LUA_TSTRING) return lua_tolstring(L, idx, len);
  if (t == LUA_TNONE || t == LUA_TNIL || (t == LUA_TBOOLEAN && !lua_toboolean(L, idx))) {
    *len = 0;
    return "";
  }
  return push_tostring(L, idx, len);
}

// ---------------------------------------------------------------------------
// ngx.say / ngx.print

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

// ---------------------------------------------------------------------------
// ngx.log

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
  line.push_back('\n');
  flush_stdout();  // keep stdout and stderr in the order the script produced them
  write_all(STDERR_FILENO, line.data(), line.size());
  return 0;
}

// ---------------------------------------------------------------------------
// Time

const char* const kWeekDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
const char* const kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                               "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

int l_ngx_now(lua_State* L) {
  lua_pushnumber(L, clock_now());
  return 1;
}

int l_ngx_time(lua_State* L) {
  lua_pushnumber(L, static_cast<lua_Number>(clock_time()));
  return 1;
}

int l_ngx_update_time(lua_State*) {
  clock_update();
  return 0;
}

struct tm cached_tm(bool utc) {
  time_t now = static_cast<time_t>(clock_time());
  struct tm tm;
  if (utc) {
    gmtime_r(&now, &tm);
  } else {
    localtime_r(&now, &tm);
  }
  return tm;
}

int l_ngx_today(lua_State* L) {
  struct tm tm = cached_tm(false);
  char buf[32];
  int n = std::snprintf(buf, sizeof buf, "%04d-%02d-%02d", tm.tm_year + 1900, tm.tm_mon + 1,
                        tm.tm_mday);
  lua_pushlstring(L, buf, static_cast<size_t>(n));
  return 1;
}

int push_datetime(lua_State* L, bool utc) {
  struct tm tm = cached_tm(utc);
  char buf[64];
  int n = std::snprintf(buf, sizeof buf, "%04d-%02d-%02d %02d:%02d:%02d", tm.tm_year + 1900,
                        tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
  lua_pushlstring(L, buf, static_cast<size_t>(n));
  return 1;
}

int l_ngx_localtime(lua_State* L) { return push_datetime(L, false); }
int l_ngx_utctime(lua_State* L) { return push_datetime(L, true); }

// nginx clamps to [1970-01-01, 9999-12-31 23:59:59].
struct tm gm_clamped(lua_Number sec) {
  constexpr lua_Number kMax = 253402300799.0;
  if (!(sec > 0)) sec = 0;  // also NaN
  if (sec > kMax) sec = kMax;
  time_t t = static_cast<time_t>(sec);
  struct tm tm;
  gmtime_r(&t, &tm);
  return tm;
}

int l_ngx_http_time(lua_State* L) {
  if (lua_type(L, 1) != LUA_TNUMBER) return luaL_error(L, "number argument only");
  struct tm tm = gm_clamped(lua_tonumber(L, 1));
  char buf[64];
  int n = std::snprintf(buf, sizeof buf, "%s, %02d %s %4d %02d:%02d:%02d GMT",
                        kWeekDays[tm.tm_wday], tm.tm_mday, kMonths[tm.tm_mon],
                        tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
  lua_pushlstring(L, buf, static_cast<size_t>(n));
  return 1;
}

int l_ngx_cookie_time(lua_State* L) {
  if (lua_type(L, 1) != LUA_TNUMBER) return luaL_error(L, "number argument only");
  struct tm tm = gm_clamped(lua_tonumber(L, 1));
  int year = tm.tm_year + 1900;
  char buf[64];
  // Netscape-era cookies: two-digit years before 2038, as nginx does.
  int n = std::snprintf(buf, sizeof buf, "%s, %02d-%s-%02d %02d:%02d:%02d GMT",
                        kWeekDays[tm.tm_wday], tm.tm_mday, kMonths[tm.tm_mon],
                        year < 2038 ? year % 100 : year, tm.tm_hour, tm.tm_min, tm.tm_sec);
  lua_pushlstring(L, buf, static_cast<size_t>(n));
  return 1;
}

// nginx's ngx_parse_http_time(): RFC 822/1123, RFC 850 and asctime formats. Returns
// false on a malformed date.
bool parse_http_time(const char* s, size_t len, int64_t* out) {
  enum Fmt { kIsoc, kRfc822, kRfc850 } fmt = kRfc822;
  size_t p = 0;
  auto at = [&](size_t i) -> unsigned char {
    return i < len ? static_cast<unsigned char>(s[i]) : 0;
  };
  auto digit = [&](size_t i) { return at(i) >= '0' && at(i) <= '9'; };
  auto num2 = [&](size_t i) { return (at(i) - '0') * 10 + (at(i + 1) - '0'); };
  auto left = [&]() -> int64_t { return static_cast<int64_t>(len) - static_cast<int64_t>(p); };

  for (; p < len; ++p) {
    if (s[p] == ',') break;
    if (s[p] == ' ') {
      fmt = kIsoc;
      break;
    }
  }
  for (++p; p < len; ++p) {
    if (s[p] != ' ') break;
  }
  if (left() < 18) return false;

  int day = 0;
  if (fmt != kIsoc) {
    if (!digit(p) || !digit(p + 1)) return false;
    day = num2(p);
    p += 2;
    if (at(p) == ' ') {
      if (left() < 18) return false;
      fmt = kRfc822;
    } else if (at(p) == '-') {
      fmt = kRfc850;
    } else {
      return false;
    }
    ++p;
  }

  int month;
  switch (at(p)) {
    case 'J':
      month = at(p + 1) == 'a' ? 0 : at(p + 2) == 'n' ? 5 : 6;
      break;
    case 'F':
      month = 1;
      break;
    case 'M':
      month = at(p + 2) == 'r' ? 2 : 4;
      break;
    case 'A':
      month = at(p + 1) == 'p' ? 3 : 7;
      break;
    case 'S':
      month = 8;
      break;
    case 'O':
      month = 9;
      break;
    case 'N':
      month = 10;
      break;
    case 'D':
      month = 11;
      break;
    default:
      return false;
  }
  p += 3;
  if ((fmt == kRfc822 && at(p) != ' ') || (fmt == kRfc850 && at(p) != '-')) return false;
  ++p;

  int64_t year = 0;
  if (fmt == kRfc822) {
    if (!digit(p) || !digit(p + 1) || !digit(p + 2) || !digit(p + 3)) return false;
    year = num2(p) * 100 + num2(p + 2);
    p += 4;
  } else if (fmt == kRfc850) {
    if (!digit(p) || !digit(p + 1)) return false;
    year = num2(p);
    year += year < 70 ? 2000 : 1900;
    p += 2;
  }

  if (fmt == kIsoc) {
    if (at(p) == ' ') ++p;
    if (!digit(p)) return false;
    day = at(p++) - '0';
    if (at(p) != ' ') {
      if (!digit(p)) return false;
      day = day * 10 + (at(p++) - '0');
    }
    if (left() < 14) return false;
  }

  if (at(p++) != ' ') return false;
  if (!digit(p) || !digit(p + 1)) return false;
  int hour = num2(p);
  p += 2;
  if (at(p++) != ':') return false;
  if (!digit(p) || !digit(p + 1)) return false;
  int min = num2(p);
  p += 2;
  if (at(p++) != ':') return false;
  if (!digit(p) || !digit(p + 1)) return false;
  int sec = num2(p);
  p += 2;

  if (fmt == kIsoc) {
    if (at(p++) != ' ') return false;
    if (!digit(p) || !digit(p + 1) || !digit(p + 2) || !digit(p + 3)) return false;
    year = num2(p) * 100 + num2(p + 2);
  }

  if (hour > 23 || min > 59 || sec > 59) return false;
  static const int kMonthDays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (day == 29 && month == 1) {
    if ((year & 3) || (year % 100 == 0 && year % 400 != 0)) return false;
  } else if (day > kMonthDays[month]) {
    return false;
  }

  // Gauss' formula, with the year starting on March 1 and months counted from 1.
  int64_t m = month;  // 0-based
  if (--m <= 0) {
    m += 12;
    year -= 1;
  }
  int64_t days = 365 * year + year / 4 - year / 100 + year / 400 + 367 * m / 12 - 30 + day -
                 1 - 719527 + 31 + 28;
  *out = days * 86400 + hour * 3600 + min * 60 + sec;
  return true;
}

int l_ngx_parse_http_time(lua_State* L) {
  if (lua_type(L, 1) != LUA_TSTRING) return luaL_error(L, "string argument only");
  size_t len;
  const char* s = lua_tolstring(L, 1, &len);
  int64_t t;
  // nginx reports failure as NGX_ERROR (-1), so a date one second before the epoch
  // is also "invalid" there.
  if (!parse_http_time(s, len, &t) || t == -1) {
    lua_pushnil(L);
    return 1;
  }
  lua_pushnumber(L, static_cast<lua_Number>(t));
  return 1;
}

// ---------------------------------------------------------------------------
// base64, digests, crc32

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

int push_digest(lua_State* L, const EVP_MD* md, bool hex) {
  size_t len;
  const char* s = coerce_string(L, 1, &len);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int dlen = 0;
  if (EVP_Digest(s, len, digest, &dlen, md, nullptr) != 1) {
    return luaL_error(L, "%s failed", EVP_MD_get0_name(md));
  }
  if (!hex) {
    lua_pushlstring(L, reinterpret_cast<const char*>(digest), dlen);
    return 1;
  }
  static const char kHex[] = "0123456789abcdef";
  char buf[EVP_MAX_MD_SIZE * 2];
  for (unsigned int i = 0; i < dlen; ++i) {
    buf[2 * i] = kHex[digest[i] >> 4];
    buf[2 * i + 1] = kHex[digest[i] & 15];
  }
  lua_pushlstring(L, buf, dlen * 2);
  return 1;
}

int l_ngx_md5(lua_State* L) { return push_digest(L, EVP_md5(), true); }
int l_ngx_md5_bin(lua_State* L) { return push_digest(L, EVP_md5(), false); }
int l_ngx_sha1_bin(lua_State* L) { return push_digest(L, EVP_sha1(), false); }

int l_ngx_hmac_sha1(lua_State* L) {
  size_t klen, slen;
  const char* key = luaL_checklstring(L, 1, &klen);
  const char* s = luaL_checklstring(L, 2, &slen);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mlen = 0;
  if (HMAC(EVP_sha1(), key, static_cast<int>(klen), reinterpret_cast<const unsigned char*>(s),
           slen, mac, &mlen) == nullptr) {
    return luaL_error(L, "HMAC-SHA1 failed");
  }
  lua_pushlstring(L, reinterpret_cast<const char*>(mac), mlen);
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

// ---------------------------------------------------------------------------
// URI escaping, query args, SQL quoting

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

const luaL_Reg kNgxFuncs[] = {
    {"say", l_ngx_say},
    {"print", l_ngx_print},
    {"flush", l_ngx_flush},
    {"log", l_ngx_log},
    {"now", l_ngx_now},
    {"time", l_ngx_time},
    {"update_time", l_ngx_update_time},
    {"today", l_ngx_today},
    {"localtime", l_ngx_localtime},
    {"utctime", l_ngx_utctime},
    {"http_time", l_ngx_http_time},
    {"cookie_time", l_ngx_cookie_time},
    {"parse_http_time", l_ngx_parse_http_time},
    {"encode_base64", l_ngx_encode_base64},
    {"decode_base64", l_ngx_decode_base64},
    {"md5", l_ngx_md5},
    {"md5_bin", l_ngx_md5_bin},
    {"sha1_bin", l_ngx_sha1_bin},
    {"hmac_sha1", l_ngx_hmac_sha1},
    {"crc32_short", l_ngx_crc32},
    {"crc32_long", l_ngx_crc32},
    {"escape_uri", l_ngx_escape_uri},
    {"unescape_uri", l_ngx_unescape_uri},
    {"encode_args", l_ngx_encode_args},
    {"decode_args", l_ngx_decode_args},
    {"quote_sql_str", l_ngx_quote_sql_str},
    {nullptr, nullptr},
};

const char* const kLevelConstants[] = {"STDERR", "EMERG",  "ALERT", "CRIT", "ERR",
                                       "WARN",   "NOTICE", "INFO",  "DEBUG"};

}  // namespace

const char* push_tostring(lua_State* L, int idx, size_t* len) {
  idx = abs_index(L, idx);
  switch (lua_type(L, idx)) {
    case LUA_TNUMBER:
    case LUA_TSTRING:
      lua_pushvalue(L, idx);
      break;
    case LUA_TNIL:
    case LUA_TNONE:
      lua_pushliteral(L, "nil");
      break;
    case LUA_TBOOLEAN:
      lua_pushstring(L, lua_toboolean(L, idx) ? "true" : "false");
      break;
    default:
      if (luaL_callmeta(L, idx, "__tostring")) {
        if (!lua_isstring(L, -1)) luaL_error(L, "'__tostring' must return a string");
      } else {
        lua_pushfstring(L, "%s: %p", luaL_typename(L, idx), lua_topointer(L, idx));
      }
      break;
  }
  return lua_tolstring(L, -1, len);
}

void open_ngx_util(lua_State* L, int ngx) {
  for (const luaL_Reg* r = kNgxFuncs; r->name != nullptr; ++r) {
    lua_pushcfunction(L, r->func);
    lua_setfield(L, ngx, r->name);
  }
  for (int level = kStderr; level <= kDebug; ++level) {
    lua_pushinteger(L, level);
    lua_setfield(L, ngx, kLevelConstants[level]);
  }
  lua_pushcfunction(L, l_print);
  lua_setfield(L, LUA_GLOBALSINDEX, "print");
}

}  // namespace cosocket
