#pragma once
#include <cstdint>

#include <lua.hpp>
namespace cosocket {
// Register the metatables and push the constructor (ngx.socket.tcp / udp).
void open_tcp(lua_State* L);
void open_udp(lua_State* L);
// Pushes a connected TCP cosocket that owns `fd`, an accepted connection (listening
// sockets), owned by request req (runtime/request.h): closed when that request ends. It
// is not counted in any pool; setkeepalive puts it in one like any other.
void push_accepted_tcp(lua_State* L, int fd, bool is_unix, uint32_t req);
}  // namespace cosocket
