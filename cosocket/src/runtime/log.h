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

}  // namespace cosocket
