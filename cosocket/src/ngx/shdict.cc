// shdict.cc -- ngx.shared: the dicts (made before -w N forks), the ngx.shared table, and
// the methods lua-nginx-module 0.10.23 keeps in its Lua C API (lpush, rpush, lpop, rpop,
// llen, flush_expired, get_keys), over the Store (shdict_store.h). The other methods are
// the FFI functions of shdict_ffi.cc, bound by resty.core.shdict (lua/resty_core_shdict.lua)
// as lua-resty-core binds them, which bind_ngx_shared loads at start-up as OpenResty does.
//
// Arguments, return values and error strings are lua-nginx-module 0.10.23's with
// lua-resty-core 0.1.25, as resty-cli runs them (checked with /work/shared/tools/resty-ref,
// see tests/test_shdict.py). A dict is, as there, a table {[1] = userdata} whose metatable
// is its own __index; the userdata's first word is the dict's zone (its Store).
#include "ngx/shdict.h"

#include <cstdint>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string_view>
#include <utility>

#include "ngx/families.h"
#include "ngx/shdict_ffi.h"
#include "ngx/shdict_store.h"

namespace cosocket {

namespace {

using shdict::Store;

constexpr uint64_t kZoneMagic = 0x6e67782e73686172ULL;

struct ZoneUd {
  Store* zone;  // first, as nginx's ngx_shm_zone_t * (ngx_http_lua_ffi_shdict_udata_to_zone)
  uint64_t magic;
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
    if (z->magic == kZoneMagic) s = static_cast<Store*>(ngx_http_lua_ffi_shdict_udata_to_zone(z));
  }
  lua_pop(L, 1);
  return s;
}

// --- the C functions of ngx_http_lua_shdict.c ---------------------------------

int push_nil_err(lua_State* L, const char* err) {
  lua_pushnil(L);
  lua_pushstring(L, err);
  return 2;
}

// the key checks of the C functions (luaL_checklstring): 0 when *key is set; else the
// number of values pushed (nil, err)
int c_key(lua_State* L, std::string_view* key) {
  if (lua_isnil(L, 2)) return push_nil_err(L, "nil key");
  size_t len = 0;
  const char* s = luaL_checklstring(L, 2, &len);
  if (len == 0) return push_nil_err(L, "empty key");
  if (len > shdict::kMaxKeyLen) return push_nil_err(L, "key too long");
  *key = {s, len};
  return 0;
}

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
    {"lpush", l_lpush},         {"rpush", l_rpush}, {"lpop", l_lpop},
    {"rpop", l_rpop},           {"llen", l_llen},   {"flush_expired", l_flush_expired},
    {"get_keys", l_get_keys},   {nullptr, nullptr},
};

}  // namespace

bool is_shared_dict_zone(const void* zone) {
  for (const auto& d : dicts())
    if (d.store.get() == zone) return true;
  return false;
}

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
    z->zone = d.store.get();
    z->magic = kZoneMagic;
    lua_rawseti(L, -2, 1);
    lua_pushvalue(L, -2);
    lua_setmetatable(L, -2);
    lua_setfield(L, -3, d.name.c_str());
  }
  lua_pop(L, 1);
  lua_setfield(L, ngx, "shared");
}

void bind_ngx_shared(lua_State* L) {
  if (dicts().empty()) return;  // nothing to bind: no FFI at start-up
  lua_getglobal(L, "require");
  lua_pushliteral(L, "resty.core.shdict");
  if (lua_pcall(L, 1, 0, 0) != 0) {
    fprintf(stderr, "cosocket: resty.core.shdict failed: %s\n", lua_tostring(L, -1));
    abort();
  }
}

}  // namespace cosocket
