#pragma once
#include <lua.hpp>
namespace cosocket {
// Register the metatables and push the constructor (ngx.socket.tcp / udp).
void open_tcp(lua_State* L);
void open_udp(lua_State* L);
}  // namespace cosocket
