// ngx_family_test.h -- shared by the unit tests of the ngx families (ngx_output_test.cc,
// ngx_log_test.cc, ngx_time_test.cc, ngx_codec_test.cc, ngx_digest_test.cc,
// ngx_uri_test.cc, ngx_sql_test.cc): CaptureFd and the NgxFamilyTest fixture.
#ifndef COSOCKET_TESTS_NGX_FAMILY_TEST_H_
#define COSOCKET_TESTS_NGX_FAMILY_TEST_H_

#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>

#include <gtest/gtest.h>

extern "C" {
#include <lauxlib.h>
#include <lua.h>
}

#include "lua_eval.h"
#include "runtime/log.h"
#include "runtime/output.h"

namespace cosocket {

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

// The fixture of the family tests: a LuaEvalTest whose ngx table gets the families
// `Open...` (installers from ngx/families.h), with the stdout buffer flushed and the log
// level put back around each test. Each test file names its own:
//   using NgxTime = NgxFamilyTest<open_ngx_time>;
template <void (*... Open)(lua_State*, int)>
class NgxFamilyTest : public LuaEvalTest {
 protected:
  void open_ngx(int ngx) override { (Open(L, ngx), ...); }

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

}  // namespace cosocket

#endif  // COSOCKET_TESTS_NGX_FAMILY_TEST_H_
