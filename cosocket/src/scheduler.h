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

struct event;
struct event_base;

namespace cosocket {

// Light userdata that a C function yields to say "parked on an operation".
extern char kYieldSentinel;

enum class ThreadKind { entry, user, timer };
enum class ThreadState { ready, running, waiting, zombie, dead };

struct LuaThread {
  uint64_t id = 0;
  lua_State* co = nullptr;
  int ref = LUA_NOREF;               // pins the coroutine in the registry
  ThreadKind kind = ThreadKind::user;
  ThreadState state = ThreadState::ready;
  uint64_t parent = 0;               // user threads: the spawning thread's id
  int ready_nargs = 0;               // values on co's stack for a posted resume
  std::function<void()> cancel;      // undoes the pending operation (kill, shutdown)
  bool parked = false;               // waiting in park(): wake() may resume it
  std::vector<uint64_t> waiting_on;  // wait(): the children it waits for
  bool ok = true;                    // how it ended (zombie)
  int results_ref = LUA_NOREF;       // zombie: table {n=..., ...} of results or the error
  std::function<void()> on_finish;   // timers: bookkeeping when the thread ends
  std::vector<uint64_t> children;    // user threads it spawned (ids; stale ids are skipped)
};

class Scheduler {
 public:
  Scheduler(lua_State* L, event_base* base);
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Creates a thread running the function at the top of L's stack with the nargs values
  // below... (function first, then args: [f, a1..an] on top of L). Pops them.
  LuaThread* create(lua_State* L, int nargs, ThreadKind kind, uint64_t parent);
  // Runs a thread now with nargs values already pushed on its stack.
  void resume(LuaThread* t, int nargs);
  // Runs a thread on the next turn of the loop, with nargs values already on its stack.
  void post(LuaThread* t, int nargs);
  // The thread whose code is running now (nullptr outside Lua).
  LuaThread* current() const { return current_; }
  LuaThread* find(uint64_t id) const;
  LuaThread* find(lua_State* co) const;
  // Marks the current thread parked on an operation; `cancel` undoes it.
  void suspend(LuaThread* t, std::function<void()> cancel);
  // Drops a thread: cancels its pending operation, never resumes it again.
  void kill(LuaThread* t);
  size_t alive() const { return alive_; }
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
  void release(LuaThread* t);
  void orphan_children(LuaThread* t);
  void mark_dead(lua_State* co);

 public:
  bool is_dead(lua_State* L, int idx);

 private:
  void drain();
  static void on_posted(int, short, void* arg);

  lua_State* L_;
  event_base* base_;
  std::unique_ptr<event, void (*)(event*)> post_ev_;
  std::unordered_map<uint64_t, std::unique_ptr<LuaThread>> threads_;
  std::unordered_map<lua_State*, uint64_t> by_co_;
  std::deque<uint64_t> posted_;
  LuaThread* current_ = nullptr;
  uint64_t next_id_ = 1;
  size_t alive_ = 0;
  int dead_ref_ = LUA_NOREF;
};

}  // namespace cosocket
