"""lua-resty-string on cosocket: Debian's lua-nginx-string (lua-resty-string 0.11, installed as
nginx.string, nginx.sha256, ...), required by its upstream names (resty.string, resty.sha256,
...) and run unmodified. It binds nginx's ngx_hex_dump/ngx_atoi and OpenSSL's libcrypto
(MD5_Init, SHA256_Init, EVP_*, RAND_bytes) through ffi.C, which the cosocket executable
exports (ngx/core_symbols.cc) or links, as nginx does.

The expected outputs were recorded from /work/shared/tools/resty-ref (resty-cli on Debian's
nginx + ngx_lua 0.10.23), running the same scripts with `-I DIR`, DIR holding one-line
resty/X.lua files `return require 'nginx.X'` (resty-cli has no such fallback of its own);
the default AES-128-CBC (MD5, no salt) ciphertext also equals `openssl enc -aes-128-cbc -md
md5 -nosalt`.
"""
import pytest

STRING_SCRIPT = r"""
local str = require "resty.string"
local to_hex = str.to_hex
ngx.say("to_hex: [", to_hex(""), "] ", to_hex("ab"), " ", to_hex("\0\15\240\255"), " ",
        to_hex(string.rep("x", 300)):sub(1, 8), " ", #to_hex(string.rep("x", 300)))
for _, s in ipairs{"0", "123", "007", "", "12a", "-1", "+1", " 1",
                   "9223372036854775807", "9223372036854775808"} do
    ngx.say("atoi [", s, "] ", string.format("%.17g", str.atoi(s)))
end
ngx.say("version ", str._VERSION)
"""

STRING_EXPECTED = r"""
to_hex: [] 6162 000ff0ff 78787878 600
atoi [0] 0
atoi [123] 123
atoi [007] 7
atoi [] -1
atoi [12a] -1
atoi [-1] -1
atoi [+1] -1
atoi [ 1] -1
atoi [9223372036854775807] 9.2233720368547758e+18
atoi [9223372036854775808] -1
version 0.11
"""

DIGESTS_SCRIPT = r"""
local to_hex = require("resty.string").to_hex
for _, name in ipairs{"md5", "sha1", "sha224", "sha256", "sha384", "sha512"} do
    local m = require("resty." .. name)
    local d = m:new()
    ngx.say(name, " empty ", to_hex(d:final()))
    d:reset()
    ngx.say(name, " update ", tostring(d:update("a")), " ", tostring(d:update("bc")))
    ngx.say(name, " abc ", to_hex(d:final()))
    ngx.say(name, " reset ", tostring(d:reset()))
    d:update(string.rep("0123456789", 1000))
    ngx.say(name, " 10000 ", to_hex(d:final()))
end
ngx.say("sha ", type(require("resty.sha")), " ", require("resty.sha")._VERSION)
"""

DIGESTS_EXPECTED = r"""
md5 empty d41d8cd98f00b204e9800998ecf8427e
md5 update true true
md5 abc 900150983cd24fb0d6963f7d28e17f72
md5 reset true
md5 10000 2bb571599a4180e1d542f76904adc3df
sha1 empty da39a3ee5e6b4b0d3255bfef95601890afd80709
sha1 update true true
sha1 abc a9993e364706816aba3e25717850c26c9cd0d89d
sha1 reset true
sha1 10000 3150343bf25994d9a2c87daf6f592fae154499de
sha224 empty d14a028c2a3a2bc9476102bb288234c415a2b01f828ea62ac5b3e42f
sha224 update true true
sha224 abc 23097d223405d8228642a477bda255b32aadbce4bda0b3f7e36c9da7
sha224 reset true
sha224 10000 e070ef9e04a4799156e24edfb8d2c6159b35dfce111f2843580bad9c
sha256 empty e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
sha256 update true true
sha256 abc ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad
sha256 reset true
sha256 10000 4c207598af7a20db0e3334dd044399a40e467cb81b37f7ba05a4f76dcbd8fd59
sha384 empty 38b060a751ac96384cd9327eb1b1e36a21fdb71114be07434c0cc7bf63f6e1da274edebfe76f65fbd51ad2f14898b95b
sha384 update true true
sha384 abc cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7
sha384 reset true
sha384 10000 f796fa5ad756995ada0798ef94b74f7f02132b4837f56454a2bebf2bc52e156a892079adf1bd3c270d727b8af5392320
sha512 empty cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e
sha512 update true true
sha512 abc ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f
sha512 reset true
sha512 10000 c443791bea5df40402af0d1978c761ff90e8457dc40444acb9aa0d61e90ba6d3968331c833889c4a882a8e525f65d25f29b0f141fd10143b5de6ddab23d7276e
sha table 0.11
"""

RANDOM_SCRIPT = r"""
local random = require "resty.random"
local to_hex = require("resty.string").to_hex
for _, n in ipairs{0, 1, 16, 1000} do
    local weak, strong = random.bytes(n), random.bytes(n, true)
    ngx.say(n, ": ", type(weak), " ", #weak, " ", type(strong), " ", #strong)
end
local a, b = random.bytes(32, true), random.bytes(32, true)
ngx.say("two strong draws differ ", tostring(a ~= b), ", hex length ", #to_hex(a))
local c, d = random.bytes(32), random.bytes(32)
ngx.say("two weak draws differ ", tostring(c ~= d))
-- every byte value turns up in 64 KiB of strong bytes
local seen, s = {}, random.bytes(65536, true)
for i = 1, #s do seen[s:byte(i)] = true end
local n = 0
for _ in pairs(seen) do n = n + 1 end
ngx.say("distinct byte values ", n)
"""

RANDOM_EXPECTED = r"""
0: string 0 string 0
1: string 1 string 1
16: string 16 string 16
1000: string 1000 string 1000
two strong draws differ true, hex length 64
two weak draws differ true
distinct byte values 256
"""

AES_SCRIPT = r"""
local aes = require "resty.aes"
local to_hex = require("resty.string").to_hex
local text = "Secret message! Secret message! 0123456789"

local function try(label, ...)
    local a, err = aes:new(...)
    if not a then
        ngx.say(label, ": new -> nil, ", tostring(err))
        return
    end
    local enc = a:encrypt(text)
    ngx.say(label, ": ", to_hex(enc), " ", tostring(a:decrypt(enc) == text))
    -- the same object encrypts again from the start (EncryptInit_ex with nils)
    ngx.say(label, " again: ", tostring(a:encrypt(text) == enc), " ", to_hex(a:encrypt("")))
end

try("default 128 cbc md5", "secret")
try("128 cbc salt", "secret", "saltsalt")
try("128 ecb", "secret", nil, aes.cipher(128, "ecb"))
try("256 cbc", "secret", nil, aes.cipher(256, "cbc"))
try("256 ecb salt", "secret", "saltsalt", aes.cipher(256, "ecb"))
try("192 cbc", "secret", nil, aes.cipher(192))
try("128 ofb", "secret", nil, aes.cipher(128, "ofb"))
try("128 ctr", "secret", nil, aes.cipher(128, "ctr"))
try("256 cfb8", "secret", nil, aes.cipher(256, "cfb8"))
try("256 cbc sha512 x5", "AKeyForAES-256-CBC", "MySalt!!", aes.cipher(256, "cbc"), aes.hash.sha512, 5)
try("128 cbc sha1 x1000", "secret", "saltsalt", aes.cipher(128, "cbc"), aes.hash.sha1, 1000)
try("256 cbc sha256", "secret", nil, aes.cipher(256, "cbc"), aes.hash.sha256)
try("128 cbc sha224/384", "secret", nil, aes.cipher(), aes.hash.sha384, 2)
try("raw key iv 128", "0123456789abcdef", nil, aes.cipher(128, "cbc"), { iv = "fedcba9876543210" })
try("raw key iv 256", "0123456789abcdef0123456789abcdef", nil, aes.cipher(256, "cbc"),
    { iv = "fedcba9876543210" })
try("raw key method", "whatever", nil, aes.cipher(128, "cbc"),
    { iv = "fedcba9876543210", method = function(k) return ngx.md5_bin(k) end })
try("wrong key length", "short", nil, aes.cipher(256, "cbc"), { iv = "fedcba9876543210" })
try("wrong method length", "k", nil, aes.cipher(256, "cbc"),
    { iv = "fedcba9876543210", method = function(k) return ngx.md5_bin(k) end })
try("bad iv", "0123456789abcdef", nil, aes.cipher(128), { iv = "short" })
try("no iv", "0123456789abcdef", nil, aes.cipher(128), {})
try("bad salt", "secret", "salt")

-- a cipher lua-resty-string does not declare: LuaJIT's error for the missing symbol
ngx.say("cipher 999: ", select(2, pcall(aes.cipher, 999)))
ngx.say("cipher 256 ctr: ", select(2, pcall(aes.cipher, 256, "ctr")))
ngx.say("cipher 128 cbc: ", aes.cipher(128, "cbc").size, " ", aes.cipher(128, "cbc").cipher)
ngx.say("cipher default: ", aes.cipher().size, " ", aes.cipher().cipher)

-- decrypting with another key fails on the padding
local a = aes:new("secret")
local b = aes:new("other key")
ngx.say("wrong key decrypt: ", tostring(b:decrypt(a:encrypt(text))))
ngx.say("truncated decrypt: ", tostring(a:decrypt(a:encrypt(text):sub(1, 20))))
ngx.say("version ", aes._VERSION)
"""

AES_EXPECTED = r"""
default 128 cbc md5: 690dcb430213e7040ce608c62c6159a87336ca653b3df631b8070e28fb5bd3bfce84d4b4c10a59ca12801c38a1ba8e17 true
default 128 cbc md5 again: true 027b63c4bbeb3b9ce522ff48cdec8ade
128 cbc salt: eca0884a0cc9bc58ed18efce210ce927f793a859b2c67688dde8c3a2e3d4f19c876001a5dcae7adff949205129742c27 true
128 cbc salt again: true d18e12aae9ff137272f42534f82420d1
128 ecb: e0df04bee4042cf4a863e59477bce24be0df04bee4042cf4a863e59477bce24b078b0449abc724e46be982bc38c78d3f true
128 ecb again: true 98d68fdce90600bba718eb9db92227b5
256 cbc: fa707d8d5feafd0f459601263e001ca0d5eca0cd2c313fe492a9af7e52ea9c28721b111ed8d6a3c51c70f9237a05418b true
256 cbc again: true 1a834d305409a8e7923dbe1b3b20619d
256 ecb salt: 6eaa2992c7b8628ea252fb8c8a9ae0f56eaa2992c7b8628ea252fb8c8a9ae0f5e1cc6e4c8ba540a5e768d65564bf008f true
256 ecb salt again: true 1b906f241592a86e643a39eb5bd40b92
192 cbc: 4806e09359113d2f364fee7e0187a552dc3830c95df84178fc519b29ed5f84340a81a32962a183f9536f5757d1745618 true
192 cbc again: true e5eaf3e072fbaf32aef5679ab44e11af
128 ofb: de0b8b37ad7d2433710d00f6e7ff9f3ddabfdff5d133858cb01dcfeebc32d8c010f39c015856e9aee996 true
128 ofb again: true 
128 ctr: de0b8b37ad7d2433710d00f6e7ff9f3dcc3e6fbaf66ac4f76ceba75c27fa9289e9cddd0f147e44d1ea86 true
128 ctr again: false 
256 cfb8: 09f10028691eb985520d75ae220308a9bc09c24c1ddca322d64fbda1c30e09dac336fd425aca3f31250c true
256 cfb8 again: true 
256 cbc sha512 x5: 2bbf68177bf5cc14b66c4d2380cc0be2cf7f8fb9efe084f629c1ad96e50af13cef9599dafb9eb9beebf74b4456bfea12 true
256 cbc sha512 x5 again: true c96418c5310cfe0cf70ff7e4d8102c65
128 cbc sha1 x1000: c2e161406630a2a1ebbdee994ac7d10660889222de1ef1f5fa0be7591c5690dc80729e227f33fb068799817791437cec true
128 cbc sha1 x1000 again: true 605001870849d8d257b55fcbc39e125c
256 cbc sha256: 6554f1b12f8f55ffc52357fe375f3402b2b533997d9035da4c3153063760a3e0237d1b6db308758f4792cb7596da2582 true
256 cbc sha256 again: true d5c55f6dcab75e6e576b5db45e66b7af
128 cbc sha224/384: d9a39f6eb0930f624d02376715ed53583b9b344ea21a513cf890c3f09cf74bf46982f6103688798eefe1f3bc93b1af12 true
128 cbc sha224/384 again: true 5d4912e3ec12d367014ef2cab18d1f3d
raw key iv 128: 2a040ff87f0fb18063fd5b9beff4de085f8287cb9d888b34e0a3ca2456f44606b030f25971c2b1f7ef8c9db57388511a true
raw key iv 128 again: true 3c492cedd954cc383f3d3ee93e728484
raw key iv 256: 44f547ceb2b0b0ee9984554d3c4eec6e4da6d8d659e3f753bcf13dc0ef44a0a689d97896f7213df8e6c0606ee378f8a4 true
raw key iv 256 again: true 04989748156efd600d9acee2267dccc3
raw key method: d801a5e14e412c7b9c59b70844c2e150f1a0b080d5a9037aa1a0479dedd2bd9a51a07682cbb45e06b982e3661cf038a6 true
raw key method again: true 86fd2812f90a2c79cd66bcf92a4ce200
wrong key length: new -> nil, bad key length
wrong method length: new -> nil, bad key length
bad iv: new -> nil, bad iv
no iv: new -> nil, bad iv
bad salt: new -> nil, salt must be 8 characters or nil
cipher 999: /usr/share/lua/5.1/nginx/aes.lua:99: missing declaration for symbol 'EVP_aes_999_cbc'
cipher 256 ctr: /usr/share/lua/5.1/nginx/aes.lua:99: missing declaration for symbol 'EVP_aes_256_ctr'
cipher 128 cbc: 128 cbc
cipher default: 128 cbc
wrong key decrypt: nil
truncated decrypt: nil
version 0.11
"""



@pytest.mark.parametrize("script,expected", [
    (STRING_SCRIPT, STRING_EXPECTED),
    (DIGESTS_SCRIPT, DIGESTS_EXPECTED),
    (RANDOM_SCRIPT, RANDOM_EXPECTED),
    (AES_SCRIPT, AES_EXPECTED),
], ids=["string", "digests", "random", "aes"])
def test_same_output_as_resty_cli(run_lua_ok, script, expected):
    assert run_lua_ok(script).splitlines() == expected.strip("\n").splitlines()


def test_headline_one_liner(run_lua):
    r = run_lua(flags=["-e", 'print(require("resty.string").to_hex("ab"))'])
    assert (r.rc, r.out, r.err) == (0, "6162\n", "")


def test_upstream_name_is_the_debian_module(run_lua_ok):
    out = run_lua_ok(r'''
for _, m in ipairs{"string", "md5", "sha", "sha1", "sha224", "sha256", "sha384", "sha512",
                   "random", "aes"} do
    local a = require("resty." .. m)
    assert(type(a) == "table", m)
    assert(a == require("nginx." .. m), m)
end
-- required the other way round too: loaded once, no "attempt to redefine" from its cdefs
local s = require "nginx.sha1"
ngx.say(tostring(s == require "resty.sha1"), " ", tostring(package.loaded["resty.sha1"] == s))
''')
    assert out == "true true\n"


def test_a_resty_module_on_the_path_wins(run_lua_ok, tmp_path):
    # a real lua-resty-string (luarocks, OpenResty's lualib, -I) is used when it is there
    lib = tmp_path / "lib" / "resty"
    lib.mkdir(parents=True)
    (lib / "string.lua").write_text("return { mine = true }\n")
    out = run_lua_ok('ngx.say(tostring(require("resty.string").mine))',
                     flags=["-I", str(tmp_path / "lib")])
    assert out == "true\n"


def test_missing_module_says_what_was_tried(run_lua):
    r = run_lua('require "resty.no_such_module"')
    assert r.rc != 0
    assert "module 'resty.no_such_module' not found:" in r.err
    assert "no Debian module 'nginx.no_such_module'" in r.err
    # only resty.* names are mapped
    r = run_lua('require "no_such_module"')
    assert r.rc != 0 and "nginx.no_such_module" not in r.err


def test_ffi_finds_nginx_and_libcrypto_symbols(run_lua_ok):
    # what FFI libraries bind through ffi.C, as in nginx: nginx's string functions (exported
    # by the executable) and libcrypto's (linked)
    out = run_lua_ok(r'''
local ffi = require "ffi"
ffi.cdef[[
typedef struct { size_t len; unsigned char *data; } ngx_str_t;
unsigned char *ngx_hex_dump(unsigned char *dst, const unsigned char *src, size_t len);
intptr_t ngx_atoi(const unsigned char *line, size_t n);
void ngx_encode_base64(ngx_str_t *dst, ngx_str_t *src);
intptr_t ngx_decode_base64(ngx_str_t *dst, ngx_str_t *src);
void ngx_encode_base64url(ngx_str_t *dst, ngx_str_t *src);
intptr_t ngx_decode_base64url(ngx_str_t *dst, ngx_str_t *src);
int RAND_bytes(unsigned char *buf, int num);
int MD5_Init(void *c);
const void *EVP_sha256(void);
unsigned long OpenSSL_version_num(void);
]]
local C = ffi.C
local function codec(f, s, room)
    local src = ffi.new("ngx_str_t", #s, ffi.cast("unsigned char *", s))
    local buf = ffi.new("unsigned char[?]", room)
    local dst = ffi.new("ngx_str_t", room, buf)
    local rc = f(dst, src)
    if rc ~= nil and rc ~= 0 then return "ERROR " .. tonumber(rc) end
    return ffi.string(dst.data, dst.len)
end
local buf = ffi.new("unsigned char[4]")
local e = C.ngx_hex_dump(buf, "\1\254", 2)
ngx.say(ffi.string(buf, 4), " ", tonumber(e - buf))
ngx.say(tonumber(C.ngx_atoi("4096", 4)), " ", tonumber(C.ngx_atoi("4x", 2)))
ngx.say(codec(C.ngx_encode_base64, "\255\254hi", 8), " ",
        tostring(codec(C.ngx_decode_base64, "//5oaQ==", 6) == "\255\254hi"))
ngx.say(codec(C.ngx_encode_base64url, "\255\254hi", 8), " ",
        tostring(codec(C.ngx_decode_base64url, "__5oaQ", 6) == "\255\254hi"))
ngx.say(codec(C.ngx_decode_base64, "__5oaQ", 6), " ", codec(C.ngx_decode_base64url, "Z", 3))
ngx.say(C.RAND_bytes(buf, 4), " ", tostring(C.EVP_sha256() ~= nil),
        " ", tostring(C.OpenSSL_version_num() >= 0x30000000))
''')
    assert out.splitlines() == ["01fe 4", "4096 -1", "//5oaQ== true", "__5oaQ true",
                                "ERROR -1 ERROR -1", "1 true true"]
