#include "runtime/scheduler.h"

#include <algorithm>

#include <event2/event.h>

#include "loop/clock.h"
#include "runtime/runtime.h"
#include "runtime/traceback.h"

namespace cosocket {

char kYieldSentinel;

int yield_op(lua_State* L) {
  lua_pushlightuserdata(L, &kYieldSentinel);
  return lua_yield(L, 1);
}

Scheduler::Scheduler(lua_State* L, event_base* base)
    : L_(L), base_(base), reqs_(L), post_ev_(event_new(base, -1, 0, &Scheduler::on_posted, this), event_free) {}

Scheduler::~Scheduler() = default;

LuaThread* Scheduler::create(lua_State* L, int nargs, ThreadKind kind, uint64_t parent, uint32_t req) {
  lua_State* co = lua_newthread(L);
  int ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_xmove(L, co, nargs + 1);
  lua_rawgeti(co, LUA_REGISTRYINDEX, wrapper_ref_);  // wrapper(f, args...): tracebacks
  lua_insert(co, 1);
  auto t = std::make_unique<LuaThread>();
  uint32_t slot;
  if (!free_slots_.empty()) {
    slot = free_slots_.back();
    free_slots_.pop_back();
  } else {
    slot = static_cast<uint32_t>(slots_.size());
    slots_.emplace_back();
    gens_.push_back(0);
  }
  if (++gens_[slot] == 0) ++gens_[slot];
  t->id = (static_cast<uint64_t>(gens_[slot]) << 32) | slot;
  t->co = co;
  t->ref = ref;
  t->kind = kind;
  t->parent = parent;
  LuaThread* raw = t.get();
  by_co_[co] = raw->id;
  slots_[slot] = std::move(t);
  LuaThread* p = kind == ThreadKind::user ? find(parent) : nullptr;
  if (p) p->fam().children.push_back(raw->id);
  if (!req) req = p && p->req ? p->req : reqs_.open();
  reqs_.hold(req);
  raw->req = req;
  lua_setexdata(co, request_handle(req));  // base.get_request() (request.h)
  ++alive_;
  return raw;
}

LuaThread* Scheduler::find(uint64_t id) const {
  uint64_t slot = id & 0xffffffffu;
  if (slot >= slots_.size()) return nullptr;
  LuaThread* t = slots_[slot].get();
  return t && t->id == id ? t : nullptr;
}

LuaThread* Scheduler::find(lua_State* co) {
  auto it = by_co_.find(co);
  if (it != by_co_.end()) return find(it->second);
  return weak_zombies_ ? find_zombie(co) : nullptr;
}

namespace {
struct ZombieGuard {
  Scheduler* sched;
  uint64_t id;
};
}  // namespace

LuaThread* Scheduler::find_zombie(lua_State* co) {
  lua_rawgeti(L_, LUA_REGISTRYINDEX, zombies_ref_);
  lua_pushthread(co);
  lua_xmove(co, L_, 1);
  lua_rawget(L_, -2);
  auto* g = static_cast<ZombieGuard*>(lua_touserdata(L_, -1));
  LuaThread* t = g ? find(g->id) : nullptr;
  lua_pop(L_, 2);
  return t;
}

void Scheduler::hold_weakly(LuaThread* t) {
  lua_rawgeti(L_, LUA_REGISTRYINDEX, zombies_ref_);
  lua_rawgeti(L_, LUA_REGISTRYINDEX, t->ref);  // the coroutine: the key
  auto* g = static_cast<ZombieGuard*>(lua_newuserdata(L_, sizeof(ZombieGuard)));
  g->sched = this;
  g->id = t->id;
  lua_rawgeti(L_, LUA_REGISTRYINDEX, guard_mt_ref_);
  lua_setmetatable(L_, -2);
  lua_rawset(L_, -3);
  lua_pop(L_, 1);
  luaL_unref(L_, LUA_REGISTRYINDEX, t->ref);
  t->ref = LUA_NOREF;
  by_co_.erase(t->co);
  ++weak_zombies_;
}

// The guard of a collected zombie (its coroutine went with the same collection, or an
// earlier one): frees the record if nobody released it since.
int Scheduler::on_zombie_gc(lua_State* L) {
  auto* g = static_cast<ZombieGuard*>(lua_touserdata(L, 1));
  Scheduler* s = g->sched;
  if (s->stopping) return 0;  // the runtime is closing: the scheduler frees the rest
  LuaThread* t = s->find(g->id);
  if (t && t->state == ThreadState::zombie && t->ref == LUA_NOREF) s->release(t, false);
  return 0;
}

void Scheduler::suspend(LuaThread* t, std::function<void()> cancel) {
  t->state = ThreadState::waiting;
  t->cancel = std::move(cancel);
}

void Scheduler::resume(LuaThread* t, int nargs) {
  if (stopping) return;
  LuaThread* prev = current_;
  if (!prev) clock_update();  // a fresh turn of the loop: time has passed
  current_ = t;
  t->state = ThreadState::running;
  t->parked = false;
  t->cancel = nullptr;
  if (!t->started) {
    t->started = true;
    ++nargs;  // the thread's function, an argument of its wrapper
  }
  int rc = lua_resume(t->co, nargs);
  current_ = prev;
  if (rc == LUA_YIELD) {
    lua_settop(t->co, 0);
    // A yield that registered nothing (a raw coroutine.yield at the top of a light
    // thread) gives way to the others, like ngx.sleep(0).
    if (t->state == ThreadState::running) post(t, 0);
    return;
  }
  finish(t, rc == 0);
}

void Scheduler::post(LuaThread* t, int nargs) {
  t->state = ThreadState::ready;
  t->ready_nargs = nargs;
  posted_.push_back(t->id);
  // a zero timeout rather than event_active: the loop polls I/O and timers between two
  // drains, so a thread spinning on ngx.sleep(0) cannot starve them
  static const timeval zero{0, 0};
  if (!event_pending(post_ev_.get(), EV_TIMEOUT, nullptr)) evtimer_add(post_ev_.get(), &zero);
}

void Scheduler::on_posted(int, short, void* arg) { static_cast<Scheduler*>(arg)->drain(); }

void Scheduler::drain() {
  std::deque<uint64_t> batch;
  batch.swap(posted_);
  for (uint64_t id : batch) {
    if (stopping) return;
    LuaThread* t = find(id);
    if (t && t->state == ThreadState::ready) resume(t, t->ready_nargs);
  }
}

static int push_results_table(lua_State* from, lua_State* L, int first, int last) {
  int n = last - first + 1;
  lua_createtable(L, n, 1);
  for (int i = 0; i < n; ++i) {
    lua_pushvalue(from, first + i);
    lua_xmove(from, L, 1);
    lua_rawseti(L, -2, i + 1);
  }
  lua_pushinteger(L, n);
  lua_setfield(L, -2, "n");
  return luaL_ref(L, LUA_REGISTRYINDEX);
}

// Pushes `ok, results...` of a zombie onto L; returns the count.
static int push_zombie(lua_State* L, LuaThread* z) {
  lua_pushboolean(L, z->ok);
  lua_rawgeti(L, LUA_REGISTRYINDEX, z->results_ref);
  lua_getfield(L, -1, "n");
  int n = static_cast<int>(lua_tointeger(L, -1));
  lua_pop(L, 1);
  luaL_checkstack(L, n + 2, "too many results");
  for (int i = 1; i <= n; ++i) lua_rawgeti(L, -i, i);
  lua_remove(L, -(n + 1));
  return n + 1;
}

void Scheduler::leave_request(LuaThread* t) {
  if (!t->req) return;
  uint32_t req = t->req;
  t->req = 0;
  reqs_.drop(req);
}

void Scheduler::finish(LuaThread* t, bool ok) {
  --alive_;
  leave_request(t);
  t->ok = ok;
  lua_State* co = t->co;
  if (!ok) {
    // error value + traceback of the dead coroutine
    const char* msg = lua_tostring(co, -1);
    std::string text = msg ? msg : (std::string("(error object is a ") + luaL_typename(co, -1) + " value)");
    std::string tb = text + "\n" + take_traceback(L_, co);
    if (t->kind == ThreadKind::entry) {
      if (on_entry_error) on_entry_error(tb);
    } else {
      log_message(kErr, std::string(t->kind == ThreadKind::user ? "lua user thread aborted: runtime error: "
                                                                    : "lua entry thread aborted: runtime error: ") +
                               tb + (t->kind == ThreadKind::timer ? "\ncontext: ngx.timer" : ""));
    }
    // keep the error value itself (a table stays a table) as the only result
    lua_insert(co, 1);
    lua_settop(co, 1);
  }
  orphan_children(t);
  if (t->on_finish) {
    auto fn = std::move(t->on_finish);
    (*fn)();
  }
  if (t->kind == ThreadKind::user && t->parent) {
    LuaThread* p = find(t->parent);
    if (p) {
      if (p->state == ThreadState::waiting &&
          p->family &&
          std::find(p->family->waiting_on.begin(), p->family->waiting_on.end(), t->id) !=
              p->family->waiting_on.end()) {
        p->family->waiting_on.clear();
        p->cancel = nullptr;
        lua_pushboolean(p->co, ok);
        int n = lua_gettop(co);
        lua_xmove(co, p->co, n);
        post(p, n + 1);
        release(t);
        return;
      }
      t->results_ref = push_results_table(co, L_, 1, lua_gettop(co));
      lua_settop(co, 0);
      t->state = ThreadState::zombie;
      hold_weakly(t);
      return;
    }
  }
  release(t);
}

// A thread is gone: its zombie children can no longer be waited for, the running ones
// carry on without a parent.
void Scheduler::orphan_children(LuaThread* t) {
  if (!t->family) return;
  for (uint64_t cid : t->family->children) {
    if (LuaThread* c = find(cid)) {
      if (c->state == ThreadState::zombie) release(c, c->ref != LUA_NOREF);
      else c->parent = 0;
    }
  }
  t->family->children.clear();
}

void Scheduler::release(LuaThread* t, bool co_alive) {
  if (t->ref == LUA_NOREF) {  // a weakly held zombie
    --weak_zombies_;
    if (co_alive) {
      mark_dead(t->co);
      // its guard goes with the entry (and finds no record when collected)
      lua_rawgeti(L_, LUA_REGISTRYINDEX, zombies_ref_);
      lua_pushthread(t->co);
      lua_xmove(t->co, L_, 1);
      lua_pushnil(L_);
      lua_rawset(L_, -3);
      lua_pop(L_, 1);
    }
  } else {
    if (t->kind == ThreadKind::user) mark_dead(t->co);
    luaL_unref(L_, LUA_REGISTRYINDEX, t->ref);
    by_co_.erase(t->co);
  }
  luaL_unref(L_, LUA_REGISTRYINDEX, t->results_ref);
  uint32_t slot = static_cast<uint32_t>(t->id & 0xffffffffu);
  slots_[slot].reset();  // t is gone
  free_slots_.push_back(slot);
  if (alive_ == 0 && on_idle) on_idle();
}

void Scheduler::kill(LuaThread* t) {
  if (t->state == ThreadState::zombie) {
    release(t);
    return;
  }
  if (t->cancel) {
    auto c = std::move(t->cancel);
    c();
  }
  t->state = ThreadState::dead;
  --alive_;
  leave_request(t);
  orphan_children(t);
  if (t->on_finish) {
    auto fn = std::move(t->on_finish);
    (*fn)();
  }
  release(t);
}

// A weak table co -> true of user threads that were waited for or killed, so that a
// second wait/kill on them says "already waited or killed".
void Scheduler::mark_dead(lua_State* co) {
  lua_rawgeti(L_, LUA_REGISTRYINDEX, dead_ref_);
  lua_pushthread(co);
  lua_xmove(co, L_, 1);
  lua_pushboolean(L_, 1);
  lua_rawset(L_, -3);
  lua_pop(L_, 1);
}

bool Scheduler::is_dead(lua_State* L, int idx) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, dead_ref_);
  lua_pushvalue(L, idx);
  lua_rawget(L, -2);
  bool dead = lua_toboolean(L, -1);
  lua_pop(L, 2);
  if (!dead) {  // a zombie released when its parent ended leaves a guard with a stale id
    lua_rawgeti(L, LUA_REGISTRYINDEX, zombies_ref_);
    lua_pushvalue(L, idx);
    lua_rawget(L, -2);
    auto* g = static_cast<ZombieGuard*>(lua_touserdata(L, -1));
    dead = g && !find(g->id);
    lua_pop(L, 2);
  }
  return dead;
}

void Scheduler::init_dead_table() {
  push_thread_wrapper(L_);
  wrapper_ref_ = luaL_ref(L_, LUA_REGISTRYINDEX);
  lua_newtable(L_);
  lua_newtable(L_);
  lua_pushliteral(L_, "k");
  lua_setfield(L_, -2, "__mode");
  lua_setmetatable(L_, -2);
  dead_ref_ = luaL_ref(L_, LUA_REGISTRYINDEX);
  lua_newtable(L_);  // zombies: weak keys
  lua_newtable(L_);
  lua_pushliteral(L_, "k");
  lua_setfield(L_, -2, "__mode");
  lua_setmetatable(L_, -2);
  zombies_ref_ = luaL_ref(L_, LUA_REGISTRYINDEX);
  lua_newtable(L_);  // the guards' metatable
  lua_pushcfunction(L_, &Scheduler::on_zombie_gc);
  lua_setfield(L_, -2, "__gc");
  guard_mt_ref_ = luaL_ref(L_, LUA_REGISTRYINDEX);
}

// ---- ngx.thread.* ---------------------------------------------------------------

int Scheduler::l_spawn(lua_State* L) {
  Scheduler& s = runtime().sched();
  LuaThread* cur = s.current();
  if (!cur) return luaL_error(L, "no running light thread");
  luaL_argcheck(L, lua_isfunction(L, 1) && !lua_iscfunction(L, 1), 1, "Lua function expected");
  int nargs = lua_gettop(L) - 1;
  LuaThread* t = s.create(L, nargs, ThreadKind::user, cur->id);
  lua_rawgeti(L, LUA_REGISTRYINDEX, t->ref);
  s.resume(t, nargs);
  if (s.stopping) return yield_op(L);  // the child called ngx.exit: stop here too
  return 1;
}

int Scheduler::l_wait(lua_State* L) {
  Scheduler& s = runtime().sched();
  LuaThread* cur = s.current();
  if (!cur) return luaL_error(L, "no running light thread");
  int n = lua_gettop(L);
  if (n == 0) return luaL_error(L, "at least one coroutine should be specified");
  std::vector<uint64_t> ids;
  for (int i = 1; i <= n; ++i) {
    lua_State* co = lua_tothread(L, i);
    if (!co) return luaL_argerror(L, i, "lua thread expected");
    LuaThread* t = s.find(co);
    if (!t) {
      if (s.is_dead(L, i)) {
        if (i < n) continue;  // as OpenResty: only a dead last argument is an answer
        lua_pushnil(L);
        lua_pushliteral(L, "already waited or killed");
        return 2;
      }
      return luaL_error(L, "attempt to wait on a coroutine that is not a user thread");
    }
    if (t->kind != ThreadKind::user) return luaL_error(L, "attempt to wait on a coroutine that is not a user thread");
    if (t->parent != cur->id) return luaL_error(L, "only the parent coroutine can wait on the thread");
    if (t->state == ThreadState::zombie) {
      int r = push_zombie(L, t);
      s.release(t);
      return r;
    }
    ids.push_back(t->id);
  }
  cur->fam().waiting_on = std::move(ids);
  s.suspend(cur, [cur] { cur->family->waiting_on.clear(); });
  lua_pushlightuserdata(L, &kYieldSentinel);
  return lua_yield(L, 1);
}

int Scheduler::l_kill(lua_State* L) {
  Scheduler& s = runtime().sched();
  LuaThread* cur = s.current();
  if (!cur) return luaL_error(L, "no running light thread");
  lua_State* co = lua_tothread(L, 1);
  if (!co) return luaL_argerror(L, 1, "lua thread expected");
  LuaThread* t = s.find(co);
  if (!t || t->kind != ThreadKind::user) {
    lua_pushnil(L);
    if (!t && s.is_dead(L, 1)) lua_pushliteral(L, "already waited or killed");
    else lua_pushliteral(L, "not user thread");
    return 2;
  }
  if (t->parent != cur->id) {
    lua_pushnil(L);
    lua_pushliteral(L, "killer not parent");
    return 2;
  }
  if (t->state == ThreadState::zombie) {
    s.release(t);
    lua_pushnil(L);
    lua_pushliteral(L, "already terminated");
    return 2;
  }
  s.kill(t);
  lua_pushinteger(L, 1);
  return 1;
}

// ---- the wake-up queue ---------------------------------------------------------

void Scheduler::wake_after(LuaThread* t, long ms, WakeKind kind) {
  if (t->wake_seq) cancel_wake(t);
  uint32_t seq = next_wake_seq_++;
  if (seq == 0) seq = next_wake_seq_++;  // 0 means "not queued"
  Wake w{mono_ms() + (ms < 0 ? 0 : ms), t->id, seq, kind};
  wakes_.push_back(w);
  std::push_heap(wakes_.begin(), wakes_.end(), later);
  t->wake_seq = w.seq;
  ++live_wakes_;
  suspend(t, [this, t] { cancel_wake(t); });
  arm_wake_timer();
}

void Scheduler::cancel_wake(LuaThread* t) {
  if (!t->wake_seq) return;
  t->wake_seq = 0;
  --live_wakes_;
  if (live_wakes_ == 0) {
    wakes_.clear();
  } else if (wakes_.size() > 1024 && wakes_.size() > 4 * live_wakes_) {
    // many cancelled sleeps (threads killed early): keep only the live entries
    std::vector<Wake> keep;
    keep.reserve(live_wakes_ * 2);
    for (const Wake& w : wakes_) {
      LuaThread* o = find(w.id);
      if (o && o->wake_seq == w.seq) keep.push_back(w);
    }
    std::make_heap(keep.begin(), keep.end(), later);
    wakes_.swap(keep);
  }
  arm_wake_timer();
}

void Scheduler::arm_wake_timer() {
  if (!wake_ev_) wake_ev_ = {evtimer_new(base_, &Scheduler::on_wake_timer, this), event_free};
  if (live_wakes_ == 0) {
    if (armed_due_ >= 0) evtimer_del(wake_ev_.get());
    armed_due_ = -1;
    return;
  }
  int64_t due = wakes_.front().due;
  if (due == armed_due_) return;
  int64_t left = due - mono_ms();
  if (left < 0) left = 0;
  timeval tv{static_cast<time_t>(left / 1000), static_cast<suseconds_t>((left % 1000) * 1000)};
  evtimer_add(wake_ev_.get(), &tv);
  armed_due_ = due;
}

void Scheduler::on_wake_timer(int, short, void* arg) {
  auto* self = static_cast<Scheduler*>(arg);
  self->armed_due_ = -1;
  self->fire_wakes();
}

void Scheduler::fire_wakes() {
  int64_t now = mono_ms();
  while (!wakes_.empty() && wakes_.front().due <= now) {
    std::pop_heap(wakes_.begin(), wakes_.end(), later);
    Wake w = wakes_.back();
    wakes_.pop_back();
    LuaThread* t = find(w.id);
    if (!t || t->wake_seq != w.seq) continue;  // cancelled
    t->wake_seq = 0;
    --live_wakes_;
    if (t->state != ThreadState::waiting) continue;
    if (w.kind == WakeKind::park_timeout) {
      if (!t->parked) continue;
      lua_pushnil(t->co);
      lua_pushliteral(t->co, "timeout");
      resume(t, 2);
    } else {
      resume(t, 0);
    }
  }
  if (live_wakes_ == 0) wakes_.clear();
  arm_wake_timer();
}

}  // namespace cosocket
