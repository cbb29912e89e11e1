// shdict.cc -- ngx.shared.DICT's Lua methods over the Store (shdict_store.h).
//
// Arguments, return values and error strings are lua-nginx-module 0.10.23's with
// lua-resty-core 0.1.25, as resty-cli runs them (checked with /work/shared/tools/resty-ref,
// see tests/test_shdict.py): get, get_stale, set, safe_set, add, safe_add, replace, delete,
// incr, ttl, expire, flush_all, capacity and free_space check their arguments as
// resty/core/shdict.lua does (non-string keys go through tostring); lpush, rpush, lpop,
// rpop, llen, flush_expired and get_keys as ngx_http_lua_shdict.c's C functions do. A
// dict is, as there, a table {[1] = userdata} whose metatable is its own __index.
#include "ngx/shdict.h"

#include <climits>
#include <cmath>
#include <cstdint>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string_view>
#include <utility>

#include "ngx/families.h"
#include "ngx/shdict_store.h"

namespace cosocket {

namespace {

using shdict::Store;

constexpr uint64_t kZoneMagic = 0x6e67782e73686172ULL;

struct ZoneUd {
  uint64_t magic;
  Store* store;
};

struct Dict {
  std::string name;
  std::unique_ptr<Store> store;
};

// the process's dicts, made before any fork and never freed before exit
std::vector<Dict>& dicts() {
  static auto* d = new std::vector<Dict>;
  return *d;
}

std::string& die_key() {
  static auto* k = new std::string;
  return *k;
}

void die_hook(std::string_view key) {
  if (key == die_key()) raise(SIGKILL);
}

std::string& scratch() {
  static auto* s = new std::string;
  return *s;
}

Store* udata_store(lua_State* L, int t) {
  if (lua_type(L, t) != LUA_TTABLE) return nullptr;
  lua_rawgeti(L, t, 1);
  Store* s = nullptr;
  if (lua_type(L, -1) == LUA_TUSERDATA && lua_objlen(L, -1) == sizeof(ZoneUd)) {
    auto* z = static_cast<ZoneUd*>(lua_touserdata(L, -1));
    if (z->magic == kZoneMagic) s = z->store;
  }
  lua_pop(L, 1);
  return s;
}

// resty.core's check_zone
Store* check_zone(lua_State* L) {
  Store* s = udata_store(L, 1);
  if (!s) luaL_error(L, "bad \"zone\" argument");
  return s;
}

int push_nil_err(lua_State* L, const char* err) {
  lua_pushnil(L);
  lua_pushstring(L, err);
  return 2;
}

// resty.core's key checks: nil, tostring() for others, empty, too long. 0 when *key is
// set; else the number of values pushed (nil, err).
int ffi_key(lua_State* L, int idx, std::string_view* key) {
  int t = lua_type(L, idx);
  if (t == LUA_TNIL || t == LUA_TNONE) return push_nil_err(L, "nil key");
  if (t != LUA_TSTRING && t != LUA_TNUMBER) {
    lua_getglobal(L, "tostring");
    lua_pushvalue(L, idx);
    lua_call(L, 1, 1);
    lua_replace(L, idx);
  }
  size_t len = 0;
  const char* s = lua_tolstring(L, idx, &len);
  if (!s) len = 0;
  if (len == 0) return push_nil_err(L, "empty key");
  if (len > shdict::kMaxKeyLen) return push_nil_err(L, "key too long");
  *key = {s, len};
  return 0;
}

// the C functions' key checks (luaL_checklstring)
int c_key(lua_State* L, std::string_view* key) {
  if (lua_isnil(L, 2)) return push_nil_err(L, "nil key");
  size_t len = 0;
  const char* s = luaL_checklstring(L, 2, &len);
  if (len == 0) return push_nil_err(L, "empty key");
  if (len > shdict::kMaxKeyLen) return push_nil_err(L, "key too long");
  *key = {s, len};
  return 0;
}

// seconds (a Lua number) to the milliseconds resty.core passes (exptime * 1000 as a C long)
long to_ms(lua_Number sec) {
  lua_Number ms = sec * 1000;
  if (!(ms > 0)) return ms < 0 ? static_cast<long>(std::fmax(ms, -9.2e18)) : 0;
  return ms >= 9.2e18 ? 9200000000000000000L : static_cast<long>(ms);
}

int store_op(lua_State* L, int op) {
  Store* s = check_zone(L);
  long exptime = 0;
  int t4 = lua_type(L, 4);
  if (t4 == LUA_TNUMBER) {
    lua_Number e = lua_tonumber(L, 4);
    if (e < 0) return luaL_error(L, "bad \"exptime\" argument");
    exptime = to_ms(e);
  } else if (lua_toboolean(L, 4)) {
    return luaL_error(L, "attempt to compare %s with number", luaL_typename(L, 4));
  }
  std::string_view key;
  if (int n = ffi_key(L, 2, &key)) return n;
  shdict::Type type;
  std::string_view str;
  double num = 0;
  switch (lua_type(L, 3)) {
    case LUA_TSTRING: {
      size_t len;
      const char* p = lua_tolstring(L, 3, &len);
      str = {p, len};
      type = shdict::kString;
      break;
    }
    case LUA_TNUMBER:
      type = shdict::kNumber;
      num = lua_tonumber(L, 3);
      break;
    case LUA_TNIL:
    case LUA_TNONE: type = shdict::kNil; break;
    case LUA_TBOOLEAN:
      type = shdict::kBoolean;
      num = lua_toboolean(L, 3);
      break;
    default: return push_nil_err(L, "bad value type");
  }
  int32_t flags = 0;
  int t5 = lua_type(L, 5);
  if (t5 == LUA_TNUMBER) {
    lua_Number f = lua_tonumber(L, 5);
    // the FFI's double -> int: truncation, INT32_MIN out of range (as resty-ref shows)
    flags = f > -2147483649.0 && f < 2147483648.0 ? static_cast<int32_t>(f) : INT32_MIN;
  } else if (t5 == LUA_TBOOLEAN) {
    flags = lua_toboolean(L, 5);  // false is no flags; the FFI converts true to 1
  } else if (t5 != LUA_TNIL && t5 != LUA_TNONE) {
    return luaL_error(L, "bad argument #10 to 'ngx_lua_ffi_shdict_store' (cannot convert '%s' to 'int')",
                      luaL_typename(L, 5));
  }
  bool forcible = false;
  const char* err = s->store(op, key, type, str, num, exptime, flags, &forcible);
  lua_pushboolean(L, err == nullptr);
  if (err) lua_pushstring(L, err);
  else lua_pushnil(L);
  lua_pushboolean(L, forcible);
  return 3;
}

int l_set(lua_State* L) { return store_op(L, shdict::kSet); }
int l_safe_set(lua_State* L) { return store_op(L, shdict::kSet | shdict::kSafe); }
int l_add(lua_State* L) { return store_op(L, shdict::kAdd); }
int l_safe_add(lua_State* L) { return store_op(L, shdict::kAdd | shdict::kSafe); }
int l_replace(lua_State* L) { return store_op(L, shdict::kReplace); }

int l_delete(lua_State* L) {
  lua_settop(L, 2);
  lua_pushnil(L);
  return store_op(L, shdict::kSet);
}

int get_op(lua_State* L, bool stale) {
  Store* s = check_zone(L);
  std::string_view key;
  if (int n = ffi_key(L, 2, &key)) return n;
  shdict::Type type = shdict::kNil;
  double num = 0;
  int32_t flags = 0;
  bool is_stale = false;
  std::string& buf = scratch();
  switch (s->get(key, stale, &type, &buf, &num, &flags, &is_stale)) {
    case Store::Get::missing: lua_pushnil(L); return 1;
    case Store::Get::is_list: return push_nil_err(L, "value is a list");
    case Store::Get::found: break;
  }
  if (type == shdict::kString) lua_pushlstring(L, buf.data(), buf.size());
  else if (type == shdict::kNumber) lua_pushnumber(L, num);
  else lua_pushboolean(L, num != 0);
  if (stale) {
    if (flags) lua_pushnumber(L, flags);
    else lua_pushnil(L);
    lua_pushboolean(L, is_stale);
    return 3;
  }
  if (!flags) return 1;
  lua_pushnumber(L, flags);
  return 2;
}

int l_get(lua_State* L) { return get_op(L, false); }
int l_get_stale(lua_State* L) { return get_op(L, true); }

// tonumber() of argument idx; false when it is not a number
bool to_number(lua_State* L, int idx, lua_Number* out) {
  int t = lua_type(L, idx);
  if (t != LUA_TNUMBER && t != LUA_TSTRING) return false;
  if (t == LUA_TSTRING && !lua_isnumber(L, idx)) return false;
  *out = lua_tonumber(L, idx);
  return true;
}

int l_incr(lua_State* L) {
  Store* s = check_zone(L);
  std::string_view key;
  if (int n = ffi_key(L, 2, &key)) return n;
  lua_Number value;
  if (!to_number(L, 3, &value)) return luaL_error(L, "cannot convert 'nil' to 'double'");
  bool has_init = lua_toboolean(L, 4);
  lua_Number init = 0;
  if (has_init && !to_number(L, 4, &init))
    return luaL_error(L, "bad init arg: number expected, got %s", luaL_typename(L, 4));
  lua_Number init_ttl = 0;
  if (!lua_isnoneornil(L, 5)) {
    if (!to_number(L, 5, &init_ttl))
      return luaL_error(L, "bad init_ttl arg: number expected, got %s", luaL_typename(L, 5));
    if (init_ttl < 0) return luaL_error(L, "bad \"init_ttl\" argument");
    if (!has_init) return luaL_error(L, "must provide \"init\" when providing \"init_ttl\"");
  }
  bool forcible = false;
  double v = value;
  const char* err = s->incr(key, &v, has_init, init, to_ms(init_ttl), &forcible);
  if (err) return push_nil_err(L, err);
  lua_pushnumber(L, v);
  if (!has_init) return 1;
  lua_pushnil(L);
  lua_pushboolean(L, forcible);
  return 3;
}

int l_ttl(lua_State* L) {
  Store* s = check_zone(L);
  std::string_view key;
  if (int n = ffi_key(L, 2, &key)) return n;
  long ms = 0;
  if (!s->ttl(key, &ms)) return push_nil_err(L, "not found");
  lua_pushnumber(L, static_cast<lua_Number>(ms) / 1000);
  return 1;
}

int l_expire(lua_State* L) {
  Store* s = check_zone(L);
  if (!lua_toboolean(L, 3)) return luaL_error(L, "bad \"exptime\" argument");
  std::string_view key;
  if (int n = ffi_key(L, 2, &key)) return n;
  lua_Number e;
  if (!to_number(L, 3, &e))
    return luaL_error(L, "attempt to perform arithmetic on local 'exptime' (a %s value)", luaL_typename(L, 3));
  if (!s->expire(key, to_ms(e))) return push_nil_err(L, "not found");
  lua_pushboolean(L, 1);
  return 1;
}

int l_flush_all(lua_State* L) {
  check_zone(L)->flush_all();
  return 0;
}

int l_capacity(lua_State* L) {
  lua_pushnumber(L, static_cast<lua_Number>(check_zone(L)->capacity()));
  return 1;
}

int l_free_space(lua_State* L) {
  lua_pushnumber(L, static_cast<lua_Number>(check_zone(L)->free_space()));
  return 1;
}

// --- the C functions of ngx_http_lua_shdict.c ---------------------------------

Store* c_zone(lua_State* L) {
  if (lua_type(L, 1) != LUA_TTABLE) luaL_error(L, "bad \"zone\" argument");
  Store* s = udata_store(L, 1);
  if (!s) luaL_error(L, "bad \"zone\" argument");
  return s;
}

int push_op(lua_State* L, bool left) {
  int n = lua_gettop(L);
  if (n != 3) return luaL_error(L, "expecting 3 arguments, but only seen %d", n);
  Store* s = c_zone(L);
  std::string_view key;
  if (int r = c_key(L, &key)) return r;
  shdict::Type type;
  std::string_view bytes;
  double num;
  if (lua_type(L, 3) == LUA_TSTRING) {
    size_t len;
    const char* p = lua_tolstring(L, 3, &len);
    bytes = {p, len};
    type = shdict::kString;
  } else if (lua_type(L, 3) == LUA_TNUMBER) {
    num = lua_tonumber(L, 3);
    bytes = {reinterpret_cast<const char*>(&num), sizeof num};
    type = shdict::kNumber;
  } else {
    return push_nil_err(L, "bad value type");
  }
  const char* err;
  bool err_false;
  long len = s->push(key, left, type, bytes, &err, &err_false);
  if (err) {
    if (err_false) lua_pushboolean(L, 0);
    else lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
  }
  lua_pushnumber(L, static_cast<lua_Number>(len));
  return 1;
}

int l_lpush(lua_State* L) { return push_op(L, true); }
int l_rpush(lua_State* L) { return push_op(L, false); }

int pop_op(lua_State* L, bool left) {
  int n = lua_gettop(L);
  if (n != 2) return luaL_error(L, "expecting 2 arguments, but only seen %d", n);
  Store* s = c_zone(L);
  std::string_view key;
  if (int r = c_key(L, &key)) return r;
  shdict::Type type;
  std::string& buf = scratch();
  switch (s->pop(key, left, &type, &buf)) {
    case Store::Pop::none: lua_pushnil(L); return 1;
    case Store::Pop::not_list: return push_nil_err(L, "value not a list");
    case Store::Pop::ok: break;
  }
  if (type == shdict::kNumber) {
    double v;
    memcpy(&v, buf.data(), sizeof v);
    lua_pushnumber(L, v);
  } else {
    lua_pushlstring(L, buf.data(), buf.size());
  }
  return 1;
}

int l_lpop(lua_State* L) { return pop_op(L, true); }
int l_rpop(lua_State* L) { return pop_op(L, false); }

int l_llen(lua_State* L) {
  int n = lua_gettop(L);
  if (n != 2) return luaL_error(L, "expecting 2 arguments, but only seen %d", n);
  Store* s = c_zone(L);
  std::string_view key;
  if (int r = c_key(L, &key)) return r;
  long len = s->llen(key);
  if (len < 0) return push_nil_err(L, "value not a list");
  lua_pushnumber(L, static_cast<lua_Number>(len));
  return 1;
}

// flush_expired and get_keys: (zone [, max_count])
Store* zone_and_count(lua_State* L, int* count) {
  int n = lua_gettop(L);
  if (n != 1 && n != 2) luaL_error(L, "expecting 1 or 2 argument(s), but saw %d", n);
  luaL_checktype(L, 1, LUA_TTABLE);
  Store* s = udata_store(L, 1);
  if (!s) luaL_error(L, "bad user data for the ngx_shm_zone_t pointer");
  if (n == 2) *count = luaL_checkint(L, 2);
  return s;
}

int l_flush_expired(lua_State* L) {
  int count = 0;
  Store* s = zone_and_count(L, &count);
  lua_pushnumber(L, s->flush_expired(count));
  return 1;
}

int l_get_keys(lua_State* L) {
  int count = 1024;
  Store* s = zone_and_count(L, &count);
  std::vector<std::string> keys;
  s->get_keys(count, &keys);
  lua_createtable(L, static_cast<int>(keys.size()), 0);
  for (size_t i = 0; i < keys.size(); ++i) {
    lua_pushlstring(L, keys[i].data(), keys[i].size());
    lua_rawseti(L, -2, static_cast<int>(i + 1));
  }
  return 1;
}

const luaL_Reg kMethods[] = {
    {"get", l_get},         {"get_stale", l_get_stale},
    {"set", l_set},         {"safe_set", l_safe_set},
    {"add", l_add},         {"safe_add", l_safe_add},
    {"replace", l_replace}, {"delete", l_delete},
    {"incr", l_incr},       {"ttl", l_ttl},
    {"expire", l_expire},   {"flush_all", l_flush_all},
    {"capacity", l_capacity}, {"free_space", l_free_space},
    {"lpush", l_lpush},     {"rpush", l_rpush},
    {"lpop", l_lpop},       {"rpop", l_rpop},
    {"llen", l_llen},       {"flush_expired", l_flush_expired},
    {"get_keys", l_get_keys}, {nullptr, nullptr},
};

}  // namespace

bool parse_shdict_spec(const std::string& spec, ShdictSpec* out, std::string* err) {
  size_t sp = spec.find_first_of(" \t");
  size_t vs = sp == std::string::npos ? sp : spec.find_first_not_of(" \t", sp);
  if (sp == 0 || sp == std::string::npos || vs == std::string::npos) {
    *err = "--shdict takes 'NAME SIZE' (e.g. 'dogs 10m'), not \"" + spec + "\"";
    return false;
  }
  std::string name = spec.substr(0, sp);
  std::string size = spec.substr(vs);
  while (!size.empty() && (size.back() == ' ' || size.back() == '\t')) size.pop_back();
  size_t mult = 1, digits = size.size();
  if (!size.empty()) {
    switch (size.back()) {
      case 'k': case 'K': mult = size_t{1} << 10; --digits; break;
      case 'm': case 'M': mult = size_t{1} << 20; --digits; break;
      case 'g': case 'G': mult = size_t{1} << 30; --digits; break;
      default: break;
    }
  }
  size_t v = 0;
  bool ok = digits > 0 && digits <= 12;
  for (size_t i = 0; ok && i < digits; ++i) {
    if (size[i] < '0' || size[i] > '9') ok = false;
    else v = v * 10 + static_cast<size_t>(size[i] - '0');
  }
  if (!ok || v * mult <= 8191) {
    *err = "invalid shared dict size \"" + size + "\" (more than 8191 bytes, as nginx: 12k, 1m, 1048576)";
    return false;
  }
  if (v * mult > 0xffff0000u) {
    *err = "shared dict size \"" + size + "\" too large (at most 4095m)";
    return false;
  }
  out->name = name;
  out->size = v * mult;
  return true;
}

bool create_shared_dicts(const std::vector<ShdictSpec>& specs, std::string* err) {
  auto& ds = dicts();
  if (!ds.empty()) return true;
  for (size_t i = 0; i < specs.size(); ++i)
    for (size_t j = 0; j < i; ++j)
      if (specs[i].name == specs[j].name) {
        *err = "duplicate shared dict \"" + specs[i].name + "\"";
        return false;
      }
  for (const auto& sp : specs) {
    auto s = Store::create(sp.size, err);
    if (!s) {
      *err = "shared dict \"" + sp.name + "\": " + *err;
      return false;
    }
    ds.push_back(Dict{sp.name, std::move(s)});
  }
  if (const char* k = getenv("COSOCKET_TEST_SHDICT_DIE_KEY"); k && *k) {
    die_key() = k;
    Store::set_crash_hook(die_hook);
  }
  return true;
}

void open_ngx_shared(lua_State* L, int ngx) {
  std::string err;
  if (!create_shared_dicts(runtime().cfg().shdicts, &err)) luaL_error(L, "%s", err.c_str());
  auto& ds = dicts();
  lua_createtable(L, 0, static_cast<int>(ds.size()));  // ngx.shared
  lua_createtable(L, 0, 22);                             // the dicts' metatable
  for (const luaL_Reg* r = kMethods; r->name; ++r) {
    lua_pushcfunction(L, r->func);
    lua_setfield(L, -2, r->name);
  }
  lua_pushvalue(L, -1);
  lua_setfield(L, -2, "__index");
  for (auto& d : ds) {
    lua_createtable(L, 1, 0);
    auto* z = static_cast<ZoneUd*>(lua_newuserdata(L, sizeof(ZoneUd)));
    z->magic = kZoneMagic;
    z->store = d.store.get();
    lua_rawseti(L, -2, 1);
    lua_pushvalue(L, -2);
    lua_setmetatable(L, -2);
    lua_setfield(L, -3, d.name.c_str());
  }
  lua_pop(L, 1);
  lua_setfield(L, ngx, "shared");
}

}  // namespace cosocket
