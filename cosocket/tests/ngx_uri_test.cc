// Unit tests for ngx/uri.cc: URI escaping and query args.
//
// Expected values marked "oracle" were produced by /work/shared/tools/openresty-run
// (nginx + lua-nginx-module 0.10.23 + lua-resty-core) running the same calls through
// pcall.
#include <cstdio>
#include <string>

#include <gtest/gtest.h>

extern "C" {
#include <lauxlib.h>
#include <lua.h>
}

#include "ngx/families.h"
#include "ngx_family_test.h"

namespace cosocket {
namespace {

using NgxUri = NgxFamilyTest<open_ngx_uri>;

// Lists, per escape type, the bytes that ngx.escape_uri escapes.
const char kEscapedBytes[] = R"lua(
local function escaped(t)
  local out = {}
  for b = 0, 255 do
    local c = string.char(b)
    if ngx.escape_uri(c, t) ~= c then out[#out + 1] = string.format("%02x", b) end
  end
  return table.concat(out, " ")
end
return escaped(TYPE)
)lua";

std::string high_bytes() {
  std::string s;
  for (int b = 0x80; b <= 0xff; ++b) {
    char buf[4];
    std::snprintf(buf, sizeof buf, " %02x", b);
    s += buf;
  }
  return s;
}

std::string control_bytes() {
  std::string s;
  for (int b = 0; b <= 0x20; ++b) {
    char buf[4];
    std::snprintf(buf, sizeof buf, "%s%02x", b ? " " : "", b);
    s += buf;
  }
  return s;
}

TEST_F(NgxUri, EscapeUriTablesMatchTheOracle) {
  const std::string ctl = control_bytes(), high = " 7f" + high_bytes();
  // oracle: escape_uri of each byte, for each type
  const std::string expected[] = {
      ctl + " 23 25 3f" + high,
      ctl + " 23 25 2b 3f" + high,
      ctl + " 22 23 24 25 26 2b 2c 2f 3a 3b 3c 3d 3e 3f 40 5b 5c 5d 5e 60 7b 7c 7d" + high,
      ctl + " 22 23 25 27" + high,
      ctl + " 22 27" + high,
      ctl + " 25",
      ctl + " 25",
  };
  for (int type = 0; type <= 6; ++type) {
    std::string code = kEscapedBytes;
    code.replace(code.find("TYPE"), 4, std::to_string(type));
    ASSERT_EQ(luaL_dostring(L, code.c_str()), 0) << lua_tostring(L, -1);
    EXPECT_EQ(lua_tostring(L, -1), expected[type]) << "type " << type;
    lua_pop(L, 1);
  }
}

TEST_F(NgxUri, EscapeUri) {
  // oracle
  EXPECT_EQ(run("ngx.escape_uri(\"a b/c?d=\\195\\169~!*'()\")"),
            "\"a%20b%2Fc%3Fd%3D%C3%A9~!*'()\"");
  EXPECT_EQ(run("ngx.escape_uri(\"a b/c?d=\\195\\169~!*'()\", 0)"),
            "\"a%20b/c%3Fd=%C3%A9~!*'()\"");
  EXPECT_EQ(run("ngx.escape_uri(nil), ngx.escape_uri(12.5), ngx.escape_uri('a b', 2.5)"),
            "\"\", \"12.5\", \"a%20b\"");
  // oracle: these are raised at the caller's caller (error level 3 in resty.core), which
  // under E() is E's pcall line in the helper chunk: "[string "..."]:<line>: "type" ..."
  auto ends_with = [](const std::string& s, const std::string& tail) {
    return s.rfind("\"[string ", 0) == 0 && s.size() >= tail.size() &&
           s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
  };
  EXPECT_PRED2(ends_with, run("E(ngx.escape_uri, 'x', '2')"), ": \\\"type\\\" is not a number\"");
  EXPECT_PRED2(ends_with, run("E(ngx.escape_uri, 'x', 7)"), ": \\\"type\\\" 7 out of range\"");
  EXPECT_PRED2(ends_with, run("E(ngx.escape_uri, 'x', -1)"), ": \\\"type\\\" -1 out of range\"");
  EXPECT_PRED2(ends_with, run("E(ngx.escape_uri, 'x', 6.5)"), ": \\\"type\\\" 6.5 out of range\"");
  EXPECT_EQ(exec("local function f() ngx.escape_uri('x', 7) end\nf()"),
            "[string \"local function f() ngx.escape_uri('x', 7) end...\"]:2: \"type\" 7 out of "
            "range");
}

TEST_F(NgxUri, UnescapeUri) {
  // oracle
  EXPECT_EQ(run("ngx.unescape_uri('a%20b+c%2x%zz%%41%4a%4A%')"), "\"a b c%2x%zz%AJJ%\"");
  EXPECT_EQ(run("ngx.unescape_uri('%e4%b8%ad%')"), "\"\xE4\xB8\xAD%\"");
  EXPECT_EQ(run("ngx.unescape_uri(nil), ngx.unescape_uri(5), #ngx.unescape_uri('a%00b'), "
                "ngx.unescape_uri('ab%4')"),
            "\"\", \"5\", 3, \"ab%4\"");
}

TEST_F(NgxUri, EncodeArgs) {
  // oracle
  EXPECT_EQ(run("ngx.encode_args({a = 'b c'})"), "\"a=b%20c\"");
  EXPECT_EQ(run("ngx.encode_args({a = {'1', '2', 3}})"), "\"a=1&a=2&a=3\"");
  EXPECT_EQ(run("ngx.encode_args({flag = true}), ngx.encode_args({flag = false})"),
            "\"flag\", \"\"");
  EXPECT_EQ(run("ngx.encode_args({n = 1.5}), ngx.encode_args({a = {}}), ngx.encode_args({})"),
            "\"n=1.5\", \"\", \"\"");
  EXPECT_EQ(run("ngx.encode_args({a = {true, false, 'x'}})"), "\"a&a=x\"");
  EXPECT_EQ(run("ngx.encode_args({['a b&'] = '=&?'}), ngx.encode_args({a = ''})"),
            "\"a%20b%26=%3D%26%3F\", \"a=\"");
  EXPECT_EQ(run("ngx.encode_args({a = {1, b = 2}}), ngx.encode_args({a = {[2] = 'x', [1] = 'y'}})"),
            "\"a=1&a=2\", \"a=y&a=x\"");
  EXPECT_EQ(run("ngx.encode_args({a = {1.5, 'x y'}})"), "\"a=1.5&a=x%20y\"");
  // a hash table's order is unspecified: compare as a set
  EXPECT_EQ(run("(function() local s = ngx.encode_args({a = 1, b = 2}) "
                "return s == 'a=1&b=2' or s == 'b=2&a=1' end)()"),
            "true");
  EXPECT_EQ(run("E(ngx.encode_args, {[1] = 'x'}), E(ngx.encode_args, {[true] = 1})"),
            "\"attempt to use a non-string key in the \\\"args\\\" option table\", "
            "\"attempt to use a non-string key in the \\\"args\\\" option table\"");
  EXPECT_EQ(run("E(ngx.encode_args, {a = {{1}}}), E(ngx.encode_args, {a = ngx.null}), "
                "E(ngx.encode_args, {a = print})"),
            "\"attempt to use table as query arg value\", "
            "\"attempt to use userdata as query arg value\", "
            "\"attempt to use function as query arg value\"");
  EXPECT_EQ(run("E(ngx.encode_args, 'x'), E(ngx.encode_args, nil)"),
            "\"bad argument #1 to '?' (table expected, got string)\", "
            "\"bad argument #1 to '?' (table expected, got nil)\"");
}

TEST_F(NgxUri, DecodeArgs) {
  // oracle
  EXPECT_EQ(run("ngx.decode_args('a=1&b=2&a=3&c&d=&=e&&f=x%20y+z')"),
            "{a={[1]=\"1\",[2]=\"3\"},b=\"2\",c=true,d=\"\",f=\"x y z\"}");
  EXPECT_EQ(run("ngx.decode_args('a=1&b=2&c=3', 2)"), "{a=\"1\",b=\"2\"}, \"truncated\"");
  EXPECT_EQ(run("ngx.decode_args('a=1&b=2&c=3', 0), ngx.decode_args('a=1&b=2&c=3', -1)"),
            "{a=\"1\",b=\"2\",c=\"3\"}, {a=\"1\",b=\"2\",c=\"3\"}");
  EXPECT_EQ(run("#ngx.decode_args(string.rep('a=1&', 150)).a, "
                "select(2, ngx.decode_args(string.rep('a=1&', 150)))"),
            "100, \"truncated\"");
  EXPECT_EQ(run("select('#', ngx.decode_args(string.rep('a=1&', 99) .. 'a=1')), "
                "select('#', ngx.decode_args(string.rep('a=1&', 100)))"),
            "1, 2");
  EXPECT_EQ(run("select('#', ngx.decode_args('a&b&c', 3)), select('#', ngx.decode_args('a&b&c&', 3))"),
            "1, 2");
  EXPECT_EQ(run("ngx.decode_args('a&b&&c&d', 3)"), "{a=true,b=true}, \"truncated\"");
  EXPECT_EQ(run("ngx.decode_args('=1&=2&a=1', 2)"), "{}, \"truncated\"");
  EXPECT_EQ(run("ngx.decode_args(12), ngx.decode_args(''), ngx.decode_args('a=1', '2')"),
            "{[\"12\"]=true}, {}, {a=\"1\"}");
  EXPECT_EQ(run("ngx.decode_args('a=b=c'), ngx.decode_args('a%20b=c%3dd&%3D=1')"),
            "{a=\"b=c\"}, {[\"=\"]=\"1\",[\"a b\"]=\"c=d\"}");
  EXPECT_EQ(run("ngx.decode_args('a&a&a=1'), ngx.decode_args('a=&a=')"),
            "{a={[1]=true,[2]=true,[3]=\"1\"}}, {a={[1]=\"\",[2]=\"\"}}");
  EXPECT_EQ(run("ngx.decode_args('a=1;b=2'), ngx.decode_args('&&&'), ngx.decode_args('='), "
                "ngx.decode_args('=1&=2')"),
            "{a=\"1;b=2\"}, {}, {}, {}");
  EXPECT_EQ(run("E(ngx.decode_args), E(ngx.decode_args, nil), E(ngx.decode_args, {}), "
                "E(ngx.decode_args, 'a=1', 'x'), E(ngx.decode_args, 'a=1', nil)"),
            "\"expecting 1 or 2 arguments but seen 0\", "
            "\"bad argument #1 to '?' (string expected, got nil)\", "
            "\"bad argument #1 to '?' (string expected, got table)\", "
            "\"bad argument #2 to '?' (number expected, got string)\", "
            "\"bad argument #2 to '?' (number expected, got nil)\"");
}

}  // namespace
}  // namespace cosocket
