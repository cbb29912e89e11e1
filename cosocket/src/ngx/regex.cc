// regex.cc -- ngx.re on PCRE2.
//
// Behaviour follows lua-nginx-module 0.10.23 + lua-resty-core as observed through
// /work/shared/tools/openresty-run (see tests/ngx_re_test.cc), with these choices:
//  * messages name PCRE2: "pcre2_compile() failed: <pcre2 message> in \"re\"[ at \"..\"]"
//    (nginx's wording for PCRE2 builds); match failures keep resty.core's
//    "pcre_exec() failed: <code>" with PCRE2's (negative) code.
//  * after an empty match, gmatch/gsub step over one whole character in UTF mode
//    (OpenResty steps one byte and then fails with a bad-offset error).
#include "ngx/regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <cstdint>
#include <cstring>
#include <list>
#include <memory>
#include <new>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

extern "C" {
#include <lauxlib.h>
#include <lua.h>
}

#include "ngx/lua_args.h"

namespace cosocket {
namespace {

constexpr size_t kCacheMaxEntries = 1024;  // lua_regex_cache_max_entries' default
constexpr int kDfaWorkspaceSize = 1000;

// Option letters that are not PCRE2 compile options.
enum ReFlag : unsigned {
  kFlagDfa = 1u << 0,
  kFlagJit = 1u << 1,
  kFlagOnce = 1u << 2,
  kFlagDupNames = 1u << 3,
  kFlagNoUtfCheck = 1u << 4,
};

struct Options {
  uint32_t compile = 0;
  unsigned flags = 0;
};

struct CodeDeleter {
  void operator()(pcre2_code* c) const { pcre2_code_free(c); }
};
struct MatchDataDeleter {
  void operator()(pcre2_match_data* m) const { pcre2_match_data_free(m); }
};
using MatchData = std::unique_ptr<pcre2_match_data, MatchDataDeleter>;

struct NamedGroup {
  std::string name;
  std::vector<int> groups;  // more than one with the D option (or (?J) in the pattern)
};

struct CompiledRegex {
  std::unique_ptr<pcre2_code, CodeDeleter> code;
  int captures = 0;  // 0 in DFA mode: only the whole match is reported
  std::vector<NamedGroup> names;
  unsigned flags = 0;
  bool utf = false;
  uint32_t match_options = 0;

  bool dfa() const { return (flags & kFlagDfa) != 0; }
};
using RegexPtr = std::shared_ptr<const CompiledRegex>;

// Regexes compiled with "o", least recently used evicted first. Entries are shared so
// that a gmatch iterator keeps its regex even after eviction.
class RegexCache {
 public:
  RegexCache() = default;
  RegexCache(const RegexCache&) = delete;
  RegexCache& operator=(const RegexCache&) = delete;

  RegexPtr get(const std::string& key) {
    auto it = index_.find(key);
    if (it == index_.end()) return nullptr;
    lru_.splice(lru_.begin(), lru_, it->second);
    return it->second->second;
  }

  void put(const std::string& key, RegexPtr re) {
    lru_.emplace_front(key, std::move(re));
    index_[key] = lru_.begin();
    if (lru_.size() > kCacheMaxEntries) {
      index_.erase(lru_.back().first);
      lru_.pop_back();
    }
  }

 private:
  std::list<std::pair<std::string, RegexPtr>> lru_;
  std::unordered_map<std::string, std::list<std::pair<std::string, RegexPtr>>::iterator> index_;
};

const char kCacheMeta[] = "cosocket.re.cache";
const char kGmatchMeta[] = "cosocket.re.gmatch";

template <typename T>
int l_gc_destroy(lua_State* L) {
  static_cast<T*>(lua_touserdata(L, 1))->~T();
  return 0;
}

RegexCache* cache_upvalue(lua_State* L) {
  return static_cast<RegexCache*>(lua_touserdata(L, lua_upvalueindex(1)));
}

Options parse_options(lua_State* L, int idx) {
  Options o;
  if (lua_isnoneornil(L, idx)) return o;
  if (lua_type(L, idx) != LUA_TSTRING) luaL_typerror(L, idx, "string");
  const char* s = lua_tostring(L, idx);
  for (const char* p = s; *p != '\0'; ++p) {
    switch (*p) {
      case 'a': o.compile |= PCRE2_ANCHORED; break;
      case 'd': o.flags |= kFlagDfa; break;
      case 'D': o.compile |= PCRE2_DUPNAMES; o.flags |= kFlagDupNames; break;
      case 'i': o.compile |= PCRE2_CASELESS; break;
      case 'j': o.flags |= kFlagJit; break;
      // PCRE1's JAVASCRIPT_COMPAT, spelled out for PCRE2.
      case 'J':
        o.compile |= PCRE2_ALT_BSUX | PCRE2_ALLOW_EMPTY_CLASS | PCRE2_MATCH_UNSET_BACKREF;
        break;
      case 'm': o.compile |= PCRE2_MULTILINE; break;
      case 'o': o.flags |= kFlagOnce; break;
      case 's': o.compile |= PCRE2_DOTALL; break;
      case 'u': o.compile |= PCRE2_UTF; break;
      case 'U': o.compile |= PCRE2_UTF; o.flags |= kFlagNoUtfCheck; break;
      case 'x': o.compile |= PCRE2_EXTENDED; break;
      default:
        luaL_error(L, "unknown flag \"%c\" (flags \"%s\")", *p, s);
    }
  }
  return o;
}

void read_names(CompiledRegex* re) {
  uint32_t count = 0, entry_size = 0;
  PCRE2_SPTR table = nullptr;
  pcre2_pattern_info(re->code.get(), PCRE2_INFO_NAMECOUNT, &count);
  if (count == 0) return;
  pcre2_pattern_info(re->code.get(), PCRE2_INFO_NAMEENTRYSIZE, &entry_size);
  pcre2_pattern_info(re->code.get(), PCRE2_INFO_NAMETABLE, &table);
  // Entries are sorted by name; duplicates are adjacent, in group order.
  for (uint32_t i = 0; i < count; ++i) {
    PCRE2_SPTR e = table + i * entry_size;
    int group = (e[0] << 8) | e[1];
    const char* name = reinterpret_cast<const char*>(e + 2);
    if (re->names.empty() || re->names.back().name != name) re->names.push_back({name, {}});
    re->names.back().groups.push_back(group);
  }
}

// Compiles (or finds in the cache) `pattern`. On failure returns null and sets *err.
RegexPtr compile(RegexCache* cache, const char* pattern, size_t len, const Options& o,
                 std::string* err) {
  std::string key;
  if (o.flags & kFlagOnce) {
    key = std::to_string(o.compile) + '/' + std::to_string(o.flags) + '/';
    key.append(pattern, len);
    if (RegexPtr hit = cache->get(key)) return hit;
  }

  int errcode = 0;
  PCRE2_SIZE erroff = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern), len, o.compile,
                                   &errcode, &erroff, nullptr);
  if (code == nullptr) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(errcode, msg, sizeof msg);
    err->assign("pcre2_compile() failed: ");
    err->append(reinterpret_cast<const char*>(msg));
    err->append(" in \"").append(pattern, len).append("\"");
    if (erroff < len) err->append(" at \"").append(pattern + erroff, len - erroff).append("\"");
    return nullptr;
  }

  auto re = std::make_shared<CompiledRegex>();
  re->code.reset(code);
  re->flags = o.flags;
  re->utf = (o.compile & PCRE2_UTF) != 0;
  if (o.flags & kFlagNoUtfCheck) re->match_options |= PCRE2_NO_UTF_CHECK;
  if ((o.flags & kFlagJit) && !(o.flags & kFlagDfa)) {
    pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // falls back to the interpreter if this fails
  }
  if (!re->dfa()) {
    uint32_t n = 0;
    pcre2_pattern_info(code, PCRE2_INFO_CAPTURECOUNT, &n);
    re->captures = static_cast<int>(n);
    read_names(re.get());
  }
  if (o.flags & kFlagOnce) cache->put(key, re);
  return re;
}

MatchData new_match_data(const CompiledRegex& re) {
  // DFA mode reports several matches, longest first; room for a few is enough.
  uint32_t pairs = re.dfa() ? 8 : static_cast<uint32_t>(re.captures) + 1;
  return MatchData(pcre2_match_data_create(pairs, nullptr));
}

// Returns PCRE2's code: >= 1 on a match, PCRE2_ERROR_NOMATCH, or another negative error.
int exec(const CompiledRegex& re, pcre2_match_data* md, const char* subj, size_t len,
         size_t start) {
  auto s = reinterpret_cast<PCRE2_SPTR>(subj);
  if (re.dfa()) {
    int ws[kDfaWorkspaceSize];
    int rc = pcre2_dfa_match(re.code.get(), s, len, start, re.match_options, md, nullptr, ws,
                             kDfaWorkspaceSize);
    return rc == 0 ? 1 : rc;  // 0: more matches than ovector slots; the longest is first
  }
  return pcre2_match(re.code.get(), s, len, start, re.match_options, md, nullptr);
}

void push_exec_error(lua_State* L, int rc) { lua_pushfstring(L, "pcre_exec() failed: %d", rc); }

void push_group(lua_State* L, const char* subj, const PCRE2_SIZE* ov, int g) {
  if (ov[2 * g] == PCRE2_UNSET) {
    lua_pushboolean(L, 0);
  } else {
    lua_pushlstring(L, subj + ov[2 * g], ov[2 * g + 1] - ov[2 * g]);
  }
}

// Pushes the captures table: [0] the match, [1..n] the groups (false when unset), and
// named groups by name (with D: an array of the values that matched, absent if none).
// With res >= 1 the table at that index is filled and pushed instead of a new one.
void push_captures(lua_State* L, const CompiledRegex& re, const char* subj,
                   const PCRE2_SIZE* ov, int res) {
  if (res > 0) {
    lua_pushvalue(L, res);
  } else {
    lua_createtable(L, re.captures, static_cast<int>(re.names.size()));
  }
  for (int i = 0; i <= re.captures; ++i) {
    push_group(L, subj, ov, i);
    lua_rawseti(L, -2, i);
  }
  for (const NamedGroup& n : re.names) {
    lua_pushlstring(L, n.name.data(), n.name.size());
    if (re.flags & kFlagDupNames) {
      lua_createtable(L, static_cast<int>(n.groups.size()), 0);
      int k = 0;
      for (int g : n.groups) {
        if (ov[2 * g] == PCRE2_UNSET) continue;
        push_group(L, subj, ov, g);
        lua_rawseti(L, -2, ++k);
      }
      if (k == 0) {
        lua_pop(L, 2);
        continue;
      }
    } else {
      push_group(L, subj, ov, n.groups.back());
    }
    lua_rawset(L, -3);
  }
}

// The regex argument must be a string (resty.core fails on anything else, too).
const char* check_regex(lua_State* L, int idx, size_t* len) {
  if (lua_type(L, idx) != LUA_TSTRING) luaL_typerror(L, idx, "string");
  return lua_tolstring(L, idx, len);
}

// ctx.pos (1-based) to a 0-based offset. Returns false when it lies past the end.
bool ctx_start(lua_State* L, int ctx, size_t len, size_t* start) {
  *start = 0;
  if (ctx == 0) return true;
  lua_getfield(L, ctx, "pos");
  int t = lua_type(L, -1);
  if (t == LUA_TNUMBER) {
    lua_Number pos = lua_tonumber(L, -1);
    if (pos > static_cast<lua_Number>(len) + 1) {
      lua_pop(L, 1);
      return false;
    }
    if (pos >= 1) *start = static_cast<size_t>(pos) - 1;
  } else if (t != LUA_TNIL) {
    luaL_error(L, "bad ctx.pos: number expected, got %s", lua_typename(L, t));
  }
  lua_pop(L, 1);
  return true;
}

void set_ctx_pos(lua_State* L, int ctx, PCRE2_SIZE end) {
  if (ctx == 0) return;
  lua_pushnumber(L, static_cast<lua_Number>(end + 1));
  lua_setfield(L, ctx, "pos");
}

int opt_table(lua_State* L, int idx) {
  if (lua_isnoneornil(L, idx)) return 0;
  luaL_checktype(L, idx, LUA_TTABLE);
  return idx;
}

// ngx.re.match(subject, regex, options?, ctx?, res_table?)
int l_re_match(lua_State* L) {
  size_t rlen, slen;
  const char* pattern = check_regex(L, 2, &rlen);
  Options o = parse_options(L, 3);
  int ctx = opt_table(L, 4);
  int res = opt_table(L, 5);
  const char* subj = push_tostring(L, 1, &slen);

  std::string err;
  RegexPtr re = compile(cache_upvalue(L), pattern, rlen, o, &err);
  if (!re) {
    lua_pushnil(L);
    lua_pushlstring(L, err.data(), err.size());
    return 2;
  }
  size_t start;
  if (!ctx_start(L, ctx, slen, &start)) {
    lua_pushnil(L);
    return 1;
  }
  MatchData md = new_match_data(*re);
  int rc = exec(*re, md.get(), subj, slen, start);
  if (rc == PCRE2_ERROR_NOMATCH) {
    lua_pushnil(L);
    return 1;
  }
  if (rc < 0) {
    lua_pushnil(L);
    push_exec_error(L, rc);
    return 2;
  }
  const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md.get());
  set_ctx_pos(L, ctx, ov[1]);
  push_captures(L, *re, subj, ov, res);
  return 1;
}

// ngx.re.find(subject, regex, options?, ctx?, nth?) -> from, to | nil | nil, nil, err
int l_re_find(lua_State* L) {
  size_t rlen, slen;
  const char* pattern = check_regex(L, 2, &rlen);
  Options o = parse_options(L, 3);
  int ctx = opt_table(L, 4);
  int nth = luaL_optint(L, 5, 0);
  if (nth < 0) nth = 0;
  const char* subj = push_tostring(L, 1, &slen);

  std::string err;
  RegexPtr re = compile(cache_upvalue(L), pattern, rlen, o, &err);
  if (!re) {
    lua_pushnil(L);
    lua_pushnil(L);
    lua_pushlstring(L, err.data(), err.size());
    return 3;
  }
  size_t start;
  if (!ctx_start(L, ctx, slen, &start)) {
    lua_pushnil(L);
    return 1;
  }
  MatchData md = new_match_data(*re);
  int rc = exec(*re, md.get(), subj, slen, start);
  if (rc == PCRE2_ERROR_NOMATCH) {
    lua_pushnil(L);
    return 1;
  }
  if (rc < 0) {
    lua_pushnil(L);
    lua_pushnil(L);
    push_exec_error(L, rc);
    return 3;
  }
  if (nth > re->captures) {
    lua_pushnil(L);
    lua_pushnil(L);
    lua_pushliteral(L, "nth out of bound");
    return 3;
  }
  const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md.get());
  set_ctx_pos(L, ctx, ov[1]);
  if (ov[2 * nth] == PCRE2_UNSET) {
    lua_pushnil(L);
    return 1;
  }
  lua_pushnumber(L, static_cast<lua_Number>(ov[2 * nth] + 1));
  lua_pushnumber(L, static_cast<lua_Number>(ov[2 * nth + 1]));
  return 2;
}

// Where the next search starts after a match [from, to): an empty match steps over
// one character so that iteration always advances.
size_t next_start(const CompiledRegex& re, const char* subj, size_t len, size_t to) {
  size_t pos = to + 1;
  if (re.utf) {
    while (pos < len && (static_cast<unsigned char>(subj[pos]) & 0xC0) == 0x80) ++pos;
  }
  return pos;
}

struct GmatchState {
  RegexPtr re;
  MatchData md;
  size_t pos = 0;
  bool done = false;
};

// The gmatch iterator. Upvalues: the subject string, the GmatchState userdata.
int l_re_gmatch_iter(lua_State* L) {
  size_t slen;
  const char* subj = lua_tolstring(L, lua_upvalueindex(1), &slen);
  auto* st = static_cast<GmatchState*>(lua_touserdata(L, lua_upvalueindex(2)));
  if (st->done) {
    lua_pushnil(L);
    return 1;
  }
  const CompiledRegex& re = *st->re;
  int rc = exec(re, st->md.get(), subj, slen, st->pos);
  if (rc == PCRE2_ERROR_NOMATCH) {
    st->done = true;
    lua_pushnil(L);
    return 1;
  }
  if (rc < 0) {
    st->done = true;
    lua_pushnil(L);
    push_exec_error(L, rc);
    return 2;
  }
  const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(st->md.get());
  if (ov[0] == ov[1]) {
    if (ov[1] >= slen) {
      st->done = true;
    } else {
      st->pos = next_start(re, subj, slen, ov[1]);
    }
  } else {
    st->pos = ov[1];
  }
  push_captures(L, re, subj, ov, 0);
  return 1;
}

// ngx.re.gmatch(subject, regex, options?) -> iterator | nil, err
int l_re_gmatch(lua_State* L) {
  size_t rlen, slen;
  const char* pattern = check_regex(L, 2, &rlen);
  Options o = parse_options(L, 3);
  push_tostring(L, 1, &slen);  // upvalue 1

  std::string err;
  RegexPtr re = compile(cache_upvalue(L), pattern, rlen, o, &err);
  if (!re) {
    lua_pushnil(L);
    lua_pushlstring(L, err.data(), err.size());
    return 2;
  }
  void* mem = lua_newuserdata(L, sizeof(GmatchState));  // upvalue 2
  auto* st = new (mem) GmatchState();
  luaL_getmetatable(L, kGmatchMeta);
  lua_setmetatable(L, -2);
  st->md = new_match_data(*re);
  st->re = std::move(re);
  lua_pushcclosure(L, l_re_gmatch_iter, 2);
  return 1;
}

// A compiled replacement template: literal text and capture references.
struct TemplatePiece {
  std::string text;
  int group = -1;  // -1: literal
};

bool compile_template(const char* r, size_t len, std::vector<TemplatePiece>* out) {
  std::string lit;
  auto flush_lit = [&]() {
    if (!lit.empty()) out->push_back({std::move(lit), -1});
    lit.clear();
  };
  auto is_digit = [](char c) { return c >= '0' && c <= '9'; };
  auto read_number = [&](size_t* i) {
    int g = 0;
    while (*i < len && is_digit(r[*i])) {
      if (g < 100000) g = g * 10 + (r[*i] - '0');  // saturate: anything this big is unset
      ++*i;
    }
    return g;
  };
  size_t i = 0;
  while (i < len) {
    if (r[i] != '$') {
      lit.push_back(r[i++]);
      continue;
    }
    if (++i >= len) return false;
    if (r[i] == '$') {
      lit.push_back('$');
      ++i;
    } else if (is_digit(r[i])) {
      flush_lit();
      out->push_back({std::string(), read_number(&i)});
    } else if (r[i] == '{') {
      ++i;
      if (i >= len || !is_digit(r[i])) return false;  // named references are unsupported
      int g = read_number(&i);
      if (i >= len || r[i] != '}') return false;
      ++i;
      flush_lit();
      out->push_back({std::string(), g});
    } else {
      return false;
    }
  }
  flush_lit();
  return true;
}

// ngx.re.sub / ngx.re.gsub (subject, regex, replace, options?) -> newstr, n | nil, nil, err
int re_substitute(lua_State* L, bool global) {
  size_t rlen, slen;
  const char* pattern = check_regex(L, 2, &rlen);
  Options o = parse_options(L, 4);
  bool use_func = lua_type(L, 3) == LUA_TFUNCTION;
  const char* subj = push_tostring(L, 1, &slen);

  std::string err;
  RegexPtr re = compile(cache_upvalue(L), pattern, rlen, o, &err);
  if (!re) {
    lua_pushnil(L);
    lua_pushnil(L);
    lua_pushlstring(L, err.data(), err.size());
    return 3;
  }
  std::vector<TemplatePiece> tpl;
  if (!use_func) {
    size_t tlen;
    const char* t = push_tostring(L, 3, &tlen);
    bool ok = compile_template(t, tlen, &tpl);
    lua_pop(L, 1);
    if (!ok) {
      lua_pushnil(L);
      lua_pushnil(L);
      lua_pushliteral(L, "failed to compile the replacement template");
      return 3;
    }
  }

  MatchData md = new_match_data(*re);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  size_t pos = 0, copied = 0;
  int count = 0;
  for (;;) {
    int rc = exec(*re, md.get(), subj, slen, pos);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    if (rc < 0) {
      luaL_pushresult(&b);
      lua_pop(L, 1);
      lua_pushnil(L);
      lua_pushnil(L);
      push_exec_error(L, rc);
      return 3;
    }
    ++count;
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md.get());
    PCRE2_SIZE from = ov[0], to = ov[1];
    luaL_addlstring(&b, subj + copied, from - copied);
    if (use_func) {
      lua_pushvalue(L, 3);
      push_captures(L, *re, subj, ov, 0);
      lua_call(L, 1, 1);
      push_tostring(L, -1, nullptr);
      lua_remove(L, -2);
      luaL_addvalue(&b);
    } else {
      for (const TemplatePiece& p : tpl) {
        if (p.group < 0) {
          luaL_addlstring(&b, p.text.data(), p.text.size());
        } else if (p.group <= re->captures && ov[2 * p.group] != PCRE2_UNSET) {
          luaL_addlstring(&b, subj + ov[2 * p.group], ov[2 * p.group + 1] - ov[2 * p.group]);
        }
      }
    }
    copied = to;
    if (!global) break;
    if (from == to) {
      if (to >= slen) break;
      pos = next_start(*re, subj, slen, to);
    } else {
      pos = to;
    }
  }
  luaL_addlstring(&b, subj + copied, slen - copied);
  luaL_pushresult(&b);
  lua_pushinteger(L, count);
  return 2;
}

int l_re_sub(lua_State* L) { return re_substitute(L, false); }
int l_re_gsub(lua_State* L) { return re_substitute(L, true); }

// ngx.re.opt(name, value): only "jit_stack_size" exists in OpenResty; PCRE2's default
// JIT stack is used here, so the value is checked and otherwise ignored.
int l_re_opt(lua_State* L) {
  const char* name = luaL_checkstring(L, 1);
  if (std::strcmp(name, "jit_stack_size") != 0) {
    return luaL_error(L, "unrecognized option name");
  }
  luaL_checknumber(L, 2);
  return 0;
}

}  // namespace

void open_ngx_re(lua_State* L, int ngx) {
  luaL_newmetatable(L, kGmatchMeta);
  lua_pushcfunction(L, l_gc_destroy<GmatchState>);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);

  lua_createtable(L, 0, 6);  // ngx.re
  void* mem = lua_newuserdata(L, sizeof(RegexCache));
  new (mem) RegexCache();
  luaL_newmetatable(L, kCacheMeta);
  lua_pushcfunction(L, l_gc_destroy<RegexCache>);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);

  const luaL_Reg funcs[] = {
      {"match", l_re_match}, {"find", l_re_find}, {"gmatch", l_re_gmatch},
      {"sub", l_re_sub},     {"gsub", l_re_gsub},
  };
  for (const luaL_Reg& f : funcs) {
    lua_pushvalue(L, -1);  // the cache, shared as upvalue 1
    lua_pushcclosure(L, f.func, 1);
    lua_setfield(L, -3, f.name);
  }
  lua_pop(L, 1);  // the cache
  lua_pushcfunction(L, l_re_opt);
  lua_setfield(L, -2, "opt");
  lua_setfield(L, ngx, "re");
}

}  // namespace cosocket
