-- tests/compat/openssl.lua -- usage checks of lua-resty-openssl, unmodified (its README's
-- examples: digest, hmac, cipher, kdf, pkey, x509 and its store, rand), with published test
-- vectors where the output is deterministic (FIPS 180-2, RFC 4231, SP 800-38A, RFC 6070) and
-- round trips where it is not. Runs the same on cosocket and under resty-cli.
local check = require "check"
local digest = require "resty.openssl.digest"
local hmac = require "resty.openssl.hmac"
local cipher = require "resty.openssl.cipher"
local kdf = require "resty.openssl.kdf"
local pkey = require "resty.openssl.pkey"
local x509 = require "resty.openssl.x509"
local name = require "resty.openssl.x509.name"
local store = require "resty.openssl.x509.store"
local rand = require "resty.openssl.rand"
local version = require "resty.openssl.version"

local byte, char, format, gsub = string.byte, string.char, string.format, string.gsub

local function hex(s)
    return (gsub(s, ".", function(c) return format("%02x", byte(c)) end))
end

local function unhex(h)
    return (gsub(h, "%x%x", function(x) return char(tonumber(x, 16)) end))
end

check.ok("version text", type(version.version_text) == "string"
                         and version.version_text:find("OpenSSL", 1, true), version.version_text)

-- digest (FIPS 180-2 "abc"), in one call and in pieces
local d = assert(digest.new("sha256"))
check.eq("sha256 abc", hex(assert(d:final("abc"))),
         "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
d = assert(digest.new("sha256"))
assert(d:update("a", "b"))
check.eq("sha256 in pieces", hex(assert(d:final("c"))),
         "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
check.eq("md5 empty", hex(assert(digest.new("md5")):final("")), "d41d8cd98f00b204e9800998ecf8427e")
local bad, err = digest.new("no-such-digest")
check.ok("unknown digest is nil, err", bad == nil and type(err) == "string", err)

-- hmac (RFC 4231 test case 2)
local h = assert(hmac.new("Jefe", "sha256"))
check.eq("hmac-sha256 rfc4231 #2", hex(assert(h:final("what do ya want for nothing?"))),
         "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")

-- cipher (SP 800-38A F.2.1, AES-128-CBC, no padding), and a padded round trip
local key = unhex("2b7e151628aed2a6abf7158809cf4f3c")
local iv = unhex("000102030405060708090a0b0c0d0e0f")
local c = assert(cipher.new("aes-128-cbc"))
assert(c:init(key, iv, { is_encrypt = true, no_padding = true }))
check.eq("aes-128-cbc sp800-38a", hex(assert(c:final(unhex("6bc1bee22e409f96e93d7e117393172a")))),
         "7649abac8119b246cee98e9b12e9197d")
c = assert(cipher.new("aes-256-cbc"))
local k32, iv16 = string.rep("k", 32), string.rep("i", 16)
local ct = assert(c:encrypt(k32, iv16, "secret message"))
check.eq("aes-256-cbc padded length", #ct, 16)
check.eq("aes-256-cbc round trip", assert(c:decrypt(k32, iv16, ct)), "secret message")
local ok, derr = c:decrypt(string.rep("x", 32), iv16, ct)
check.ok("wrong key fails with an error", not ok and type(derr) == "string", derr)

-- kdf: PBKDF2-HMAC-SHA1 (RFC 6070 #2)
local dk = assert(kdf.derive({ type = kdf.PBKDF2, outlen = 20, md = "sha1", pass = "password",
                               salt = "salt", pbkdf2_iter = 2 }))
check.eq("pbkdf2-sha1 rfc6070 #2", hex(dk), "ea6c014dc72d6f8ccd1ed92ace1d41f0d8de8957")

-- pkey: generate, sign, verify (RSA and EC), PEM round trip
for _, spec in ipairs({ { type = "RSA", bits = 2048 }, { type = "EC", curve = "prime256v1" } }) do
    local k = assert(pkey.new(spec))
    local sig = assert(k:sign("the message", "sha256"))
    check.eq(spec.type .. " sign/verify", assert(k:verify(sig, "the message", "sha256")), true)
    check.eq(spec.type .. " verify of other data", k:verify(sig, "another message", "sha256"), false)
    local pub = assert(pkey.new(assert(k:to_PEM("public"))))
    check.eq(spec.type .. " public key from PEM verifies", assert(pub:verify(sig, "the message", "sha256")), true)
    check.eq(spec.type .. " key type", k:get_key_type().sn, spec.type == "RSA" and "rsaEncryption" or "id-ecPublicKey")
end

-- x509: a self-signed CA and a leaf signed by it, parsed back from PEM and verified by a store
local function cert(subject_cn, issuer_cert, issuer_key, k)
    local crt = assert(x509.new())
    assert(crt:set_pubkey(k))
    assert(crt:set_version(3))
    assert(crt:set_serial_number(require("resty.openssl.bn").new(os.time())))
    assert(crt:set_not_before(ngx.time() - 60))
    assert(crt:set_not_after(ngx.time() + 3600))
    local n = assert(name.new():add("CN", subject_cn))
    assert(crt:set_subject_name(n))
    assert(crt:set_issuer_name(issuer_cert and issuer_cert:get_subject_name() or n))
    if not issuer_cert then
        assert(crt:set_basic_constraints({ CA = true }))
        assert(crt:set_basic_constraints_critical(true))
    end
    assert(crt:sign(issuer_key or k))
    return crt
end
local ca_key = assert(pkey.new({ type = "EC", curve = "prime256v1" }))
local ca = cert("compat ca", nil, nil, ca_key)
local leaf_key = assert(pkey.new({ type = "EC", curve = "prime256v1" }))
local leaf = cert("leaf.example", ca, ca_key, leaf_key)
local parsed = assert(x509.new(assert(leaf:to_PEM())))
check.eq("x509 subject from PEM", parsed:get_subject_name():find("CN").blob, "leaf.example")
check.eq("x509 issuer from PEM", parsed:get_issuer_name():find("CN").blob, "compat ca")
check.eq("x509 verify with the issuer's key", assert(parsed:verify(ca_key)), true)
check.eq("x509 verify with another key", parsed:verify(leaf_key), false)
local st = assert(store.new())
assert(st:add(ca))
local vok, verr = st:verify(parsed)
check.ok("store verifies the leaf", vok, verr)
local st2 = assert(store.new())
vok, verr = st2:verify(parsed)
check.ok("empty store rejects it with a reason", not vok and type(verr) == "string", verr)

-- rand
local r1, r2 = assert(rand.bytes(32)), assert(rand.bytes(32))
check.eq("rand length", #r1, 32)
check.ok("rand differs", r1 ~= r2)

check.done()
