// string_ffi.h -- the FFI ABI of lua-nginx-module 0.10.23's ngx_http_lua_string.c, the
// ngx_http_lua_ffi_* functions that lua-resty-core's resty.core.base64, resty.core.uri and
// resty.core.hash bind through ffi.C, with its signatures, C types
// and return values, exported from the cosocket executable (ENABLE_EXPORTS).
//
// One implementation, two bindings: each is defined beside its family's code (codec.cc,
// ...) and cosocket's own Lua C API binding of the same ngx.* function calls it, which
// also keeps its object file in the link (libcosocket_core.a is an archive).
//
// None takes a request: they work the same with base.get_request() nil, as on cosocket.
#ifndef COSOCKET_NGX_STRING_FFI_H_
#define COSOCKET_NGX_STRING_FFI_H_

#include <cstddef>

extern "C" {

// --- base64 (codec.cc) ---

// ngx.encode_base64: writes the encoding of src[0, len) to dst (room for ((len + 2) / 3) * 4
// bytes; (len * 8 + 5) / 6 with no_padding non-zero) and returns its length.
size_t ngx_http_lua_ffi_encode_base64(const unsigned char* src, size_t len, unsigned char* dst,
                                      int no_padding);
// ngx.decode_base64: 1 with the decoding of src[0, len) in dst (room for ((len + 3) / 4) * 3
// bytes) and its length in *dlen; 0 for input that is not base64 (*dlen then unspecified).
int ngx_http_lua_ffi_decode_base64(const unsigned char* src, size_t len, unsigned char* dst,
                                   size_t* dlen);

// --- uri (uri.cc) ---
// type: ngx.escape_uri's, 0 (NGX_ESCAPE_URI) to 6 (NGX_ESCAPE_MAIL_AUTH); resty.core.uri
// checks the range first (another value is taken as 2, NGX_ESCAPE_URI_COMPONENT).

// len plus 2 for each byte of src[0, len) that `type` escapes: the length of the escaping
size_t ngx_http_lua_ffi_uri_escaped_length(const unsigned char* src, size_t len, int type);
// writes the escaping of src[0, len) (uppercase %XX) to dst, of the length above
void ngx_http_lua_ffi_escape_uri(const unsigned char* src, size_t len, unsigned char* dst, int type);
// ngx.unescape_uri: writes the unescaping of src[0, len) to dst (room for len bytes: it is
// never longer) and returns its length. %XX decodes, '+' is a space, another '%' stays.
size_t ngx_http_lua_ffi_unescape_uri(const unsigned char* src, size_t len, unsigned char* dst);

// --- hash (digest.cc, codec.cc) ---

// ngx.md5_bin: the 16 bytes of src[0, len)'s MD5 to dst (zeros if OpenSSL refused MD5)
void ngx_http_lua_ffi_md5_bin(const unsigned char* src, size_t len, unsigned char* dst);
// ngx.md5: the same as 32 lowercase hex digits
void ngx_http_lua_ffi_md5(const unsigned char* src, size_t len, unsigned char* dst);
// ngx.sha1_bin: 1 with the 20 bytes of the SHA-1 in dst; 0 if SHA-1 is not available
int ngx_http_lua_ffi_sha1_bin(const unsigned char* src, size_t len, unsigned char* dst);
// ngx.crc32_short, ngx.crc32_long: the CRC-32 (IEEE 802.3) of src[0, len), both alike
unsigned int ngx_http_lua_ffi_crc32_short(const unsigned char* src, size_t len);
unsigned int ngx_http_lua_ffi_crc32_long(const unsigned char* src, size_t len);

// --- resty.core.utils (codec.cc; lua-nginx-module's ngx_http_lua_util.c) ---

// replaces every byte `find` of buf[0, len) with `replace`, in place
void ngx_http_lua_ffi_str_replace_char(unsigned char* buf, size_t len, const unsigned char find,
                                       const unsigned char replace);

}  // extern "C"

#endif  // COSOCKET_NGX_STRING_FFI_H_
