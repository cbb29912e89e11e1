#include "runtime/log.h"

#include <unistd.h>

#include <cstdio>
#include <ctime>

#include "runtime/output.h"

namespace cosocket {

namespace {
int g_log_level = kNotice;
const char* const kLevelNames[] = {"stderr", "emerg", "alert", "crit", "error", "warn", "notice", "info", "debug"};
}  // namespace

void set_log_level(int level) { g_log_level = level; }

int log_level() { return g_log_level; }

void log_message(int level, const std::string& msg) {
  if (level > log_level()) return;
  flush_stdout();
  char ts[32];
  time_t now = time(nullptr);
  tm lt{};
  localtime_r(&now, &lt);
  strftime(ts, sizeof ts, "%Y/%m/%d %H:%M:%S", &lt);
  int l = level < 0 ? 0 : level > 8 ? 8 : level;
  notify_output();
  fprintf(stderr, "%s [%s] %d#0: %s\n", ts, kLevelNames[l], static_cast<int>(getpid()), msg.c_str());
  fflush(stderr);
}

}  // namespace cosocket
