#pragma once
// The request-less context's C primitives (context.cc); lua/context.lua builds on them.
#include <lua.hpp>

namespace cosocket {

// ctx, set_ctx, start_time into the private table at absolute index priv
void open_context_primitives(lua_State* L, int priv);

}  // namespace cosocket
