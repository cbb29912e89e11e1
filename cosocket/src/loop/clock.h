// clock.h -- the cached wall clock behind ngx.now()/ngx.time().
//
// Like nginx, the time is read once per event-loop iteration (clock_update) and every
// caller in between sees the same value; nothing here is Lua-specific.
#ifndef COSOCKET_CLOCK_H_
#define COSOCKET_CLOCK_H_

namespace cosocket {

// Re-reads gettimeofday() into the cache. The first call to clock_now()/clock_time()
// does this implicitly if it has never been done.
void clock_update();

// Cached seconds since the epoch, with millisecond resolution (ngx.now).
double clock_now();

// Cached whole seconds since the epoch (ngx.time).
long clock_time();

// Milliseconds of CLOCK_MONOTONIC, read now (not cached): for deadlines.
long long mono_ms();

// Milliseconds of CLOCK_MONOTONIC as of this turn of the loop: read at the first call
// after each clock_update(), then cached, as nginx's shdict reads its cached time.
long long clock_mono_ms();

}  // namespace cosocket

#endif  // COSOCKET_CLOCK_H_
