#pragma once
// ngx.timer.at / ngx.timer.every: the pending timers of a runtime. A timer is pending
// from its creation until it expires (an `every` timer until the runtime exits); at
// expiry its callback starts as a light thread of kind `timer`, which counts as running
// until its coroutine ends. The limits are lua-nginx-module's lua_max_pending_timers and
// lua_max_running_timers (Config).
#include <memory>
#include <unordered_map>

#include <lua.hpp>

namespace cosocket {

class Runtime;

class Timers {
 public:
  explicit Timers(Runtime& rt);
  ~Timers();
  Timers(const Timers&) = delete;
  Timers& operator=(const Timers&) = delete;

  // ngx.timer.at(delay, f, ...) / ngx.timer.every(delay, f, ...): 1, or nil and the
  // error ("too many pending timers", "process exiting"); raises on bad arguments.
  int create(lua_State* L, bool every);
  int pending() const { return pending_; }
  int running() const { return running_; }
  // At shutdown: every pending timer runs now with premature = true.
  void fire_all_premature();
  // Drops every pending timer without running it (the runtime is going away).
  void clear();

 private:
  struct Pending;
  static void on_timer(int, short, void* arg);
  void fire(Pending* pt, bool premature);

  Runtime& rt_;
  std::unordered_map<Pending*, std::unique_ptr<Pending>> pending_timers_;
  int pending_ = 0;
  int running_ = 0;
};

}  // namespace cosocket
