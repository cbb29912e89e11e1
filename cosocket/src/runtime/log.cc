#include "runtime/log.h"

#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <deque>

#include "loop/clock.h"
#include "runtime/output.h"

namespace cosocket {

namespace {
int g_log_level = kNotice;
const char* const kLevelNames[] = {"stderr", "emerg", "alert", "crit", "error", "warn", "notice", "info", "debug"};
}  // namespace

void set_log_level(int level) { g_log_level = level; }

int log_level() { return g_log_level; }

namespace {
struct Captured {
  std::string line;
  int level;
  double time;
};
struct Capture {
  size_t limit = 0;
  size_t bytes = 0;
  int filter = kDebug;
  std::deque<Captured> lines;
  std::string taken;  // the line read_log_capture gave out last
};
Capture g_capture;

void capture(int level, const char* line, size_t len) {
  Capture& c = g_capture;
  if (c.limit == 0 || level > c.filter || len > c.limit) return;
  while (!c.lines.empty() && c.bytes + len > c.limit) {
    c.bytes -= c.lines.front().line.size();
    c.lines.pop_front();
  }
  c.lines.push_back(Captured{std::string(line, len), level, clock_now()});
  c.bytes += len;
}
}  // namespace

void set_log_capture(size_t bytes) { g_capture.limit = bytes; }
bool log_capture_enabled() { return g_capture.limit > 0; }
void set_log_capture_filter(int level) { g_capture.filter = level; }

bool read_log_capture(const char** line, size_t* len, int* level, double* time) {
  Capture& c = g_capture;
  if (c.lines.empty()) return false;
  Captured& e = c.lines.front();
  c.taken.swap(e.line);
  *line = c.taken.data();
  *len = c.taken.size();
  *level = e.level;
  *time = e.time;
  c.bytes -= c.taken.size();
  c.lines.pop_front();
  return true;
}

void log_message(int level, const std::string& msg) {
  if (level > log_level()) return;
  char ts[32];
  time_t now = time(nullptr);
  tm lt{};
  localtime_r(&now, &lt);
  strftime(ts, sizeof ts, "%Y/%m/%d %H:%M:%S", &lt);
  int l = level < 0 ? 0 : level > 8 ? 8 : level;
  emit_log_line(level, std::string(ts) + " [" + kLevelNames[l] + "] " + std::to_string(getpid()) + "#0: " + msg);
}

void emit_log_line(int level, std::string line) {
  flush_stdout();
  notify_output();
  capture(level, line.data(), line.size());
  line += '\n';
  fwrite(line.data(), 1, line.size(), stderr);
  fflush(stderr);
}

}  // namespace cosocket
