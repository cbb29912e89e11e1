// time_ffi.h -- the FFI ABI of lua-nginx-module 0.10.23's ngx_http_lua_time.c that
// lua-resty-core's resty.core.time binds through ffi.C: the ngx_http_lua_ffi_* functions
// with its signatures and C types, exported from the cosocket executable (ENABLE_EXPORTS),
// on the loop's cached clock (loop/clock.h) as nginx's are on its cached time.
//
// One implementation, two bindings: they are defined in time.cc, whose Lua C API ngx.now,
// ngx.time, ... call them (which also keeps time.o's exports in the link).
//
// None takes a request (req_start_time, which does, is resty.core.request's).
#ifndef COSOCKET_NGX_TIME_FFI_H_
#define COSOCKET_NGX_TIME_FFI_H_

#include <cstddef>

// the bytes each writes, no NUL (resty.core.time's buffer sizes)
constexpr size_t kNgxTodayLen = 10;          // 2010-11-19
constexpr size_t kNgxDateTimeLen = 19;       // 2010-11-19 20:56:31
constexpr size_t kNgxHttpTimeLen = 29;       // Fri, 19 Nov 2010 20:56:31 GMT
constexpr size_t kNgxCookieTimeMaxLen = 29;  // Fri, 19-Nov-10 20:56:31 GMT; 4-digit years from 2038

extern "C" {

double ngx_http_lua_ffi_now(void);             // the cached time, in s with ms
long ngx_http_lua_ffi_time(void);              // the cached time, in whole s
long ngx_http_lua_ffi_monotonic_msec(void);    // CLOCK_MONOTONIC in ms, as of the cached time
void ngx_http_lua_ffi_update_time(void);       // re-reads the clocks
void ngx_http_lua_ffi_today(unsigned char* buf);      // local date of the cached time
void ngx_http_lua_ffi_localtime(unsigned char* buf);  // local date and time
void ngx_http_lua_ffi_utctime(unsigned char* buf);    // UTC date and time
// t (seconds, clamped to [1970, 9999-12-31 23:59:59]) as a cookie's expiry: the length written
int ngx_http_lua_ffi_cookie_time(unsigned char* buf, long t);
// t (clamped the same) as an HTTP date
void ngx_http_lua_ffi_http_time(unsigned char* buf, long t);
// *time: the seconds of an RFC 1123, RFC 850 or asctime date, -1 (NGX_ERROR) if malformed
void ngx_http_lua_ffi_parse_http_time(const unsigned char* str, size_t len, long* time);

}  // extern "C"

#endif  // COSOCKET_NGX_TIME_FFI_H_
