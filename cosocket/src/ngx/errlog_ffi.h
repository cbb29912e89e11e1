// errlog_ffi.h -- the FFI ABI of lua-nginx-module 0.10.23's error-log functions that
// lua-resty-core's ngx.errlog binds through ffi.C (raw_log, get_sys_filter_level, and
// lua_capture_error_log's set_filter_level and get_logs), with its signatures, return codes
// and error strings, exported from the cosocket executable (ENABLE_EXPORTS).
//
// Defined in errlog.cc, on the runtime's log (runtime/log.h); `--capture-error-log SIZE` is
// lua_capture_error_log's directive.
#ifndef COSOCKET_NGX_ERRLOG_FFI_H_
#define COSOCKET_NGX_ERRLOG_FFI_H_

#include <cstddef>

extern "C" {

// 0, or -1 with err[0, *errlen) = `directive "lua_capture_error_log" is not set` or
// `bad log level: N`
int ngx_http_lua_ffi_errlog_set_filter_level(int level, unsigned char* err, size_t* errlen);
// the oldest captured line: its length (> 0), *log its text (valid until the next call),
// *loglevel, *log_time; -4 (NGX_DONE) when there is none; -1 with err as above
int ngx_http_lua_ffi_errlog_get_msg(char** log, int* loglevel, unsigned char* err, size_t* errlen,
                                    double* log_time);
// the log level (--errlog-level)
int ngx_http_lua_ffi_errlog_get_sys_filter_level(void* r);
// logs s[0, s_len) at level as it is (no "[lua] file:line:" prefix): 0, or -1 (NGX_ERROR)
// for a level outside ngx.STDERR..ngx.DEBUG
int ngx_http_lua_ffi_raw_log(void* r, int level, const unsigned char* s, size_t s_len);

}  // extern "C"

#endif  // COSOCKET_NGX_ERRLOG_FFI_H_
