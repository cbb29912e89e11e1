// Unit tests for scheduler.cc (light threads) through the Runtime: scripts that use
// ngx.thread.spawn/wait/kill, ngx.sleep, timers and ngx.exit, checked through the
// globals they leave in the (still open) Lua state after run().
#include <unistd.h>

#include <csignal>
#include <string>

#include <gtest/gtest.h>

#include "ngx/api.h"
#include "runtime/runtime.h"

namespace cosocket {
namespace {

// Runs `script` as the entry thread; returns run()'s status.
int run_script(Runtime& rt, const char* script) {
  if (luaL_loadstring(rt.L(), script) != 0) {
    ADD_FAILURE() << "script does not compile: " << lua_tostring(rt.L(), -1);
    lua_pop(rt.L(), 1);
    return -1;
  }
  return rt.run(0);
}

std::string global_string(Runtime& rt, const char* name) {
  lua_getglobal(rt.L(), name);
  if (lua_isboolean(rt.L(), -1)) {
    std::string b = lua_toboolean(rt.L(), -1) ? "true" : "false";
    lua_pop(rt.L(), 1);
    return b;
  }
  size_t len = 0;
  const char* s = lua_tolstring(rt.L(), -1, &len);
  std::string out = s ? std::string(s, len) : std::string("<") + luaL_typename(rt.L(), -1) + ">";
  lua_pop(rt.L(), 1);
  return out;
}

// A hang must fail the test, not block ctest: every script runs under an alarm in
// the tests below that could hang (deadlock, exit paths).
class AlarmGuard {
 public:
  explicit AlarmGuard(unsigned sec) { alarm(sec); }
  ~AlarmGuard() { alarm(0); }
};

class SchedulerTest : public ::testing::Test {
 protected:
  Config cfg_;
  AlarmGuard guard_{10};
};

TEST_F(SchedulerTest, EntryThreadSucceeds) {
  Runtime rt(cfg_, open_api);
  EXPECT_EQ(0, run_script(rt, "result = 1 + 1"));
  EXPECT_EQ("2", global_string(rt, "result"));
  EXPECT_EQ(0u, rt.sched().alive());
}

TEST_F(SchedulerTest, EntryThreadErrorGivesStatusOne) {
  Runtime rt(cfg_, open_api);
  testing::internal::CaptureStderr();
  int st = run_script(rt, "before = true; error('boom-entry'); after = true");
  std::string err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(1, st);
  EXPECT_NE(std::string::npos, err.find("boom-entry")) << err;
  EXPECT_EQ("true", global_string(rt, "before"));
  EXPECT_EQ("<nil>", global_string(rt, "after"));
}

TEST_F(SchedulerTest, NonStringErrorObject) {
  Runtime rt(cfg_, open_api);
  testing::internal::CaptureStderr();
  int st = run_script(rt, "error({})");
  std::string err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(1, st);
  EXPECT_NE(std::string::npos, err.find("table")) << err;
}

TEST_F(SchedulerTest, SpawnRunsChildFirstUntilItYields) {
  Runtime rt(cfg_, open_api);
  EXPECT_EQ(0, run_script(rt, R"(
    local log = {}
    local function rec(x) log[#log + 1] = x end
    local t1 = ngx.thread.spawn(function() rec("a1"); ngx.sleep(0); rec("a2") end)
    rec("main1")
    local t2 = ngx.thread.spawn(function() rec("b1") end)
    rec("main2")
    ngx.thread.wait(t1)
    rec("main3")
    result = table.concat(log, ",")
  )"));
  EXPECT_EQ("a1,main1,b1,main2,a2,main3", global_string(rt, "result"));
}

TEST_F(SchedulerTest, SpawnReturnsAThreadAndPassesArguments) {
  Runtime rt(cfg_, open_api);
  EXPECT_EQ(0, run_script(rt, R"(
    local t = ngx.thread.spawn(function(a, b, c) got = a .. b .. tostring(c) end, "x", "y", nil)
    kind = type(t)
  )"));
  EXPECT_EQ("thread", global_string(rt, "kind"));
  EXPECT_EQ("xynil", global_string(rt, "got"));
}

TEST_F(SchedulerTest, WaitReturnsResults) {
  Runtime rt(cfg_, open_api);
  EXPECT_EQ(0, run_script(rt, R"(
    -- finishes later: the parent is waiting when it ends
    local t = ngx.thread.spawn(function(a, b) ngx.sleep(0.01); return a + b, "x" end, 2, 3)
    local ok, s, x = ngx.thread.wait(t)
    r1 = tostring(ok) .. "," .. tostring(s) .. "," .. tostring(x)
    -- finishes at once: a zombie until waited for
    local z = ngx.thread.spawn(function() return "z1", nil, "z3" end)
    local res = { ngx.thread.wait(z) }
    r2 = table.concat({ tostring(res[1]), tostring(res[2]), tostring(res[3]), tostring(res[4]) }, ",")
    r2n = select("#", ngx.thread.wait(ngx.thread.spawn(function() return 1, nil, nil end)))
    -- waited twice
    local ok2, err2 = ngx.thread.wait(z)
    r3 = tostring(ok2) .. "," .. tostring(err2)
  )"));
  EXPECT_EQ("true,5,x", global_string(rt, "r1"));
  EXPECT_EQ("true,z1,nil,z3", global_string(rt, "r2"));
  EXPECT_EQ("4", global_string(rt, "r2n"));
  EXPECT_EQ("nil,already waited or killed", global_string(rt, "r3"));
}

TEST_F(SchedulerTest, WaitOnFailedThreadReturnsFalseAndError) {
  Runtime rt(cfg_, open_api);
  testing::internal::CaptureStderr();
  int st = run_script(rt, R"(
    local t = ngx.thread.spawn(function() ngx.sleep(0.005); error("child-fail", 0) end)
    local ok, err = ngx.thread.wait(t)
    r = tostring(ok) .. "," .. tostring(err)
    local z = ngx.thread.spawn(function() error("zombie-fail", 0) end)
    local ok2, err2 = ngx.thread.wait(z)
    r2 = tostring(ok2) .. "," .. tostring(err2)
  )");
  std::string err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(0, st) << "a user thread's error does not fail the entry thread";
  EXPECT_EQ("false,child-fail", global_string(rt, "r"));
  EXPECT_EQ("false,zombie-fail", global_string(rt, "r2"));
  EXPECT_NE(std::string::npos, err.find("child-fail")) << err;
}

TEST_F(SchedulerTest, WaitOnSeveralReturnsTheFirstToFinish) {
  Runtime rt(cfg_, open_api);
  EXPECT_EQ(0, run_script(rt, R"(
    local slow = ngx.thread.spawn(function() ngx.sleep(0.05); return "slow" end)
    local fast = ngx.thread.spawn(function() ngx.sleep(0.01); return "fast" end)
    local ok, v = ngx.thread.wait(slow, fast)
    first = v
    local ok2, v2 = ngx.thread.wait(slow)
    second = v2
  )"));
  EXPECT_EQ("fast", global_string(rt, "first"));
  EXPECT_EQ("slow", global_string(rt, "second"));
}

TEST_F(SchedulerTest, KillStopsAThread) {
  Runtime rt(cfg_, open_api);
  EXPECT_EQ(0, run_script(rt, R"(
    local t = ngx.thread.spawn(function() ngx.sleep(0.02); reached = true end)
    local ok, err = ngx.thread.kill(t)
    k1 = tostring(ok) .. "," .. tostring(err)
    local ok2, err2 = ngx.thread.kill(t)
    k2 = tostring(ok2) .. "," .. tostring(err2)
    local ok3, err3 = ngx.thread.wait(t)
    k3 = tostring(ok3) .. "," .. tostring(err3)
    ngx.sleep(0.05)
    -- a finished (zombie) thread
    local z = ngx.thread.spawn(function() return 1 end)
    local ok4, err4 = ngx.thread.kill(z)
    k4 = tostring(ok4) .. "," .. tostring(err4)
  )"));
  EXPECT_EQ("<nil>", global_string(rt, "reached")) << "a killed thread never resumes";
  EXPECT_EQ("1,nil", global_string(rt, "k1"));
  EXPECT_EQ("nil,already waited or killed", global_string(rt, "k2"));
  EXPECT_EQ("nil,already waited or killed", global_string(rt, "k3"));
  EXPECT_EQ("nil,already terminated", global_string(rt, "k4"));
}

TEST_F(SchedulerTest, OnlyTheParentMayKillOrWait) {
  Runtime rt(cfg_, open_api);
  EXPECT_EQ(0, run_script(rt, R"(
    local a = ngx.thread.spawn(function() ngx.sleep(0.01) end)
    local b = ngx.thread.spawn(function()
      local ok, err = ngx.thread.kill(a)
      kill_res = tostring(ok) .. "," .. tostring(err)
      local ok2, err2 = pcall(ngx.thread.wait, a)
      wait_res = tostring(ok2) .. "," .. tostring(err2)
    end)
    ngx.thread.wait(a)
  )"));
  EXPECT_EQ("nil,killer not parent", global_string(rt, "kill_res"));
  EXPECT_NE(std::string::npos, global_string(rt, "wait_res").find("only the parent coroutine can wait on the thread"))
      << global_string(rt, "wait_res");
}

TEST_F(SchedulerTest, SleepOrdersThreadsByDelay) {
  Runtime rt(cfg_, open_api);
  EXPECT_EQ(0, run_script(rt, R"(
    local log = {}
    local function sleeper(name, d) ngx.sleep(d); log[#log + 1] = name end
    local a = ngx.thread.spawn(sleeper, "a", 0.06)
    local b = ngx.thread.spawn(sleeper, "b", 0.02)
    local c = ngx.thread.spawn(sleeper, "c", 0.04)
    ngx.thread.wait(a)
    ngx.thread.wait(b)
    ngx.thread.wait(c)
    result = table.concat(log, ",")
  )"));
  EXPECT_EQ("b,c,a", global_string(rt, "result"));
}

TEST_F(SchedulerTest, RunWaitsForUnwaitedThreads) {
  Runtime rt(cfg_, open_api);
  EXPECT_EQ(0, run_script(rt, R"(
    ngx.thread.spawn(function() ngx.sleep(0.02); late = "done" end)
  )"));
  EXPECT_EQ("done", global_string(rt, "late"));
}

TEST_F(SchedulerTest, RawCoroutineYieldGivesWay) {
  Runtime rt(cfg_, open_api);
  EXPECT_EQ(0, run_script(rt, R"(
    local log = {}
    local t = ngx.thread.spawn(function()
      log[#log + 1] = "c1"; coroutine.yield(); log[#log + 1] = "c2"
    end)
    log[#log + 1] = "m1"
    ngx.thread.wait(t)
    log[#log + 1] = "m2"
    result = table.concat(log, ",")
  )"));
  EXPECT_EQ("c1,m1,c2,m2", global_string(rt, "result"));
}

TEST_F(SchedulerTest, TimersRunAfterTheirDelayWithArguments) {
  Runtime rt(cfg_, open_api);
  EXPECT_EQ(0, run_script(rt, R"(
    log = {}
    local function cb(premature, name) log[#log + 1] = name .. ":" .. tostring(premature) end
    assert(ngx.timer.at(0.03, cb, "t30"))
    assert(ngx.timer.at(0.01, cb, "t10"))
    assert(ngx.timer.at(0, cb, "t0"))
    pending = ngx.timer.pending_count()
    log[#log + 1] = "entry-done"
  )"));
  lua_State* L = rt.L();
  lua_getglobal(L, "log");
  lua_getglobal(L, "table");
  lua_getfield(L, -1, "concat");
  lua_pushvalue(L, -3);
  lua_pushliteral(L, ",");
  ASSERT_EQ(0, lua_pcall(L, 2, 1, 0));
  EXPECT_STREQ("entry-done,t0:false,t10:false,t30:false", lua_tostring(L, -1));
  lua_pop(L, 3);
  EXPECT_EQ("3", global_string(rt, "pending"));
  EXPECT_EQ(0, rt.timers().pending());
  EXPECT_EQ(0, rt.timers().running());
}

TEST_F(SchedulerTest, TimerEveryUntilExit) {
  Runtime rt(cfg_, open_api);
  EXPECT_EQ(7, run_script(rt, R"(
    ticks = 0
    assert(ngx.timer.every(0.005, function()
      ticks = ticks + 1
      if ticks == 3 then ngx.exit(7) end
    end))
  )"));
  EXPECT_EQ("3", global_string(rt, "ticks"));
}

TEST_F(SchedulerTest, TimerThreadErrorIsLoggedNotFatal) {
  Runtime rt(cfg_, open_api);
  testing::internal::CaptureStderr();
  int st = run_script(rt, R"(
    ngx.timer.at(0, function() error("timer-boom", 0) end)
    ngx.timer.at(0.01, function() after = true end)
  )");
  std::string err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(0, st);
  EXPECT_EQ("true", global_string(rt, "after"));
  EXPECT_NE(std::string::npos, err.find("timer-boom")) << err;
}

TEST_F(SchedulerTest, SigtermRunsPendingTimersPrematurely) {
  Runtime rt(cfg_, open_api);
  testing::internal::CaptureStderr();
  int st = run_script(rt, R"(
    local ffi = require "ffi"
    ffi.cdef "int raise(int sig);"
    assert(ngx.timer.at(30, function(premature) prem = premature; exiting = ngx.worker.exiting() end))
    ngx.timer.at(0, function() ffi.C.raise(15) end)
  )");
  std::string err = testing::internal::GetCapturedStderr();
  EXPECT_NE(std::string::npos, err.find("signal 15 received, exiting")) << err;
  EXPECT_EQ(0, st);
  EXPECT_EQ("true", global_string(rt, "prem")) << "a 30 s timer runs at once, premature, on SIGTERM";
  EXPECT_EQ("true", global_string(rt, "exiting"));
  EXPECT_EQ(0, rt.timers().pending());
}

TEST_F(SchedulerTest, SigtermShutdownTimeoutGivesStatus128PlusSignal) {
  cfg_.shutdown_timeout_ms = 50;
  Runtime rt(cfg_, open_api);
  testing::internal::CaptureStderr();
  int st = run_script(rt, R"(
    local ffi = require "ffi"
    ffi.cdef "int raise(int sig);"
    ffi.C.raise(15)
    ngx.sleep(2)   -- outlives the 50 ms grace period
    finished = true
  )");
  testing::internal::GetCapturedStderr();
  EXPECT_EQ(128 + SIGTERM, st);
  EXPECT_EQ("<nil>", global_string(rt, "finished"));
}

TEST_F(SchedulerTest, ExitStatus) {
  Runtime rt(cfg_, open_api);
  EXPECT_EQ(5, run_script(rt, R"(
    before = true
    ngx.exit(5)
    after = true
  )"));
  EXPECT_EQ("true", global_string(rt, "before"));
  EXPECT_EQ("<nil>", global_string(rt, "after"));
}

TEST_F(SchedulerTest, ExitFromUserThreadStopsEverything) {
  Runtime rt(cfg_, open_api);
  EXPECT_EQ(3, run_script(rt, R"(
    ngx.thread.spawn(function() ngx.sleep(0.01); ngx.exit(3) end)
    ngx.thread.spawn(function() ngx.sleep(0.5); never = true end)
    ngx.sleep(1)
    never2 = true
  )"));
  EXPECT_EQ("<nil>", global_string(rt, "never"));
  EXPECT_EQ("<nil>", global_string(rt, "never2"));
}

TEST_F(SchedulerTest, SemaphoreWaitPost) {
  Runtime rt(cfg_, open_api);
  EXPECT_EQ(0, run_script(rt, R"(
    local sema = require("ngx.semaphore").new(0)
    local log = {}
    local t = ngx.thread.spawn(function()
      local ok, err = sema:wait(1)
      log[#log + 1] = "woke:" .. tostring(ok)
    end)
    log[#log + 1] = "posting"
    sema:post(1)
    ngx.thread.wait(t)
    local ok, err = sema:wait(0.01)
    log[#log + 1] = tostring(ok) .. ":" .. tostring(err)
    result = table.concat(log, ",")
  )"));
  // lua-resty-core: a wait that really waited and timed out answers false, "timeout"
  EXPECT_EQ("posting,woke:true,false:timeout", global_string(rt, "result"));
}

// A deadlock must end run() with status 1 and a message, not hang. Run in a child
// process with an alarm so a hang fails (killed by SIGALRM) instead of blocking.
TEST(SchedulerDeathTest, DeadlockEndsRunWithStatusOne) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        alarm(5);
        Config cfg;
        Runtime rt(cfg, open_api);
        int st = run_script(rt, R"(
          local C = require "cosocket.private"
          C.park()   -- nobody will ever wake it, no timeout
        )");
        fflush(stderr);
        _exit(st);
      },
      testing::ExitedWithCode(1), "deadlock");
}

TEST(SchedulerDeathTest, DeadlockOfParentWaitingOnParkedChild) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        alarm(5);
        Config cfg;
        Runtime rt(cfg, open_api);
        int st = run_script(rt, R"(
          local C = require "cosocket.private"
          local t = ngx.thread.spawn(function() C.park() end)
          ngx.thread.wait(t)
        )");
        fflush(stderr);
        _exit(st);
      },
      testing::ExitedWithCode(1), "deadlock");
}

}  // namespace
}  // namespace cosocket
