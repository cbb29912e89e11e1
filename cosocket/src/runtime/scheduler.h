#pragma once
// Light threads: each is a Lua coroutine driven by the event loop. A cosocket call that
// cannot finish at once records a cancel hook on the thread and yields the kYield
// sentinel; the event callback pushes the results onto the thread's stack and calls
// resume() (or post(), to resume on the next turn of the loop).
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <lua.hpp>

#include "runtime/request.h"

struct event;
struct event_base;

namespace cosocket {

// Light userdata that a C function yields to say "parked on an operation".
extern char kYieldSentinel;

// Yields the calling coroutine to the scheduler; use as `return yield_op(L);`
int yield_op(lua_State* L);

enum class ThreadKind : uint8_t { entry, user, timer };
enum class ThreadState : uint8_t { ready, running, waiting, zombie, dead };

// The rarely used part of a light thread, allocated when it spawns or waits.
struct ThreadFamily {
  std::vector<uint64_t> waiting_on;  // wait(): the children it waits for
  std::vector<uint64_t> children;    // user threads it spawned (ids; stale ids are skipped)
};

// Kept small: a process may hold many thousands of parked threads.
struct LuaThread {
  uint64_t id = 0;
  lua_State* co = nullptr;
  uint64_t parent = 0;               // user threads: the spawning thread's id
  uint64_t wake_seq = 0;             // its entry in the wake-up queue (0: none)
  int ref = LUA_NOREF;               // pins the coroutine in the registry
  int ready_nargs = 0;               // values on co's stack for a posted resume
  int results_ref = LUA_NOREF;       // zombie: table {n=..., ...} of results or the error
  uint32_t req = 0;                  // its request (request.h); 0 once finished
  ThreadKind kind = ThreadKind::user;
  ThreadState state = ThreadState::ready;
  bool parked = false;               // waiting in park(): wake() may resume it
  bool ok = true;                    // how it ended (zombie)
  bool started = false;              // resumed once: its wrapper (traceback.h) has its function
  std::function<void()> cancel;      // undoes the pending operation (kill, shutdown)
  // timers, servers: bookkeeping when the thread ends (boxed: most threads have none)
  std::unique_ptr<std::function<void()>> on_finish;
  void set_on_finish(std::function<void()> fn) { on_finish = std::make_unique<std::function<void()>>(std::move(fn)); }
  std::unique_ptr<ThreadFamily> family;
  ThreadFamily& fam() {
    if (!family) family = std::make_unique<ThreadFamily>();
    return *family;
  }
};

// How a thread is woken from the wake-up queue: ngx.sleep returns nothing, a park()
// that timed out returns nil, "timeout".
enum class WakeKind : uint8_t { sleep, park_timeout };

class Scheduler {
 public:
  Scheduler(lua_State* L, event_base* base);
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Creates a thread running the function at the top of L's stack with the nargs values
  // below... (function first, then args: [f, a1..an] on top of L). Pops them. A user
  // thread joins its parent's request; any other starts a new one, unless req names one.
  LuaThread* create(lua_State* L, int nargs, ThreadKind kind, uint64_t parent, uint32_t req = 0);
  // Runs a thread now with nargs values already pushed on its stack.
  void resume(LuaThread* t, int nargs);
  // Runs a thread on the next turn of the loop, with nargs values already on its stack.
  void post(LuaThread* t, int nargs);
  // The thread whose code is running now (nullptr outside Lua).
  LuaThread* current() const { return current_; }
  LuaThread* find(uint64_t id) const;
  // The light thread of a coroutine, zombies included.
  LuaThread* find(lua_State* co);
  // Marks the current thread parked on an operation; `cancel` undoes it.
  void suspend(LuaThread* t, std::function<void()> cancel);
  // Drops a thread: cancels its pending operation, never resumes it again.
  void kill(LuaThread* t);
  // The wake-up queue (ngx.sleep, park timeouts): one min-heap and one libevent timer
  // for all threads, 24 bytes a sleeper instead of an event and a closure each. Equal
  // deadlines wake in the order they were set. wake_after() suspends t with a cancel
  // hook that takes it out of the queue.
  void wake_after(LuaThread* t, long ms, WakeKind kind);
  void cancel_wake(LuaThread* t);
  size_t alive() const { return alive_; }
  Requests& requests() { return reqs_; }
  // The request of the running thread (0 outside Lua).
  uint32_t current_request() const { return current_ ? current_->req : 0; }
  void init_dead_table();
  // ngx.thread.spawn / wait / kill
  static int l_spawn(lua_State* L);
  static int l_wait(lua_State* L);
  static int l_kill(lua_State* L);
  // Called whenever the number of live threads may have dropped to zero.
  std::function<void()> on_idle;
  // Called with the error text when the entry thread fails.
  std::function<void(const std::string&)> on_entry_error;
  bool stopping = false;             // no more resumes (exit requested)

 private:
  void finish(LuaThread* t, bool ok);
  // t has ended (finished or killed): it no longer holds its request
  void leave_request(LuaThread* t);
  // co_alive: the caller has the coroutine (a weakly held zombie's may be collected)
  void release(LuaThread* t, bool co_alive = true);
  // Zombies (ended, not yet waited for) hold their coroutine weakly: one that nobody can
  // wait for any more is collected with everything its frames held, and its guard's
  // __gc then frees the record.
  void hold_weakly(LuaThread* t);
  LuaThread* find_zombie(lua_State* co);
  static int on_zombie_gc(lua_State* L);
  void orphan_children(LuaThread* t);
  void mark_dead(lua_State* co);

 public:
  bool is_dead(lua_State* L, int idx);

 private:
  void drain();
  static void on_posted(int, short, void* arg);
  struct Wake {    // 24 bytes
    int64_t due;    // monotonic ms
    uint64_t id;
    uint32_t seq;   // ties between equal deadlines: FIFO
    WakeKind kind;
  };
  static bool later(const Wake& a, const Wake& b) {
    return a.due != b.due ? a.due > b.due : static_cast<int32_t>(a.seq - b.seq) > 0;
  }
  static void on_wake_timer(int, short, void* arg);
  void arm_wake_timer();
  void fire_wakes();
  std::vector<Wake> wakes_;  // min-heap by (due, seq); cancelled entries linger until popped
  size_t live_wakes_ = 0;
  uint32_t next_wake_seq_ = 1;
  int64_t armed_due_ = -1;
  std::unique_ptr<event, void (*)(event*)> wake_ev_{nullptr, nullptr};

  lua_State* L_;
  event_base* base_;
  Requests reqs_;
  std::unique_ptr<event, void (*)(event*)> post_ev_;
  // Threads by slot; an id is (generation << 32 | slot), so a stale id finds nothing.
  std::vector<std::unique_ptr<LuaThread>> slots_;
  std::vector<uint32_t> gens_;
  std::vector<uint32_t> free_slots_;
  std::unordered_map<lua_State*, uint64_t> by_co_;
  std::deque<uint64_t> posted_;
  LuaThread* current_ = nullptr;
  size_t alive_ = 0;
  int dead_ref_ = LUA_NOREF;
  int wrapper_ref_ = LUA_NOREF;     // the function every thread runs in (traceback.h)
  int zombies_ref_ = LUA_NOREF;     // weak-keyed: coroutine -> its guard userdata
  int guard_mt_ref_ = LUA_NOREF;
  size_t weak_zombies_ = 0;         // entries whose record still exists
};

}  // namespace cosocket
