// lua_args.h -- the argument helpers that several ngx families share: resty.core's
// string coercion (codec.cc, digest.cc, uri.cc) and Lua's tostring (also regex.cc).
//
// Behaviour (including error strings) follows lua-nginx-module 0.10.23 with
// lua-resty-core, as observed through /work/shared/tools/openresty-run.
#ifndef COSOCKET_NGX_LUA_ARGS_H_
#define COSOCKET_NGX_LUA_ARGS_H_

#include <cstddef>

struct lua_State;

namespace cosocket {

// resty.core's argument coercion for md5/escape_uri/...: nil and false become "",
// other non-strings go through tostring().
const char* coerce_string(lua_State* L, int idx, size_t* len);

// Pushes tostring(v) for the value at `idx` (as Lua's tostring does, honouring
// __tostring) and returns the pushed string. Shared with regex.cc.
const char* push_tostring(lua_State* L, int idx, size_t* len);

}  // namespace cosocket

#endif  // COSOCKET_NGX_LUA_ARGS_H_
