#include "loop/lazy_timer.h"

#include <event2/event.h>

#include "loop/clock.h"

namespace cosocket {

LazyTimer::~LazyTimer() {
  if (ev_) event_free(ev_);
}

bool LazyTimer::init(event_base* base, void (*cb)(int, short, void*), void* arg) {
  ev_ = evtimer_new(base, cb, arg);
  return ev_ != nullptr;
}

void LazyTimer::arm(long ms, const timeval* first_tv) {
  deadline_ = mono_ms() + ms;
  if (fires_at_ && fires_at_ <= deadline_) return;  // fires first, then re-adds for the rest
  timeval tv{ms / 1000, (ms % 1000) * 1000};
  evtimer_add(ev_, first_tv ? first_tv : &tv);
  fires_at_ = deadline_;
}

bool LazyTimer::due() {
  fires_at_ = 0;
  if (!deadline_) return false;
  long long left = deadline_ - mono_ms();
  if (left > 0) {
    timeval tv{static_cast<time_t>(left / 1000), static_cast<suseconds_t>(left % 1000 * 1000)};
    evtimer_add(ev_, &tv);
    fires_at_ = deadline_;
    return false;
  }
  deadline_ = 0;
  return true;
}

}  // namespace cosocket
