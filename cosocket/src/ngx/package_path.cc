// package.path and package.cpath of a new Lua state: -I dirs, the bundled drivers (found
// from the binary's own location: build tree or installed prefix), the usual library trees.
#include <climits>
#include <cstdlib>
#include <fstream>
#include <string>
#include <unistd.h>

#include "ngx/package_path.h"
#include "runtime/runtime.h"

namespace cosocket {

namespace {

// The directory of the running binary ("" when /proc/self/exe can't be read).
std::string exe_dir() {
  char exe[4096];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) return "";
  std::string path(exe, static_cast<size_t>(n));
  return path.substr(0, path.rfind('/'));
}

// The source tree named by the marker CMake writes next to the build tree's binary
// (<build>/cosocket/cosocket-build-tree); "" for any other binary, an installed one above all.
std::string build_tree_source_dir(const std::string& dir) {
  if (dir.empty()) return "";
  std::ifstream marker(dir + "/cosocket-build-tree");
  std::string src;
  if (!marker || !std::getline(marker, src)) return "";
  while (!src.empty() && (src.back() == '\r' || src.back() == ' ')) src.pop_back();
  return (!src.empty() && access(src.c_str(), R_OK) == 0) ? src : "";
}

// Where the bundled drivers are: the source folders when run from the build tree, else
// <bindir>/../share/cosocket/lua (any prefix: relocatable), else the configured install dir.
std::string bundled_lua_path() {
  std::string dir = exe_dir(), path;
  if (std::string src = build_tree_source_dir(dir); !src.empty()) {
    for (const char* d : {"redis", "mysql", "memcached", "dns", "websocket", "beanstalkd", "drivers"})
      path += src + "/" + d + "/?.lua;" + src + "/" + d + "/?/init.lua;";
    return path;
  }
  char real[PATH_MAX];
  std::string share;
  if (!dir.empty() && realpath((dir + "/../share/cosocket/lua").c_str(), real)) share = real;
#ifdef COSOCKET_LUA_INSTALL_DIR
  if (share.empty() && access(COSOCKET_LUA_INSTALL_DIR, R_OK) == 0) share = COSOCKET_LUA_INSTALL_DIR;
#endif
  if (!share.empty()) path = share + "/?.lua;" + share + "/?/init.lua;";
  return path;
}

}  // namespace

void set_package_path(lua_State* L) {
  // -I dirs first (as resty-cli: ?.ljbc, ?.lua, ?/init.ljbc, ?/init.lua, and ?.so in
  // cpath), then the bundled drivers (build tree or installed), then the places where
  // Lua libraries are usually installed (below), then LuaJIT's default
  std::string extra, cextra;
  for (const auto& d : runtime().cfg().include_dirs) {
    extra += d + "/?.ljbc;" + d + "/?.lua;" + d + "/?/init.ljbc;" + d + "/?/init.lua;";
    cextra += d + "/?.so;";
  }
  extra += bundled_lua_path();
  // found with no flags: opm's project tree (`opm --cwd get ...` makes ./resty_modules),
  // the LuaRocks user tree, OpenResty's site tree (opm's global installs); Debian's
  // /usr/share/lua/5.1 and the LuaRocks system tree are in LuaJIT's default already
  std::string tail, ctail;
  auto add_tree = [&](const std::string& lua_dir, const std::string& so_dir) {
    tail += lua_dir + "/?.lua;" + lua_dir + "/?/init.lua;";
    ctail += so_dir + "/?.so;";
  };
  add_tree("./resty_modules/lualib", "./resty_modules/lualib");
  if (const char* home = getenv("HOME"); home && *home)
    add_tree(std::string(home) + "/.luarocks/share/lua/5.1", std::string(home) + "/.luarocks/lib/lua/5.1");
  add_tree("/usr/local/openresty/site/lualib", "/usr/local/openresty/site/lualib");
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "path");
  std::string path = extra + tail + (lua_tostring(L, -1) ? lua_tostring(L, -1) : "");
  lua_pop(L, 1);
  lua_pushstring(L, path.c_str());
  lua_setfield(L, -2, "path");
  lua_getfield(L, -1, "cpath");
  std::string cpath = cextra + ctail + (lua_tostring(L, -1) ? lua_tostring(L, -1) : "");
  lua_pop(L, 1);
  lua_pushstring(L, cpath.c_str());
  lua_setfield(L, -2, "cpath");
  lua_pop(L, 1);
}

}  // namespace cosocket
