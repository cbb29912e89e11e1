#pragma once
namespace cosocket {
struct EmbeddedLua {
  const char* name;
  const char* source;
};
// Null-terminated table of the Lua files under cosocket/lua/, compiled in.
extern const EmbeddedLua kEmbeddedLua[];
}  // namespace cosocket
