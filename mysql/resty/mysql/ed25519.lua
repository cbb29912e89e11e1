-- MariaDB's client_ed25519 authentication for resty.mysql, on OpenSSL's libcrypto (FFI).
--
-- MariaDB does not use the password as an RFC 8032 32-byte seed: its secret scalar and nonce
-- prefix come from SHA-512 of the whole password (any length), clamped as usual, and the
-- client answers the server's 32-byte scramble with the 64-byte signature R || S:
--   h = SHA512(password); a = clamp(h[0..31]); prefix = h[32..63]; A = a*B
--   r = SHA512(prefix || scramble) mod L;  R = r*B
--   k = SHA512(enc(R) || enc(A) || scramble) mod L;  S = r + k*a mod L
-- OpenSSL's EVP ed25519 key takes a 32-byte seed and hashes it itself, so it cannot be
-- given the password; the curve arithmetic is done here with libcrypto's BIGNUMs
-- (affine twisted Edwards coordinates, one modular inverse per point addition). It runs
-- once per handshake (a few ms).

local ffi = require "ffi"
local C = ffi.C
local byte, char, sub, reverse = string.byte, string.char, string.sub,
    string.reverse

for _, decl in ipairs {
    "typedef struct bignum_st BIGNUM;",
    "typedef struct bignum_ctx BN_CTX;",
    "typedef struct evp_md_st EVP_MD;",
    "typedef struct engine_st ENGINE;",
    "BIGNUM *BN_new(void);",
    "void BN_free(BIGNUM *a);",
    "BN_CTX *BN_CTX_new(void);",
    "void BN_CTX_free(BN_CTX *c);",
    "int BN_dec2bn(BIGNUM **a, const char *str);",
    "BIGNUM *BN_bin2bn(const unsigned char *s, int len, BIGNUM *ret);",
    "int BN_bn2binpad(const BIGNUM *a, unsigned char *to, int tolen);",
    "int BN_is_bit_set(const BIGNUM *a, int n);",
    "int BN_num_bits(const BIGNUM *a);",
    "int BN_set_word(BIGNUM *a, unsigned long w);",
    "BIGNUM *BN_copy(BIGNUM *a, const BIGNUM *b);",
    "int BN_nnmod(BIGNUM *r, const BIGNUM *m, const BIGNUM *d, BN_CTX *ctx);",
    "int BN_mod_add(BIGNUM *r, const BIGNUM *a, const BIGNUM *b, const BIGNUM *m, BN_CTX *ctx);",
    "int BN_mod_sub(BIGNUM *r, const BIGNUM *a, const BIGNUM *b, const BIGNUM *m, BN_CTX *ctx);",
    "int BN_mod_mul(BIGNUM *r, const BIGNUM *a, const BIGNUM *b, const BIGNUM *m, BN_CTX *ctx);",
    "BIGNUM *BN_mod_inverse(BIGNUM *r, const BIGNUM *a, const BIGNUM *n, BN_CTX *ctx);",
    "const EVP_MD *EVP_sha512(void);",
    "int EVP_Digest(const void *data, size_t count, unsigned char *md, unsigned int *size, "
        .. "const EVP_MD *type, ENGINE *impl);",
} do
    pcall(ffi.cdef, decl)       -- another module may have declared it already
end

local _M = {}

local ctx = ffi.gc(C.BN_CTX_new(), C.BN_CTX_free)    -- freed when the Lua state closes

local function bn()
    return ffi.gc(C.BN_new(), C.BN_free)
end

local function dec(s)
    local b = bn()                  -- keeps the finalizer: pp[0] is a plain pointer to it
    local pp = ffi.new("BIGNUM *[1]", b)
    assert(C.BN_dec2bn(pp, s) > 0 and pp[0] == b)
    return b
end

local P = dec("57896044618658097711785492504343953926634992332820282019728792003956564819949")
local L = dec("7237005577332262213973186563042994240857116359379907606001950938285454250989")
local D = dec("37095705934669439343138083508754565189542113879843219016388785533085940283555")
local BX = dec("15112221349535400772501151409588531511454012693041857206046113283949847762202")
local BY = dec("46316835694926478169428394003475163141307993866256225615783033603165251855960")
local ONE = bn()
C.BN_set_word(ONE, 1)

local function sha512(s)
    local md = ffi.new("unsigned char[64]")
    if C.EVP_Digest(s, #s, md, nil, C.EVP_sha512(), nil) ~= 1 then
        error("EVP_Digest(sha512) failed")
    end
    return ffi.string(md, 64)
end

-- little-endian bytes -> BIGNUM (mod m when given)
local function from_le(s, m)
    local be = reverse(s)
    local b = bn()
    C.BN_bin2bn(be, #be, b)
    if m then
        local r = bn()
        C.BN_nnmod(r, b, m, ctx)
        return r
    end
    return b
end

local function to_le32(b)
    local buf = ffi.new("unsigned char[32]")
    assert(C.BN_bn2binpad(b, buf, 32) == 32)
    return reverse(ffi.string(buf, 32))
end

-- (x1, y1) + (x2, y2) on -x^2 + y^2 = 1 + d x^2 y^2 (unified: also doubles)
local function add(x1, y1, x2, y2)
    local t1, t2, t3, t4 = bn(), bn(), bn(), bn()
    C.BN_mod_mul(t1, x1, y2, P, ctx)
    C.BN_mod_mul(t2, y1, x2, P, ctx)
    local nx = bn()
    C.BN_mod_add(nx, t1, t2, P, ctx)             -- x1 y2 + y1 x2
    C.BN_mod_mul(t1, y1, y2, P, ctx)
    C.BN_mod_mul(t2, x1, x2, P, ctx)
    local ny = bn()
    C.BN_mod_add(ny, t1, t2, P, ctx)             -- y1 y2 + x1 x2
    C.BN_mod_mul(t3, t1, t2, P, ctx)
    C.BN_mod_mul(t3, t3, D, P, ctx)              -- t = d x1 x2 y1 y2
    local d1, d2 = bn(), bn()
    C.BN_mod_add(d1, ONE, t3, P, ctx)
    C.BN_mod_sub(d2, ONE, t3, P, ctx)
    C.BN_mod_mul(t4, d1, d2, P, ctx)
    assert(C.BN_mod_inverse(t4, t4, P, ctx) ~= nil)
    local x3, y3 = bn(), bn()
    C.BN_mod_mul(x3, nx, d2, P, ctx)
    C.BN_mod_mul(x3, x3, t4, P, ctx)
    C.BN_mod_mul(y3, ny, d1, P, ctx)
    C.BN_mod_mul(y3, y3, t4, P, ctx)
    return x3, y3
end

-- k * B, encoded (y little-endian, x's low bit in the top bit)
local function base_mul(k)
    local x, y = bn(), bn()
    C.BN_set_word(y, 1)                          -- the neutral element (0, 1)
    for i = C.BN_num_bits(k) - 1, 0, -1 do
        x, y = add(x, y, x, y)
        if C.BN_is_bit_set(k, i) == 1 then
            x, y = add(x, y, BX, BY)
        end
    end
    local enc = to_le32(y)
    if C.BN_is_bit_set(x, 0) == 1 then
        enc = sub(enc, 1, 31) .. char(byte(enc, 32) + 128)
    end
    return enc
end

function _M.sign(password, message)
    local h = sha512(password)
    local a0, a31 = byte(h, 1), byte(h, 32)
    local scalar = char(a0 - a0 % 8) .. sub(h, 2, 31) .. char(a31 % 64 + 64)
    local a = from_le(scalar)
    local A = base_mul(a)
    local r = from_le(sha512(sub(h, 33, 64) .. message), L)
    local R = base_mul(r)
    local k = from_le(sha512(R .. A .. message), L)
    local s = bn()
    C.BN_mod_mul(s, k, a, L, ctx)
    C.BN_mod_add(s, s, r, L, ctx)
    return R .. to_le32(s)
end

-- the public key MariaDB stores for a password (base64 of it is the mysql.user auth string)
function _M.public_key(password)
    local h = sha512(password)
    local a0, a31 = byte(h, 1), byte(h, 32)
    return base_mul(from_le(char(a0 - a0 % 8) .. sub(h, 2, 31) .. char(a31 % 64 + 64)))
end


return _M
