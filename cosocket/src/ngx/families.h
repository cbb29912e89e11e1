// families.h -- the families of the ngx API that do no I/O, one file each, as
// lua-nginx-module has one inject function per ngx_http_lua_*.c file: output (ngx.say,
// ngx.print, ngx.flush, print), log, time, codec (base64, crc32), digest (md5, sha1,
// hmac), uri (escaping, query args) and sql (quoting). ngx.re has its own header
// (regex.h).
//
// One header for the seven rather than one each: a family exports nothing but its
// installer, and open_api (api.cc) installs them all.
//
// Names, arguments, return values and error strings follow lua-nginx-module 0.10.23
// with lua-resty-core, as observed through /work/shared/tools/openresty-run.
#ifndef COSOCKET_NGX_FAMILIES_H_
#define COSOCKET_NGX_FAMILIES_H_

extern "C" {
#include <lauxlib.h>
#include <lua.h>
}

namespace cosocket {

// Each fills the table at absolute stack index `ngx` with the functions (and
// constants) of its family. ngx.null must already be a field of that table.
void open_ngx_output(lua_State* L, int ngx);  // say, print, flush; replaces the global print()
void open_ngx_log(lua_State* L, int ngx);     // log, STDERR .. DEBUG
void open_ngx_time(lua_State* L, int ngx);    // now, time, update_time, today, localtime,
                                              // utctime, http_time, cookie_time, parse_http_time
void open_ngx_codec(lua_State* L, int ngx);   // encode_base64, decode_base64, crc32_short/_long
void open_ngx_digest(lua_State* L, int ngx);  // md5, md5_bin, sha1_bin, hmac_sha1
void open_ngx_uri(lua_State* L, int ngx);     // escape_uri, unescape_uri, encode_args, decode_args
void open_ngx_sql(lua_State* L, int ngx);     // quote_sql_str
void open_ngx_worker(lua_State* L, int ngx);  // ngx.worker: id, pid, count, exiting, pids
// ngx.shared: a table of the --shdict dicts (shdict.h), empty without any
void open_ngx_shared(lua_State* L, int ngx);
// their FFI methods: requires "resty.core.shdict" when there are dicts (once the embedded
// modules are preloadable)
void bind_ngx_shared(lua_State* L);

// Sets each function of `funcs` (ended by {nullptr, nullptr}) as the field of its name
// in the table at absolute stack index `ngx`: how the families install their functions.
inline void set_functions(lua_State* L, int ngx, const luaL_Reg* funcs) {
  for (const luaL_Reg* r = funcs; r->name != nullptr; ++r) {
    lua_pushcfunction(L, r->func);
    lua_setfield(L, ngx, r->name);
  }
}

}  // namespace cosocket

#endif  // COSOCKET_NGX_FAMILIES_H_
