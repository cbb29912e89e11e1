#include "loop/clock.h"

#include <sys/time.h>
#include <time.h>

namespace cosocket {
namespace {

long g_sec = 0;
long g_msec = 0;
bool g_valid = false;
long long g_mono = 0;
bool g_mono_valid = false;  // read again at the first clock_mono_ms() after clock_update()

void ensure_valid() {
  if (!g_valid) clock_update();
}

}  // namespace

void clock_update() {
  struct timeval tv;
  gettimeofday(&tv, nullptr);
  g_sec = static_cast<long>(tv.tv_sec);
  g_msec = static_cast<long>(tv.tv_usec / 1000);
  g_valid = true;
  g_mono_valid = false;
}

long long clock_mono_ms() {
  if (!g_mono_valid) {
    g_mono = mono_ms();
    g_mono_valid = true;
  }
  return g_mono;
}

double clock_now() {
  ensure_valid();
  return static_cast<double>(g_sec) + static_cast<double>(g_msec) / 1000.0;
}

long clock_time() {
  ensure_valid();
  return g_sec;
}

long long mono_ms() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<long long>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

}  // namespace cosocket
