// Unit tests for ngx/log.cc: ngx.log and the level constants.
//
// Expected values marked "oracle" were produced by /work/shared/tools/openresty-run
// (nginx + lua-nginx-module 0.10.23 + lua-resty-core) running the same calls through
// pcall.
#include <unistd.h>

#include <cstdio>
#include <string>

#include <gtest/gtest.h>

extern "C" {
#include <lauxlib.h>
#include <lua.h>
}

#include "ngx/families.h"
#include "ngx_family_test.h"
#include "runtime/log.h"

namespace cosocket {
namespace {

using NgxLog = NgxFamilyTest<open_ngx_log>;

TEST_F(NgxLog, LogLevelConstants) {
  // oracle: 0 1 2 3 4 5 6 7 8
  EXPECT_EQ(run("ngx.STDERR, ngx.EMERG, ngx.ALERT, ngx.CRIT, ngx.ERR, ngx.WARN, ngx.NOTICE, "
                "ngx.INFO, ngx.DEBUG"),
            "0, 1, 2, 3, 4, 5, 6, 7, 8");
  EXPECT_EQ(log_level(), kNotice);
}

TEST_F(NgxLog, LogFormatsLikeNginx) {
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

TEST_F(NgxLog, LogStripsTheDirectoryFromTheSource) {
  std::string path = "/tmp/cosocket_ngx_log_test_" + std::to_string(getpid()) + ".lua";
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

TEST_F(NgxLog, LogDropsMessagesAboveTheLevel) {
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

TEST_F(NgxLog, LogArgumentErrors) {
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

}  // namespace
}  // namespace cosocket
