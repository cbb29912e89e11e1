// traceback.cc -- tracebacks without the runtime's frames (see traceback.h).
#include "runtime/traceback.h"

#include <cstring>
#include <vector>

namespace cosocket {
namespace {

const char kRecordKey[] = "cosocket.traceback";  // registry: {co = , value = , text = }

bool runtime_frame(const lua_Debug& ar) { return strncmp(ar.source, "=[cosocket ", 11) == 0; }

struct Frame {
  lua_Debug ar;
  bool c;        // a C function
  bool runtime;  // one of the runtime's own Lua frames
};

void add_line(std::string& out, const Frame& f) {
  const lua_Debug& ar = f.ar;
  out += "\n\t";
  out += ar.short_src;
  out += ':';
  if (ar.currentline > 0) out += std::to_string(ar.currentline) + ":";
  if (*ar.namewhat) {
    out += std::string(" in function '") + ar.name + "'";
  } else if (*ar.what == 'm') {
    out += " in main chunk";
  } else if (*ar.what == 'C') {
    out += " ?";
  } else {
    out += std::string(" in function <") + ar.short_src + ":" + std::to_string(ar.linedefined) + ">";
  }
}

}  // namespace

std::string format_traceback(lua_State* L1, int level) {
  std::vector<Frame> frames;
  lua_Debug ar;
  for (int l = level; lua_getstack(L1, l, &ar); ++l) {
    if (!lua_getinfo(L1, "Snl", &ar)) break;
    frames.push_back(Frame{ar, *ar.what == 'C', runtime_frame(ar)});
  }
  // a C function the runtime's own code called belongs to the runtime too
  for (size_t k = 0; k + 1 < frames.size(); ++k)
    if (frames[k].c && frames[k + 1].runtime) frames[k].runtime = true;
  std::vector<Frame> shown;
  for (size_t k = 0; k < frames.size(); ++k) {
    if (!frames[k].runtime) {
      shown.push_back(frames[k]);
      continue;
    }
    size_t last = k;  // the run's outermost frame: what the user code called
    while (last + 1 < frames.size() && frames[last + 1].runtime) ++last;
    if (last + 1 < frames.size()) {
      Frame f = frames[last];
      f.ar.currentline = -1;
      strcpy(f.ar.short_src, "[C]");
      f.ar.what = "C";
      shown.push_back(f);
    }
    k = last;
  }
  std::string out = "stack traceback:";
  const size_t kHead = 12, kTail = 10;  // luaL_traceback's limits
  for (size_t k = 0; k < shown.size(); ++k) {
    if (shown.size() > kHead + kTail + 1 && k == kHead) {
      out += "\n\t...";
      k = shown.size() - kTail - 1;
      continue;
    }
    add_line(out, shown[k]);
  }
  return out;
}

int traceback_handler(lua_State* L) {
  lua_settop(L, 1);
  lua_getfield(L, LUA_REGISTRYINDEX, kRecordKey);
  if (!lua_istable(L, -1)) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, kRecordKey);
  }
  int rec = lua_gettop(L);
  // the same error raised again by the runtime's own code (require's pcall): keep the
  // traceback of where it was raised first
  lua_Debug ar;
  bool by_runtime = false;
  for (int l = 1; lua_getstack(L, l, &ar); ++l) {
    lua_getinfo(L, "S", &ar);
    if (*ar.what == 'C') continue;
    by_runtime = runtime_frame(ar);
    break;
  }
  lua_getfield(L, rec, "co");
  bool same_co = lua_tothread(L, -1) == L;
  lua_getfield(L, rec, "value");
  bool same = by_runtime && same_co && lua_rawequal(L, -1, 1);
  lua_pop(L, 2);
  if (!same) {
    std::string text = format_traceback(L, 1);
    lua_pushthread(L);
    lua_setfield(L, rec, "co");
    lua_pushvalue(L, 1);
    lua_setfield(L, rec, "value");
    lua_pushlstring(L, text.data(), text.size());
    lua_setfield(L, rec, "text");
  }
  lua_settop(L, 1);
  return 1;
}

std::string take_traceback(lua_State* L, lua_State* co) {
  std::string text;
  lua_getfield(L, LUA_REGISTRYINDEX, kRecordKey);
  if (lua_istable(L, -1)) {
    lua_getfield(L, -1, "co");
    bool same_co = lua_tothread(L, -1) == co;
    lua_pop(L, 1);
    lua_getfield(L, -1, "value");
    lua_pushvalue(co, -1);
    lua_xmove(co, L, 1);
    bool same = same_co && lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    if (same) {
      lua_getfield(L, -1, "text");
      if (const char* s = lua_tostring(L, -1)) text = s;
      lua_pop(L, 1);
      for (const char* k : {"co", "value", "text"}) {
        lua_pushnil(L);
        lua_setfield(L, -2, k);
      }
    }
  }
  lua_pop(L, 1);
  return text.empty() ? format_traceback(co, 0) : text;
}

void push_thread_wrapper(lua_State* L) {
  static const char kWrapper[] = R"(
local xpcall, error, handler = xpcall, error, ...
local function finish(ok, ...)
    if ok then
        return ...
    end
    error((...), 0)
end
return function(f, ...)
    return finish(xpcall(f, handler, ...))
end
)";
  if (luaL_loadbuffer(L, kWrapper, sizeof kWrapper - 1, "=[cosocket thread]") != 0) lua_error(L);
  lua_pushcfunction(L, traceback_handler);
  lua_call(L, 1, 1);
}

int l_debug_traceback(lua_State* L) {
  lua_State* L1 = L;
  int arg = 0;
  if (lua_isthread(L, 1)) {
    L1 = lua_tothread(L, 1);
    arg = 1;
  }
  if (!lua_isnoneornil(L, arg + 1) && !lua_isstring(L, arg + 1)) {  // not a message: as it is
    lua_pushvalue(L, arg + 1);
    return 1;
  }
  int level = static_cast<int>(luaL_optinteger(L, arg + 2, L1 == L ? 1 : 0));
  std::string text;
  if (const char* msg = lua_tostring(L, arg + 1)) text = std::string(msg) + "\n";
  text += format_traceback(L1, level);
  lua_pushlstring(L, text.data(), text.size());
  return 1;
}

}  // namespace cosocket
