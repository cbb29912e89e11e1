// process_ffi.h -- the FFI ABI of lua-nginx-module 0.10.23 that lua-resty-core's
// resty.core.phase (ngx.get_phase, ngx.get_raw_phase) and ngx.process bind through ffi.C,
// with its signatures and return codes, exported from the cosocket executable
// (ENABLE_EXPORTS; the executable links the whole core archive).
//
// Defined in process.cc. cosocket's phase is always resty-cli's: "timer" (0x0080) for
// every request (runtime/request.h). Its process types are nginx's: "single" without a
// master, "worker" under `-w N`'s master.
#ifndef COSOCKET_NGX_PROCESS_FFI_H_
#define COSOCKET_NGX_PROCESS_FFI_H_

// lua-nginx-module's NGX_HTTP_LUA_CONTEXT_TIMER and nginx's process types
constexpr int kNgxLuaContextTimer = 0x0080;
constexpr int kNgxProcessSingle = 0;
constexpr int kNgxProcessWorker = 3;

extern "C" {

// the phase of request r (thread.exdata's pointer): kNgxLuaContextTimer, or -1 (NGX_ERROR)
// with *err = "no request context" when r is no live request
int ngx_http_lua_ffi_get_phase(void* r, char** err);
int ngx_http_lua_ffi_get_process_type(void);
// the master's pid under -w N, this process's own without one (as nginx with
// master_process off)
int ngx_http_lua_ffi_master_pid(void);
// the worker exits gracefully, as on SIGQUIT in nginx: on the next turn of the loop,
// timers fire as premature, listening servers stop, running threads get the shutdown grace
void ngx_http_lua_ffi_process_signal_graceful_exit(void);
// -1 (NGX_ERROR) with *err: there is no privileged agent outside nginx's init phase (which
// lua-resty-core checks before calling; cosocket has none)
int ngx_http_lua_ffi_enable_privileged_agent(char** err, unsigned int connections);

}  // extern "C"

#endif  // COSOCKET_NGX_PROCESS_FFI_H_
