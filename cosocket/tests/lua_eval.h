// lua_eval.h -- shared by the GoogleTest files that check Lua-facing APIs by evaluating
// Lua expressions: split_top_level, the Lua helpers S / E, and the LuaEvalTest fixture
// (a fresh Lua state with an `ngx` table, plus run() / run_one()).
#ifndef COSOCKET_TESTS_LUA_EVAL_H_
#define COSOCKET_TESTS_LUA_EVAL_H_

#include <string>
#include <vector>

#include <gtest/gtest.h>

extern "C" {
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
}

namespace cosocket {

// Splits a Lua expression list at its top-level commas, so that each expression keeps
// all of its results (Lua truncates every call but the last in a list to one value).
inline std::vector<std::string> split_top_level(const std::string& s) {
  std::vector<std::string> parts;
  std::string cur;
  int depth = 0;
  char quote = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    cur.push_back(c);
    if (quote != 0) {
      if (c == '\\' && i + 1 < s.size()) {
        cur.push_back(s[++i]);
      } else if (c == quote) {
        quote = 0;
      }
      continue;
    }
    if (c == '\'' || c == '"') {
      quote = c;
    } else if (c == '(' || c == '{' || c == '[') {
      ++depth;
    } else if (c == ')' || c == '}' || c == ']') {
      --depth;
    } else if (c == ',' && depth == 0) {
      cur.pop_back();
      parts.push_back(cur);
      cur.clear();
    }
  }
  parts.push_back(cur);
  return parts;
}

// S(...) serializes values deterministically: strings quoted, tables with sorted
// keys, ngx.null as "null". E(f, ...) returns the error message of pcall(f, ...).
inline constexpr char kLuaEvalHelpers[] = R"lua(
local function ser(v)
  local t = type(v)
  if t == "string" then return string.format("%q", v) end
  if v == ngx.null then return "null" end
  if t ~= "table" then return tostring(v) end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b)
    if type(a) ~= type(b) then return type(a) < type(b) end
    return a < b
  end)
  local parts = {}
  for _, k in ipairs(keys) do
    local ks = "[" .. ser(k) .. "]"
    if type(k) == "string" and k:match("^[%a_][%w_]*$") then ks = k end
    parts[#parts + 1] = ks .. "=" .. ser(v[k])
  end
  return "{" .. table.concat(parts, ",") .. "}"
end
function S(...)
  local out = {}
  for i = 1, select("#", ...) do out[i] = ser((select(i, ...))) end
  return table.concat(out, ", ")
end
function E(...)
  local ok, err = pcall(...)
  if ok then return "no error" end
  return err
end
)lua";

// A fresh Lua state per test: the standard libraries, a global `ngx` table holding
// ngx.null (a NULL light userdata) and whatever open_ngx() adds, and the helpers above.
class LuaEvalTest : public ::testing::Test {
 protected:
  // Adds the API under test to the ngx table at stack index `ngx`.
  virtual void open_ngx(int ngx) = 0;

  void SetUp() override {
    L = luaL_newstate();
    luaL_openlibs(L);
    lua_newtable(L);
    lua_pushlightuserdata(L, nullptr);
    lua_setfield(L, -2, "null");
    open_ngx(lua_gettop(L));
    lua_setglobal(L, "ngx");
    ASSERT_EQ(luaL_dostring(L, kLuaEvalHelpers), 0) << lua_tostring(L, -1);
  }
  void TearDown() override { lua_close(L); }

  // Evaluates a comma-separated list of expressions, each on its own, and returns
  // their serialized results joined by ", " (or "ERROR: msg").
  std::string run(const std::string& exprs) {
    std::string out;
    for (const std::string& e : split_top_level(exprs)) {
      std::string r = run_one(e);
      if (r.rfind("ERROR: ", 0) == 0) return r;
      if (!out.empty() && !r.empty()) out += ", ";
      out += r;
    }
    return out;
  }

  std::string run_one(const std::string& expr) {
    std::string code = "return S(" + expr + ")";
    if (luaL_dostring(L, code.c_str()) != 0) {
      std::string err = std::string("ERROR: ") + lua_tostring(L, -1);
      lua_pop(L, 1);
      return err;
    }
    std::string out = lua_tostring(L, -1);
    lua_pop(L, 1);
    return out;
  }

  lua_State* L = nullptr;
};

}  // namespace cosocket

#endif  // COSOCKET_TESTS_LUA_EVAL_H_
