#include "runtime/request.h"

#include "loop/clock.h"

namespace cosocket {

uint32_t Requests::open() {
  uint32_t id;
  if (!free_.empty()) {
    id = free_.back();
    free_.pop_back();
  } else {
    slots_.emplace_back();
    id = static_cast<uint32_t>(slots_.size());
  }
  Request& r = at(id);
  r = Request{};
  r.start = clock_now();
  r.in_use = true;
  return id;
}

void Requests::drop(uint32_t id) {
  Request& r = at(id);
  if (r.live > 0 && --r.live > 0) return;
  // what it owns is released first (a release may wake threads of other requests; it
  // runs no Lua here)
  while (Owned* o = at(id).owned) {
    disown(o);
    if (o->end) o->end(o->obj);
  }
  Request& done = at(id);
  if (done.ctx_ref != LUA_NOREF) luaL_unref(L_, LUA_REGISTRYINDEX, done.ctx_ref);
  done.ctx_ref = LUA_NOREF;
  done.in_use = false;
  free_.push_back(id);
}

void Requests::own(uint32_t id, Owned* o) {
  if (o->req == id) return;
  if (o->req) {
    if (o->prev) o->prev->next = o->next;
    else at(o->req).owned = o->next;
    if (o->next) o->next->prev = o->prev;
    o->prev = o->next = nullptr;
  }
  o->req = id;
  if (id) {
    Request& r = at(id);
    o->next = r.owned;
    if (o->next) o->next->prev = o;
    r.owned = o;
  }
}

void Requests::push_ctx(lua_State* L, uint32_t id) {
  Request& r = at(id);
  if (r.ctx_ref == LUA_NOREF) {
    lua_newtable(L);
    lua_pushvalue(L, -1);
    r.ctx_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  } else {
    lua_rawgeti(L, LUA_REGISTRYINDEX, r.ctx_ref);
  }
}

void Requests::set_ctx(lua_State* L, uint32_t id) {
  Request& r = at(id);
  if (r.ctx_ref == LUA_NOREF) {
    r.ctx_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  } else {
    lua_rawseti(L, LUA_REGISTRYINDEX, r.ctx_ref);
  }
}

}  // namespace cosocket
