-- Usage checks of lua-resty-http (ledgetech), unmodified, against the nginx that
-- tests/compat/run starts: request_uri, the streaming reader, sized and chunked bodies,
-- keepalive and pooled reuse, pipelining, https with verification on and off and a wrong
-- name rejected, a unix socket, read timeouts. Args: port tls_port unix_path
local check = require "check"
local http = require "resty.http"

local port, tls_port, unix_path = tonumber(arg[1]), tonumber(arg[2]), arg[3]
local base = "http://127.0.0.1:" .. port

local function new(timeout)
    local c = http.new()
    c:set_timeout(timeout or 3000)
    return c
end

-- request_uri, GET and POST
local res, err = new():request_uri(base .. "/echo?x=1", { method = "POST", body = "abc",
                                                          headers = { ["X-Test"] = "t" } })
check.eq("request_uri POST status", res and res.status, 200)
check.eq("request_uri POST body", res and res.body, "POST /echo?x=1 t 3 abc\n")
check.ok("request_uri user agent", res and res.headers["X-UA"] and res.headers["X-UA"]:find("^lua%-resty%-http/"), err)

-- a sized body
res, err = new():request_uri(base .. "/big.txt")
check.eq("sized body length", res and #res.body, 135091)
check.eq("sized body content-length", res and tonumber(res.headers["Content-Length"]), 135091)

-- a chunked body
res, err = new():request_uri(base .. "/chunked")
check.eq("chunked body", res and res.body, "one\ntwo\nthree\n")
check.eq("chunked encoding", res and res.headers["Transfer-Encoding"], "chunked")

-- the streaming interface, keepalive, reuse
local c = new()
local ok
ok, err = c:connect({ scheme = "http", host = "127.0.0.1", port = port })
check.ok("connect", ok, err)
res, err = c:request({ path = "/big.txt" })
local n, pieces = 0, 0
if res then
    repeat
        local chunk = res.body_reader(8192)
        if chunk then
            n = n + #chunk
            pieces = pieces + 1
        end
    until not chunk
end
check.eq("streamed body length", n, 135091)
check.ok("streamed in pieces", pieces >= 16, pieces)
check.eq("set_keepalive", c:set_keepalive(), 1)
local c2 = new()
c2:connect({ scheme = "http", host = "127.0.0.1", port = port })
check.ok("pooled connection reused", (c2:get_reused_times() or 0) >= 1, c2:get_reused_times())

-- pipelining
local responses = c2:request_pipeline({ { path = "/index.html" }, { path = "/echo", method = "PUT", body = "zz" } })
check.eq("pipeline count", responses and #responses, 2)
if responses and #responses == 2 then
    check.eq("pipeline 1", responses[1]:read_body(), "hello world\n")
    check.eq("pipeline 2", responses[2]:read_body(), "PUT /echo  2 zz\n")
end
c2:close()

-- a read timeout
c = new()
c:set_timeouts(2000, 2000, 200)
res, err = c:request_uri(base .. "/slow")
check.eq("read timeout", err, "timeout")

-- a unix socket
c = new()
ok, err = c:connect({ scheme = "http", host = "unix:" .. unix_path })
check.ok("unix connect", ok, err)
res, err = c:request({ path = "/index.html", headers = { Host = "localhost" } })
check.eq("unix body", res and res:read_body(), "hello world\n")
c:close()

-- https: verification off, on (the run script trusts its CA), and a wrong name
local tls = "https://127.0.0.1:" .. tls_port
res, err = new():request_uri(tls .. "/index.html", { ssl_verify = false })
check.eq("https, verify off", res and res.body, "hello world\n")
-- (by address with the name to verify: nginx's resolver, under resty-cli, skips /etc/hosts)
c = new()
ok, err = c:connect({ scheme = "https", host = "127.0.0.1", port = tls_port,
                      ssl_server_name = "localhost", ssl_verify = true })
check.ok("https, verify on: connect", ok, err)
res, err = ok and c:request({ path = "/index.html", headers = { Host = "localhost" } })
check.eq("https, verify on", res and res:read_body(), "hello world\n")
c:close()
c = new()
ok, err = c:connect({ scheme = "https", host = "127.0.0.1", port = tls_port,
                      ssl_server_name = "wrong.example", ssl_verify = true })
check.ok("https, wrong name rejected", not ok and err and err:find("certificate host mismatch", 1, true), err)

check.done()
