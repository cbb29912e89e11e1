// digest.cc -- ngx.md5, ngx.md5_bin, ngx.sha1_bin and ngx.hmac_sha1, on OpenSSL's EVP and
// HMAC, and the FFI functions of resty.core.hash behind the first three (string_ffi.h).
//
// Behaviour (including error strings) was checked against lua-nginx-module 0.10.23 +
// lua-resty-core through /work/shared/tools/openresty-run; the unit tests in
// tests/ngx_digest_test.cc record the oracle's answers.
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstring>

extern "C" {
#include <lauxlib.h>
#include <lua.h>
}

#include "ngx/core_symbols.h"
#include "ngx/families.h"
#include "ngx/lua_args.h"
#include "ngx/string_ffi.h"

namespace cosocket {
namespace {

constexpr size_t kMd5Len = 16, kSha1Len = 20;

// The digest of src[0, len) into dst (EVP_MAX_MD_SIZE bytes); false if OpenSSL refuses it
// (an algorithm a FIPS provider leaves out).
bool digest(const EVP_MD* md, const unsigned char* src, size_t len, unsigned char* dst) {
  return EVP_Digest(src, len, dst, nullptr, md, nullptr) == 1;
}

// The three are bindings of the FFI functions below, which resty.core.hash calls.
template <void (*Fn)(const unsigned char*, size_t, unsigned char*), size_t kLen>
int l_ngx_digest(lua_State* L) {
  size_t len;
  const char* s = coerce_string(L, 1, &len);
  unsigned char out[kLen];
  Fn(reinterpret_cast<const unsigned char*>(s), len, out);
  lua_pushlstring(L, reinterpret_cast<const char*>(out), kLen);
  return 1;
}

int l_ngx_sha1_bin(lua_State* L) {
  size_t len;
  const char* s = coerce_string(L, 1, &len);
  unsigned char out[kSha1Len];
  if (!ngx_http_lua_ffi_sha1_bin(reinterpret_cast<const unsigned char*>(s), len, out)) {
    return luaL_error(L, "SHA-1 support missing in Nginx");  // resty.core.hash's words
  }
  lua_pushlstring(L, reinterpret_cast<const char*>(out), kSha1Len);
  return 1;
}

int l_ngx_hmac_sha1(lua_State* L) {
  size_t klen, slen;
  const char* key = luaL_checklstring(L, 1, &klen);
  const char* s = luaL_checklstring(L, 2, &slen);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mlen = 0;
  if (HMAC(EVP_sha1(), key, static_cast<int>(klen), reinterpret_cast<const unsigned char*>(s),
           slen, mac, &mlen) == nullptr) {
    return luaL_error(L, "HMAC-SHA1 failed");
  }
  lua_pushlstring(L, reinterpret_cast<const char*>(mac), mlen);
  return 1;
}

const luaL_Reg kDigestFuncs[] = {
    {"md5", l_ngx_digest<ngx_http_lua_ffi_md5, 2 * kMd5Len>},
    {"md5_bin", l_ngx_digest<ngx_http_lua_ffi_md5_bin, kMd5Len>},
    {"sha1_bin", l_ngx_sha1_bin},
    {"hmac_sha1", l_ngx_hmac_sha1},
    {nullptr, nullptr},
};

}  // namespace

void open_ngx_digest(lua_State* L, int ngx) { set_functions(L, ngx, kDigestFuncs); }

}  // namespace cosocket

extern "C" {

void ngx_http_lua_ffi_md5_bin(const unsigned char* src, size_t len, unsigned char* dst) {
  unsigned char md[EVP_MAX_MD_SIZE];
  if (!cosocket::digest(EVP_md5(), src, len, md)) std::memset(md, 0, sizeof md);
  std::memcpy(dst, md, cosocket::kMd5Len);
}

void ngx_http_lua_ffi_md5(const unsigned char* src, size_t len, unsigned char* dst) {
  unsigned char md[cosocket::kMd5Len];
  ngx_http_lua_ffi_md5_bin(src, len, md);
  ngx_hex_dump(dst, md, sizeof md);
}

int ngx_http_lua_ffi_sha1_bin(const unsigned char* src, size_t len, unsigned char* dst) {
  unsigned char md[EVP_MAX_MD_SIZE];
  if (!cosocket::digest(EVP_sha1(), src, len, md)) return 0;
  std::memcpy(dst, md, cosocket::kSha1Len);
  return 1;
}

}  // extern "C"
