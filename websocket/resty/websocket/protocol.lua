-- resty.websocket.protocol for cosocket: RFC 6455 framing, a drop-in for lua-resty-websocket's
-- protocol module (recv_frame, build_frame, send_frame with the same arguments and return
-- values). Written for this project. Extensions: recv_frame takes a 4th argument `rsv1_ok`
-- (permessage-deflate) and then returns the frame's RSV1 bit as a 4th value; build_frame and
-- send_frame take an optional trailing `rsv1` flag.

local ffi = require "ffi"
local bytes = require "resty.cosocket.bytes"
local driver = require "resty.cosocket.driver"
local fail, failed_to = driver.fail, driver.failed_to
local bit = require "bit"

local byte, char, sub = string.byte, string.char, string.sub
local band, bor, bxor = bit.band, bit.bor, bit.bxor
local random = math.random
local u16be, u64be, p16be, p64be = bytes.u16be, bytes.u64be, bytes.p16be, bytes.p64be
local type, tostring, concat = type, tostring, table.concat
local ffi_new, ffi_string, ffi_copy, ffi_cast = ffi.new, ffi.string, ffi.copy, ffi.cast

local _M = { _VERSION = "0.1.0" }

local TYPES = {
    [0x0] = "continuation",
    [0x1] = "text",
    [0x2] = "binary",
    [0x8] = "close",
    [0x9] = "ping",
    [0xa] = "pong",
}
_M.TYPES = TYPES

local OPCODES = {
    continuation = 0x0, text = 0x1, binary = 0x2, close = 0x8, ping = 0x9, pong = 0xa,
}
_M.OPCODES = OPCODES

-- the largest length we accept from the wire: a 64-bit length whose top bit is set is
-- illegal (RFC 6455 5.2), and beyond 2^53 a Lua number cannot count bytes exactly
local MAX_WIRE_LEN = 2 ^ 53

-- XOR payload with the 4-byte key (an FFI loop: LuaJIT compiles it; a string loop would
-- allocate per byte)
local mask_buf, mask_buf_len = nil, 0

local function apply_mask(payload, len, k1, k2, k3, k4)
    if len == 0 then
        return ""
    end
    if len > mask_buf_len then
        local n = 4096
        while n < len do n = n * 2 end
        mask_buf, mask_buf_len = ffi_new("uint8_t[?]", n), n
    end
    local buf = mask_buf
    ffi_copy(buf, payload, len)
    local key = { [0] = k1, k2, k3, k4 }
    for i = 0, len - 1 do
        buf[i] = bxor(buf[i], key[band(i, 3)])
    end
    return ffi_string(buf, len)
end
_M.apply_mask = apply_mask

-- valid_utf8(s): true when s is well-formed UTF-8 (RFC 3629: no overlong forms, no
-- surrogates, nothing above U+10FFFF)
function _M.valid_utf8(s)
    local n = #s
    local p = ffi_cast("const uint8_t *", s)
    local i = 0
    while i < n do
        local c = p[i]
        if c < 0x80 then
            i = i + 1
        elseif c < 0xc2 then
            return false
        elseif c < 0xe0 then
            if i + 1 >= n or band(p[i + 1], 0xc0) ~= 0x80 then
                return false
            end
            i = i + 2
        elseif c < 0xf0 then
            if i + 2 >= n then
                return false
            end
            local c1 = p[i + 1]
            if band(c1, 0xc0) ~= 0x80 or band(p[i + 2], 0xc0) ~= 0x80
               or (c == 0xe0 and c1 < 0xa0) or (c == 0xed and c1 >= 0xa0) then
                return false
            end
            i = i + 3
        elseif c < 0xf5 then
            if i + 3 >= n then
                return false
            end
            local c1 = p[i + 1]
            if band(c1, 0xc0) ~= 0x80 or band(p[i + 2], 0xc0) ~= 0x80
               or band(p[i + 3], 0xc0) ~= 0x80
               or (c == 0xf0 and c1 < 0x90) or (c == 0xf4 and c1 >= 0x90) then
                return false
            end
            i = i + 4
        else
            return false
        end
    end
    return true
end

-- recv_frame(sock, max_payload_len, force_masking, rsv1_ok, forbid_masking)
--   -> data, typ, err[, rsv1]
--   a fragment (FIN clear) has err "again"; a close frame has its status code in err;
--   a failure is nil, nil, err[, at_boundary]: at_boundary is true only when it happened
--   before any byte of the frame was read (the stream is still at a frame boundary)
function _M.recv_frame(sock, max_payload_len, force_masking, rsv1_ok, forbid_masking)
    local head, err, partial = sock:receive(2)
    if not head then
        return nil, nil, failed_to("receive the first 2 bytes", err),
               partial == nil or partial == ""
    end

    local b1, b2 = byte(head, 1, 2)
    local fin = band(b1, 0x80) ~= 0
    local rsv1 = band(b1, 0x40) ~= 0
    if band(b1, 0x30) ~= 0 or (rsv1 and not rsv1_ok) then
        return nil, nil, "bad RSV1, RSV2, or RSV3 bits"
    end

    local opcode = band(b1, 0x0f)
    local typ = TYPES[opcode]
    if not typ then
        return nil, nil, "bad opcode: " .. opcode
    end
    local control = opcode >= 0x8
    if control and not fin then
        return nil, nil, "bad fragmented control frame"
    end
    if rsv1 and (control or opcode == 0x0) then
        -- RFC 7692 6: RSV1 only on the first frame of a data message
        return nil, nil, "bad RSV1 bit on a " .. typ .. " frame"
    end

    local masked = band(b2, 0x80) ~= 0
    if force_masking and not masked then
        return nil, nil, "frame unmasked"
    end
    if forbid_masking and masked then
        return nil, nil, "frame masked"
    end

    local len = band(b2, 0x7f)
    if len == 126 then
        if control then
            return nil, nil, "too long payload for control frame"
        end
        local ext
        ext, err = sock:receive(2)
        if not ext then
            return nil, nil, failed_to("receive the 2 byte payload length", err)
        end
        len = u16be(ext, 1)
    elseif len == 127 then
        if control then
            return nil, nil, "too long payload for control frame"
        end
        local ext
        ext, err = sock:receive(8)
        if not ext then
            return nil, nil, failed_to("receive the 8 byte payload length", err)
        end
        if byte(ext, 1) >= 0x80 then
            return nil, nil, "bad payload length: the most significant bit is set"
        end
        len = u64be(ext, 1)
        if len >= MAX_WIRE_LEN then
            return nil, nil, "exceeding max payload len"
        end
    end

    if max_payload_len and len > max_payload_len then
        return nil, nil, "exceeding max payload len"
    end

    local k1, k2, k3, k4
    if masked then
        local key
        key, err = sock:receive(4)
        if not key then
            return nil, nil, failed_to("receive the mask key", err)
        end
        k1, k2, k3, k4 = byte(key, 1, 4)
    end

    local data = ""
    if len > 0 then
        data, err = sock:receive(len)
        if not data then
            return nil, nil, failed_to("receive the frame payload", err)
        end
        if masked then
            data = apply_mask(data, len, k1, k2, k3, k4)
        end
    end

    if opcode == 0x8 then
        if len == 0 then
            return "", "close", nil
        end
        if len == 1 then
            return nil, nil, "bad close frame: a 1 byte payload"
        end
        return sub(data, 3), "close", u16be(data, 1)
    end

    if not fin then
        return data, typ, "again", rsv1
    end
    return data, typ, nil, rsv1
end

local function encode_len(len, mask_bit)
    if len <= 125 then
        return char(bor(len, mask_bit))
    elseif len <= 0xffff then
        return char(bor(126, mask_bit)) .. p16be(len)
    end
    return char(bor(127, mask_bit)) .. p64be(len)      -- 64-bit big endian
end

-- build_frame(fin, opcode, payload_len, payload, masking, rsv1) -> the frame as a string
function _M.build_frame(fin, opcode, payload_len, payload, masking, rsv1)
    local b1 = opcode
    if fin then b1 = bor(b1, 0x80) end
    if rsv1 then b1 = bor(b1, 0x40) end
    if not masking then
        return char(b1) .. encode_len(payload_len, 0) .. payload
    end
    local k1, k2, k3, k4 = random(0, 255), random(0, 255), random(0, 255), random(0, 255)
    return concat({ char(b1), encode_len(payload_len, 0x80), char(k1, k2, k3, k4),
                    apply_mask(payload, payload_len, k1, k2, k3, k4) })
end
local build_frame = _M.build_frame

-- send_frame(sock, fin, opcode, payload, max_payload_len, masking, rsv1) -> bytes, err
function _M.send_frame(sock, fin, opcode, payload, max_payload_len, masking, rsv1)
    if not payload then
        payload = ""
    elseif type(payload) ~= "string" then
        payload = tostring(payload)
    end
    local len = #payload
    if opcode >= 0x8 then
        if len > 125 then
            return nil, "too much payload for control frame"
        end
        if not fin then
            return nil, "fragmented control frame"
        end
    end
    if max_payload_len and len > max_payload_len then
        return nil, "payload too big"
    end
    local frame = build_frame(fin, opcode, len, payload, masking, rsv1)
    local bytes, err = sock:send(frame)
    if not bytes then
        return fail("send frame", err)
    end
    return bytes
end

return _M
