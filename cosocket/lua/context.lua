-- The request-less context, as resty-cli gives it: a script, its timers and the
-- cosocket.listen handlers run outside any HTTP request, in the "timer" phase. The
-- request and response APIs exist, so that libraries which capture them at load time
-- (lua-resty-http takes ngx.req.socket, ngx.var...) load, and calling them raises the
-- error lua-nginx-module raises in a timer. ngx.ctx is one table per request (the main
-- chunk, a timer's callback, a connection handler, each with its light threads).
-- Run once at start-up with (ngx, private primitives), after the prelude.
local ngx, C = ...

local error, rawset, setmetatable, ipairs, pairs, tostring = error, rawset, setmetatable, ipairs, pairs, tostring
local get_ctx, set_ctx = C.ctx, C.set_ctx

local CURRENT = "API disabled in the current context"
local TIMER = "API disabled in the context of ngx.timer"

-- lua-nginx-module's C functions raise without a position; lua-resty-core's Lua ones,
-- and the fields read through a metatable, at the caller
local function disabled(msg)
    return function()
        error(msg, 0)
    end
end

local function disabled_here(msg)
    return function()
        error(msg, 2)
    end
end

local req = {
    read_body = disabled(TIMER),
    socket = disabled(TIMER),
    is_internal = disabled_here(CURRENT),
    start_time = C.start_time,
}
for _, name in ipairs{
    "get_headers", "get_method", "get_uri_args", "get_post_args", "http_version",
    "raw_header", "get_body_data", "get_body_file", "set_header", "clear_header",
    "set_method", "set_uri", "set_uri_args", "set_body_data", "set_body_file",
    "init_body", "append_body", "finish_body", "discard_body",
} do
    req[name] = disabled(CURRENT)
end
ngx.req = req

ngx.resp = { get_headers = disabled(CURRENT) }
ngx.location = { capture = disabled(TIMER), capture_multi = disabled(TIMER) }
ngx.exec = disabled(TIMER)
ngx.redirect = disabled(TIMER)
ngx.send_headers = disabled(TIMER)
ngx.on_abort = disabled(TIMER)

-- the response is the script's stdout: nothing to end early
ngx.eof = function()
    return true
end

-- no thread pools (nginx's `thread_pool`) outside nginx
ngx.run_worker_thread = function(pool)
    return false, "thread pool " .. tostring(pool) .. " not found"
end

local all_disabled = { __index = disabled_here(CURRENT), __newindex = disabled_here(CURRENT) }
ngx.var = setmetatable({}, all_disabled)
ngx.header = setmetatable({}, all_disabled)
ngx.arg = setmetatable({}, { __index = disabled_here(CURRENT), __newindex = disabled_here(TIMER) })

-- ngx.ctx, and the request fields that raise when read
local raising = { status = true, headers_sent = true, is_subrequest = true }
setmetatable(ngx, {
    __index = function(_, k)
        if k == "ctx" then
            return get_ctx()
        end
        if raising[k] then
            error(CURRENT, 2)
        end
    end,
    __newindex = function(t, k, v)
        if k == "ctx" then
            return set_ctx(v)
        end
        if k == "status" then
            error(CURRENT, 2)
        end
        rawset(t, k, v)
    end,
})

-- nginx's status codes, methods and handler return codes
local constants = {
    OK = 0, ERROR = -1, AGAIN = -2, DONE = -4, DECLINED = -5,
    HTTP_GET = 2, HTTP_HEAD = 4, HTTP_POST = 8, HTTP_PUT = 16, HTTP_DELETE = 32,
    HTTP_MKCOL = 64, HTTP_COPY = 128, HTTP_MOVE = 256, HTTP_OPTIONS = 512,
    HTTP_PROPFIND = 1024, HTTP_PROPPATCH = 2048, HTTP_LOCK = 4096, HTTP_UNLOCK = 8192,
    HTTP_PATCH = 16384, HTTP_TRACE = 32768,
    HTTP_CONTINUE = 100, HTTP_SWITCHING_PROTOCOLS = 101,
    HTTP_OK = 200, HTTP_CREATED = 201, HTTP_ACCEPTED = 202, HTTP_NO_CONTENT = 204,
    HTTP_PARTIAL_CONTENT = 206,
    HTTP_SPECIAL_RESPONSE = 300, HTTP_MOVED_PERMANENTLY = 301, HTTP_MOVED_TEMPORARILY = 302,
    HTTP_SEE_OTHER = 303, HTTP_NOT_MODIFIED = 304, HTTP_TEMPORARY_REDIRECT = 307,
    HTTP_PERMANENT_REDIRECT = 308,
    HTTP_BAD_REQUEST = 400, HTTP_UNAUTHORIZED = 401, HTTP_PAYMENT_REQUIRED = 402,
    HTTP_FORBIDDEN = 403, HTTP_NOT_FOUND = 404, HTTP_NOT_ALLOWED = 405,
    HTTP_NOT_ACCEPTABLE = 406, HTTP_REQUEST_TIMEOUT = 408, HTTP_CONFLICT = 409,
    HTTP_GONE = 410, HTTP_UPGRADE_REQUIRED = 426, HTTP_TOO_MANY_REQUESTS = 429,
    HTTP_CLOSE = 444, HTTP_ILLEGAL = 451,
    HTTP_INTERNAL_SERVER_ERROR = 500, HTTP_METHOD_NOT_IMPLEMENTED = 501,
    HTTP_NOT_IMPLEMENTED = 501, HTTP_BAD_GATEWAY = 502, HTTP_SERVICE_UNAVAILABLE = 503,
    HTTP_GATEWAY_TIMEOUT = 504, HTTP_VERSION_NOT_SUPPORTED = 505,
    HTTP_INSUFFICIENT_STORAGE = 507,
}
for k, v in pairs(constants) do
    rawset(ngx, k, v)
end
