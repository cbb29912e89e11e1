#pragma once
// package.path / package.cpath of a new Lua state (ngx/package_path.cc).
#include <lua.hpp>

namespace cosocket {

// Prepends the -I dirs, the bundled drivers and the usual library trees to package.path
// (and package.cpath). The drivers come from the source tree only for the build tree's own
// binary (the cosocket-build-tree marker CMake writes beside it); any other copy looks in
// <its dir>/../share/cosocket/lua, then the configured install dir.
void set_package_path(lua_State* L);

}  // namespace cosocket
