// Unit tests for ngx/output.cc: ngx.say, ngx.print, ngx.flush and print.
//
// Expected values marked "oracle" were produced by /work/shared/tools/openresty-run
// (nginx + lua-nginx-module 0.10.23 + lua-resty-core) running the same calls through
// pcall.
#include <unistd.h>

#include <string>

#include <gtest/gtest.h>

#include "ngx/families.h"
#include "ngx_family_test.h"
#include "runtime/output.h"

namespace cosocket {
namespace {

using NgxOutput = NgxFamilyTest<open_ngx_output>;

TEST_F(NgxOutput, SayPrintsScalarsAndNestedArrays) {
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

TEST_F(NgxOutput, SayRejectsBadArgumentsBeforeWriting) {
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

TEST_F(NgxOutput, PrintAndSayShareOneOrderedBuffer) {
  CaptureFd cap(STDOUT_FILENO);
  exec("ngx.print('a') print('b', nil, 1, true) ngx.say('c')");
  EXPECT_EQ(run("ngx.flush(true)"), "1");
  EXPECT_EQ(run("ngx.flush()"), "1");
  EXPECT_EQ(cap.finish(), "ab\tnil\t1\ttrue\nc\n");
}

TEST_F(NgxOutput, PrintUsesTostringMetamethod) {
  CaptureFd cap(STDOUT_FILENO);
  exec("print(setmetatable({}, {__tostring = function() return 'M' end}))");
  flush_stdout();
  EXPECT_EQ(cap.finish(), "M\n");
}

TEST_F(NgxOutput, FlushStdoutIsANoOpWhenEmpty) {
  CaptureFd cap(STDOUT_FILENO);
  flush_stdout();
  flush_stdout();
  EXPECT_EQ(cap.finish(), "");
}

}  // namespace
}  // namespace cosocket
