#include "runtime/timers.h"

#include <string>
#include <vector>

#include <event2/event.h>

#include "loop/clock.h"
#include "runtime/log.h"
#include "runtime/runtime.h"

namespace cosocket {

struct Timers::Pending {
  Timers* owner = nullptr;
  bool every = false;
  long delay_ms = 0;
  int args_ref = LUA_NOREF;  // {f, a1..an, n = count of a's}
  EventPtr ev{nullptr, event_free_fn};
};

Timers::Timers(Runtime& rt) : rt_(rt) {}

Timers::~Timers() = default;

// The Lua state is closed after this: the argument tables go with it.
void Timers::clear() { pending_timers_.clear(); }

int Timers::create(lua_State* L, bool every) {
  if (lua_gettop(L) < 2) return luaL_error(L, "expecting at least 2 arguments but got %d", lua_gettop(L));
  double delay = luaL_checknumber(L, 1);
  if (delay < 0) return luaL_error(L, "bad delay");
  if (every && delay == 0) return luaL_error(L, "delay cannot be zero");
  luaL_argcheck(L, lua_isfunction(L, 2) && !lua_iscfunction(L, 2), 2, "Lua function expected");
  if (rt_.exiting() && (every || delay > 0)) {
    lua_pushnil(L);
    lua_pushliteral(L, "process exiting");
    return 2;
  }
  if (pending_ >= rt_.cfg().max_pending_timers) {
    lua_pushnil(L);
    lua_pushliteral(L, "too many pending timers");
    return 2;
  }
  int n = lua_gettop(L);
  lua_createtable(L, n - 1, 1);
  for (int i = 2; i <= n; ++i) {
    lua_pushvalue(L, i);
    lua_rawseti(L, -2, i - 1);
  }
  lua_pushinteger(L, n - 2);
  lua_setfield(L, -2, "n");
  auto pt = std::make_unique<Pending>();
  pt->owner = this;
  pt->every = every;
  pt->delay_ms = static_cast<long>(delay * 1000 + 0.5);
  pt->args_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  pt->ev = make_timer(rt_.base(), &Timers::on_timer, pt.get());
  evtimer_add(pt->ev.get(), rt_.timeout_for(pt->delay_ms));
  Pending* raw = pt.get();
  pending_timers_[raw] = std::move(pt);
  ++pending_;
  lua_pushinteger(L, 1);
  return 1;
}

void Timers::on_timer(int, short, void* arg) {
  clock_update();
  auto* pt = static_cast<Pending*>(arg);
  pt->owner->fire(pt, false);
}

void Timers::fire_all_premature() {
  std::vector<Pending*> pending;
  for (auto& kv : pending_timers_) pending.push_back(kv.first);
  for (Pending* pt : pending) fire(pt, true);
}

void Timers::fire(Pending* pt, bool premature) {
  lua_State* L = rt_.L();
  bool keep = pt->every && !premature && !rt_.exiting();
  // start the callback's thread: f(premature, args...)
  lua_rawgeti(L, LUA_REGISTRYINDEX, pt->args_ref);
  int tbl = lua_gettop(L);
  lua_getfield(L, tbl, "n");
  int n = static_cast<int>(lua_tointeger(L, -1));
  lua_pop(L, 1);
  bool run = running_ < rt_.cfg().max_running_timers;
  std::string refused;
  if (run) {
    luaL_checkstack(L, n + 3, "too many timer arguments");
    lua_rawgeti(L, tbl, 1);
    lua_pushboolean(L, premature);
    for (int i = 1; i <= n; ++i) lua_rawgeti(L, tbl, i + 1);
  } else {
    // lua-nginx-module's alert names the callback by where it was defined
    lua_Debug ar;
    lua_rawgeti(L, tbl, 1);
    lua_getinfo(L, ">S", &ar);
    refused = std::string("lua failed to run timer with function defined at ") + ar.source + ":" +
              std::to_string(ar.linedefined) + ": " + std::to_string(rt_.cfg().max_running_timers) +
              " lua_max_running_timers are not enough";
  }
  lua_remove(L, tbl);
  if (keep) {
    evtimer_add(pt->ev.get(), rt_.timeout_for(pt->delay_ms));
  } else {
    --pending_;
    luaL_unref(L, LUA_REGISTRYINDEX, pt->args_ref);
    pending_timers_.erase(pt);  // pt is gone
  }
  if (!run) {
    log_message(kAlert, refused);
    rt_.check_done();
    return;
  }
  // The callback runs now, as nginx runs it from its timer handler: one that returns at
  // once is no longer running when the next timer of the same turn fires (posting them
  // all first counted every one of a burst as running, and dropped what passed the limit).
  Scheduler& sched = rt_.sched();
  LuaThread* t = sched.create(L, n + 1, ThreadKind::timer, 0);
  ++running_;
  t->set_on_finish([this] { --running_; });
  sched.resume(t, n + 1);
}

}  // namespace cosocket
