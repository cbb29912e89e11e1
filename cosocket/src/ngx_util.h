// ngx_util.h -- the non-I/O part of the ngx API: output (ngx.say/print/flush, print),
// logging (ngx.log and the level constants), time, and the string utilities
// (base64, digests, crc32, URI escaping, query args, SQL quoting).
//
// Names, arguments, return values and error strings follow lua-nginx-module 0.10.23
// with lua-resty-core, as observed through /work/shared/tools/openresty-run.
#ifndef COSOCKET_NGX_UTIL_H_
#define COSOCKET_NGX_UTIL_H_

#include <cstddef>

struct lua_State;

namespace cosocket {

// nginx's log levels: ngx.STDERR = 0 .. ngx.DEBUG = 8.
enum LogLevel { kStderr = 0, kEmerg, kAlert, kCrit, kErr, kWarn, kNotice, kInfo, kDebug };

// ngx.log messages with a level above this are dropped. The default is kNotice.
void set_log_level(int level);
int log_level();

// Fills the table at absolute stack index `ngx` with the functions and constants of
// this module and replaces the global print(). ngx.null must already be a field of
// that table.
void open_ngx_util(lua_State* L, int ngx);

// Writes out whatever ngx.say/ngx.print/print have buffered. Does nothing (no system
// call) when the buffer is empty.
void flush_stdout();

// The REPL takes its prompt off the screen before output appears: the hook runs
// before flush_stdout writes anything and, through notify_output(), before a log line
// goes to stderr. nullptr (the default): nothing.
void set_output_hook(void (*hook)());
void notify_output();

// Pushes tostring(v) for the value at `idx` (as Lua's tostring does, honouring
// __tostring) and returns the pushed string. Shared with ngx_re.cc.
const char* push_tostring(lua_State* L, int idx, size_t* len);

}  // namespace cosocket

#endif  // COSOCKET_NGX_UTIL_H_
