// Unit tests for ngx/sql.cc: ngx.quote_sql_str.
//
// Expected values marked "oracle" were produced by /work/shared/tools/openresty-run
// (nginx + lua-nginx-module 0.10.23 + lua-resty-core) running the same calls through
// pcall.
#include <gtest/gtest.h>

#include "ngx/families.h"
#include "ngx_family_test.h"

namespace cosocket {
namespace {

using NgxSql = NgxFamilyTest<open_ngx_sql>;

TEST_F(NgxSql, QuoteSqlStr) {
  // oracle
  EXPECT_EQ(run("ngx.quote_sql_str('a\\'b\"c\\\\d\\0e\\n\\r\\t\\26\\b')"),
            "\"'a\\\\'b\\\\\\\"c\\\\\\\\d\\\\0e\\\\n\\\\r\\\\t\\\\Z\\\\b'\"");
  EXPECT_EQ(run("ngx.quote_sql_str(12), ngx.quote_sql_str('')"), "\"'12'\", \"''\"");
  EXPECT_EQ(run("E(ngx.quote_sql_str), E(ngx.quote_sql_str, nil), E(ngx.quote_sql_str, {})"),
            "\"expecting one argument\", "
            "\"bad argument #1 to '?' (string expected, got nil)\", "
            "\"bad argument #1 to '?' (string expected, got table)\"");
  // oracle: exactly these bytes are escaped
  EXPECT_EQ(run("(function() local s = {} for b = 0, 255 do "
                "local q = ngx.quote_sql_str(string.char(b)) "
                "if q ~= \"'\" .. string.char(b) .. \"'\" then s[#s + 1] = string.format('%02x', b) end "
                "end return table.concat(s, ' ') end)()"),
            "\"00 08 09 0a 0d 1a 22 27 5c\"");
}

}  // namespace
}  // namespace cosocket
