// Unit tests for the FFI functions of string_ffi.h, called as lua-resty-core calls them
// (its buffer sizes, its reading of the return values). Expected values are RFC 4648's and
// the answers of resty-cli (/work/shared/tools/resty-ref, tests/test_resty_core_ffi.py).
#include <gtest/gtest.h>

#include <string>

#include "ngx/string_ffi.h"

namespace {

const unsigned char* u(const std::string& s) { return reinterpret_cast<const unsigned char*>(s.data()); }
unsigned char* u(std::string& s) { return reinterpret_cast<unsigned char*>(&s[0]); }

// resty.core.base64's base64_encoded_length
size_t encoded_length(size_t len, bool no_padding) {
  return no_padding ? (len * 8 + 5) / 6 : (len + 2) / 3 * 4;
}

std::string encode(const std::string& s, bool no_padding) {
  std::string out(encoded_length(s.size(), no_padding), '?');
  size_t n = ngx_http_lua_ffi_encode_base64(u(s), s.size(), u(out), no_padding);
  EXPECT_EQ(n, out.size()) << "the length resty.core.base64 reserves is the one written";
  return out.substr(0, n);
}

// the decoded string, or "FAILED" when the function returns 0
std::string decode(const std::string& s) {
  std::string out((s.size() + 3) / 4 * 3, '?');
  size_t dlen = 12345;
  int ok = ngx_http_lua_ffi_decode_base64(u(s), s.size(), u(out), &dlen);
  if (ok == 0) return "FAILED";
  EXPECT_EQ(ok, 1);
  EXPECT_LE(dlen, out.size());
  return out.substr(0, dlen);
}

TEST(StringFfi, EncodeBase64) {
  const char* const vectors[][3] = {
      {"", "", ""},         {"f", "Zg==", "Zg"},         {"fo", "Zm8=", "Zm8"},
      {"foo", "Zm9v", "Zm9v"}, {"foob", "Zm9vYg==", "Zm9vYg"}, {"fooba", "Zm9vYmE=", "Zm9vYmE"},
      {"foobar", "Zm9vYmFy", "Zm9vYmFy"}, {"\xfb\xff\xbf", "+/+/", "+/+/"},
  };
  for (const auto& v : vectors) {
    EXPECT_EQ(encode(v[0], false), v[1]);
    EXPECT_EQ(encode(v[0], true), v[2]);
  }
}

TEST(StringFfi, DecodeBase64) {
  EXPECT_EQ(decode(""), "");
  EXPECT_EQ(decode("Zg"), "f");
  EXPECT_EQ(decode("Zg=="), "f");
  EXPECT_EQ(decode("Zm9vYmFy"), "foobar");
  EXPECT_EQ(decode("Zg=x"), "f");  // stops at the first '='
  EXPECT_EQ(decode("===="), "");
  EXPECT_EQ(decode("+/+/"), "\xfb\xff\xbf");
  EXPECT_EQ(decode("a"), "FAILED");      // 4n+1
  EXPECT_EQ(decode("Zm9vY"), "FAILED");
  EXPECT_EQ(decode("Zm 9v"), "FAILED");  // outside the alphabet
  EXPECT_EQ(decode("-_"), "FAILED");     // the URL alphabet is not this one's
}

}  // namespace
