// Unit tests for ngx_util.cc and clock.cc.
//
// Expected values marked "oracle" were produced by /work/shared/tools/openresty-run
// (nginx + lua-nginx-module 0.10.23 + lua-resty-core) running the same calls through
// pcall; the others are RFC test vectors.
#include <sys/time.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <ctime>
#include <memory>
#include <string>

#include <gtest/gtest.h>

extern "C" {
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
}

#include "loop/clock.h"
#include "lua_eval.h"
#include "ngx/ngx_util.h"
#include "runtime/log.h"
#include "runtime/output.h"

namespace cosocket {
namespace {

// Redirects a file descriptor to a temporary file until finish() or destruction.
class CaptureFd {
 public:
  explicit CaptureFd(int fd) : fd_(fd), file_(std::tmpfile(), &std::fclose) {
    saved_ = dup(fd_);
    dup2(fileno(file_.get()), fd_);
  }
  ~CaptureFd() { restore(); }
  CaptureFd(const CaptureFd&) = delete;
  CaptureFd& operator=(const CaptureFd&) = delete;

  std::string finish() {
    if (fd_ == STDOUT_FILENO) flush_stdout();
    restore();
    std::string out;
    std::rewind(file_.get());
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, file_.get())) > 0) out.append(buf, n);
    return out;
  }

 private:
  void restore() {
    if (saved_ < 0) return;
    dup2(saved_, fd_);
    close(saved_);
    saved_ = -1;
  }

  int fd_;
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file_;
  int saved_ = -1;
};

class NgxUtil : public LuaEvalTest {
 protected:
  void open_ngx(int ngx) override { open_ngx_util(L, ngx); }

  void SetUp() override {
    LuaEvalTest::SetUp();
    if (HasFatalFailure()) return;
    saved_level_ = log_level();
    flush_stdout();
  }
  void TearDown() override {
    flush_stdout();
    set_log_level(saved_level_);
    LuaEvalTest::TearDown();
  }

  // Runs statements, returning "" or the error message.
  std::string exec(const std::string& code) {
    if (luaL_dostring(L, code.c_str()) != 0) {
      std::string err = lua_tostring(L, -1);
      lua_pop(L, 1);
      return err;
    }
    return "";
  }

  int saved_level_ = kNotice;
};

// ---------------------------------------------------------------------------
// ngx.say / ngx.print / ngx.flush / print

TEST_F(NgxUtil, SayPrintsScalarsAndNestedArrays) {
  CaptureFd cap(STDOUT_FILENO);
  // oracle: "hello 1 truenilnull12x"
  EXPECT_EQ(exec("assert(ngx.say('hello ', 1, ' ', true, nil, ngx.null, {1, {2, 'x'}}) == 1)"),
            "");
  // oracle: "1nil3", "truefalsenull", "" (empty table), "1.510"
  exec("ngx.say({1, nil, 3}) ngx.say({true, false, ngx.null}) ngx.say({}) ngx.say({1.5, 10})");
  // oracle: "1.5 1e+100 0.1 0 inf 9.007199254741e+15 100"
  exec("ngx.say(1.5, ' ', 1e100, ' ', 0.1, ' ', -0.0, ' ', 1/0, ' ', 2^53, ' ', 100)");
  EXPECT_EQ(exec("assert(ngx.print('a', {'b', 'c'}) == 1) ngx.print('\\n')"), "");
  EXPECT_EQ(exec("assert(ngx.say() == 1)"), "");
  flush_stdout();
  EXPECT_EQ(cap.finish(),
            "hello 1 truenilnull12x\n1nil3\ntruefalsenull\n\n1.510\n"
            "1.5 1e+100 0.1 0 inf 9.007199254741e+15 100\nabc\n\n");
}

TEST_F(NgxUtil, SayRejectsBadArgumentsBeforeWriting) {
  CaptureFd cap(STDOUT_FILENO);
  // oracle texts (pcall hides the function name as '?')
  EXPECT_EQ(run("E(ngx.say, print)"),
            "\"bad argument #1 to '?' (string, number, boolean, nil, ngx.null, or array table "
            "expected, but got function)\"");
  EXPECT_EQ(run("E(ngx.say, 'a', 'b', print)"),
            "\"bad argument #3 to '?' (string, number, boolean, nil, ngx.null, or array table "
            "expected, but got function)\"");
  EXPECT_EQ(run("E(ngx.say, coroutine.create(function() end))"),
            "\"bad argument #1 to '?' (string, number, boolean, nil, ngx.null, or array table "
            "expected, but got thread)\"");
  EXPECT_EQ(run("E(ngx.say, {a = 1})"), "\"bad argument #1 to '?' (non-array table found)\"");
  EXPECT_EQ(run("E(ngx.say, 'a', {1, {a = 1}})"),
            "\"bad argument #2 to '?' (non-array table found)\"");
  EXPECT_EQ(run("E(ngx.say, {[0] = 1})"), "\"bad argument #1 to '?' (non-array table found)\"");
  EXPECT_EQ(run("E(ngx.say, {[1.5] = 1})"), "\"bad argument #1 to '?' (non-array table found)\"");
  EXPECT_EQ(run("E(ngx.say, {1, {print}})"),
            "\"bad argument #1 to '?' (bad data type function found)\"");
  EXPECT_EQ(run("E(ngx.print, 'a', {}, print)"),
            "\"bad argument #3 to '?' (string, number, boolean, nil, ngx.null, or array table "
            "expected, but got function)\"");
  // A self-referencing table is refused instead of recursing forever (not in OpenResty).
  EXPECT_NE(run("E(function() local t = {} t[1] = t ngx.say(t) end)").find("too deep"),
            std::string::npos);
  flush_stdout();
  EXPECT_EQ(cap.finish(), "");
}

TEST_F(NgxUtil, PrintAndSayShareOneOrderedBuffer) {
  CaptureFd cap(STDOUT_FILENO);
  exec("ngx.print('a') print('b', nil, 1, true) ngx.say('c')");
  EXPECT_EQ(run("ngx.flush(true)"), "1");
  EXPECT_EQ(run("ngx.flush()"), "1");
  EXPECT_EQ(cap.finish(), "ab\tnil\t1\ttrue\nc\n");
}

TEST_F(NgxUtil, PrintUsesTostringMetamethod) {
  CaptureFd cap(STDOUT_FILENO);
  exec("print(setmetatable({}, {__tostring = function() return 'M' end}))");
  flush_stdout();
  EXPECT_EQ(cap.finish(), "M\n");
}

TEST_F(NgxUtil, FlushStdoutIsANoOpWhenEmpty) {
  CaptureFd cap(STDOUT_FILENO);
  flush_stdout();
  flush_stdout();
  EXPECT_EQ(cap.finish(), "");
}

// ---------------------------------------------------------------------------
// ngx.log

TEST_F(NgxUtil, LogLevelConstants) {
  // oracle: 0 1 2 3 4 5 6 7 8
  EXPECT_EQ(run("ngx.STDERR, ngx.EMERG, ngx.ALERT, ngx.CRIT, ngx.ERR, ngx.WARN, ngx.NOTICE, "
                "ngx.INFO, ngx.DEBUG"),
            "0, 1, 2, 3, 4, 5, 6, 7, 8");
  EXPECT_EQ(log_level(), kNotice);
}

TEST_F(NgxUtil, LogFormatsLikeNginx) {
  CaptureFd cap(STDERR_FILENO);
  exec("ngx.log(ngx.ERR, 'x', nil, true, 1.5)\n"
       "local function lg() ngx.log(ngx.WARN, 'from lg') end\n"
       "lg()\n"
       "ngx.log(ngx.ERR, setmetatable({}, {__tostring = function() return 'META' end}), "
       "ngx.null, false, 1e100)\n"
       "pcall(ngx.log, ngx.CRIT, 'float')\n"
       "ngx.log(ngx.STDERR, 'stderr-level')\n");
  std::string err = cap.finish();
  std::string pid = std::to_string(getpid());
  // oracle: "[lua] t0.lua:3: xniltrue1.5", "t3.lua:34: lg(): from lg", "[C]:-1: float",
  // "[] ... stderr-level"
  EXPECT_NE(err.find(" [error] " + pid + "#0: [lua] [string \"ngx.log(ngx.ERR, 'x', nil, "
                     "true, 1.5)...\"]:1: xniltrue1.5\n"),
            std::string::npos)
      << err;
  EXPECT_NE(err.find(" [warn] " + pid + "#0: [lua] [string \"ngx.log(ngx.ERR, 'x', nil, true, "
                     "1.5)...\"]:2: lg(): from lg\n"),
            std::string::npos)
      << err;
  EXPECT_NE(err.find(":4: METAnullfalse1e+100\n"), std::string::npos) << err;
  EXPECT_NE(err.find(" [crit] " + pid + "#0: [lua] [C]:-1: float\n"), std::string::npos) << err;
  EXPECT_NE(err.find(" [] " + pid + "#0: [lua] "), std::string::npos) << err;
  // The line starts with the local time: "YYYY/MM/DD HH:MM:SS ".
  ASSERT_GE(err.size(), 20u);
  EXPECT_EQ(err[4], '/');
  EXPECT_EQ(err[7], '/');
  EXPECT_EQ(err[10], ' ');
  EXPECT_EQ(err[13], ':');
  EXPECT_EQ(err[16], ':');
}

TEST_F(NgxUtil, LogStripsTheDirectoryFromTheSource) {
  std::string path = "/tmp/cosocket_ngx_util_test_" + std::to_string(getpid()) + ".lua";
  std::FILE* f = std::fopen(path.c_str(), "w");
  ASSERT_NE(f, nullptr);
  std::fputs("\nngx.log(ngx.ERR, 'in file')\n", f);
  std::fclose(f);
  CaptureFd cap(STDERR_FILENO);
  int rc = luaL_dofile(L, path.c_str());
  std::string err = cap.finish();
  std::remove(path.c_str());
  ASSERT_EQ(rc, 0);
  std::string base = path.substr(5);
  EXPECT_NE(err.find("[lua] " + base + ":2: in file\n"), std::string::npos) << err;
}

TEST_F(NgxUtil, LogDropsMessagesAboveTheLevel) {
  CaptureFd cap(STDERR_FILENO);
  set_log_level(kWarn);
  exec("ngx.log(ngx.INFO, 'dropped') ngx.log(ngx.WARN, 'kept')");
  // oracle: a dropped level does not even check its arguments
  EXPECT_EQ(exec("ngx.log(ngx.DEBUG, print)"), "");
  std::string err = cap.finish();
  EXPECT_EQ(err.find("[info]"), std::string::npos) << err;
  EXPECT_EQ(err.find("[debug]"), std::string::npos) << err;
  EXPECT_NE(err.find("[warn]"), std::string::npos) << err;
}

TEST_F(NgxUtil, LogArgumentErrors) {
  CaptureFd cap(STDERR_FILENO);
  // oracle texts
  EXPECT_EQ(run("E(ngx.log, 'x', 'msg')"), "\"bad argument #1 to '?' (number expected, got string)\"");
  EXPECT_EQ(run("E(ngx.log, nil, 'msg')"), "\"bad argument #1 to '?' (number expected, got nil)\"");
  EXPECT_EQ(run("E(ngx.log)"), "\"bad argument #1 to '?' (number expected, got no value)\"");
  EXPECT_EQ(run("E(ngx.log, 9, 'msg')"), "\"bad argument #1 to '?' (bad log level: 9)\"");
  EXPECT_EQ(run("E(ngx.log, -1, 'msg')"), "\"bad argument #1 to '?' (bad log level: -1)\"");
  EXPECT_EQ(run("E(ngx.log, ngx.ERR, {})"),
            "\"bad argument #1 to '?' (expected table to have __tostring metamethod)\"");
  EXPECT_EQ(run("E(ngx.log, ngx.ERR, 'a', print)"),
            "\"bad argument #2 to '?' (string, number, boolean, or nil expected, got function)\"");
  EXPECT_EQ(run("ngx.log(ngx.ERR, 'r')"), "");  // returns nothing
  EXPECT_EQ(run("E(ngx.log, '4', 'numeric string level')"), "\"no error\"");
  std::string err = cap.finish();
  EXPECT_NE(err.find("[error]"), std::string::npos);
  EXPECT_NE(err.find("numeric string level"), std::string::npos);
}

// ---------------------------------------------------------------------------
// Time

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

TEST_F(NgxUtil, NowTimeUpdateTime) {
  clock_update();
  EXPECT_EQ(run("type(ngx.now()), ngx.time() == math.floor(ngx.now())"), "\"number\", true");
  double before = clock_now();
  usleep(20000);
  EXPECT_EQ(run("ngx.now() == ngx.now()"), "true");
  EXPECT_EQ(run("ngx.update_time()"), "");  // oracle: returns nothing
  EXPECT_GT(clock_now(), before);
}

TEST_F(NgxUtil, TodayLocaltimeUtctime) {
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

TEST_F(NgxUtil, HttpTimeAndCookieTime) {
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

TEST_F(NgxUtil, ParseHttpTime) {
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

// ---------------------------------------------------------------------------
// base64, digests, crc32

TEST_F(NgxUtil, EncodeBase64) {
  // RFC 4648 section 10
  EXPECT_EQ(run("ngx.encode_base64(''), ngx.encode_base64('f'), ngx.encode_base64('fo'), "
                "ngx.encode_base64('foo'), ngx.encode_base64('foob'), "
                "ngx.encode_base64('fooba'), ngx.encode_base64('foobar')"),
            "\"\", \"Zg==\", \"Zm8=\", \"Zm9v\", \"Zm9vYg==\", \"Zm9vYmE=\", \"Zm9vYmFy\"");
  // oracle: no_padding, coercion and its error
  EXPECT_EQ(run("ngx.encode_base64('fo', true), ngx.encode_base64('f', true), "
                "ngx.encode_base64('f', false), ngx.encode_base64('f', nil)"),
            "\"Zm8\", \"Zg\", \"Zg==\", \"Zg==\"");
  EXPECT_EQ(run("ngx.encode_base64(nil), ngx.encode_base64(123), ngx.encode_base64(true), "
                "ngx.encode_base64()"),
            "\"\", \"MTIz\", \"dHJ1ZQ==\", \"\"");
  EXPECT_EQ(run("E(ngx.encode_base64, 'f', 1)"), "\"bad no_padding: boolean expected, got number\"");
  EXPECT_EQ(run("ngx.decode_base64(ngx.encode_base64({})):match('^table: ') ~= nil"), "true");
}

TEST_F(NgxUtil, DecodeBase64) {
  // RFC 4648 vectors round-trip; the rest is oracle
  EXPECT_EQ(run("ngx.decode_base64('Zm9vYmFy'), ngx.decode_base64('Zm9vYg=='), "
                "ngx.decode_base64('Zm9vYmE=')"),
            "\"foobar\", \"foob\", \"fooba\"");
  EXPECT_EQ(run("ngx.decode_base64('Zg'), ngx.decode_base64('Zg='), ngx.decode_base64('Zh=='), "
                "ngx.decode_base64('Zm9='), ngx.decode_base64('===='), "
                "ngx.decode_base64('Zg==Zg=='), ngx.decode_base64('Zg==='), "
                "ngx.decode_base64('')"),
            "\"f\", \"f\", \"f\", \"fo\", \"\", \"f\", \"f\", \"\"");
  EXPECT_EQ(run("ngx.decode_base64('+/+/')"), "\"\xFB\xFF\xBF\"");
  EXPECT_EQ(run("ngx.decode_base64('Z'), ngx.decode_base64('Zm9v!'), "
                "ngx.decode_base64('Zm 9v'), ngx.decode_base64('-_-_'), "
                "ngx.decode_base64('Zm9vY')"),
            "nil, nil, nil, nil, nil");
  EXPECT_EQ(run("E(ngx.decode_base64, nil), E(ngx.decode_base64, 1234), E(ngx.decode_base64, {})"),
            "\"string argument only\", \"string argument only\", \"string argument only\"");
}

TEST_F(NgxUtil, Md5Sha1Hmac) {
  // RFC 1321 appendix A.5
  EXPECT_EQ(run("ngx.md5(''), ngx.md5('abc'), ngx.md5('message digest')"),
            "\"d41d8cd98f00b204e9800998ecf8427e\", \"900150983cd24fb0d6963f7d28e17f72\", "
            "\"f96b697d7cb7938d525a2f31aaf161d0\"");
  // oracle coercions: nil -> "", numbers and booleans via tostring
  EXPECT_EQ(run("ngx.md5(nil), ngx.md5(12), ngx.md5(true)"),
            "\"d41d8cd98f00b204e9800998ecf8427e\", \"c20ad4d76fe97759aa27a0c99bff6710\", "
            "\"b326b5062b2f0e69046810717534cb09\"");
  EXPECT_EQ(run("ngx.encode_base64(ngx.md5_bin('abc')), #ngx.md5_bin(nil)"),
            "\"kAFQmDzST7DWlj99KOF/cg==\", 16");
  // FIPS 180 "abc"; sha1("") for nil (oracle)
  EXPECT_EQ(run("ngx.encode_base64(ngx.sha1_bin('abc')), ngx.encode_base64(ngx.sha1_bin(nil))"),
            "\"qZk+NkcGgWq6PiVxeFDCbJzQ2J0=\", \"2jmj7l5rSw0yVb/vlWAYkK/YBwk=\"");
  // RFC 2202 test cases 1 and 2
  EXPECT_EQ(run("ngx.encode_base64(ngx.hmac_sha1(string.rep('\\11', 20), 'Hi There'))"),
            "\"thcxhlUFcmTii8C2+zeMjvFGvgA=\"");  // b617318655057264e28bc0b6fb378c8ef146be00
  EXPECT_EQ(run("ngx.encode_base64(ngx.hmac_sha1('Jefe', 'what do ya want for nothing?'))"),
            "\"7/zfauXrL6LSdBbV8YTfnCWafHk=\"");  // effcdf6ae5eb2fa2d27416d5f184df9c259a7c79
  // oracle
  EXPECT_EQ(run("ngx.encode_base64(ngx.hmac_sha1('key', "
                "'The quick brown fox jumps over the lazy dog')), "
                "ngx.encode_base64(ngx.hmac_sha1(1, 2))"),
            "\"3nybhbi3iqa8ino29wqQcBydtNk=\", \"0HXKErglmgsnQ48HUxSju4ipJ7U=\"");
  EXPECT_EQ(run("E(ngx.hmac_sha1, nil, 'x'), E(ngx.hmac_sha1, {}, 'x'), E(ngx.hmac_sha1, 'x', {})"),
            "\"bad argument #1 to '?' (string expected, got nil)\", "
            "\"bad argument #1 to '?' (string expected, got table)\", "
            "\"bad argument #2 to '?' (string expected, got table)\"");
  EXPECT_NE(exec("ngx.hmac_sha1(nil, nil)").find("bad argument #1 to 'hmac_sha1' (string "
                                                 "expected, got nil)"),
            std::string::npos);
}

TEST_F(NgxUtil, Crc32) {
  // check value of CRC-32 (0xCBF43926) and oracle results
  EXPECT_EQ(run("ngx.crc32_short('123456789'), ngx.crc32_long('123456789')"),
            "3421780262, 3421780262");
  EXPECT_EQ(run("ngx.crc32_short(''), ngx.crc32_long(''), ngx.crc32_short(nil), "
                "ngx.crc32_short(5)"),
            "0, 0, 0, 2226203566");
  EXPECT_EQ(run("ngx.crc32_long(string.rep('hello world ', 100)), "
                "ngx.crc32_short(string.rep('hello world ', 100))"),
            "4289797911, 4289797911");
}

// ---------------------------------------------------------------------------
// URI escaping, args, SQL quoting

// Lists, per escape type, the bytes that ngx.escape_uri escapes.
const char kEscapedBytes[] = R"lua(
local function escaped(t)
  local out = {}
  for b = 0, 255 do
    local c = string.char(b)
    if ngx.escape_uri(c, t) ~= c then out[#out + 1] = string.format("%02x", b) end
  end
  return table.concat(out, " ")
end
return escaped(TYPE)
)lua";

std::string high_bytes() {
  std::string s;
  for (int b = 0x80; b <= 0xff; ++b) {
    char buf[4];
    std::snprintf(buf, sizeof buf, " %02x", b);
    s += buf;
  }
  return s;
}

std::string control_bytes() {
  std::string s;
  for (int b = 0; b <= 0x20; ++b) {
    char buf[4];
    std::snprintf(buf, sizeof buf, "%s%02x", b ? " " : "", b);
    s += buf;
  }
  return s;
}

TEST_F(NgxUtil, EscapeUriTablesMatchTheOracle) {
  const std::string ctl = control_bytes(), high = " 7f" + high_bytes();
  // oracle: escape_uri of each byte, for each type
  const std::string expected[] = {
      ctl + " 23 25 3f" + high,
      ctl + " 23 25 2b 3f" + high,
      ctl + " 22 23 24 25 26 2b 2c 2f 3a 3b 3c 3d 3e 3f 40 5b 5c 5d 5e 60 7b 7c 7d" + high,
      ctl + " 22 23 25 27" + high,
      ctl + " 22 27" + high,
      ctl + " 25",
      ctl + " 25",
  };
  for (int type = 0; type <= 6; ++type) {
    std::string code = kEscapedBytes;
    code.replace(code.find("TYPE"), 4, std::to_string(type));
    ASSERT_EQ(luaL_dostring(L, code.c_str()), 0) << lua_tostring(L, -1);
    EXPECT_EQ(lua_tostring(L, -1), expected[type]) << "type " << type;
    lua_pop(L, 1);
  }
}

TEST_F(NgxUtil, EscapeUri) {
  // oracle
  EXPECT_EQ(run("ngx.escape_uri(\"a b/c?d=\\195\\169~!*'()\")"),
            "\"a%20b%2Fc%3Fd%3D%C3%A9~!*'()\"");
  EXPECT_EQ(run("ngx.escape_uri(\"a b/c?d=\\195\\169~!*'()\", 0)"),
            "\"a%20b/c%3Fd=%C3%A9~!*'()\"");
  EXPECT_EQ(run("ngx.escape_uri(nil), ngx.escape_uri(12.5), ngx.escape_uri('a b', 2.5)"),
            "\"\", \"12.5\", \"a%20b\"");
  // oracle: these are raised at the caller's caller (error level 3 in resty.core), which
  // under E() is E's pcall line in the helper chunk: "[string "..."]:<line>: "type" ..."
  auto ends_with = [](const std::string& s, const std::string& tail) {
    return s.rfind("\"[string ", 0) == 0 && s.size() >= tail.size() &&
           s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
  };
  EXPECT_PRED2(ends_with, run("E(ngx.escape_uri, 'x', '2')"), ": \\\"type\\\" is not a number\"");
  EXPECT_PRED2(ends_with, run("E(ngx.escape_uri, 'x', 7)"), ": \\\"type\\\" 7 out of range\"");
  EXPECT_PRED2(ends_with, run("E(ngx.escape_uri, 'x', -1)"), ": \\\"type\\\" -1 out of range\"");
  EXPECT_PRED2(ends_with, run("E(ngx.escape_uri, 'x', 6.5)"), ": \\\"type\\\" 6.5 out of range\"");
  EXPECT_EQ(exec("local function f() ngx.escape_uri('x', 7) end\nf()"),
            "[string \"local function f() ngx.escape_uri('x', 7) end...\"]:2: \"type\" 7 out of "
            "range");
}

TEST_F(NgxUtil, UnescapeUri) {
  // oracle
  EXPECT_EQ(run("ngx.unescape_uri('a%20b+c%2x%zz%%41%4a%4A%')"), "\"a b c%2x%zz%AJJ%\"");
  EXPECT_EQ(run("ngx.unescape_uri('%e4%b8%ad%')"), "\"\xE4\xB8\xAD%\"");
  EXPECT_EQ(run("ngx.unescape_uri(nil), ngx.unescape_uri(5), #ngx.unescape_uri('a%00b'), "
                "ngx.unescape_uri('ab%4')"),
            "\"\", \"5\", 3, \"ab%4\"");
}

TEST_F(NgxUtil, EncodeArgs) {
  // oracle
  EXPECT_EQ(run("ngx.encode_args({a = 'b c'})"), "\"a=b%20c\"");
  EXPECT_EQ(run("ngx.encode_args({a = {'1', '2', 3}})"), "\"a=1&a=2&a=3\"");
  EXPECT_EQ(run("ngx.encode_args({flag = true}), ngx.encode_args({flag = false})"),
            "\"flag\", \"\"");
  EXPECT_EQ(run("ngx.encode_args({n = 1.5}), ngx.encode_args({a = {}}), ngx.encode_args({})"),
            "\"n=1.5\", \"\", \"\"");
  EXPECT_EQ(run("ngx.encode_args({a = {true, false, 'x'}})"), "\"a&a=x\"");
  EXPECT_EQ(run("ngx.encode_args({['a b&'] = '=&?'}), ngx.encode_args({a = ''})"),
            "\"a%20b%26=%3D%26%3F\", \"a=\"");
  EXPECT_EQ(run("ngx.encode_args({a = {1, b = 2}}), ngx.encode_args({a = {[2] = 'x', [1] = 'y'}})"),
            "\"a=1&a=2\", \"a=y&a=x\"");
  EXPECT_EQ(run("ngx.encode_args({a = {1.5, 'x y'}})"), "\"a=1.5&a=x%20y\"");
  // a hash table's order is unspecified: compare as a set
  EXPECT_EQ(run("(function() local s = ngx.encode_args({a = 1, b = 2}) "
                "return s == 'a=1&b=2' or s == 'b=2&a=1' end)()"),
            "true");
  EXPECT_EQ(run("E(ngx.encode_args, {[1] = 'x'}), E(ngx.encode_args, {[true] = 1})"),
            "\"attempt to use a non-string key in the \\\"args\\\" option table\", "
            "\"attempt to use a non-string key in the \\\"args\\\" option table\"");
  EXPECT_EQ(run("E(ngx.encode_args, {a = {{1}}}), E(ngx.encode_args, {a = ngx.null}), "
                "E(ngx.encode_args, {a = print})"),
            "\"attempt to use table as query arg value\", "
            "\"attempt to use userdata as query arg value\", "
            "\"attempt to use function as query arg value\"");
  EXPECT_EQ(run("E(ngx.encode_args, 'x'), E(ngx.encode_args, nil)"),
            "\"bad argument #1 to '?' (table expected, got string)\", "
            "\"bad argument #1 to '?' (table expected, got nil)\"");
}

TEST_F(NgxUtil, DecodeArgs) {
  // oracle
  EXPECT_EQ(run("ngx.decode_args('a=1&b=2&a=3&c&d=&=e&&f=x%20y+z')"),
            "{a={[1]=\"1\",[2]=\"3\"},b=\"2\",c=true,d=\"\",f=\"x y z\"}");
  EXPECT_EQ(run("ngx.decode_args('a=1&b=2&c=3', 2)"), "{a=\"1\",b=\"2\"}, \"truncated\"");
  EXPECT_EQ(run("ngx.decode_args('a=1&b=2&c=3', 0), ngx.decode_args('a=1&b=2&c=3', -1)"),
            "{a=\"1\",b=\"2\",c=\"3\"}, {a=\"1\",b=\"2\",c=\"3\"}");
  EXPECT_EQ(run("#ngx.decode_args(string.rep('a=1&', 150)).a, "
                "select(2, ngx.decode_args(string.rep('a=1&', 150)))"),
            "100, \"truncated\"");
  EXPECT_EQ(run("select('#', ngx.decode_args(string.rep('a=1&', 99) .. 'a=1')), "
                "select('#', ngx.decode_args(string.rep('a=1&', 100)))"),
            "1, 2");
  EXPECT_EQ(run("select('#', ngx.decode_args('a&b&c', 3)), select('#', ngx.decode_args('a&b&c&', 3))"),
            "1, 2");
  EXPECT_EQ(run("ngx.decode_args('a&b&&c&d', 3)"), "{a=true,b=true}, \"truncated\"");
  EXPECT_EQ(run("ngx.decode_args('=1&=2&a=1', 2)"), "{}, \"truncated\"");
  EXPECT_EQ(run("ngx.decode_args(12), ngx.decode_args(''), ngx.decode_args('a=1', '2')"),
            "{[\"12\"]=true}, {}, {a=\"1\"}");
  EXPECT_EQ(run("ngx.decode_args('a=b=c'), ngx.decode_args('a%20b=c%3dd&%3D=1')"),
            "{a=\"b=c\"}, {[\"=\"]=\"1\",[\"a b\"]=\"c=d\"}");
  EXPECT_EQ(run("ngx.decode_args('a&a&a=1'), ngx.decode_args('a=&a=')"),
            "{a={[1]=true,[2]=true,[3]=\"1\"}}, {a={[1]=\"\",[2]=\"\"}}");
  EXPECT_EQ(run("ngx.decode_args('a=1;b=2'), ngx.decode_args('&&&'), ngx.decode_args('='), "
                "ngx.decode_args('=1&=2')"),
            "{a=\"1;b=2\"}, {}, {}, {}");
  EXPECT_EQ(run("E(ngx.decode_args), E(ngx.decode_args, nil), E(ngx.decode_args, {}), "
                "E(ngx.decode_args, 'a=1', 'x'), E(ngx.decode_args, 'a=1', nil)"),
            "\"expecting 1 or 2 arguments but seen 0\", "
            "\"bad argument #1 to '?' (string expected, got nil)\", "
            "\"bad argument #1 to '?' (string expected, got table)\", "
            "\"bad argument #2 to '?' (number expected, got string)\", "
            "\"bad argument #2 to '?' (number expected, got nil)\"");
}

TEST_F(NgxUtil, QuoteSqlStr) {
  // oracle
  EXPECT_EQ(run("ngx.quote_sql_str('a\\'b\"c\\\\d\\0e\\n\\r\\t\\26\\b')"),
            "\"'a\\\\'b\\\\\\\"c\\\\\\\\d\\\\0e\\\\n\\\\r\\\\t\\\\Z\\\\b'\"");
  EXPECT_EQ(run("ngx.quote_sql_str(12), ngx.quote_sql_str('')"), "\"'12'\", \"''\"");
  EXPECT_EQ(run("E(ngx.quote_sql_str), E(ngx.quote_sql_str, nil), E(ngx.quote_sql_str, {})"),
            "\"expecting one argument\", "
            "\"bad argument #1 to '?' (string expected, got nil)\", "
            "\"bad argument #1 to '?' (string expected, got table)\"");
  // oracle: exactly these bytes are escaped
  EXPECT_EQ(run("(function() local s = {} for b = 0, 255 do "
                "local q = ngx.quote_sql_str(string.char(b)) "
                "if q ~= \"'\" .. string.char(b) .. \"'\" then s[#s + 1] = string.format('%02x', b) end "
                "end return table.concat(s, ' ') end)()"),
            "\"00 08 09 0a 0d 1a 22 27 5c\"");
}

}  // namespace
}  // namespace cosocket
