// shdict_ffi.h -- ngx.shared.DICT's FFI ABI: the ngx_http_lua_ffi_shdict_* functions of
// lua-nginx-module 0.10.23, with its signatures, C types and return codes, exported from the
// cosocket executable for ffi.C, on the Store (shdict_store.h). resty.core.shdict (cosocket's
// lua/resty_core_shdict.lua, or lua-resty-core's own) binds them as ngx.shared.DICT's methods.
//
// A dict's handle (nginx's ngx_shm_zone_t *) is its Store; the userdata at dict[1] holds it
// as its first word, as nginx's does, and ngx_http_lua_ffi_shdict_udata_to_zone reads it
// back, NULL for anything that is not one of this process's dicts.
#ifndef COSOCKET_NGX_SHDICT_FFI_H_
#define COSOCKET_NGX_SHDICT_FFI_H_

#include <cstddef>

// Return codes are nginx's: 0 NGX_OK, -1 NGX_ERROR, -5 NGX_DECLINED (resty.core.base's FFI_*).
extern "C" {

void* ngx_http_lua_ffi_shdict_udata_to_zone(void* zone_udata);

// set/add/replace/safe_* (op: lua-nginx-module's NGX_HTTP_LUA_SHDICT_* bits), delete (value_type
// 0). 0; -5 with "exists" / "not found"; -1 with any other error in *errmsg.
int ngx_http_lua_ffi_shdict_store(void* zone, int op, const unsigned char* key, size_t key_len,
                                  int value_type, const unsigned char* str_value_buf,
                                  size_t str_value_len, double num_value, long exptime, int user_flags,
                                  char** errmsg, int* forcible);

// 0 with *value_type 0 (not found) or the value: a string in *str_value_buf (the caller's
// buffer of *str_value_len bytes, or memory from malloc() the caller frees when it did not
// fit), a number in *num_value, a boolean in (*str_value_buf)[0]. -1 with *errmsg "value is
// a list", or with *errmsg NULL when no memory (or a boolean and a buffer of 0 bytes).
int ngx_http_lua_ffi_shdict_get(void* zone, const unsigned char* key, size_t key_len, int* value_type,
                                unsigned char** str_value_buf, size_t* str_value_len, double* num_value,
                                int* user_flags, int get_stale, int* is_stale, char** errmsg);

// 0 with the new value in *value; -1 with "not found" / "not a number" / "no memory"
int ngx_http_lua_ffi_shdict_incr(void* zone, const unsigned char* key, size_t key_len, double* value,
                                 char** errmsg, int has_init, double init, long init_ttl, int* forcible);

int ngx_http_lua_ffi_shdict_flush_all(void* zone);

// the milliseconds left (0: no expiry; negative: expired, not yet removed), -5: not found
long ngx_http_lua_ffi_shdict_get_ttl(void* zone, const unsigned char* key, size_t key_len);

// 0, or -5: not found. exptime in ms, <= 0: no expiry
int ngx_http_lua_ffi_shdict_set_expire(void* zone, const unsigned char* key, size_t key_len, long exptime);

size_t ngx_http_lua_ffi_shdict_capacity(void* zone);
size_t ngx_http_lua_ffi_shdict_free_space(void* zone);

}  // extern "C"

#endif  // COSOCKET_NGX_SHDICT_FFI_H_
