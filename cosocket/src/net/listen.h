#pragma once
// Servers: cosocket.listen{...} (TCP and unix stream listening sockets, one light thread
// per accepted connection) and cosocket.udp_bind{...} (a bound UDP socket with
// receivefrom/sendto).
#include <lua.hpp>

namespace cosocket {
// Registers the metatables and sets `listen` and `udp_bind` in the table at the top of L.
void open_listen(lua_State* L);
}  // namespace cosocket
