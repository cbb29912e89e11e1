// core_symbols.cc -- nginx's string functions that FFI libraries call through ffi.C
// (core_symbols.h): ngx_hex_dump, ngx_atoi and the base64 codecs, written from the
// behaviour of nginx's src/core/ngx_string.c (the same results, the same error cases).
#include "ngx/core_symbols.h"

#include <climits>

namespace cosocket {
namespace {

const unsigned char kBase64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const unsigned char kBase64Url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

constexpr unsigned char kNotBase64 = 0xff;

// The reverse of an alphabet: each byte's 6-bit value, or kNotBase64.
struct Base64Values {
  unsigned char v[256];
  explicit Base64Values(const unsigned char* alphabet) {
    for (unsigned char& x : v) x = kNotBase64;
    for (unsigned char i = 0; i < 64; ++i) v[alphabet[i]] = i;
  }
};

void encode(ngx_str_t* dst, const ngx_str_t* src, const unsigned char* basis, bool padding) {
  const unsigned char* s = src->data;
  size_t len = src->len;
  unsigned char* d = dst->data;
  for (; len > 2; s += 3, len -= 3) {
    *d++ = basis[s[0] >> 2];
    *d++ = basis[((s[0] & 3) << 4) | (s[1] >> 4)];
    *d++ = basis[((s[1] & 0x0f) << 2) | (s[2] >> 6)];
    *d++ = basis[s[2] & 0x3f];
  }
  if (len > 0) {
    *d++ = basis[s[0] >> 2];
    if (len == 1) {
      *d++ = basis[(s[0] & 3) << 4];
      if (padding) *d++ = '=';
    } else {
      *d++ = basis[((s[0] & 3) << 4) | (s[1] >> 4)];
      *d++ = basis[(s[1] & 0x0f) << 2];
    }
    if (padding) *d++ = '=';
  }
  dst->len = static_cast<size_t>(d - dst->data);
}

ngx_int_t decode(ngx_str_t* dst, const ngx_str_t* src, const Base64Values& values) {
  const unsigned char* s = src->data;
  const unsigned char* v = values.v;
  size_t len = 0;
  for (; len < src->len && s[len] != '='; ++len) {
    if (v[s[len]] == kNotBase64) return kNgxError;
  }
  if (len % 4 == 1) return kNgxError;
  unsigned char* d = dst->data;
  for (; len > 3; s += 4, len -= 4) {
    *d++ = static_cast<unsigned char>(v[s[0]] << 2 | v[s[1]] >> 4);
    *d++ = static_cast<unsigned char>(v[s[1]] << 4 | v[s[2]] >> 2);
    *d++ = static_cast<unsigned char>(v[s[2]] << 6 | v[s[3]]);
  }
  if (len > 1) *d++ = static_cast<unsigned char>(v[s[0]] << 2 | v[s[1]] >> 4);
  if (len > 2) *d++ = static_cast<unsigned char>(v[s[1]] << 4 | v[s[2]] >> 2);
  dst->len = static_cast<size_t>(d - dst->data);
  return kNgxOk;
}

}  // namespace

void encode_base64(ngx_str_t* dst, const ngx_str_t* src, bool padding) {
  encode(dst, src, kBase64, padding);
}

}  // namespace cosocket

using cosocket::kNgxError;

extern "C" {

unsigned char* ngx_hex_dump(unsigned char* dst, unsigned char* src, size_t len) {
  static const char kHex[] = "0123456789abcdef";
  for (; len > 0; --len, ++src) {
    *dst++ = static_cast<unsigned char>(kHex[*src >> 4]);
    *dst++ = static_cast<unsigned char>(kHex[*src & 0x0f]);
  }
  return dst;
}

ngx_int_t ngx_atoi(unsigned char* line, size_t n) {
  if (n == 0) return kNgxError;
  constexpr ngx_int_t kMax = INTPTR_MAX;
  ngx_int_t value = 0;
  for (; n > 0; --n, ++line) {
    if (*line < '0' || *line > '9') return kNgxError;
    ngx_int_t digit = *line - '0';
    if (value > (kMax - digit) / 10) return kNgxError;
    value = value * 10 + digit;
  }
  return value;
}

void ngx_encode_base64(ngx_str_t* dst, ngx_str_t* src) {
  cosocket::encode_base64(dst, src, true);
}

void ngx_encode_base64url(ngx_str_t* dst, ngx_str_t* src) {
  cosocket::encode(dst, src, cosocket::kBase64Url, false);
}

ngx_int_t ngx_decode_base64(ngx_str_t* dst, ngx_str_t* src) {
  static const cosocket::Base64Values values(cosocket::kBase64);
  return cosocket::decode(dst, src, values);
}

ngx_int_t ngx_decode_base64url(ngx_str_t* dst, ngx_str_t* src) {
  static const cosocket::Base64Values values(cosocket::kBase64Url);
  return cosocket::decode(dst, src, values);
}

}  // extern "C"
