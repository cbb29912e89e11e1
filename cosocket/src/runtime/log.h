#pragma once
// The runtime's log: nginx's levels and its error-log line format on stderr. ngx.log
// (ngx/) is the Lua face of it; the core logs through log_message.
#include <string>

namespace cosocket {

// nginx's log levels: ngx.STDERR = 0 .. ngx.DEBUG = 8.
enum LogLevel { kStderr = 0, kEmerg, kAlert, kCrit, kErr, kWarn, kNotice, kInfo, kDebug };

// Messages with a level above this are dropped. The default is kNotice.
void set_log_level(int level);
int log_level();

// "YYYY/MM/DD HH:MM:SS [level] pid#0: msg" on stderr, after the buffered stdout.
void log_message(int level, const std::string& msg);

// Writes a whole log line (its "YYYY/MM/DD HH:MM:SS [level] pid#0: " head included, no
// newline) on stderr, after the buffered stdout, and captures it (below): what
// log_message and ngx.log end with.
void emit_log_line(int level, std::string line);

// lua_capture_error_log's buffer (--capture-error-log SIZE; ngx.errlog.get_logs): the lines
// log_message writes are also kept, without their newline, the oldest dropped to keep the
// text within `bytes`. 0: none (the default).
void set_log_capture(size_t bytes);
bool log_capture_enabled();
// Lines above this level are not captured (ngx.errlog.set_filter_level); default kDebug.
void set_log_capture_filter(int level);
// Takes the oldest captured line: its text (valid until the next call), level and time
// (seconds, as ngx.now()). false when there is none.
bool read_log_capture(const char** line, size_t* len, int* level, double* time);

}  // namespace cosocket
