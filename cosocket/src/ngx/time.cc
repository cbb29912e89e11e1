// time.cc -- ngx.now, ngx.time, ngx.update_time, ngx.today, ngx.localtime, ngx.utctime,
// ngx.http_time, ngx.cookie_time and ngx.parse_http_time, on the loop's cached clock
// (loop/clock.h), and the FFI functions of resty.core.time behind them (time_ffi.h).
//
// Behaviour (including error strings) was checked against lua-nginx-module 0.10.23 +
// lua-resty-core through /work/shared/tools/openresty-run; the unit tests in
// tests/ngx_time_test.cc record the oracle's answers.
#include "ngx/time_ffi.h"

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>

extern "C" {
#include <lauxlib.h>
#include <lua.h>
}

#include "loop/clock.h"
#include "ngx/families.h"

namespace cosocket {
namespace {

const char* const kWeekDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
const char* const kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                               "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

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

// snprintf's output without its terminating NUL, as nginx's ngx_sprintf writes it: at most
// `room` bytes into buf; returns how many.
template <typename... Args>
size_t format(unsigned char* buf, size_t room, const char* fmt, Args... args) {
  char tmp[64];
  int n = std::snprintf(tmp, sizeof tmp, fmt, args...);
  size_t len = n < 0 ? 0 : std::min({static_cast<size_t>(n), room, sizeof tmp - 1});
  std::memcpy(buf, tmp, len);
  return len;
}

void format_datetime(unsigned char* buf, bool utc) {
  struct tm tm = cached_tm(utc);
  format(buf, kNgxDateTimeLen, "%04d-%02d-%02d %02d:%02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1,
         tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

// nginx clamps to [1970-01-01, 9999-12-31 23:59:59].
struct tm gm_clamped(long sec) {
  constexpr long kMax = 253402300799L;
  if (sec < 0) sec = 0;
  if (sec > kMax) sec = kMax;
  time_t t = static_cast<time_t>(sec);
  struct tm tm;
  gmtime_r(&t, &tm);
  return tm;
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

// The Lua C API bindings: they call the FFI functions at the end of the file, which
// resty.core.time calls.

// What LuaJIT's FFI makes of a number passed as a C long (x86-64's cvttsd2si): the value
// truncated, LONG_MIN for NaN and anything out of range (resty-cli: 1e300 is 1970).
long to_long(lua_Number d) {
  constexpr lua_Number kTwo63 = 9223372036854775808.0;
  return d >= -kTwo63 && d < kTwo63 ? static_cast<long>(d) : LONG_MIN;
}

int l_ngx_now(lua_State* L) {
  lua_pushnumber(L, ngx_http_lua_ffi_now());
  return 1;
}

int l_ngx_time(lua_State* L) {
  lua_pushnumber(L, static_cast<lua_Number>(ngx_http_lua_ffi_time()));
  return 1;
}

int l_ngx_update_time(lua_State*) {
  ngx_http_lua_ffi_update_time();
  return 0;
}

// A binding of a void f(unsigned char *buf) that writes kLen bytes.
template <void (*Fn)(unsigned char*), size_t kLen>
int l_ngx_clock_string(lua_State* L) {
  unsigned char buf[kLen];
  Fn(buf);
  lua_pushlstring(L, reinterpret_cast<const char*>(buf), kLen);
  return 1;
}

int l_ngx_http_time(lua_State* L) {
  if (lua_type(L, 1) != LUA_TNUMBER) return luaL_error(L, "number argument only");
  unsigned char buf[kNgxHttpTimeLen];
  ngx_http_lua_ffi_http_time(buf, to_long(lua_tonumber(L, 1)));
  lua_pushlstring(L, reinterpret_cast<const char*>(buf), sizeof buf);
  return 1;
}

int l_ngx_cookie_time(lua_State* L) {
  if (lua_type(L, 1) != LUA_TNUMBER) return luaL_error(L, "number argument only");
  unsigned char buf[kNgxCookieTimeMaxLen];
  int n = ngx_http_lua_ffi_cookie_time(buf, to_long(lua_tonumber(L, 1)));
  lua_pushlstring(L, reinterpret_cast<const char*>(buf), static_cast<size_t>(n));
  return 1;
}

int l_ngx_parse_http_time(lua_State* L) {
  if (lua_type(L, 1) != LUA_TSTRING) return luaL_error(L, "string argument only");
  size_t len;
  const char* s = lua_tolstring(L, 1, &len);
  long t;
  ngx_http_lua_ffi_parse_http_time(reinterpret_cast<const unsigned char*>(s), len, &t);
  if (t == -1) {  // NGX_ERROR, so a second before the epoch is "invalid" too, as in nginx
    lua_pushnil(L);
    return 1;
  }
  lua_pushnumber(L, static_cast<lua_Number>(t));
  return 1;
}

const luaL_Reg kTimeFuncs[] = {
    {"now", l_ngx_now},
    {"time", l_ngx_time},
    {"update_time", l_ngx_update_time},
    {"today", l_ngx_clock_string<ngx_http_lua_ffi_today, kNgxTodayLen>},
    {"localtime", l_ngx_clock_string<ngx_http_lua_ffi_localtime, kNgxDateTimeLen>},
    {"utctime", l_ngx_clock_string<ngx_http_lua_ffi_utctime, kNgxDateTimeLen>},
    {"http_time", l_ngx_http_time},
    {"cookie_time", l_ngx_cookie_time},
    {"parse_http_time", l_ngx_parse_http_time},
    {nullptr, nullptr},
};

}  // namespace

void open_ngx_time(lua_State* L, int ngx) { set_functions(L, ngx, kTimeFuncs); }

}  // namespace cosocket

extern "C" {

double ngx_http_lua_ffi_now(void) { return cosocket::clock_now(); }
long ngx_http_lua_ffi_time(void) { return cosocket::clock_time(); }
long ngx_http_lua_ffi_monotonic_msec(void) { return static_cast<long>(cosocket::clock_mono_ms()); }
void ngx_http_lua_ffi_update_time(void) { cosocket::clock_update(); }

void ngx_http_lua_ffi_today(unsigned char* buf) {
  struct tm tm = cosocket::cached_tm(false);
  cosocket::format(buf, kNgxTodayLen, "%04d-%02d-%02d", tm.tm_year + 1900, tm.tm_mon + 1,
                   tm.tm_mday);
}

void ngx_http_lua_ffi_localtime(unsigned char* buf) { cosocket::format_datetime(buf, false); }
void ngx_http_lua_ffi_utctime(unsigned char* buf) { cosocket::format_datetime(buf, true); }

int ngx_http_lua_ffi_cookie_time(unsigned char* buf, long t) {
  struct tm tm = cosocket::gm_clamped(t);
  int year = tm.tm_year + 1900;
  // Netscape-era cookies: two-digit years before 2038, as nginx does.
  return static_cast<int>(cosocket::format(
      buf, kNgxCookieTimeMaxLen, "%s, %02d-%s-%02d %02d:%02d:%02d GMT",
      cosocket::kWeekDays[tm.tm_wday], tm.tm_mday, cosocket::kMonths[tm.tm_mon],
      year < 2038 ? year % 100 : year, tm.tm_hour, tm.tm_min, tm.tm_sec));
}

void ngx_http_lua_ffi_http_time(unsigned char* buf, long t) {
  struct tm tm = cosocket::gm_clamped(t);
  cosocket::format(buf, kNgxHttpTimeLen, "%s, %02d %s %4d %02d:%02d:%02d GMT",
                   cosocket::kWeekDays[tm.tm_wday], tm.tm_mday, cosocket::kMonths[tm.tm_mon],
                   tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

void ngx_http_lua_ffi_parse_http_time(const unsigned char* str, size_t len, long* time) {
  int64_t t;
  *time = cosocket::parse_http_time(reinterpret_cast<const char*>(str), len, &t) ? t : -1;
}

}  // extern "C"
