// time.cc -- ngx.now, ngx.time, ngx.update_time, ngx.today, ngx.localtime, ngx.utctime,
// ngx.http_time, ngx.cookie_time and ngx.parse_http_time, on the loop's cached clock
// (loop/clock.h).
//
// Behaviour (including error strings) was checked against lua-nginx-module 0.10.23 +
// lua-resty-core through /work/shared/tools/openresty-run; the unit tests in
// tests/ngx_time_test.cc record the oracle's answers.
#include <cstdint>
#include <cstdio>
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

const luaL_Reg kTimeFuncs[] = {
    {"now", l_ngx_now},
    {"time", l_ngx_time},
    {"update_time", l_ngx_update_time},
    {"today", l_ngx_today},
    {"localtime", l_ngx_localtime},
    {"utctime", l_ngx_utctime},
    {"http_time", l_ngx_http_time},
    {"cookie_time", l_ngx_cookie_time},
    {"parse_http_time", l_ngx_parse_http_time},
    {nullptr, nullptr},
};

}  // namespace

void open_ngx_time(lua_State* L, int ngx) { set_functions(L, ngx, kTimeFuncs); }

}  // namespace cosocket
