#pragma once
// Small helpers shared by the Lua bindings.
#include <string>
#include <sys/uio.h>
#include <vector>

#include <lua.hpp>

namespace cosocket {

// The data argument of send(): a string, number, boolean, nil, ngx.null or a (nested)
// array of those. Fills iov with pointers into Lua strings kept alive by the stack and
// (numbers inside a table) into texts valid until the next call. Raises on a bad type.
// Returns the length.
size_t collect_send_data(lua_State* L, int idx, std::vector<iovec>& iov);

// Fetches an integer field of an options table; returns false when absent (nil).
bool opt_integer(lua_State* L, int tbl, const char* name, long& out, const char* what);

// Pins the value at idx in the registry; returns the ref.
inline int pin(lua_State* L, int idx) {
  lua_pushvalue(L, idx);
  return luaL_ref(L, LUA_REGISTRYINDEX);
}

}  // namespace cosocket
