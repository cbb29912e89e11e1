// Unit tests for ngx/codec.cc: base64 and crc32.
//
// Expected values marked "oracle" were produced by /work/shared/tools/openresty-run
// (nginx + lua-nginx-module 0.10.23 + lua-resty-core) running the same calls through
// pcall; the others are RFC test vectors.
#include <gtest/gtest.h>

#include "ngx/families.h"
#include "ngx_family_test.h"

namespace cosocket {
namespace {

using NgxCodec = NgxFamilyTest<open_ngx_codec>;

TEST_F(NgxCodec, EncodeBase64) {
  // RFC 4648 section 10
  EXPECT_EQ(run("ngx.encode_base64(''), ngx.encode_base64('f'), ngx.encode_base64('fo'), "
                "ngx.encode_base64('foo'), ngx.encode_base64('foob'), "
                "ngx.encode_base64('fooba'), ngx.encode_base64('foobar')"),
            "\"\", \"Zg==\", \"Zm8=\", \"Zm9v\", \"Zm9vYg==\", \"Zm9vYmE=\", \"Zm9vYmFy\"");
  // oracle: no_padding, coercion and its error
  EXPECT_EQ(run("ngx.encode_base64('fo', true), ngx.encode_base64('f', true), "
                "ngx.encode_base64('f', false), ngx.encode_base64('f', nil)"),
            "\"Zm8\", \"Zg\", \"Zg==\", \"Zg==\"");
  EXPECT_EQ(run("ngx.encode_base64(nil), ngx.encode_base64(123), ngx.encode_base64(true), "
                "ngx.encode_base64()"),
            "\"\", \"MTIz\", \"dHJ1ZQ==\", \"\"");
  EXPECT_EQ(run("E(ngx.encode_base64, 'f', 1)"), "\"bad no_padding: boolean expected, got number\"");
  EXPECT_EQ(run("ngx.decode_base64(ngx.encode_base64({})):match('^table: ') ~= nil"), "true");
}

TEST_F(NgxCodec, DecodeBase64) {
  // RFC 4648 vectors round-trip; the rest is oracle
  EXPECT_EQ(run("ngx.decode_base64('Zm9vYmFy'), ngx.decode_base64('Zm9vYg=='), "
                "ngx.decode_base64('Zm9vYmE=')"),
            "\"foobar\", \"foob\", \"fooba\"");
  EXPECT_EQ(run("ngx.decode_base64('Zg'), ngx.decode_base64('Zg='), ngx.decode_base64('Zh=='), "
                "ngx.decode_base64('Zm9='), ngx.decode_base64('===='), "
                "ngx.decode_base64('Zg==Zg=='), ngx.decode_base64('Zg==='), "
                "ngx.decode_base64('')"),
            "\"f\", \"f\", \"f\", \"fo\", \"\", \"f\", \"f\", \"\"");
  EXPECT_EQ(run("ngx.decode_base64('+/+/')"), "\"\xFB\xFF\xBF\"");
  EXPECT_EQ(run("ngx.decode_base64('Z'), ngx.decode_base64('Zm9v!'), "
                "ngx.decode_base64('Zm 9v'), ngx.decode_base64('-_-_'), "
                "ngx.decode_base64('Zm9vY')"),
            "nil, nil, nil, nil, nil");
  EXPECT_EQ(run("E(ngx.decode_base64, nil), E(ngx.decode_base64, 1234), E(ngx.decode_base64, {})"),
            "\"string argument only\", \"string argument only\", \"string argument only\"");
}

TEST_F(NgxCodec, Crc32) {
  // check value of CRC-32 (0xCBF43926) and oracle results
  EXPECT_EQ(run("ngx.crc32_short('123456789'), ngx.crc32_long('123456789')"),
            "3421780262, 3421780262");
  EXPECT_EQ(run("ngx.crc32_short(''), ngx.crc32_long(''), ngx.crc32_short(nil), "
                "ngx.crc32_short(5)"),
            "0, 0, 0, 2226203566");
  EXPECT_EQ(run("ngx.crc32_long(string.rep('hello world ', 100)), "
                "ngx.crc32_short(string.rep('hello world ', 100))"),
            "4289797911, 4289797911");
}

}  // namespace
}  // namespace cosocket
