// Unit tests for ngx/core_symbols.cc: nginx's ngx_hex_dump, ngx_atoi and base64 codecs
// called as the FFI calls them. Expected values are RFC 4648's vectors and the answers of
// nginx itself (resty.string.atoi and ngx.base64 under /work/shared/tools/resty-ref).
#include <gtest/gtest.h>

#include <string>

#include "ngx/core_symbols.h"

namespace cosocket {
namespace {

unsigned char* bytes(std::string& s) { return reinterpret_cast<unsigned char*>(&s[0]); }

std::string hex(std::string s) {
  std::string out(s.size() * 2, '?');
  unsigned char* end = ngx_hex_dump(bytes(out), bytes(s), s.size());
  EXPECT_EQ(end, bytes(out) + out.size());
  return out;
}

ngx_int_t atoi_of(std::string s) { return ngx_atoi(bytes(s), s.size()); }

using Codec = void (*)(ngx_str_t*, ngx_str_t*);
using Decoder = ngx_int_t (*)(ngx_str_t*, ngx_str_t*);

std::string encode(Codec f, std::string s) {
  std::string out(base64_encoded_length(s.size()), '?');
  ngx_str_t src{s.size(), bytes(s)}, dst{out.size(), bytes(out)};
  f(&dst, &src);
  out.resize(dst.len);
  return out;
}

// the decoded string, or "ERROR"
std::string decode(Decoder f, std::string s) {
  std::string out(base64_decoded_length(s.size()) + 1, '?');
  ngx_str_t src{s.size(), bytes(s)}, dst{out.size(), bytes(out)};
  if (f(&dst, &src) != kNgxOk) return "ERROR";
  out.resize(dst.len);
  return out;
}

TEST(NgxCoreSymbols, HexDump) {
  EXPECT_EQ(hex(""), "");
  EXPECT_EQ(hex("ab"), "6162");
  EXPECT_EQ(hex(std::string("\x00\x0f\xf0\xff", 4)), "000ff0ff");
}

TEST(NgxCoreSymbols, Atoi) {
  EXPECT_EQ(atoi_of("0"), 0);
  EXPECT_EQ(atoi_of("123"), 123);
  EXPECT_EQ(atoi_of("007"), 7);
  EXPECT_EQ(atoi_of("9223372036854775807"), INTPTR_MAX);
  // nginx: empty, a sign, a space, another character, one past the maximum
  for (const char* bad : {"", "-1", "+1", " 1", "1 ", "12a", "9223372036854775808",
                          "99999999999999999999"}) {
    EXPECT_EQ(atoi_of(bad), kNgxError) << bad;
  }
}

TEST(NgxCoreSymbols, Base64) {
  const char* vectors[][2] = {{"", ""},         {"f", "Zg=="},         {"fo", "Zm8="},
                              {"foo", "Zm9v"},   {"foob", "Zm9vYg=="},   {"fooba", "Zm9vYmE="},
                              {"foobar", "Zm9vYmFy"}};
  for (auto& v : vectors) {
    EXPECT_EQ(encode(ngx_encode_base64, v[0]), v[1]);
    EXPECT_EQ(decode(ngx_decode_base64, v[1]), v[0]);
  }
  EXPECT_EQ(encode(ngx_encode_base64, "\xff\xfe"), "//4=");
  EXPECT_EQ(decode(ngx_decode_base64, "Zg"), "f");
  EXPECT_EQ(decode(ngx_decode_base64, "Zg==Zg=="), "f");
  for (const char* bad : {"Z", "Zm9vY", "Zm 9v", "-_-_", "Zm9v!"}) {
    EXPECT_EQ(decode(ngx_decode_base64, bad), "ERROR") << bad;
  }
}

TEST(NgxCoreSymbols, Base64Url) {
  // nginx (ngx.base64 under resty-ref): unpadded, '-' and '_'
  EXPECT_EQ(encode(ngx_encode_base64url, "\xff\xfehello"), "__5oZWxsbw");
  EXPECT_EQ(encode(ngx_encode_base64url, "f"), "Zg");
  EXPECT_EQ(encode(ngx_encode_base64url, "fo"), "Zm8");
  EXPECT_EQ(decode(ngx_decode_base64url, "__5oZWxsbw"), "\xff\xfehello");
  EXPECT_EQ(decode(ngx_decode_base64url, "Zm8="), "fo");
  for (const char* bad : {"a", "+/+/", "Zm9vY"}) {
    EXPECT_EQ(decode(ngx_decode_base64url, bad), "ERROR") << bad;
  }
}

}  // namespace
}  // namespace cosocket
