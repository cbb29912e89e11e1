-- SHA-256 and RSA-OAEP encryption on OpenSSL's libcrypto (LuaJIT FFI), for resty.mysql's
-- caching_sha2_password and sha256_password. Loaded only when a server asks for them.
-- libcrypto's symbols come from the process (the cosocket binary and nginx link it);
-- when they are not there, libcrypto.so.3 (or libcrypto) is loaded.

local ffi = require "ffi"
local ffi_new, ffi_string, ffi_gc = ffi.new, ffi.string, ffi.gc

for _, decl in ipairs {
    "typedef struct evp_md_st EVP_MD;",
    "typedef struct engine_st ENGINE;",
    "typedef struct bio_st BIO;",
    "typedef struct evp_pkey_st EVP_PKEY;",
    "typedef struct evp_pkey_ctx_st EVP_PKEY_CTX;",
    "const EVP_MD *EVP_sha256(void);",
    "int EVP_Digest(const void *data, size_t count, unsigned char *md, unsigned int *size, "
        .. "const EVP_MD *type, ENGINE *impl);",
    "BIO *BIO_new_mem_buf(const void *buf, int len);",
    "int BIO_free(BIO *a);",
    "EVP_PKEY *PEM_read_bio_PUBKEY(BIO *bp, EVP_PKEY **x, void *cb, void *u);",
    "void EVP_PKEY_free(EVP_PKEY *pkey);",
    "EVP_PKEY_CTX *EVP_PKEY_CTX_new(EVP_PKEY *pkey, ENGINE *e);",
    "void EVP_PKEY_CTX_free(EVP_PKEY_CTX *ctx);",
    "int EVP_PKEY_encrypt_init(EVP_PKEY_CTX *ctx);",
    "int EVP_PKEY_CTX_set_rsa_padding(EVP_PKEY_CTX *ctx, int pad);",
    "int EVP_PKEY_encrypt(EVP_PKEY_CTX *ctx, unsigned char *out, size_t *outlen, "
        .. "const unsigned char *in, size_t inlen);",
} do
    pcall(ffi.cdef, decl)       -- another module may have declared it already
end

local RSA_PKCS1_OAEP_PADDING = 4

local lib = ffi.C
if not pcall(function() return lib.EVP_PKEY_CTX_set_rsa_padding end) then
    local ok, l = pcall(ffi.load, "libcrypto.so.3")
    if not ok then
        ok, l = pcall(ffi.load, "crypto")
    end
    if not ok then
        error("resty.mysql.crypto: libcrypto not found: " .. tostring(l))
    end
    lib = l
end

local _M = {}

local md = ffi_new("unsigned char[32]")

function _M.sha256(s)
    if lib.EVP_Digest(s, #s, md, nil, lib.EVP_sha256(), nil) ~= 1 then
        return nil, "EVP_Digest(sha256) failed"
    end
    return ffi_string(md, 32)
end

-- RSA-OAEP (SHA-1, MGF1-SHA-1: what MySQL uses) of data with a PEM public key
-- ("-----BEGIN PUBLIC KEY-----"): ciphertext or nil, err
function _M.rsa_oaep_encrypt(pem, data)
    local bio = lib.BIO_new_mem_buf(pem, #pem)
    if bio == nil then
        return nil, "BIO_new_mem_buf failed"
    end
    local pkey = lib.PEM_read_bio_PUBKEY(bio, nil, nil, nil)
    lib.BIO_free(bio)
    if pkey == nil then
        return nil, "bad server public key"
    end
    pkey = ffi_gc(pkey, lib.EVP_PKEY_free)
    local ctx = lib.EVP_PKEY_CTX_new(pkey, nil)
    if ctx == nil then
        return nil, "EVP_PKEY_CTX_new failed"
    end
    ctx = ffi_gc(ctx, lib.EVP_PKEY_CTX_free)
    local outlen = ffi_new("size_t[1]")
    if lib.EVP_PKEY_encrypt_init(ctx) <= 0
       or lib.EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) <= 0
       or lib.EVP_PKEY_encrypt(ctx, nil, outlen, data, #data) <= 0 then
        return nil, "RSA encryption setup failed (not an RSA key?)"
    end
    local out = ffi_new("unsigned char[?]", outlen[0])
    if lib.EVP_PKEY_encrypt(ctx, out, outlen, data, #data) <= 0 then
        return nil, "RSA encryption failed (password too long for the key?)"
    end
    return ffi_string(out, outlen[0])
end

return _M
