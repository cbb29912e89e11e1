// errlog.cc -- ngx.errlog's FFI functions (errlog_ffi.h).
#include "ngx/errlog_ffi.h"

#include <cstdio>
#include <cstring>
#include <string>

#include "runtime/log.h"

namespace {

int fail(unsigned char* err, size_t* errlen, const std::string& msg) {
  size_t n = std::min(msg.size(), *errlen);
  memcpy(err, msg.data(), n);
  *errlen = n;
  return -1;
}

bool bad_level(int level) { return level < cosocket::kStderr || level > cosocket::kDebug; }

const char kNotSet[] = "directive \"lua_capture_error_log\" is not set";

}  // namespace

extern "C" {

int ngx_http_lua_ffi_errlog_set_filter_level(int level, unsigned char* err, size_t* errlen) {
  if (!cosocket::log_capture_enabled()) return fail(err, errlen, kNotSet);
  if (bad_level(level)) return fail(err, errlen, "bad log level: " + std::to_string(level));
  cosocket::set_log_capture_filter(level);
  return 0;
}

int ngx_http_lua_ffi_errlog_get_msg(char** log, int* loglevel, unsigned char* err, size_t* errlen,
                                    double* log_time) {
  if (!cosocket::log_capture_enabled()) return fail(err, errlen, kNotSet);
  const char* line = nullptr;
  size_t len = 0;
  if (!cosocket::read_log_capture(&line, &len, loglevel, log_time)) return -4;  // NGX_DONE
  *log = const_cast<char*>(line);
  return static_cast<int>(len);
}

int ngx_http_lua_ffi_errlog_get_sys_filter_level(void* /*r*/) { return cosocket::log_level(); }

int ngx_http_lua_ffi_raw_log(void* /*r*/, int level, const unsigned char* s, size_t s_len) {
  if (bad_level(level)) return -1;
  cosocket::log_message(level, std::string(reinterpret_cast<const char*>(s), s_len));
  return 0;
}

}  // extern "C"
