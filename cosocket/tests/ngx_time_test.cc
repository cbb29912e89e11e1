// Unit tests for ngx/time.cc and loop/clock.cc.
//
// Expected values marked "oracle" were produced by /work/shared/tools/openresty-run
// (nginx + lua-nginx-module 0.10.23 + lua-resty-core) running the same calls through
// pcall.
#include <sys/time.h>
#include <unistd.h>

#include <cmath>
#include <ctime>
#include <string>

#include <gtest/gtest.h>

#include "loop/clock.h"
#include "ngx/families.h"
#include "ngx_family_test.h"

namespace cosocket {
namespace {

using NgxTime = NgxFamilyTest<open_ngx_time>;

TEST(Clock, CachesUntilUpdated) {
  clock_update();
  struct timeval before;
  gettimeofday(&before, nullptr);
  clock_update();
  double now = clock_now();
  EXPECT_GE(now, static_cast<double>(before.tv_sec));
  EXPECT_LE(now, static_cast<double>(before.tv_sec) + 2);
  EXPECT_EQ(clock_time(), static_cast<long>(std::floor(now)));
  EXPECT_DOUBLE_EQ(std::round(now * 1000) / 1000, now);  // millisecond resolution
  usleep(20000);
  EXPECT_EQ(clock_now(), now);  // cached
  clock_update();
  EXPECT_GT(clock_now(), now);
}

TEST_F(NgxTime, NowTimeUpdateTime) {
  clock_update();
  EXPECT_EQ(run("type(ngx.now()), ngx.time() == math.floor(ngx.now())"), "\"number\", true");
  double before = clock_now();
  usleep(20000);
  EXPECT_EQ(run("ngx.now() == ngx.now()"), "true");
  EXPECT_EQ(run("ngx.update_time()"), "");  // oracle: returns nothing
  EXPECT_GT(clock_now(), before);
}

TEST_F(NgxTime, TodayLocaltimeUtctime) {
  clock_update();
  time_t now = static_cast<time_t>(clock_time());
  struct tm lt, gt;
  localtime_r(&now, &lt);
  gmtime_r(&now, &gt);
  char today[32], local[32], utc[32];
  std::strftime(today, sizeof today, "%Y-%m-%d", &lt);
  std::strftime(local, sizeof local, "%Y-%m-%d %H:%M:%S", &lt);
  std::strftime(utc, sizeof utc, "%Y-%m-%d %H:%M:%S", &gt);
  EXPECT_EQ(run("ngx.today()"), "\"" + std::string(today) + "\"");
  EXPECT_EQ(run("ngx.localtime()"), "\"" + std::string(local) + "\"");
  EXPECT_EQ(run("ngx.utctime()"), "\"" + std::string(utc) + "\"");
}

TEST_F(NgxTime, HttpTimeAndCookieTime) {
  // oracle values
  EXPECT_EQ(run("ngx.http_time(0)"), "\"Thu, 01 Jan 1970 00:00:00 GMT\"");
  EXPECT_EQ(run("ngx.http_time(1290079655)"), "\"Thu, 18 Nov 2010 11:27:35 GMT\"");
  EXPECT_EQ(run("ngx.http_time(1290079655.9)"), "\"Thu, 18 Nov 2010 11:27:35 GMT\"");
  EXPECT_EQ(run("ngx.http_time(-86401)"), "\"Thu, 01 Jan 1970 00:00:00 GMT\"");
  EXPECT_EQ(run("ngx.http_time(1e15)"), "\"Fri, 31 Dec 9999 23:59:59 GMT\"");
  EXPECT_EQ(run("E(ngx.http_time, '1290079655')"), "\"number argument only\"");
  EXPECT_EQ(run("E(ngx.http_time, nil)"), "\"number argument only\"");
  EXPECT_EQ(run("ngx.cookie_time(1290079655)"), "\"Thu, 18-Nov-10 11:27:35 GMT\"");
  EXPECT_EQ(run("ngx.cookie_time(0)"), "\"Thu, 01-Jan-70 00:00:00 GMT\"");
  EXPECT_EQ(run("ngx.cookie_time(2145916800)"), "\"Fri, 01-Jan-2038 00:00:00 GMT\"");
  EXPECT_EQ(run("ngx.cookie_time(4102444800)"), "\"Fri, 01-Jan-2100 00:00:00 GMT\"");
  EXPECT_EQ(run("E(ngx.cookie_time, 'x')"), "\"number argument only\"");
}

TEST_F(NgxTime, ParseHttpTime) {
  // oracle values
  EXPECT_EQ(run("ngx.parse_http_time('Thu, 18 Nov 2010 11:27:35 GMT')"), "1290079655");
  EXPECT_EQ(run("ngx.parse_http_time('Thursday, 18-Nov-10 11:27:35 GMT')"), "1290079655");
  EXPECT_EQ(run("ngx.parse_http_time('Thu Nov 18 11:27:35 2010')"), "1290079655");
  EXPECT_EQ(run("ngx.parse_http_time('Thu Nov  8 11:27:35 2010')"), "1289215655");
  EXPECT_EQ(run("ngx.parse_http_time('Thu,   18 Nov 2010 11:27:35 GMT')"), "1290079655");
  EXPECT_EQ(run("ngx.parse_http_time('Thu, 18 Nov 2010 11:27:35')"), "1290079655");
  EXPECT_EQ(run("ngx.parse_http_time('Mon, 18 Nov 2010 11:27:35 GMT')"), "1290079655");
  EXPECT_EQ(run("ngx.parse_http_time('Thu, 01 Jan 1970 00:00:00 GMT')"), "0");
  EXPECT_EQ(run("ngx.parse_http_time('Wed, 31 Dec 1969 23:59:58 GMT')"), "-2");
  EXPECT_EQ(run("ngx.parse_http_time('Mon, 01 Jan 1900 00:00:00 GMT')"), "-2208988800");
  EXPECT_EQ(run("ngx.parse_http_time('Thursday, 18-Nov-69 11:27:35 GMT')"), "3151999655");
  EXPECT_EQ(run("ngx.parse_http_time('Tue, 29 Feb 2000 00:00:00 GMT')"), "951782400");
  EXPECT_EQ(run("ngx.parse_http_time('Fri, 31 Dec 9999 23:59:59 GMT')"), "253402300799");
  EXPECT_EQ(run("ngx.parse_http_time('Thu, 00 Nov 2010 11:27:35 GMT')"), "1288524455");
  // oracle: nil for all of these
  for (const char* bad :
       {"garbage", "", "Thu, 18-Nov-2010 11:27:35 GMT", "Wed, 31 Dec 1969 23:59:59 GMT",
        "Thu, 32 Nov 2010 11:27:35 GMT", "Sun, 29 Feb 2009 11:27:35 GMT",
        "Thu, 29 Feb 2100 00:00:00 GMT", "Thu, 18 Nov 2010 24:00:00 GMT",
        "Thu, 18 Nov 2010 11:27:60 GMT", "thu, 18 nov 2010 11:27:35 gmt",
        "Thu, 8 Nov 2010 11:27:35 GMT", "Thu, 18 Nov 2010 11:27", "Thu18 Nov 2010 11:27:35 GMT"}) {
    EXPECT_EQ(run(std::string("ngx.parse_http_time('") + bad + "')"), "nil") << bad;
  }
  EXPECT_EQ(run("E(ngx.parse_http_time, nil)"), "\"string argument only\"");
  EXPECT_EQ(run("E(ngx.parse_http_time, 12)"), "\"string argument only\"");
}

}  // namespace
}  // namespace cosocket
