-- resty.websocket.deflate: permessage-deflate (RFC 7692) for the websocket client and server,
-- over zlib through the LuaJIT FFI. One object per connection holds a deflate stream (our
-- messages) and an inflate stream (the peer's), reset after each message when the negotiated
-- *_no_context_takeover says so. The inflated size of a message is capped (a compression
-- bomb gets an error, not memory exhaustion). Written for this project.

local ffi = require "ffi"

local ffi_new, ffi_string, ffi_gc, ffi_sizeof, ffi_cast =
    ffi.new, ffi.string, ffi.gc, ffi.sizeof, ffi.cast
local sub, concat, tostring, setmetatable = string.sub, table.concat, tostring, setmetatable

pcall(ffi.cdef, [[
typedef struct cosocket_z_stream_s {
    const unsigned char *next_in;
    unsigned int avail_in;
    unsigned long total_in;
    unsigned char *next_out;
    unsigned int avail_out;
    unsigned long total_out;
    const char *msg;
    void *state;
    void *zalloc;
    void *zfree;
    void *opaque;
    int data_type;
    unsigned long adler;
    unsigned long reserved;
} cosocket_z_stream;
]])
pcall(ffi.cdef, [[
const char *zlibVersion(void);
int deflateInit2_(cosocket_z_stream *strm, int level, int method, int windowBits, int memLevel,
                  int strategy, const char *version, int stream_size);
int deflate(cosocket_z_stream *strm, int flush);
int deflateReset(cosocket_z_stream *strm);
int deflateEnd(cosocket_z_stream *strm);
int inflateInit2_(cosocket_z_stream *strm, int windowBits, const char *version, int stream_size);
int inflate(cosocket_z_stream *strm, int flush);
int inflateReset(cosocket_z_stream *strm);
int inflateEnd(cosocket_z_stream *strm);
]])

local ok, zlib = pcall(ffi.load, "z")
if not ok then
    zlib = ffi.load("libz.so.1")
end

local Z_OK, Z_STREAM_END, Z_BUF_ERROR = 0, 1, -5
local Z_SYNC_FLUSH = 2
local Z_DEFLATED = 8
local Z_DEFAULT_STRATEGY = 0
local TAIL = "\0\0\255\255"
local CHUNK = 64 * 1024
local VERSION = zlib.zlibVersion()
local STREAM_SIZE = ffi_sizeof("cosocket_z_stream")

local _M = { _VERSION = "0.1.0" }
local mt = { __index = _M }

local out_buf = ffi_new("unsigned char[?]", CHUNK)

local function zerr(what, strm, rc)
    local msg = strm.msg ~= nil and ffi_string(strm.msg) or ("error " .. tostring(rc))
    return what .. ": " .. msg
end

-- new(settings, max_inflated_len): settings from the handshake (client.lua's deflate_accept,
-- server.lua's negotiate): server_no_context_takeover, client_no_context_takeover,
-- client_max_window_bits, server_max_window_bits, level, and is_server (we are the server:
-- our messages follow the server_* parameters, the peer's the client_* ones)
function _M.new(settings, max_inflated_len)
    local own_bits, reset_deflate, reset_inflate
    if settings.is_server then
        own_bits = settings.server_max_window_bits
        reset_deflate = settings.server_no_context_takeover
        reset_inflate = settings.client_no_context_takeover
    else
        own_bits = settings.client_max_window_bits
        reset_deflate = settings.client_no_context_takeover
        reset_inflate = settings.server_no_context_takeover
    end
    local def = ffi_new("cosocket_z_stream[1]")
    local rc = zlib.deflateInit2_(def, settings.level or -1, Z_DEFLATED,
                                  -(own_bits or 15), 8,
                                  Z_DEFAULT_STRATEGY, VERSION, STREAM_SIZE)
    if rc ~= Z_OK then
        return nil, zerr("failed to init deflate", def[0], rc)
    end
    ffi_gc(def, zlib.deflateEnd)
    local inf = ffi_new("cosocket_z_stream[1]")
    -- a 15-bit window inflates anything a smaller window produced
    rc = zlib.inflateInit2_(inf, -15, VERSION, STREAM_SIZE)
    if rc ~= Z_OK then
        return nil, zerr("failed to init inflate", inf[0], rc)
    end
    ffi_gc(inf, zlib.inflateEnd)
    return setmetatable({
        def = def,
        inf = inf,
        reset_deflate = reset_deflate,
        reset_inflate = reset_inflate,
        max_len = max_inflated_len,
        compressed = false,   -- the message being received is compressed
        total = 0,            -- its inflated bytes so far
    }, mt)
end

-- compress(payload) -> the payload of a compressed message (RSV1 set by the caller)
function _M.compress(self, payload)
    local strm = self.def[0]
    strm.next_in = ffi_cast("const unsigned char *", payload)
    strm.avail_in = #payload
    local parts, n = {}, 0
    repeat
        strm.next_out = out_buf
        strm.avail_out = CHUNK
        local rc = zlib.deflate(self.def, Z_SYNC_FLUSH)
        if rc ~= Z_OK and rc ~= Z_BUF_ERROR then
            return nil, zerr("failed to deflate", strm, rc)
        end
        n = n + 1
        parts[n] = ffi_string(out_buf, CHUNK - strm.avail_out)
    until strm.avail_out ~= 0
    strm.next_in = nil
    if self.reset_deflate then
        zlib.deflateReset(self.def)
    end
    local out = concat(parts)
    if sub(out, -4) == TAIL then
        return sub(out, 1, -5)
    end
    if out == "" then
        -- nothing was pending (an empty message): zlib emits no empty block twice, so send the
        -- first byte of one; the peer appends the rest (RFC 7692 7.2.3.6)
        return "\0"
    end
    return nil, "failed to deflate: no sync flush marker"
end

local function inflate(self, data, parts, n)
    local strm = self.inf[0]
    strm.next_in = ffi_cast("const unsigned char *", data)
    strm.avail_in = #data
    while true do
        strm.next_out = out_buf
        strm.avail_out = CHUNK
        local rc = zlib.inflate(self.inf, Z_SYNC_FLUSH)
        if rc ~= Z_OK and rc ~= Z_STREAM_END and rc ~= Z_BUF_ERROR then
            strm.next_in = nil
            return nil, zerr("failed to inflate", strm, rc)
        end
        local got = CHUNK - strm.avail_out
        if got > 0 then
            self.total = self.total + got
            if self.max_len and self.total > self.max_len then
                strm.next_in = nil
                return nil, "inflated message too big"
            end
            n = n + 1
            parts[n] = ffi_string(out_buf, got)
        end
        if rc == Z_STREAM_END then
            -- the peer ended the deflate stream (BFINAL): start a new one for what follows
            zlib.inflateReset(self.inf)
            if strm.avail_in == 0 then break end
        elseif strm.avail_out ~= 0 and (strm.avail_in == 0 or rc == Z_BUF_ERROR) then
            break
        end
    end
    strm.next_in = nil
    return n
end

-- recv(data, typ, rsv1, fin) -> the frame's data, inflated when its message is compressed
function _M.recv(self, data, typ, rsv1, fin)
    if typ ~= "continuation" then
        self.compressed = rsv1 and true or false
        self.total = 0
    end
    if not self.compressed then
        return data
    end
    local parts = {}
    local n, err = inflate(self, data, parts, 0)
    if not n then
        return nil, err
    end
    if fin then
        n, err = inflate(self, TAIL, parts, n)
        if not n then
            return nil, err
        end
        self.compressed = false
        if self.reset_inflate then
            zlib.inflateReset(self.inf)
        end
    end
    return concat(parts, "", 1, n)
end

return _M
