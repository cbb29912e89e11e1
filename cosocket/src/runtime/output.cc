#include "runtime/output.h"

#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <string>

namespace cosocket {

namespace {

constexpr size_t kFlushThreshold = 64 * 1024;

void (*g_output_hook)() = nullptr;

}  // namespace

std::string& out_buffer() {
  static std::string buf;
  return buf;
}

void flush_if_full() {
  if (out_buffer().size() >= kFlushThreshold) flush_stdout();
}

void write_all(int fd, const char* data, size_t len) {
  while (len > 0) {
    ssize_t n = ::write(fd, data, len);
    if (n > 0) {
      data += n;
      len -= static_cast<size_t>(n);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      struct pollfd p = {fd, POLLOUT, 0};
      ::poll(&p, 1, -1);
    } else {
      return;  // EPIPE and friends: nowhere to report, drop the output
    }
  }
}

void out_append(const char* data, size_t len) {
  std::string& buf = out_buffer();
  buf.append(data, len);
  flush_if_full();
}

void set_output_hook(void (*hook)()) { g_output_hook = hook; }

void notify_output() {
  if (g_output_hook) g_output_hook();
}

void flush_stdout() {
  std::string& buf = out_buffer();
  if (buf.empty()) return;
  notify_output();
  write_all(STDOUT_FILENO, buf.data(), buf.size());
  buf.clear();
}

}  // namespace cosocket
