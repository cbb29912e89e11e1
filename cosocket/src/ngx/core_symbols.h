#pragma once
// The nginx core functions that FFI libraries bind through ffi.C (lua-resty-string's
// resty.string, lua-resty-core's ngx.base64), exported from the cosocket executable with
// nginx's names, signatures and behaviour (src/core/ngx_string.c): the executable is linked
// with ENABLE_EXPORTS, so its extern "C" functions are in the dynamic symbol table, as
// nginx's are. cosocket's own ngx.encode_base64/decode_base64 (codec.cc) and ngx.md5's hex
// (digest.cc) are bindings of these same functions.
#include <cstddef>
#include <cstdint>

extern "C" {

// nginx's ngx_int_t and ngx_str_t, laid out as nginx lays them out (lua-resty-core's
// base.lua cdefs ngx_str_t as { size_t len; const unsigned char *data; }).
typedef intptr_t ngx_int_t;
typedef struct {
  size_t len;
  unsigned char* data;
} ngx_str_t;

// Writes 2 * len lowercase hex digits of src to dst; returns dst + 2 * len.
unsigned char* ngx_hex_dump(unsigned char* dst, unsigned char* src, size_t len);
// The decimal number in line[0, n): -1 (NGX_ERROR) if n is 0, a character is not a digit,
// or the value passes the largest ngx_int_t.
ngx_int_t ngx_atoi(unsigned char* line, size_t n);
// Encode src into dst->data (room for ((src->len + 2) / 3) * 4 bytes) and set dst->len:
// the standard alphabet padded with '=', the URL alphabet ('-', '_') unpadded.
void ngx_encode_base64(ngx_str_t* dst, ngx_str_t* src);
void ngx_encode_base64url(ngx_str_t* dst, ngx_str_t* src);
// Decode src into dst->data (room for ((src->len + 3) / 4) * 3 bytes) and set dst->len;
// NGX_OK (0), or NGX_ERROR (-1) for a character outside the alphabet before the first '='
// or a length of 4n+1 before it. Decoding stops at the first '='.
ngx_int_t ngx_decode_base64(ngx_str_t* dst, ngx_str_t* src);
ngx_int_t ngx_decode_base64url(ngx_str_t* dst, ngx_str_t* src);

}  // extern "C"

namespace cosocket {

constexpr ngx_int_t kNgxOk = 0;
constexpr ngx_int_t kNgxError = -1;

constexpr size_t base64_encoded_length(size_t len) { return (len + 2) / 3 * 4; }
constexpr size_t base64_decoded_length(size_t len) { return (len + 3) / 4 * 3; }

// ngx_encode_base64's alphabet with the padding chosen (ngx.encode_base64's no_padding).
void encode_base64(ngx_str_t* dst, const ngx_str_t* src, bool padding);

}  // namespace cosocket
