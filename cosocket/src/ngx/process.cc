// process.cc -- ngx.get_phase's and ngx.process's FFI functions (process_ffi.h).
#include "ngx/process_ffi.h"

#include <unistd.h>

#include "runtime/runtime.h"

using cosocket::runtime;

extern "C" {

int ngx_http_lua_ffi_get_phase(void* r, char** err) {
  if (!runtime().sched().requests().find(r)) {
    static char msg[] = "no request context";
    *err = msg;
    return -1;
  }
  return kNgxLuaContextTimer;
}

int ngx_http_lua_ffi_get_process_type(void) {
  return runtime().cfg().under_master ? kNgxProcessWorker : kNgxProcessSingle;
}

int ngx_http_lua_ffi_master_pid(void) {
  return static_cast<int>(runtime().cfg().under_master ? getppid() : getpid());
}

void ngx_http_lua_ffi_process_signal_graceful_exit(void) { runtime().request_graceful_exit(); }

int ngx_http_lua_ffi_enable_privileged_agent(char** err, unsigned int /*connections*/) {
  static char msg[] = "API disabled in the current context";
  *err = msg;
  return -1;
}

}  // extern "C"
