// shdict_ffi.cc -- the ngx_http_lua_ffi_shdict_* functions (shdict_ffi.h) on the Store: the
// one implementation of ngx.shared.DICT's get, get_stale, set, safe_set, add, safe_add,
// replace, delete, incr, ttl, expire, flush_all, capacity and free_space, which
// resty.core.shdict binds through the FFI. Return codes, error strings and the value
// buffer's contract are lua-nginx-module 0.10.23's.
#include "ngx/shdict_ffi.h"

#include <string_view>

#include "ngx/shdict.h"
#include "ngx/shdict_store.h"

namespace {

using cosocket::shdict::Store;

constexpr int kOk = 0, kError = -1, kDeclined = -5;

Store* store_of(void* zone) { return static_cast<Store*>(zone); }

std::string_view key_of(const unsigned char* key, size_t len) {
  return {reinterpret_cast<const char*>(key), len};
}

}  // namespace

extern "C" {

void* ngx_http_lua_ffi_shdict_udata_to_zone(void* zone_udata) {
  if (!zone_udata) return nullptr;
  void* zone = *static_cast<void**>(zone_udata);
  return cosocket::is_shared_dict_zone(zone) ? zone : nullptr;
}

int ngx_http_lua_ffi_shdict_store(void* zone, int op, const unsigned char* key, size_t key_len,
                                  int value_type, const unsigned char* str_value_buf,
                                  size_t str_value_len, double num_value, long exptime, int user_flags,
                                  char** errmsg, int* forcible) {
  bool forced = false;
  std::string_view str;
  if (value_type == cosocket::shdict::kString && str_value_buf) str = key_of(str_value_buf, str_value_len);
  const char* err = store_of(zone)->store(op, key_of(key, key_len), static_cast<cosocket::shdict::Type>(value_type),
                                          str, num_value, exptime, user_flags, &forced);
  *forcible = forced;
  if (!err) return kOk;
  *errmsg = const_cast<char*>(err);
  std::string_view e = err;
  return e == "exists" || e == "not found" ? kDeclined : kError;
}

int ngx_http_lua_ffi_shdict_get(void* zone, const unsigned char* key, size_t key_len, int* value_type,
                                unsigned char** str_value_buf, size_t* str_value_len, double* num_value,
                                int* user_flags, int get_stale, int* is_stale, char** errmsg) {
  *errmsg = nullptr;
  Store::Value v;
  v.str = reinterpret_cast<char*>(*str_value_buf);
  v.len = *str_value_len;
  switch (store_of(zone)->get(key_of(key, key_len), get_stale != 0, &v)) {
    case Store::Get::missing: *value_type = cosocket::shdict::kNil; return kOk;
    case Store::Get::is_list:
      *value_type = cosocket::shdict::kList;
      *errmsg = const_cast<char*>("value is a list");
      return kError;
    case Store::Get::no_memory: return kError;
    case Store::Get::found: break;
  }
  *value_type = v.type;
  switch (v.type) {
    case cosocket::shdict::kString:
      *str_value_buf = reinterpret_cast<unsigned char*>(v.str);
      *str_value_len = v.len;
      break;
    case cosocket::shdict::kNumber:
      *num_value = v.num;
      *str_value_len = sizeof(double);
      break;
    default:  // a boolean: its byte in the buffer
      if (*str_value_len < 1) return kError;
      (*str_value_buf)[0] = v.num != 0;
      break;
  }
  *user_flags = v.flags;
  if (get_stale) *is_stale = v.stale;
  return kOk;
}

int ngx_http_lua_ffi_shdict_incr(void* zone, const unsigned char* key, size_t key_len, double* value,
                                 char** errmsg, int has_init, double init, long init_ttl, int* forcible) {
  bool forced = false;
  const char* err = store_of(zone)->incr(key_of(key, key_len), value, has_init != 0, init, init_ttl, &forced);
  *forcible = forced;
  if (!err) return kOk;
  *errmsg = const_cast<char*>(err);
  return kError;
}

int ngx_http_lua_ffi_shdict_flush_all(void* zone) {
  store_of(zone)->flush_all();
  return kOk;
}

long ngx_http_lua_ffi_shdict_get_ttl(void* zone, const unsigned char* key, size_t key_len) {
  long ms = 0;
  if (!store_of(zone)->ttl(key_of(key, key_len), &ms)) return kDeclined;
  return ms;
}

int ngx_http_lua_ffi_shdict_set_expire(void* zone, const unsigned char* key, size_t key_len, long exptime) {
  return store_of(zone)->expire(key_of(key, key_len), exptime) ? kOk : kDeclined;
}

size_t ngx_http_lua_ffi_shdict_capacity(void* zone) { return store_of(zone)->capacity(); }

size_t ngx_http_lua_ffi_shdict_free_space(void* zone) { return store_of(zone)->free_space(); }

}  // extern "C"
