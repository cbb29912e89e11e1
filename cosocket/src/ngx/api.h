#pragma once
// The ngx API as a whole: what a new Lua state gets (the runtime's ApiInstaller).
#include <lua.hpp>

namespace cosocket {

// Installs the ngx table (light threads, sleep, timers, sockets, exit, config, worker,
// and the families of families.h and regex.h), package.path, ngx.ssl and the embedded
// prelude, whose private primitives (park/wake, the yield sentinel) it also provides.
void open_api(lua_State* L);

}  // namespace cosocket
