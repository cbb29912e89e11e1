#pragma once
// Requests without HTTP: what OpenResty calls a request, outside nginx. The main chunk,
// each timer's callback and each cosocket.listen connection handler is one, together with
// the light threads it spawns (and theirs); it ends when the last of them is finished.
// A request holds what lua-nginx-module keeps per request: ngx.ctx and its start time.
#include <cstdint>
#include <vector>

#include <lua.hpp>

namespace cosocket {

// Something a request owns and that is released when the request ends, as lua-nginx-module
// finalizes a request's cosockets in its cleanup: a connected socket. Embedded in the
// object it stands for (which must not move: Lua userdata do not); `end` is called once,
// after the link is undone.
struct Owned {
  Owned* prev = nullptr;
  Owned* next = nullptr;
  uint32_t req = 0;  // 0: owned by no request
  void* obj = nullptr;
  void (*end)(void* obj) = nullptr;
};

struct Request {
  uint32_t live = 0;          // threads (and holders) not yet finished
  int ctx_ref = LUA_NOREF;    // ngx.ctx, made on first use
  double start = 0;           // ngx.req.start_time(): when it began (seconds)
  Owned* owned = nullptr;     // what it releases when it ends
  bool in_use = false;        // between open() and its end
};

// lua-resty-core's base.get_request() is OpenResty LuaJIT's thread.exdata(): every light
// thread's coroutine carries its request as this opaque pointer (lua_setexdata; the
// coroutines it creates inherit it), which the ngx_http_lua_ffi_* functions receive as their
// `ngx_http_request_t *r`. Never dereferenced: the request's id, tagged so that a stray
// pointer is not taken for one. nullptr for no request (resty.core then acts as in init).
inline void* request_handle(uint32_t id) {
  return id ? reinterpret_cast<void*>((static_cast<uintptr_t>(id) << 8) | 0x5a) : nullptr;
}
// The id behind a request_handle (0: none, or not a handle).
inline uint32_t request_id(const void* r) {
  auto v = reinterpret_cast<uintptr_t>(r);
  return (v & 0xff) == 0x5a ? static_cast<uint32_t>(v >> 8) : 0;
}

class Requests {
 public:
  explicit Requests(lua_State* L) : L_(L) {}
  Requests(const Requests&) = delete;
  Requests& operator=(const Requests&) = delete;

  // A new request with nobody holding it yet; its id is never 0.
  uint32_t open();
  void hold(uint32_t id) { at(id).live++; }
  // One holder is done; the last one ends the request and frees what it kept.
  void drop(uint32_t id);
  Request& at(uint32_t id) { return slots_[id - 1]; }
  // The request behind an FFI function's `r` (request_handle), nullptr if it is none or
  // has ended.
  Request* find(const void* r) {
    uint32_t id = request_id(r);
    return id && id <= slots_.size() && slots_[id - 1].in_use ? &slots_[id - 1] : nullptr;
  }
  size_t live_requests() const { return slots_.size() - free_.size(); }

  // o now belongs to request id (0: to none), leaving the one it belonged to.
  void own(uint32_t id, Owned* o);
  void disown(Owned* o) { own(0, o); }

  // ngx.ctx of request id: pushes it onto L (made on first use).
  void push_ctx(lua_State* L, uint32_t id);
  // Replaces it with the value at the top of L's stack (popped).
  void set_ctx(lua_State* L, uint32_t id);

 private:
  lua_State* L_;
  std::vector<Request> slots_;
  std::vector<uint32_t> free_;
};

}  // namespace cosocket
