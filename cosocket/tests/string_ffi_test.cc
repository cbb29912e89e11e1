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

// as resty.core.uri calls them: the length first, then the escaping into that many bytes
std::string escape(const std::string& s, int type) {
  size_t n = ngx_http_lua_ffi_uri_escaped_length(u(s), s.size(), type);
  std::string out(n + 1, '#');  // one more: nothing is written past n
  ngx_http_lua_ffi_escape_uri(u(s), s.size(), u(out), type);
  EXPECT_EQ(out[n], '#');
  return out.substr(0, n);
}

std::string unescape(const std::string& s) {
  std::string out(s.size() + 1, '#');
  size_t n = ngx_http_lua_ffi_unescape_uri(u(s), s.size(), u(out));
  EXPECT_LE(n, s.size());
  EXPECT_EQ(out[s.size()], '#');
  return out.substr(0, n);
}

TEST(StringFfi, UriEscapedLength) {
  EXPECT_EQ(ngx_http_lua_ffi_uri_escaped_length(u(std::string("plain-_.~")), 9, 2), 9u);
  EXPECT_EQ(ngx_http_lua_ffi_uri_escaped_length(u(std::string("a b")), 3, 2), 5u);
  EXPECT_EQ(ngx_http_lua_ffi_uri_escaped_length(u(std::string("")), 0, 0), 0u);
}

TEST(StringFfi, EscapeUri) {
  // resty-cli: ngx.escape_uri("a b/c?d=\195\169&f+g~h") and with types 0, 6
  EXPECT_EQ(escape("a b/c?d=\xc3\xa9&f+g~h", 2), "a%20b%2Fc%3Fd%3D%C3%A9%26f%2Bg~h");
  EXPECT_EQ(escape("a b/c?d=\xc3\xa9", 0), "a%20b/c%3Fd=%C3%A9");
  EXPECT_EQ(escape("a %b", 6), "a%20%25b");  // 324 bytes for the 256 in resty-cli
  EXPECT_EQ(escape("a b", 99), "a%20b");  // out of range: taken as 2, never read out of bounds
}

TEST(StringFfi, UnescapeUri) {
  EXPECT_EQ(unescape("a%20b+c"), "a b c");
  EXPECT_EQ(unescape("%41%42%"), "AB%");
  EXPECT_EQ(unescape("%%41"), "%A");
  EXPECT_EQ(unescape("%zz%4"), "%zz%4");
  EXPECT_EQ(unescape("%2B%2b"), "++");
  EXPECT_EQ(unescape("%E9t"), "\xe9t");
  EXPECT_EQ(unescape(""), "");
}

std::string hex(const unsigned char* p, size_t n) {
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    out += kHex[p[i] >> 4];
    out += kHex[p[i] & 15];
  }
  return out;
}

TEST(StringFfi, Hash) {
  const std::string abc = "abc";
  unsigned char md5[33] = {0}, bin[21] = {0};
  ngx_http_lua_ffi_md5(u(abc), abc.size(), md5);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(md5), 32), "900150983cd24fb0d6963f7d28e17f72");
  EXPECT_EQ(md5[32], 0);  // 32 bytes, no terminator
  ngx_http_lua_ffi_md5_bin(u(abc), abc.size(), bin);
  EXPECT_EQ(hex(bin, 16), "900150983cd24fb0d6963f7d28e17f72");
  EXPECT_EQ(bin[16], 0);
  EXPECT_EQ(ngx_http_lua_ffi_sha1_bin(u(abc), abc.size(), bin), 1);
  EXPECT_EQ(hex(bin, 20), "a9993e364706816aba3e25717850c26c9cd0d89d");
  EXPECT_EQ(bin[20], 0);
  const std::string check = "123456789";  // CRC-32's check value
  EXPECT_EQ(ngx_http_lua_ffi_crc32_short(u(check), check.size()), 0xCBF43926u);
  EXPECT_EQ(ngx_http_lua_ffi_crc32_long(u(check), check.size()), 0xCBF43926u);
  EXPECT_EQ(ngx_http_lua_ffi_crc32_long(u(abc), 0), 0u);
}

}  // namespace
