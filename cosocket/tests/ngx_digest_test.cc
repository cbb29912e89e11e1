// Unit tests for ngx/digest.cc: md5, sha1 and hmac_sha1.
//
// Expected values marked "oracle" were produced by /work/shared/tools/openresty-run
// (nginx + lua-nginx-module 0.10.23 + lua-resty-core) running the same calls through
// pcall; the others are RFC test vectors.
#include <string>

#include <gtest/gtest.h>

#include "ngx/families.h"
#include "ngx_family_test.h"

namespace cosocket {
namespace {

// The binary digests are compared through ngx.encode_base64 (codec.cc).
using NgxDigest = NgxFamilyTest<open_ngx_digest, open_ngx_codec>;

TEST_F(NgxDigest, Md5Sha1Hmac) {
  // RFC 1321 appendix A.5
  EXPECT_EQ(run("ngx.md5(''), ngx.md5('abc'), ngx.md5('message digest')"),
            "\"d41d8cd98f00b204e9800998ecf8427e\", \"900150983cd24fb0d6963f7d28e17f72\", "
            "\"f96b697d7cb7938d525a2f31aaf161d0\"");
  // oracle coercions: nil -> "", numbers and booleans via tostring
  EXPECT_EQ(run("ngx.md5(nil), ngx.md5(12), ngx.md5(true)"),
            "\"d41d8cd98f00b204e9800998ecf8427e\", \"c20ad4d76fe97759aa27a0c99bff6710\", "
            "\"b326b5062b2f0e69046810717534cb09\"");
  EXPECT_EQ(run("ngx.encode_base64(ngx.md5_bin('abc')), #ngx.md5_bin(nil)"),
            "\"kAFQmDzST7DWlj99KOF/cg==\", 16");
  // FIPS 180 "abc"; sha1("") for nil (oracle)
  EXPECT_EQ(run("ngx.encode_base64(ngx.sha1_bin('abc')), ngx.encode_base64(ngx.sha1_bin(nil))"),
            "\"qZk+NkcGgWq6PiVxeFDCbJzQ2J0=\", \"2jmj7l5rSw0yVb/vlWAYkK/YBwk=\"");
  // RFC 2202 test cases 1 and 2
  EXPECT_EQ(run("ngx.encode_base64(ngx.hmac_sha1(string.rep('\\11', 20), 'Hi There'))"),
            "\"thcxhlUFcmTii8C2+zeMjvFGvgA=\"");  // b617318655057264e28bc0b6fb378c8ef146be00
  EXPECT_EQ(run("ngx.encode_base64(ngx.hmac_sha1('Jefe', 'what do ya want for nothing?'))"),
            "\"7/zfauXrL6LSdBbV8YTfnCWafHk=\"");  // effcdf6ae5eb2fa2d27416d5f184df9c259a7c79
  // oracle
  EXPECT_EQ(run("ngx.encode_base64(ngx.hmac_sha1('key', "
                "'The quick brown fox jumps over the lazy dog')), "
                "ngx.encode_base64(ngx.hmac_sha1(1, 2))"),
            "\"3nybhbi3iqa8ino29wqQcBydtNk=\", \"0HXKErglmgsnQ48HUxSju4ipJ7U=\"");
  EXPECT_EQ(run("E(ngx.hmac_sha1, nil, 'x'), E(ngx.hmac_sha1, {}, 'x'), E(ngx.hmac_sha1, 'x', {})"),
            "\"bad argument #1 to '?' (string expected, got nil)\", "
            "\"bad argument #1 to '?' (string expected, got table)\", "
            "\"bad argument #2 to '?' (string expected, got table)\"");
  EXPECT_NE(exec("ngx.hmac_sha1(nil, nil)").find("bad argument #1 to 'hmac_sha1' (string "
                                                 "expected, got nil)"),
            std::string::npos);
}

}  // namespace
}  // namespace cosocket
