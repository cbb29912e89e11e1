"""Debian's lua-resty-core 0.1.25 modules that bind lua-nginx-module 0.10.23's FFI ABI
(the ngx_http_lua_ffi_* functions the cosocket executable exports), required unmodified in
a cosocket script: each replaces cosocket's Lua C API ngx.* functions with its FFI ones, and
they must answer as before, and as resty-cli does.

Each *_EXPECTED was recorded from /work/shared/tools/resty-ref (resty-cli on Debian's nginx +
ngx_lua 0.10.23 + lua-resty-core 0.1.25, where the modules are loaded already) running the
same script. Error cases (wrong types) are part of each script.
"""
import pytest


def check_ffi(run_lua_ok, script, expected, functions):
    """Runs script on cosocket and checks its output against resty-cli's; then checks that
    each of `functions` (names in ngx) is the module's Lua function on the FFI, no longer
    cosocket's C function."""
    names = ", ".join(f'"{f}"' for f in functions)
    probe = f"""
for _, name in ipairs{{{names}}} do
    local f = ngx
    for part in name:gmatch("[^.]+") do f = f[part] end
    ngx.say("binding ", name, " ", debug.getinfo(f, "S").what)
end
"""
    out = run_lua_ok(script + probe).splitlines()
    n = len(functions)
    assert out[:-n] == expected.strip("\n").splitlines()
    assert out[-n:] == [f"binding {f} Lua" for f in functions]


BASE64_SCRIPT = r"""
require "resty.core.base64"
local function show(...) ngx.say(table.concat({...}, " ")) end
local function hex(s) return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end)) end
for _, s in ipairs{"", "f", "fo", "foo", "foob", "\0\255\254", string.rep("x", 5000)} do
    local e = ngx.encode_base64(s)
    show("enc", #e, e:sub(1, 40), ngx.encode_base64(s, true):sub(1, 40), tostring(ngx.decode_base64(e) == s))
end
show("coerce", ngx.encode_base64(nil), ngx.encode_base64(123), ngx.encode_base64(false), ngx.encode_base64(1.5, false))
for _, s in ipairs{"Zg", "Zg==", "Zm8=", "Zm9v", "a", "Zm9vY", "Zm 9v", "-_", "+/+/", "", "Zg=x", "====", string.rep("QUJD", 2000)} do
    local d = ngx.decode_base64(s)
    show("dec [" .. s:sub(1, 12) .. "]", d and ("[" .. hex(d:sub(1, 6)) .. "] " .. #d) or "nil")
end
for _, v in ipairs{{1}, 0, "x"} do
    show("nopad", type(v), select(2, pcall(ngx.encode_base64, "a", v)))
end
show("dec err", select(2, pcall(ngx.decode_base64, 12)), select(2, pcall(ngx.decode_base64, nil)))
"""

BASE64_EXPECTED = r"""
enc 0   true
enc 4 Zg== Zg true
enc 4 Zm8= Zm8 true
enc 4 Zm9v Zm9v true
enc 8 Zm9vYg== Zm9vYg true
enc 4 AP/+ AP/+ true
enc 6668 eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4 eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4eHh4 true
coerce  MTIz  MS41
dec [Zg] [66] 1
dec [Zg==] [66] 1
dec [Zm8=] [666f] 2
dec [Zm9v] [666f6f] 3
dec [a] nil
dec [Zm9vY] nil
dec [Zm 9v] nil
dec [-_] nil
dec [+/+/] [fbffbf] 3
dec [] [] 0
dec [Zg=x] [66] 1
dec [====] [] 0
dec [QUJDQUJDQUJD] [414243414243] 6000
nopad table bad no_padding: boolean expected, got table
nopad number bad no_padding: boolean expected, got number
nopad string bad no_padding: boolean expected, got string
dec err string argument only string argument only
"""


def test_base64(run_lua_ok):
    check_ffi(run_lua_ok, BASE64_SCRIPT, BASE64_EXPECTED, ["encode_base64", "decode_base64"])
