-- require "resty.core.shdict": ngx.shared.DICT's methods bound through the FFI ABI of
-- lua-nginx-module 0.10.23, the ngx_http_lua_ffi_shdict_* functions that the cosocket
-- executable exports (ngx/shdict_ffi.h), as lua-resty-core 0.1.25 binds them inside
-- OpenResty: get, get_stale, set, safe_set, add, safe_add, replace, delete, incr, ttl,
-- expire, flush_all, capacity, free_space. Their arguments are checked, and their errors
-- raised at the caller, as lua-resty-core's are (the same messages, tests/test_shdict.py);
-- lpush, rpush, lpop, rpop, llen, flush_expired and get_keys stay C functions
-- (ngx/shdict.cc), as lua-nginx-module keeps them. Loaded at start-up when there are dicts
-- (ngx/shdict.cc's bind_ngx_shared), as OpenResty loads resty.core; the calls are
-- JIT-compiled.
local ffi = require "ffi"

local C = ffi.C
local ffi_new, ffi_str = ffi.new, ffi.string
local type, tostring, tonumber, error, pairs, next, getmetatable, pcall =
    type, tostring, tonumber, error, pairs, next, getmetatable, pcall
local ngx_shared = ngx.shared

local _M = { version = "0.1.25" }  -- the lua-resty-core whose API this is

ffi.cdef [[
int ngx_http_lua_ffi_shdict_get(void *zone, const unsigned char *key,
    size_t key_len, int *value_type, unsigned char **str_value_buf,
    size_t *str_value_len, double *num_value, int *user_flags,
    int get_stale, int *is_stale, char **errmsg);
int ngx_http_lua_ffi_shdict_incr(void *zone, const unsigned char *key,
    size_t key_len, double *value, char **err, int has_init,
    double init, long init_ttl, int *forcible);
int ngx_http_lua_ffi_shdict_store(void *zone, int op,
    const unsigned char *key, size_t key_len, int value_type,
    const unsigned char *str_value_buf, size_t str_value_len,
    double num_value, long exptime, int user_flags, char **errmsg,
    int *forcible);
int ngx_http_lua_ffi_shdict_flush_all(void *zone);
long ngx_http_lua_ffi_shdict_get_ttl(void *zone,
    const unsigned char *key, size_t key_len);
int ngx_http_lua_ffi_shdict_set_expire(void *zone,
    const unsigned char *key, size_t key_len, long exptime);
size_t ngx_http_lua_ffi_shdict_capacity(void *zone);
size_t ngx_http_lua_ffi_shdict_free_space(void *zone);
void *ngx_http_lua_ffi_shdict_udata_to_zone(void *zone_udata);
]]
if not pcall(function() return C.free end) then
    ffi.cdef "void free(void *ptr);"
end

local ffi_get = C.ngx_http_lua_ffi_shdict_get
local ffi_store = C.ngx_http_lua_ffi_shdict_store
local ffi_incr = C.ngx_http_lua_ffi_shdict_incr
local ffi_get_ttl = C.ngx_http_lua_ffi_shdict_get_ttl
local ffi_set_expire = C.ngx_http_lua_ffi_shdict_set_expire
local udata_to_zone = C.ngx_http_lua_ffi_shdict_udata_to_zone

-- nginx's codes and lua-nginx-module's store ops and value types (Lua's type numbers)
local NGX_OK, NGX_DECLINED = 0, -5
local OP_SET, OP_ADD, OP_REPLACE, OP_SAFE = 0, 1, 2, 4
local T_NIL, T_BOOLEAN, T_NUMBER, T_STRING = 0, 1, 3, 4
local MAX_KEY = 65535

-- the out-parameters, one set for the process (a call never yields)
local BUF_SIZE = 4096
local buf = ffi_new("unsigned char[?]", BUF_SIZE)
local str_value_buf = ffi_new("unsigned char *[1]")
local value_len = ffi_new("size_t[1]")
local value_type = ffi_new("int[1]")
local num_value = ffi_new("double[1]")
local user_flags = ffi_new("int[1]")
local is_stale = ffi_new("int[1]")
local forcible = ffi_new("int[1]")
local errmsg = ffi_new("char *[1]")

-- A dict is {[1] = userdata}: its zone, once found, is kept by the userdata. Every dict
-- exists from start-up, so a userdata not known here is no dict.
local zones = {}
for _, dict in pairs(ngx_shared) do
    local ud = dict[1]
    zones[ud] = udata_to_zone(ud)
end

-- raised at the method's caller: `level` 3 (the default) where the method, or the function
-- it tail-calls, calls this
local function check_zone(dict, level)
    if type(dict) ~= "table" then
        error('bad "zone" argument', level or 3)
    end
    local zone = zones[dict[1]]
    if not zone then
        error('bad "zone" argument', level or 3)
    end
    return zone
end

-- a key as lua-resty-core takes it: a non-string through tostring(); nil, err when unfit
local function check_key(key)
    if key == nil then
        return nil, "nil key"
    end
    if type(key) ~= "string" then
        key = tostring(key)
    end
    local len = #key
    if len == 0 then
        return nil, "empty key"
    end
    if len > MAX_KEY then
        return nil, "key too long"
    end
    return key
end

-- the zone and the key of the methods that check nothing in between: zone, key; or nil,
-- nil, err
local function zone_and_key(dict, key)
    local zone = check_zone(dict, 4)
    local err
    key, err = check_key(key)
    if not key then
        return nil, nil, err
    end
    return zone, key
end

-- called through a Lua function of this name, so that a bad argument is reported as
-- lua-resty-core's is ("bad argument #10 to 'ngx_lua_ffi_shdict_store'")
local function ngx_lua_ffi_shdict_store(zone, op, key, key_len, typ, str, str_len, num, exptime, flags)
    return ffi_store(zone, op, key, key_len, typ, str, str_len, num, exptime, flags, errmsg, forcible)
end

local function store(dict, op, key, value, exptime, flags)
    local zone = check_zone(dict)
    if not exptime then
        exptime = 0
    elseif exptime < 0 then
        error('bad "exptime" argument', 2)
    end
    if not flags then
        flags = 0
    end
    local err
    key, err = check_key(key)
    if not key then
        return nil, err
    end
    local typ, str, str_len, num = type(value), nil, 0, 0
    if typ == "string" then
        typ, str, str_len = T_STRING, value, #value
    elseif typ == "number" then
        typ, num = T_NUMBER, value
    elseif value == nil then
        typ = T_NIL
    elseif typ == "boolean" then
        typ, num = T_BOOLEAN, value and 1 or 0
    else
        return nil, "bad value type"
    end
    local rc = ngx_lua_ffi_shdict_store(zone, op, key, #key, typ, str, str_len, num, exptime * 1000, flags)
    if rc == NGX_OK then
        return true, nil, forcible[0] == 1
    end
    return false, ffi_str(errmsg[0]), forcible[0] == 1
end

-- set, safe_set, add, safe_add, replace: store() with their op
local function storing(op)
    return function(dict, key, value, exptime, flags)
        return store(dict, op, key, value, exptime, flags)
    end
end

local set = storing(OP_SET)
local safe_set = storing(OP_SET + OP_SAFE)
local add = storing(OP_ADD)
local safe_add = storing(OP_ADD + OP_SAFE)
local replace = storing(OP_REPLACE)

local function delete(dict, key)
    return store(dict, OP_SET, key, nil)
end

-- the value ngx_http_lua_ffi_shdict_get left in the out-parameters: a string (freed when
-- the C side had to allocate it), a number, a boolean
local function fetched(typ)
    if typ == T_STRING then
        local p = str_value_buf[0]
        local v = ffi_str(p, value_len[0])
        if p ~= buf then
            C.free(p)
        end
        return v
    end
    if typ == T_NUMBER then
        return num_value[0]
    end
    if typ == T_BOOLEAN then
        return buf[0] ~= 0
    end
    error("unknown value type: " .. typ)
end

-- get (stale 0) and get_stale (stale 1), which tail-call it: their values as lua-resty-core
-- returns them. Raises when the C side had no memory for a long string.
local function fetch(dict, key, stale)
    local zone, err
    zone, key, err = zone_and_key(dict, key)
    if not zone then
        return nil, err
    end
    str_value_buf[0] = buf
    value_len[0] = BUF_SIZE
    local rc = ffi_get(zone, key, #key, value_type, str_value_buf, value_len, num_value, user_flags,
                       stale, is_stale, errmsg)
    if rc ~= NGX_OK then
        if errmsg[0] ~= nil then
            return nil, ffi_str(errmsg[0])
        end
        error("failed to get the key")
    end
    local typ = value_type[0]
    if typ == T_NIL then
        return nil
    end
    local v, flags = fetched(typ), user_flags[0]
    if stale == 1 then
        return v, flags ~= 0 and flags or nil, is_stale[0] == 1
    end
    if flags ~= 0 then
        return v, flags
    end
    return v
end

local function get(dict, key)
    return fetch(dict, key, 0)
end

local function get_stale(dict, key)
    return fetch(dict, key, 1)
end

-- incr's init and init_ttl through tonumber(), raised at incr's caller when not numbers
local function number_arg(v, name)
    if type(v) == "number" then
        return v
    end
    local n = tonumber(v)
    if not n then
        error("bad " .. name .. " arg: number expected, got " .. type(v), 3)
    end
    return n
end

local function incr(dict, key, value, init, init_ttl)
    local zone, err
    zone, key, err = zone_and_key(dict, key)
    if not zone then
        return nil, err
    end
    if type(value) ~= "number" then
        value = tonumber(value)
    end
    num_value[0] = value  -- a non-number raises "cannot convert 'nil' to 'double'"
    if init then
        init = number_arg(init, "init")
    end
    if init_ttl == nil then
        init_ttl = 0
    else
        init_ttl = number_arg(init_ttl, "init_ttl")
        if init_ttl < 0 then
            error('bad "init_ttl" argument', 2)
        end
        if not init then
            error('must provide "init" when providing "init_ttl"', 2)
        end
    end
    local rc = ffi_incr(zone, key, #key, num_value, errmsg, init and 1 or 0, init or 0, init_ttl * 1000,
                        forcible)
    if rc ~= NGX_OK then
        return nil, ffi_str(errmsg[0])
    end
    if not init then
        return num_value[0]
    end
    return num_value[0], nil, forcible[0] == 1
end

local function ttl(dict, key)
    local zone, err
    zone, key, err = zone_and_key(dict, key)
    if not zone then
        return nil, err
    end
    local ms = ffi_get_ttl(zone, key, #key)
    if ms == NGX_DECLINED then
        return nil, "not found"
    end
    return tonumber(ms) / 1000
end

local function expire(dict, key, exptime)
    local zone = check_zone(dict)
    if not exptime then
        error('bad "exptime" argument', 2)
    end
    local err
    key, err = check_key(key)
    if not key then
        return nil, err
    end
    -- exptime * 1000 raises "attempt to perform arithmetic on local 'exptime'" for a non-number
    if ffi_set_expire(zone, key, #key, exptime * 1000) == NGX_DECLINED then
        return nil, "not found"
    end
    return true
end

local function flush_all(dict)
    C.ngx_http_lua_ffi_shdict_flush_all(check_zone(dict))
end

local function capacity(dict)
    return tonumber(C.ngx_http_lua_ffi_shdict_capacity(check_zone(dict)))
end

local function free_space(dict)
    return tonumber(C.ngx_http_lua_ffi_shdict_free_space(check_zone(dict)))
end

-- the dicts share one metatable, its own __index (ngx/shdict.cc)
local _, some = next(ngx_shared)
local methods = some and getmetatable(some)
methods = methods and methods.__index
if methods then
    methods.get = get
    methods.get_stale = get_stale
    methods.set = set
    methods.safe_set = safe_set
    methods.add = add
    methods.safe_add = safe_add
    methods.replace = replace
    methods.delete = delete
    methods.incr = incr
    methods.ttl = ttl
    methods.expire = expire
    methods.flush_all = flush_all
    methods.capacity = capacity
    methods.free_space = free_space
end

return _M
