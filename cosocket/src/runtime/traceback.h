#pragma once
// Tracebacks as luajit prints them: taken where the error is raised (so that every Lua
// frame has its file:line, the failing one too), with the runtime's own frames hidden --
// the light-thread wrapper, the Lua-written require, anything from a "[cosocket ...]"
// chunk: a run of them called from user code shows as one "[C]: in function 'name'" line,
// as the C function it stands for would in luajit; at the bottom of the stack it is left out.
#include <string>

#include <lua.hpp>

namespace cosocket {

// L1's stack from `level`, "stack traceback:\n\t..." in luaL_traceback's format.
std::string format_traceback(lua_State* L1, int level);

// xpcall's message handler of light threads and of the Lua-written require: records the
// traceback of the error at hand (unless it is the same error passing through the runtime's
// own frames, which keeps the first one) and returns the error value unchanged.
int traceback_handler(lua_State* L);

// The traceback recorded for the error value on top of co's stack (a light thread that
// ended with it), taken off the record; format_traceback(co, 0) when there is none.
std::string take_traceback(lua_State* L, lua_State* co);

// Pushes the function every light thread runs in: wrapper(f, ...) calls f(...) under
// traceback_handler and raises its error again (the thread still ends with it).
void push_thread_wrapper(lua_State* L);

// debug.traceback([thread,] [message [, level]]) with the runtime's frames hidden.
int l_debug_traceback(lua_State* L);

}  // namespace cosocket
