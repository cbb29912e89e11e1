// Unit tests for the FFI functions of time_ffi.h, called as resty.core.time calls them: each
// writes its bytes (no NUL) into the caller's buffer and nothing past them. Expected values
// are resty-cli's (/work/shared/tools/resty-ref, tests/test_resty_core_ffi.py).
#include <gtest/gtest.h>

#include <climits>
#include <cstring>
#include <string>

#include "loop/clock.h"
#include "ngx/time_ffi.h"

namespace {

// buf with a sentinel after `len` bytes: the text written, checking nothing went past it
template <typename Fn>
std::string written(size_t len, Fn fn) {
  unsigned char buf[64];
  std::memset(buf, '#', sizeof buf);
  size_t n = fn(buf);
  EXPECT_LE(n, len);
  EXPECT_EQ(buf[len], '#');
  return std::string(reinterpret_cast<char*>(buf), n);
}

std::string http_time(long t) {
  return written(kNgxHttpTimeLen, [t](unsigned char* b) {
    ngx_http_lua_ffi_http_time(b, t);
    return kNgxHttpTimeLen;
  });
}

std::string cookie_time(long t) {
  return written(kNgxCookieTimeMaxLen, [t](unsigned char* b) {
    return static_cast<size_t>(ngx_http_lua_ffi_cookie_time(b, t));
  });
}

long parse(const std::string& s) {
  long t = 12345;
  ngx_http_lua_ffi_parse_http_time(reinterpret_cast<const unsigned char*>(s.data()), s.size(), &t);
  return t;
}

TEST(TimeFfi, HttpAndCookieTime) {
  EXPECT_EQ(http_time(0), "Thu, 01 Jan 1970 00:00:00 GMT");
  EXPECT_EQ(http_time(1290079991), "Thu, 18 Nov 2010 11:33:11 GMT");
  EXPECT_EQ(http_time(-1), "Thu, 01 Jan 1970 00:00:00 GMT");
  EXPECT_EQ(http_time(LONG_MIN), "Thu, 01 Jan 1970 00:00:00 GMT");  // what 1e300 becomes
  EXPECT_EQ(http_time(253402300800L), "Fri, 31 Dec 9999 23:59:59 GMT");
  EXPECT_EQ(http_time(LONG_MAX), "Fri, 31 Dec 9999 23:59:59 GMT");
  EXPECT_EQ(cookie_time(1290079991), "Thu, 18-Nov-10 11:33:11 GMT");
  EXPECT_EQ(cookie_time(2147483648L), "Tue, 19-Jan-2038 03:14:08 GMT");
  EXPECT_EQ(cookie_time(LONG_MAX), "Fri, 31-Dec-9999 23:59:59 GMT");
}

TEST(TimeFfi, ParseHttpTime) {
  EXPECT_EQ(parse("Thu, 18 Nov 2010 11:27:35 GMT"), 1290079655);
  EXPECT_EQ(parse("Thursday, 18-Nov-10 11:27:35 GMT"), 1290079655);
  EXPECT_EQ(parse("Thu Nov  8 11:27:35 2010"), 1289215655);
  EXPECT_EQ(parse("Thu, 31 Dec 1969 23:59:58 GMT"), -2);
  EXPECT_EQ(parse("Thu, 29 Feb 2001 00:00:00 GMT"), -1);
  EXPECT_EQ(parse(""), -1);
  EXPECT_EQ(parse("garbage"), -1);
}

TEST(TimeFfi, CachedClock) {
  ngx_http_lua_ffi_update_time();
  double now = ngx_http_lua_ffi_now();
  EXPECT_EQ(ngx_http_lua_ffi_time(), static_cast<long>(now));
  EXPECT_EQ(ngx_http_lua_ffi_monotonic_msec(), static_cast<long>(cosocket::clock_mono_ms()));
  std::string today = written(kNgxTodayLen, [](unsigned char* b) {
    ngx_http_lua_ffi_today(b);
    return kNgxTodayLen;
  });
  std::string local = written(kNgxDateTimeLen, [](unsigned char* b) {
    ngx_http_lua_ffi_localtime(b);
    return kNgxDateTimeLen;
  });
  std::string utc = written(kNgxDateTimeLen, [](unsigned char* b) {
    ngx_http_lua_ffi_utctime(b);
    return kNgxDateTimeLen;
  });
  EXPECT_EQ(local.substr(0, 10), today);
  time_t t = static_cast<time_t>(now);
  struct tm tm;
  gmtime_r(&t, &tm);
  char expect[32];
  std::strftime(expect, sizeof expect, "%Y-%m-%d %H:%M:%S", &tm);
  EXPECT_EQ(utc, expect);
}

}  // namespace
