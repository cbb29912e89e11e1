// digest.cc -- ngx.md5, ngx.md5_bin, ngx.sha1_bin and ngx.hmac_sha1, on OpenSSL's EVP and
// HMAC.
//
// Behaviour (including error strings) was checked against lua-nginx-module 0.10.23 +
// lua-resty-core through /work/shared/tools/openresty-run; the unit tests in
// tests/ngx_digest_test.cc record the oracle's answers.
#include <openssl/evp.h>
#include <openssl/hmac.h>

extern "C" {
#include <lauxlib.h>
#include <lua.h>
}

#include "ngx/core_symbols.h"
#include "ngx/families.h"
#include "ngx/lua_args.h"

namespace cosocket {
namespace {

int push_digest(lua_State* L, const EVP_MD* md, bool hex) {
  size_t len;
  const char* s = coerce_string(L, 1, &len);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int dlen = 0;
  if (EVP_Digest(s, len, digest, &dlen, md, nullptr) != 1) {
    return luaL_error(L, "%s failed", EVP_MD_get0_name(md));
  }
  if (!hex) {
    lua_pushlstring(L, reinterpret_cast<const char*>(digest), dlen);
    return 1;
  }
  unsigned char buf[EVP_MAX_MD_SIZE * 2];
  ngx_hex_dump(buf, digest, dlen);
  lua_pushlstring(L, reinterpret_cast<const char*>(buf), dlen * 2);
  return 1;
}

int l_ngx_md5(lua_State* L) { return push_digest(L, EVP_md5(), true); }
int l_ngx_md5_bin(lua_State* L) { return push_digest(L, EVP_md5(), false); }
int l_ngx_sha1_bin(lua_State* L) { return push_digest(L, EVP_sha1(), false); }

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
    {"md5", l_ngx_md5},
    {"md5_bin", l_ngx_md5_bin},
    {"sha1_bin", l_ngx_sha1_bin},
    {"hmac_sha1", l_ngx_hmac_sha1},
    {nullptr, nullptr},
};

}  // namespace

void open_ngx_digest(lua_State* L, int ngx) { set_functions(L, ngx, kDigestFuncs); }

}  // namespace cosocket
