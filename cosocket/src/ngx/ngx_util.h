// ngx_util.h -- the non-I/O part of the ngx API: output (ngx.say/print/flush, print),
// ngx.log and the level constants, time, and the string utilities (base64, digests,
// crc32, URI escaping, query args, SQL quoting). The stdout buffer and the log itself
// are the runtime's (runtime/output.h, runtime/log.h).
//
// Names, arguments, return values and error strings follow lua-nginx-module 0.10.23
// with lua-resty-core, as observed through /work/shared/tools/openresty-run.
#ifndef COSOCKET_NGX_UTIL_H_
#define COSOCKET_NGX_UTIL_H_

#include <cstddef>

struct lua_State;

namespace cosocket {

// Fills the table at absolute stack index `ngx` with the functions and constants of
// this module and replaces the global print(). ngx.null must already be a field of
// that table.
void open_ngx_util(lua_State* L, int ngx);

// Pushes tostring(v) for the value at `idx` (as Lua's tostring does, honouring
// __tostring) and returns the pushed string. Shared with regex.cc.
const char* push_tostring(lua_State* L, int idx, size_t* len);

}  // namespace cosocket

#endif  // COSOCKET_NGX_UTIL_H_
