#pragma once
// The process's stdout: one buffer shared by ngx.say, ngx.print and print(), written
// out when it grows past 64 KiB, by ngx.flush, before a log line and at exit, so that
// stdout and stderr keep the order the script produced them in.
#include <cstddef>
#include <string>

namespace cosocket {

// Appends to the stdout buffer (may flush it).
void out_append(const char* data, size_t len);

// The buffer itself, for writers that append in place; flush_if_full() after them.
std::string& out_buffer();
void flush_if_full();

// Writes out whatever is buffered. Does nothing (no system call) when the buffer is
// empty.
void flush_stdout();

// write(2) until done, waiting while the descriptor is non-blocking and full; output
// that cannot be written (EPIPE...) is dropped: there is nowhere to report it.
void write_all(int fd, const char* data, size_t len);

// The REPL takes its prompt off the screen before output appears: the hook runs
// before flush_stdout writes anything and, through notify_output(), before a log line
// goes to stderr. nullptr (the default): nothing.
void set_output_hook(void (*hook)());
void notify_output();

}  // namespace cosocket
