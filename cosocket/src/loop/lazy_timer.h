#pragma once
// A timeout whose deadline moves without libevent calls, as nginx's lazy timers: arm()
// sets the deadline and adds the timer only when none is pending that fires no later;
// disarm() only clears the deadline. When the timer fires, due() says whether the deadline
// has come (and disarms), or re-adds the timer for the rest. So a request/response loop
// (arm, done, arm, done...) makes no timer call per request.
#include <sys/time.h>

struct event;
struct event_base;

namespace cosocket {

class LazyTimer {
 public:
  LazyTimer() = default;
  ~LazyTimer();
  LazyTimer(const LazyTimer&) = delete;
  LazyTimer& operator=(const LazyTimer&) = delete;

  // cb(fd, what, arg) runs when the timer fires; it calls due(). False if libevent refuses.
  bool init(event_base* base, void (*cb)(int, short, void*), void* arg);
  bool initialized() const { return ev_ != nullptr; }
  // the deadline ms from now; first_tv (e.g. a libevent common timeout of ms) when the timer
  // has to be added, else {ms}
  void arm(long ms, const timeval* first_tv = nullptr);
  void disarm() { deadline_ = 0; }
  bool armed() const { return deadline_ != 0; }
  // in the callback: true when the deadline has passed (the timer is then disarmed)
  bool due();

 private:
  event* ev_ = nullptr;
  long long deadline_ = 0;  // mono_ms, 0: none
  long long fires_at_ = 0;  // when the pending event fires, about (0: none pending)
};

}  // namespace cosocket
