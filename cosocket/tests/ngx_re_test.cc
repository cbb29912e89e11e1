// Unit tests for ngx/regex.cc.
//
// Expected values marked "oracle" were produced by /work/shared/tools/openresty-run
// (nginx + lua-nginx-module 0.10.23 + lua-resty-core, PCRE1) running the same calls
// through pcall. Where PCRE2 words things differently the test says so.
#include <string>

#include <gtest/gtest.h>

extern "C" {
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
}

#include "lua_eval.h"
#include "ngx/regex.h"

namespace cosocket {
namespace {

// G(subject, regex, opts) runs a gmatch iterator to its end and lists the matches
// (S and E come from lua_eval.h).
const char kGmatchHelper[] = R"lua(
function G(subj, regex, opts)
  local it, err = ngx.re.gmatch(subj, regex, opts)
  if not it then return "compile: " .. err end
  local out = {}
  for _ = 1, 50 do
    local m, e = it()
    if not m then
      out[#out + 1] = "END:" .. tostring(e)
      break
    end
    out[#out + 1] = m[0]
  end
  local m, e = it()
  out[#out + 1] = "after:" .. tostring(m) .. ":" .. tostring(e)
  return table.concat(out, "|")
end
)lua";

class NgxRe : public LuaEvalTest {
 protected:
  void open_ngx(int ngx) override { open_ngx_re(L, ngx); }

  void SetUp() override {
    LuaEvalTest::SetUp();
    if (HasFatalFailure()) return;
    ASSERT_EQ(luaL_dostring(L, kGmatchHelper), 0) << lua_tostring(L, -1);
  }
};

TEST_F(NgxRe, TableHasTheFunctions) {
  EXPECT_EQ(run("type(ngx.re.match), type(ngx.re.find), type(ngx.re.gmatch), "
                "type(ngx.re.sub), type(ngx.re.gsub), type(ngx.re.opt)"),
            "\"function\", \"function\", \"function\", \"function\", \"function\", \"function\"");
}

// ---------------------------------------------------------------------------
// match

TEST_F(NgxRe, MatchCaptures) {
  // oracle
  EXPECT_EQ(run("ngx.re.match('hello 1234 world', '([0-9])([0-9]+)')"),
            "{[0]=\"1234\",[1]=\"1\",[2]=\"234\"}");
  EXPECT_EQ(run("ngx.re.match('hello', '\\\\d+')"), "nil");
  EXPECT_EQ(run("ngx.re.match('hello 1234', '(?<first>[a-z]+) (?<num>\\\\d+)')"),
            "{[0]=\"hello 1234\",[1]=\"hello\",[2]=\"1234\",first=\"hello\",num=\"1234\"}");
  EXPECT_EQ(run("ngx.re.match('ab', '(a)(x)?(b)')"), "{[0]=\"ab\",[1]=\"a\",[2]=false,[3]=\"b\"}");
  EXPECT_EQ(run("ngx.re.match('ab', '(a)(?<n>x)?(b)')"),
            "{[0]=\"ab\",[1]=\"a\",[2]=false,[3]=\"b\",n=false}");
  EXPECT_EQ(run("ngx.re.match('a', '(a)(x)?')"), "{[0]=\"a\",[1]=\"a\",[2]=false}");
  EXPECT_EQ(run("ngx.re.match('', ''), ngx.re.match('abc', '')"), "{[0]=\"\"}, {[0]=\"\"}");
  EXPECT_EQ(run("#ngx.re.match('a\\0b', 'a\\\\x00b')[0]"), "3");
  EXPECT_EQ(run("#ngx.re.match('abcdefghijk', '(a)(b)(c)(d)(e)(f)(g)(h)(i)(j)(k)')"), "11");
}

TEST_F(NgxRe, MatchOptions) {
  // oracle
  EXPECT_EQ(run("ngx.re.match('HELLO', 'hello', 'i')"), "{[0]=\"HELLO\"}");
  EXPECT_EQ(run("ngx.re.match('xab', 'ab', 'a'), ngx.re.match('abx', 'ab', 'a')"),
            "nil, {[0]=\"ab\"}");
  EXPECT_EQ(run("ngx.re.match('abcd', 'a|ab|abc', 'd'), ngx.re.match('abcd', 'a|ab|abc')"),
            "{[0]=\"abc\"}, {[0]=\"a\"}");
  EXPECT_EQ(run("ngx.re.match('abcd', '(a)|ab', 'd'), ngx.re.match('ab', '(?<x>a)b', 'd')"),
            "{[0]=\"ab\"}, {[0]=\"ab\"}");  // DFA reports no groups
  EXPECT_EQ(run("ngx.re.match('xyz', 'a|ab', 'd'), ngx.re.match('abcd', 'a|ab', 'jd')"),
            "nil, {[0]=\"ab\"}");
  EXPECT_EQ(run("ngx.re.match('a\\nb', 'a.b', 's'), ngx.re.match('a\\nb', 'a.b')"),
            "{[0]=\"a\\\nb\"}, nil");
  EXPECT_EQ(run("ngx.re.match('a\\nb', '^b', 'm'), ngx.re.match('a\\nb', '^b')"),
            "{[0]=\"b\"}, nil");
  EXPECT_EQ(run("ngx.re.match('ab', 'a b # comment', 'x')"), "{[0]=\"ab\"}");
  EXPECT_EQ(run("ngx.re.match('\\228\\184\\173x', '.', 'u'), ngx.re.match('\\228\\184\\173x', '.')"),
            "{[0]=\"\xE4\xB8\xAD\"}, {[0]=\"\xE4\"}");
  EXPECT_EQ(run("ngx.re.match('\\195\\132B', '\\195\\164b', 'iu')"), "{[0]=\"\xC3\x84" "B\"}");
  EXPECT_EQ(run("ngx.re.match('\\195\\169', '\\\\w', 'u')"), "nil");  // no UCP, as OpenResty
  EXPECT_EQ(run("ngx.re.match('abc', 'b', 'j'), ngx.re.match('abc', '(b)', 'jo'), "
                "ngx.re.match('abc', 'b', 'J'), ngx.re.match('a', '[]', 'J')"),
            "{[0]=\"b\"}, {[0]=\"b\",[1]=\"b\"}, {[0]=\"b\"}, nil");
  EXPECT_EQ(run("ngx.re.match('aBc', 'b', 'aijosmxuD')"), "nil");
  // U: UTF-8 mode without checking the subject; OpenResty returns nil here too
  EXPECT_EQ(run("ngx.re.match('\\255', 'x', 'U')"), "nil");
  EXPECT_EQ(run("ngx.re.match('a\\r\\nb', 'a$', 'm'), ngx.re.match('\\r\\n', '\\\\R')"),
            "nil, {[0]=\"\\13\\\n\"}");
}

TEST_F(NgxRe, MatchDuplicateNames) {
  // oracle
  EXPECT_EQ(run("ngx.re.match('b', '(?<n>a)|(?<n>b)', 'D')"),
            "{[0]=\"b\",[1]=false,[2]=\"b\",n={[1]=\"b\"}}");
  EXPECT_EQ(run("ngx.re.match('ab', '(?<n>a)(?<n>b)', 'D')"),
            "{[0]=\"ab\",[1]=\"a\",[2]=\"b\",n={[1]=\"a\",[2]=\"b\"}}");
  EXPECT_EQ(run("ngx.re.match('c', '(?<n>a)|(?<n>b)|c', 'D')"), "{[0]=\"c\",[1]=false,[2]=false}");
  EXPECT_EQ(run("ngx.re.match('ab', '(?<x>a)(b)', 'D')"),
            "{[0]=\"ab\",[1]=\"a\",[2]=\"b\",x={[1]=\"a\"}}");
  EXPECT_EQ(run("ngx.re.match('b', '(?J)(?<n>a)|(?<n>b)')"),
            "{[0]=\"b\",[1]=false,[2]=\"b\",n=\"b\"}");
  // Without D a duplicate name is a compile error (PCRE2's wording and offset).
  EXPECT_EQ(run("ngx.re.match('x', '(?<n>a)(?<n>b)')"),
            "nil, \"pcre2_compile() failed: two named subpatterns have the same name "
            "(PCRE2_DUPNAMES not set) in \\\"(?<n>a)(?<n>b)\\\" at \\\"b)\\\"\"");
}

TEST_F(NgxRe, MatchCtxPos) {
  // oracle
  EXPECT_EQ(run("(function() local c = {pos = 3} return ngx.re.match('abcabc', 'abc', '', c), c.pos end)()"),
            "{[0]=\"abc\"}, 7");
  EXPECT_EQ(run("(function() local c = {pos = 3} return ngx.re.match('abcab', 'abc', '', c), c.pos end)()"),
            "nil, 3");
  EXPECT_EQ(run("(function() local c = {pos = 10} return ngx.re.match('abc', '', '', c), c.pos end)()"),
            "nil, 10");
  EXPECT_EQ(run("(function() local c = {pos = 4} return ngx.re.match('abc', '', '', c), c.pos end)()"),
            "{[0]=\"\"}, 4");
  EXPECT_EQ(run("(function() local c = {pos = 0} return ngx.re.match('abc', 'a', '', c), c.pos end)()"),
            "{[0]=\"a\"}, 2");
  EXPECT_EQ(run("(function() local c = {pos = -1} return ngx.re.match('abc', 'c', '', c), c.pos end)()"),
            "{[0]=\"c\"}, 4");
  EXPECT_EQ(run("(function() local c = {} return ngx.re.match('abc', 'b', '', c), c.pos end)()"),
            "{[0]=\"b\"}, 3");
  EXPECT_EQ(run("(function() local c = {} return ngx.re.match('abc', 'x', '', c), c.pos end)()"),
            "nil, nil");
  EXPECT_EQ(run("(function() local c = {pos = 2} return ngx.re.match('abc', 'b', 'a', c), c.pos end)()"),
            "{[0]=\"b\"}, 3");
  EXPECT_EQ(run("(function() local c = {pos = 2} return ngx.re.match('abc', '^b', '', c), c.pos end)()"),
            "nil, 2");
  EXPECT_EQ(run("(function() local c = {pos = 2.7} return ngx.re.match('abc', '[a-c]', '', c), c.pos end)()"),
            "{[0]=\"b\"}, 3");
  // OpenResty fails with "attempt to compare string with number" here.
  EXPECT_EQ(run("E(ngx.re.match, 'a', 'a', '', {pos = 'x'})"),
            "\"bad ctx.pos: number expected, got string\"");
}

TEST_F(NgxRe, MatchResTable) {
  // oracle: the table is reused; other slots are left alone
  EXPECT_EQ(run("(function() local t = {'x', 'y', 'z', foo = 1} "
                "local m = ngx.re.match('ab', '(a)(b)', '', nil, t) return m == t, m end)()"),
            "true, {[0]=\"ab\",[1]=\"a\",[2]=\"b\",[3]=\"z\",foo=1}");
  EXPECT_EQ(run("ngx.re.match('a', '(a)(b)?', '', nil, {'x', 'y', 'z'})"),
            "{[0]=\"a\",[1]=\"a\",[2]=false,[3]=\"z\"}");
}

TEST_F(NgxRe, MatchArgumentCoercionAndErrors) {
  // oracle: the subject goes through tostring
  EXPECT_EQ(run("ngx.re.match(12345, '3'), ngx.re.match(nil, 'a'), ngx.re.match(nil, 'nil')"),
            "{[0]=\"3\"}, nil, {[0]=\"nil\"}");
  EXPECT_EQ(run("ngx.re.match('a', 'a', nil)"), "{[0]=\"a\"}");
  // oracle: an unknown flag raises
  EXPECT_EQ(run("E(ngx.re.match, 'x', 'x', 'Z'), E(ngx.re.match, 'x', 'x', 'iZ')"),
            "\"unknown flag \\\"Z\\\" (flags \\\"Z\\\")\", \"unknown flag \\\"Z\\\" (flags \\\"iZ\\\")\"");
  // OpenResty fails inside resty.core with "attempt to get length of local 'regex'".
  EXPECT_EQ(run("E(ngx.re.match, 'a', nil), E(ngx.re.match, '12345', 3), E(ngx.re.match, 'a', 'a', 1)"),
            "\"bad argument #2 to '?' (string expected, got nil)\", "
            "\"bad argument #2 to '?' (string expected, got number)\", "
            "\"bad argument #3 to '?' (string expected, got number)\"");
  EXPECT_EQ(run("E(ngx.re.match, 'a', 'a', '', 'x')"),
            "\"bad argument #4 to '?' (table expected, got string)\"");
}

TEST_F(NgxRe, CompileErrors) {
  // oracle (PCRE1): 'pcre_compile() failed: missing ) in "(abc"'; nginx's PCRE2 wording:
  EXPECT_EQ(run("ngx.re.match('x', '(abc')"),
            "nil, \"pcre2_compile() failed: missing closing parenthesis in \\\"(abc\\\"\"");
  // oracle: identical text
  EXPECT_EQ(run("ngx.re.match('x', 'a{2,1}')"),
            "nil, \"pcre2_compile() failed: numbers out of order in {} quantifier in "
            "\\\"a{2,1}\\\" at \\\"}\\\"\"");
  EXPECT_EQ(run("ngx.re.match('x', '[z-a]')"),
            "nil, \"pcre2_compile() failed: range out of order in character class in "
            "\\\"[z-a]\\\" at \\\"a]\\\"\"");
  EXPECT_EQ(run("ngx.re.match('x', 'x\\\\')"),
            "nil, \"pcre2_compile() failed: \\\\ at end of pattern in \\\"x\\\\\\\"\"");
  EXPECT_EQ(run("ngx.re.find('a', '(')"),
            "nil, nil, \"pcre2_compile() failed: missing closing parenthesis in \\\"(\\\"\"");
  EXPECT_EQ(run("ngx.re.gmatch('a', '(')"),
            "nil, \"pcre2_compile() failed: missing closing parenthesis in \\\"(\\\"\"");
  EXPECT_EQ(run("ngx.re.sub('a', '(', 'x')"),
            "nil, nil, \"pcre2_compile() failed: missing closing parenthesis in \\\"(\\\"\"");
  EXPECT_EQ(run("ngx.re.gsub('a', '(', 'x', 'o')"),
            "nil, nil, \"pcre2_compile() failed: missing closing parenthesis in \\\"(\\\"\"");
}

TEST_F(NgxRe, MatchErrorsFromPcre) {
  // oracle: 'pcre_exec() failed: -10' (PCRE1's BADUTF8); PCRE2 reports -23 for this input
  EXPECT_EQ(run("ngx.re.match('\\255\\254', '.', 'u')"), "nil, \"pcre_exec() failed: -23\"");
  EXPECT_EQ(run("ngx.re.find('\\255\\254', '.', 'u')"), "nil, nil, \"pcre_exec() failed: -23\"");
  EXPECT_EQ(run("ngx.re.gsub('\\255\\254', 'x', 'y', 'u')"),
            "nil, nil, \"pcre_exec() failed: -23\"");
  EXPECT_EQ(run("G('\\255\\254', 'x', 'u')"), "\"END:pcre_exec() failed: -23|after:nil:nil\"");
}

TEST_F(NgxRe, CompileOnceCache) {
  // oracle: "123"
  EXPECT_EQ(run("(function() local r = {} for i = 1, 3 do "
                "r[i] = ngx.re.match('a' .. i, 'a(\\\\d)', 'o')[1] end return table.concat(r) end)()"),
            "\"123\"");
  // Different flags are different cache entries.
  EXPECT_EQ(run("ngx.re.match('A', 'a', 'o'), ngx.re.match('A', 'a', 'io')"), "nil, {[0]=\"A\"}");
  // More distinct patterns than the cache holds (1024): entries are evicted, results stay right.
  EXPECT_EQ(run("(function() for i = 1, 1500 do "
                "local m = ngx.re.match('x' .. i .. 'y', 'x(' .. i .. ')y', 'jo') "
                "if not m or m[1] ~= tostring(i) then return i end end "
                "return ngx.re.match('x7y', 'x(7)y', 'jo')[1] end)()"),
            "\"7\"");
}

// ---------------------------------------------------------------------------
// find

TEST_F(NgxRe, Find) {
  // oracle
  EXPECT_EQ(run("ngx.re.find('hello 1234', '[0-9]+'), ngx.re.find('hello', '[0-9]+')"),
            "7, 10, nil");
  EXPECT_EQ(run("ngx.re.find('hello 1234', '([0-9])([0-9]+)', '', nil, 2)"), "8, 10");
  EXPECT_EQ(run("ngx.re.find('ab', '(a)(x)?(b)', '', nil, 2)"), "nil");
  EXPECT_EQ(run("ngx.re.find('ab', '(a)(b)', '', nil, 5)"), "nil, nil, \"nth out of bound\"");
  EXPECT_EQ(run("ngx.re.find('ab', '(a)(b)', '', nil, 0), ngx.re.find('ab', '(a)(b)', '', nil, -1)"),
            "1, 2, 1, 2");
  EXPECT_EQ(run("(function() local c = {pos = 2} local a, b = ngx.re.find('abab', 'ab', '', c) "
                "return a, b, c.pos end)()"),
            "3, 4, 5");
  EXPECT_EQ(run("ngx.re.find('abc', ''), ngx.re.find('abc', '$'), ngx.re.find('', '$')"),
            "1, 0, 4, 3, 1, 0");
  EXPECT_EQ(run("ngx.re.find('abcd', 'a|ab|abc', 'd'), ngx.re.find('ab', '(a)b', 'd', nil, 1)"),
            "1, 3, nil, nil, \"nth out of bound\"");
  EXPECT_EQ(run("E(ngx.re.find, 'a', 'a', 'Q')"), "\"unknown flag \\\"Q\\\" (flags \\\"Q\\\")\"");
}

// ---------------------------------------------------------------------------
// gmatch

TEST_F(NgxRe, Gmatch) {
  // oracle
  EXPECT_EQ(run("G('hello world', '[a-z]+')"), "\"hello|world|END:nil|after:nil:nil\"");
  EXPECT_EQ(run("G('abc', '\\\\d')"), "\"END:nil|after:nil:nil\"");
  EXPECT_EQ(run("G('aab', 'a', 'a')"), "\"a|a|END:nil|after:nil:nil\"");
  EXPECT_EQ(run("(function() local it = ngx.re.gmatch('a1b2', '([a-z])(\\\\d)') "
                "return it(), it(), it() end)()"),
            "{[0]=\"a1\",[1]=\"a\",[2]=\"1\"}, {[0]=\"b2\",[1]=\"b\",[2]=\"2\"}, nil");
  EXPECT_EQ(run("E(ngx.re.gmatch, 'a', 'a', 'Q')"), "\"unknown flag \\\"Q\\\" (flags \\\"Q\\\")\"");
  // for-in works with the iterator
  EXPECT_EQ(run("(function() local n = 0 for m in ngx.re.gmatch('a,b,c', '\\\\w') do n = n + 1 end "
                "return n end)()"),
            "3");
}

TEST_F(NgxRe, GmatchEmptyMatchesAdvance) {
  // oracle
  EXPECT_EQ(run("G('abc', '')"), "\"||||END:nil|after:nil:nil\"");
  EXPECT_EQ(run("G('abc', 'x*')"), "\"||||END:nil|after:nil:nil\"");
  EXPECT_EQ(run("G('xaxx', 'x*')"), "\"x||xx||END:nil|after:nil:nil\"");
  EXPECT_EQ(run("G('aba', '|a')"), "\"||||END:nil|after:nil:nil\"");
  EXPECT_EQ(run("G('ab', 'b*')"), "\"|b||END:nil|after:nil:nil\"");
  // OpenResty steps one byte and fails with "pcre_exec() failed: -11" on the second
  // match; here a whole UTF-8 character is skipped.
  EXPECT_EQ(run("G('\\228\\184\\173\\230\\150\\135', '', 'u')"), "\"|||END:nil|after:nil:nil\"");
}

TEST_F(NgxRe, GmatchKeepsItsRegexAliveAcrossGc) {
  EXPECT_EQ(run("(function() local it = ngx.re.gmatch('a1b2c3', '\\\\d', 'o') "
                "for i = 1, 1100 do ngx.re.match('x', 'x' .. i, 'o') end "
                "collectgarbage() collectgarbage() "
                "return it()[0], it()[0], it()[0], it() end)()"),
            "\"1\", \"2\", \"3\", nil");
}

// ---------------------------------------------------------------------------
// sub / gsub

TEST_F(NgxRe, SubTemplates) {
  // oracle
  EXPECT_EQ(run("ngx.re.sub('hello world', 'o', '0'), ngx.re.sub('hello', 'x', 'y')"),
            "\"hell0 world\", 1, \"hello\", 0");
  EXPECT_EQ(run("ngx.re.sub('hello world', '(\\\\w+) (\\\\w+)', '$2 $1 $0 ${1}x $$ ${2}')"),
            "\"world hello hello world hellox $ world\", 1");
  EXPECT_EQ(run("ngx.re.sub('abc', '(b)', '[$2]'), ngx.re.sub('abc', '(b)', '[$10]'), "
                "ngx.re.sub('ac', 'a(b)?c', '[$1]')"),
            "\"a[]c\", 1, \"a[]c\", 1, \"[]\", 1");
  EXPECT_EQ(run("ngx.re.sub('abc', 'b', 'x$$'), ngx.re.sub('abc', 'b', '${0}${0}'), "
                "ngx.re.sub('abc', '(b)', '$1a')"),
            "\"ax$c\", 1, \"abbc\", 1, \"abac\", 1");
  EXPECT_EQ(run("ngx.re.sub('abcdefghijklm', '(a)(b)(c)(d)(e)(f)(g)(h)(i)(j)(k)(l)', '$12|$1|${12}')"),
            "\"l|a|lm\", 1");
  EXPECT_EQ(run("ngx.re.gsub('abc', '(b)', '${01}'), ngx.re.gsub('abc', '(b)', '$00'), "
                "ngx.re.gsub('abc', 'b', '\\\\$1')"),
            "\"abc\", 1, \"abc\", 1, \"a\\\\c\", 1");
  // oracle: non-function replacements go through tostring
  EXPECT_EQ(run("ngx.re.sub('abc', 'b', 5), ngx.re.sub('abc', 'b', nil), ngx.re.gsub('ab', 'a', true)"),
            "\"a5c\", 1, \"anilc\", 1, \"trueb\", 1");
  for (const char* bad : {"$", "${1", "$x", "${x}", "$ ", "${"}) {
    EXPECT_EQ(run(std::string("ngx.re.sub('abc', 'b', '") + bad + "')"),
              "nil, nil, \"failed to compile the replacement template\"")
        << bad;
  }
  EXPECT_EQ(run("ngx.re.sub('aBc', 'b', 'x', 'i'), ngx.re.sub('abc', '', '-')"),
            "\"axc\", 1, \"-abc\", 1");
  EXPECT_EQ(run("E(ngx.re.sub, 'abc', 'b', 'x', 'Q')"), "\"unknown flag \\\"Q\\\" (flags \\\"Q\\\")\"");
  EXPECT_EQ(run("E(ngx.re.sub, 'a', nil, 'x')"), "\"bad argument #2 to '?' (string expected, got nil)\"");
}

TEST_F(NgxRe, SubFunctions) {
  // oracle
  EXPECT_EQ(run("ngx.re.sub('hello world', '(o)', function(m) return '[' .. m[0] .. m[1] .. ']' end)"),
            "\"hell[oo] world\", 1");
  EXPECT_EQ(run("ngx.re.sub('abc', 'b', function() return 42 end), "
                "ngx.re.sub('abc', 'b', function() return nil end), "
                "ngx.re.sub('abc', 'b', function() return false end)"),
            "\"a42c\", 1, \"anilc\", 1, \"afalsec\", 1");
  EXPECT_EQ(run("ngx.re.sub('abc', '(?<x>b)', function(m) return m.x .. m[1] end), "
                "ngx.re.sub('ac', 'a(b)?c', function(m) return tostring(m[1]) end), "
                "ngx.re.sub('abc', 'b', function() return 'x', 'y' end)"),
            "\"abbc\", 1, \"false\", 1, \"axc\", 1");
  EXPECT_EQ(run("ngx.re.sub('b', '(?<n>a)|(?<n>b)', function(m) return type(m.n) end, 'D')"),
            "\"table\", 1");
  EXPECT_EQ(run("ngx.re.sub('abc', 'b', function() return {} end):match('^atable: 0x%x+c$') ~= nil"),
            "true");
  // oracle: the function's error propagates
  EXPECT_NE(run("E(ngx.re.sub, 'abc', 'b', function() error('boom') end)").find(": boom"),
            std::string::npos);
  EXPECT_EQ(run("ngx.re.gsub('a1b2', '\\\\d', function(m) return m[0] * 2 end), "
                "ngx.re.gsub('ab', '.', function(m) return m[0]:upper() end)"),
            "\"a2b4\", 2, \"AB\", 2");
}

TEST_F(NgxRe, Gsub) {
  // oracle
  EXPECT_EQ(run("ngx.re.gsub('hello world', 'o', '0'), ngx.re.gsub('abc', '\\\\d', 'x')"),
            "\"hell0 w0rld\", 2, \"abc\", 0");
  EXPECT_EQ(run("ngx.re.gsub('a1b2', '([a-z])(\\\\d)', '$2$1'), ngx.re.gsub('aab', 'a', 'x', 'a')"),
            "\"1a2b\", 2, \"xxb\", 2");
  EXPECT_EQ(run("ngx.re.gsub(nil, 'n', 'N'), ngx.re.gsub('abcabc', 'a|ab|abc', 'X', 'd')"),
            "\"Nil\", 1, \"XX\", 2");
  EXPECT_EQ(run("ngx.re.gsub('abc', 'b', '${')"),
            "nil, nil, \"failed to compile the replacement template\"");
  EXPECT_EQ(run("ngx.re.gsub('a\\nb', '^', '-', 'm'), ngx.re.gsub('a\\r\\nb', '$', '-', 'm')"),
            "\"-a\\\n-b\", 2, \"a\\13-\\\nb-\", 2");
}

TEST_F(NgxRe, GsubEmptyMatchesAdvance) {
  // oracle
  EXPECT_EQ(run("ngx.re.gsub('abc', '', '-'), ngx.re.gsub('abc', 'x*', '-')"),
            "\"-a-b-c-\", 4, \"-a-b-c-\", 4");
  EXPECT_EQ(run("ngx.re.gsub('xaxx', 'x*', '-'), ngx.re.gsub('', '', '-')"),
            "\"--a--\", 4, \"-\", 1");
  EXPECT_EQ(run("ngx.re.gsub('a', '|a', '-'), ngx.re.gsub('aba', '|a', '-')"),
            "\"-a-\", 2, \"-a-b-a-\", 4");
  EXPECT_EQ(run("ngx.re.gsub('ab', 'b*', '-'), ngx.re.gsub('aa', 'a*?', '-')"),
            "\"-a--\", 3, \"-a-a-\", 3");
  EXPECT_EQ(run("ngx.re.gsub('a\\r\\nb', '', '-'), ngx.re.gsub('aaa', '(?<=a)', '-')"),
            "\"-a-\\13-\\\n-b-\", 5, \"a-a-a-\", 3");
  EXPECT_EQ(run("#ngx.re.gsub('\\228\\184\\173', '', '-'), ngx.re.gsub('ab', 'x*', '-', 'd')"),
            "7, \"-a-b-\", 3");
  EXPECT_EQ(run("ngx.re.gsub('abc', '', function(m) return '<' .. m[0] .. '>' end)"),
            "\"<>a<>b<>c<>\", 4");
  // OpenResty: nil, nil, "pcre_exec() failed: -11" (it steps into the middle of a character)
  EXPECT_EQ(run("ngx.re.gsub('\\228\\184\\173\\230\\150\\135', '', '-', 'u')"),
            "\"-\xE4\xB8\xAD-\xE6\x96\x87-\", 3");
}

TEST_F(NgxRe, Opt) {
  EXPECT_EQ(run("select('#', ngx.re.opt('jit_stack_size', 128 * 1024))"), "0");
  EXPECT_EQ(run("E(ngx.re.opt, 'foo', 1)"), "\"unrecognized option name\"");
}

}  // namespace
}  // namespace cosocket
