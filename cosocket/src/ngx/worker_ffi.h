// worker_ffi.h -- the FFI ABI of lua-nginx-module 0.10.23's ngx_http_lua_worker.c that
// lua-resty-core's resty.core.worker binds through ffi.C (ngx.worker.*): the
// ngx_http_lua_ffi_worker_* functions with its signatures and return codes, exported from the
// cosocket executable (ENABLE_EXPORTS).
//
// One implementation, two bindings: they are defined in worker.cc, whose Lua C API
// ngx.worker.* call them (which also keeps worker.o's exports in the link). cosocket is a
// worker, or with `-w N` one of N (runtime/worker_table.h); nothing takes a request.
#ifndef COSOCKET_NGX_WORKER_FFI_H_
#define COSOCKET_NGX_WORKER_FFI_H_

#include <cstddef>

// the most pids ngx_http_lua_ffi_worker_pids writes: nginx's NGX_MAX_PROCESSES, the size of
// resty.core.worker's buffer
constexpr size_t kNgxMaxProcesses = 1024;

extern "C" {

int ngx_http_lua_ffi_worker_id(void);       // 0..count-1 (nginx: -1 outside a worker)
int ngx_http_lua_ffi_worker_pid(void);      // this process's pid
int ngx_http_lua_ffi_worker_count(void);    // 1, or N with -w N
int ngx_http_lua_ffi_worker_exiting(void);  // non-zero once the process is exiting
// the running workers' pids in pids[0, *pids_len) (room for kNgxMaxProcesses): 0 (NGX_OK),
// or -1 (NGX_ERROR, *pids_len untouched) if there is none
int ngx_http_lua_ffi_worker_pids(int* pids, size_t* pids_len);

}  // extern "C"

#endif  // COSOCKET_NGX_WORKER_FFI_H_
