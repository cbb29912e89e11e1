"""lua-resty-core on cosocket, as far as it goes today (docs/api.md, "lua-resty-core on
cosocket", lists per module the ngx_http_lua_ffi_* functions still missing): Debian's
lua-resty-core 0.1.25 `resty.core.base` loads unmodified from package.path, and so does
`ngx.base64`, which binds nginx's ngx_encode_base64url/ngx_decode_base64url (exported by the
executable, ngx/core_symbols.cc).

BASE_EXPECTED was recorded from /work/shared/tools/resty-ref (resty-cli on Debian's nginx +
ngx_lua 0.10.23 + lua-resty-core 0.1.25) running BASE_SCRIPT.
"""

BASE_SCRIPT = r"""
local base = require "resty.core.base"
local ffi = require "ffi"
ngx.say("version ", base.version, " FFI ", base.FFI_OK, " ", base.FFI_ERROR, " ", base.FFI_AGAIN, " ",
        base.FFI_BUSY, " ", base.FFI_DONE, " ", base.FFI_DECLINED, " ", base.FFI_NO_REQ_CTX, " ",
        base.FFI_BAD_CONTEXT)
ngx.say("string buf ", base.get_string_buf_size(), " ", tostring(ffi.sizeof(base.get_string_buf(10))),
        " ", tostring(ffi.sizeof(base.get_string_buf(5000))), " ", tostring(base.get_string_buf(10) == base.get_string_buf(20)))
ngx.say("errmsg ptr ", tostring(ffi.typeof(base.get_errmsg_ptr())), " size ptr ", tostring(ffi.typeof(base.get_size_ptr())))
ngx.say("ngx_str_t ", ffi.sizeof("ngx_str_t"), " ngx_http_lua_ffi_str_t ", ffi.sizeof("ngx_http_lua_ffi_str_t"))
local t = {}
ngx.say("ref_in_table ", base.ref_in_table(t, "a"), " ", base.ref_in_table(t, "b"), " ", base.ref_in_table(t, nil))
ngx.say("allows http ", tostring(pcall(base.allows_subsystem, "http")), " stream ", select(2, pcall(base.allows_subsystem, "stream")))
local nt = base.new_tab(4, 4)
nt.x = 1
base.clear_tab(nt)
ngx.say("tabs ", tostring(next(nt)))

local b64 = require "ngx.base64"
ngx.say("b64 version ", b64.version)
for _, s in ipairs{"", "f", "fo", "foo", "\255\254hello", string.rep("\251", 7)} do
    local e = b64.encode_base64url(s)
    ngx.say("url [", e, "] ", tostring(b64.decode_base64url(e) == s))
end
for _, s in ipairs{"Zg", "Zg==", "Zm8", "a", "+/+/", "Zm9vY", "Zm 9v", "__5oZWxsbw"} do
    local d, err = b64.decode_base64url(s)
    ngx.say("decode [", s, "] ", d and #d or "nil", " ", tostring(err))
end
ngx.say("bad type ", select(2, b64.encode_base64url(1)), " / ", select(2, b64.decode_base64url(nil)))
"""

BASE_EXPECTED = r"""
version 0.1.25 FFI 0 -1 -2 -3 -4 -5 -100 -101
string buf 4096 4096 5000 true
errmsg ptr ctype<char *[1]> size ptr ctype<uint64_t [1]>
ngx_str_t 16 ngx_http_lua_ffi_str_t 16
ref_in_table 1 2 -1
allows http true stream unsupported subsystem: http
tabs nil
b64 version 0.1.25
url [] true
url [Zg] true
url [Zm8] true
url [Zm9v] true
url [__5oZWxsbw] true
url [-_v7-_v7-w] true
decode [Zg] 1 nil
decode [Zg==] 1 nil
decode [Zm8] 2 nil
decode [a] nil invalid input
decode [+/+/] nil invalid input
decode [Zm9vY] nil invalid input
decode [Zm 9v] nil invalid input
decode [__5oZWxsbw] 7 nil
bad type must provide a string / must provide a string
"""


def test_base_and_base64_as_resty_cli(run_lua_ok):
    assert run_lua_ok(BASE_SCRIPT).splitlines() == BASE_EXPECTED.strip("\n").splitlines()


def test_base_is_the_installed_file(run_lua_ok):
    out = run_lua_ok(r'''
local path = package.searchpath("resty.core.base", package.path)
ngx.say(path)
local base = require "resty.core.base"
ngx.say(base.version, " ", tostring(base == package.loaded["resty.core.base"]))
''')
    assert out.splitlines() == ["/usr/share/lua/5.1/resty/core/base.lua", "0.1.25 true"]


def test_require_still_waits_for_a_module_being_loaded(run_lua_ok, tmp_path):
    # base.lua swaps the global require for its own, which raises "loop or previous error"
    # when a module's top level is still running in another light thread; cosocket keeps its
    # require, which waits
    (tmp_path / "slowmod.lua").write_text("ngx.sleep(0.05)\nreturn { v = 42 }\n")
    out = run_lua_ok(r'''
local before = require
require "resty.core.base"
ngx.say("same require ", tostring(require == before))
local t = ngx.thread.spawn(function() return require("slowmod").v end)
ngx.sleep(0.01)
ngx.say(require("slowmod").v, " ", select(2, ngx.thread.wait(t)))
''', flags=["-I", str(tmp_path)])
    assert out.splitlines() == ["same require true", "42 42"]
