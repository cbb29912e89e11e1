-- resty.beanstalkd: a beanstalkd client (protocol of beanstalkd 1.12) for the cosocket API,
-- written for this project following drivers/PORTING.md. See beanstalkd/README.md.
--
-- Results: the value (a job id, a body, a count, a table), or nil, err where err is the
-- server's own word for the answers a command may give (NOT_FOUND, TIMED_OUT, DEADLINE_SOON,
-- BURIED, EXPECTED_CRLF, JOB_TOO_BIG, DRAINING, NOT_IGNORED, OUT_OF_MEMORY, INTERNAL_ERROR,
-- BAD_FORMAT, UNKNOWN_COMMAND): the connection stays usable. A timeout, a transport error or
-- a reply that does not parse closes the connection (err "failed to ...: ..." or
-- "protocol error: ..."); every later call answers nil, "connection closed after error: ..."
-- until connect() is called again.
--
-- Connection state: the used tube, the watch list and the jobs this connection reserved
-- belong to the connection. connect(..., { use = tube, watch = { tubes } }) sets the tubes
-- on a fresh connection and gives it a pool of its own (the pool name includes them);
-- set_keepalive() refuses a connection whose tubes were changed after connect() or that
-- still holds reserved jobs (close() it instead: the server then releases the jobs).

local driver = require "resty.cosocket.driver"

local ngx = ngx
local tcp = ngx.socket.tcp
local type, tostring, tonumber, setmetatable, rawget, pairs, ipairs, error =
    type, tostring, tonumber, setmetatable, rawget, pairs, ipairs, error
local sub, find, match, gmatch, fmt = string.sub, string.find, string.match, string.gmatch,
    string.format
local concat, sort = table.concat, table.sort
local floor = math.floor

local IDLE, SENT = driver.IDLE, driver.SENT
local line, push, push_line, failed, ready = driver.line, driver.push, driver.push_line,
    driver.failed, driver.ready
local failed_to, parse_len, excerpt = driver.failed_to, driver.parse_len, driver.excerpt

local _M = { _VERSION = "0.1.0" }
local mt = { __index = _M }

local MAX_LINE = 1024                 -- a reply line: tube names are at most 200 bytes
local MAX_BODY = 1073741824           -- beanstalkd's own limit for -z (1 GiB)
local MAX_U32 = 4294967295
local DEFAULT_PRI, DEFAULT_DELAY, DEFAULT_TTR = 1024, 0, 120

-- the answers that are results, not faults: the connection stays in sync
local SERVER_WORDS = {
    NOT_FOUND = true, TIMED_OUT = true, DEADLINE_SOON = true, BURIED = true,
    EXPECTED_CRLF = true, JOB_TOO_BIG = true, DRAINING = true, NOT_IGNORED = true,
    OUT_OF_MEMORY = true, INTERNAL_ERROR = true, BAD_FORMAT = true, UNKNOWN_COMMAND = true,
}

---------------------------------------------------------------------------------------------
-- arguments

-- a tube name as the protocol allows it: 1-200 bytes of letters, digits and -+/;.$_(),
-- not starting with a hyphen
local function valid_tube(name)
    return type(name) == "string" and #name >= 1 and #name <= 200
        and not find(name, "[^%w%-%+/;%.%$_%(%)]") and sub(name, 1, 1) ~= "-"
end

-- a whole number in [0, max] as a string for the command line; nil when it is not one
local function uint(v, max)
    v = tonumber(v)
    if not v or v < 0 or v ~= floor(v) or v > max then
        return nil
    end
    return fmt("%.0f", v)
end

local function bad_arg(what, v)
    return nil, "bad " .. what .. ": " .. excerpt(tostring(v))
end

---------------------------------------------------------------------------------------------
-- construction and connection

function _M.new(self, opts)
    local sock, err = tcp()
    if not sock then
        return nil, err
    end
    local max_body = MAX_BODY
    if opts ~= nil then
        if type(opts) ~= "table" then
            error("bad argument #1 opts: nil or table expected, got " .. type(opts), 2)
        end
        if opts.max_body_size ~= nil then
            max_body = tonumber(opts.max_body_size)
            if not max_body or max_body < 0 then
                error("bad max_body_size", 2)
            end
        end
    end
    return setmetatable({ sock = sock, state = nil, max_body = max_body, nreserved = 0,
                          reserved = {} }, mt)
end

_M.set_timeout = driver.set_timeout
_M.set_timeouts = driver.set_timeouts

-- the watch list as a set and as a sorted, comma-joined key
local function watch_set(list)
    local set, names = {}, {}
    for _, t in ipairs(list) do
        if not set[t] then
            set[t] = true
            names[#names + 1] = t
        end
    end
    sort(names)
    return set, concat(names, ",")
end

local function set_key(set)
    local names = {}
    for t in pairs(set) do names[#names + 1] = t end
    sort(names)
    return concat(names, ",")
end

local read_reply

-- sends use/watch/ignore for a fresh connection in one write and reads the replies
local function setup_tubes(self, sock, use, watch)
    local req = {}
    local nreplies = 0
    if use ~= "default" then
        push_line(req, "use", use)
        nreplies = nreplies + 1
    end
    local set = self.watched
    for _, t in ipairs(watch) do
        if t ~= "default" then
            push_line(req, "watch", t)
            nreplies = nreplies + 1
        end
    end
    if not set.default then
        push_line(req, "ignore", "default")
        nreplies = nreplies + 1
    end
    if nreplies == 0 then
        return true
    end
    self.state = SENT
    local bytes, err = sock:send(req)
    if not bytes then
        return failed(self, failed_to("send", err))
    end
    for _ = 1, nreplies do
        local l
        l, err = read_reply(self)
        if not l then
            return nil, err
        end
        if not (match(l, "^USING ") or match(l, "^WATCHING %d+$")) then
            return failed(self, "unexpected reply: " .. excerpt(l))
        end
    end
    self.state = IDLE
    return true
end

-- connect(host, port, opts?) or connect("unix:/path", opts?); opts as sock:connect's (pool,
-- pool_size, backlog) plus use = tube and watch = { tubes } (the whole watch list)
function _M.connect(self, host, port_or_opts, opts)
    local sock = rawget(self, "sock")
    if not sock then
        return nil, "not initialized"
    end
    local unix, port
    unix, port, opts = driver.connect_args(host, port_or_opts, opts)

    local use, watch = "default", { "default" }
    if opts and (opts.use ~= nil or opts.watch ~= nil) then
        if opts.use ~= nil then
            use = opts.use
            if not valid_tube(use) then
                return bad_arg("tube name", use)
            end
        end
        if opts.watch ~= nil then
            watch = opts.watch
            if type(watch) ~= "table" or #watch == 0 then
                return nil, "bad watch list: a non-empty array of tube names expected"
            end
            for _, t in ipairs(watch) do
                if not valid_tube(t) then
                    return bad_arg("tube name", t)
                end
            end
        end
        local _, key = watch_set(watch)
        opts = driver.pool_opts(opts, host, port, "use=" .. use, "watch=" .. key)
    end

    self.reserved, self.nreserved = {}, 0
    self.used = use
    self.watched, self.watch_key = watch_set(watch)
    self.base_used, self.base_watch_key = use, self.watch_key

    local ok, err = driver.connected(self, driver.connect_sock(sock, host, unix, port, opts))
    if not ok then
        return driver.fail("connect", err)
    end
    self.read_line, err = driver.line_reader(sock, MAX_LINE)
    if not self.read_line then
        return failed(self, err)
    end
    if sock:getreusedtimes() == 0 then
        ok, err = setup_tubes(self, sock, use, watch)
        if not ok then
            return driver.fail("set up the tubes", err)
        end
    end
    return 1
end

-- What the pool gets is a connection in the state its pool name promises: idle, with the
-- tubes connect() set and no reserved job.
function _M.set_keepalive(self, ...)
    if self.state == IDLE then
        if self.nreserved > 0 then
            return nil, "cannot be reused in the current connection state: "
                        .. self.nreserved .. " reserved job(s)"
        end
        if self.used ~= self.base_used or set_key(self.watched) ~= self.base_watch_key then
            return nil, "cannot be reused in the current connection state: tubes changed "
                        .. "after connect (give use/watch to connect to pool them)"
        end
    end
    return driver.set_keepalive(self, ...)
end

function _M.get_reused_times(self)
    return driver.get_reused_times(rawget(self, "sock"))
end

function _M.close(self)
    self.reserved, self.nreserved = {}, 0
    return driver.close(self)
end

---------------------------------------------------------------------------------------------
-- commands

-- one reply line; a transport error or an overlong line fails the connection
read_reply = function(self)
    local l, err, too_long = self.read_line()
    if not l then
        if too_long then
            return failed(self, "protocol error: reply line too long")
        end
        return failed(self, failed_to("read reply", err))
    end
    return l
end

-- the <len> bytes of a body after the line l (max_body bounds len); what: for errors
local function read_body(self, l, len, what)
    local n = parse_len(len, self.max_body)
    if not n then
        return failed(self, "protocol error: bad body length: " .. excerpt(l))
    end
    local data, err, bad_end = driver.read_data(self.sock, n)
    if not data then
        if bad_end then
            return failed(self, "protocol error: no CRLF after the " .. what)
        end
        return failed(self, failed_to("read " .. what, err))
    end
    return data
end

-- "<word> <id> <bytes>" then the body: id, body
local function read_job(self, l, word)
    local id, len = match(l, "^" .. word .. " (%d+) (%d+)$")
    if not id then
        return nil
    end
    local data, err = read_body(self, l, len, "job body")
    if not data then
        return nil, err
    end
    return tonumber(id), data
end

-- the "---" YAML beanstalkd sends: a mapping of scalars or a list of scalars
local function scalar(v)
    local q = match(v, '^"(.*)"$')
    if q then return q end
    if v == "true" then return true end
    if v == "false" then return false end
    if find(v, "^%-?%d+$") or find(v, "^%-?%d+%.%d+$") then return tonumber(v) end
    return v
end

local function decode_yaml(data)
    if sub(data, 1, 4) ~= "---\n" then
        return nil
    end
    local res = {}
    local n = 0
    for l in gmatch(sub(data, 5), "([^\n]*)\n") do
        local item = match(l, "^%- (.*)$")
        if item then
            n = n + 1
            res[n] = scalar(item)
        else
            local k, v = match(l, "^([%w%-_]+):%s?(.*)$")
            if not k then
                return nil
            end
            res[k] = scalar(v)
        end
    end
    return res
end

-- "OK <bytes>" then a YAML body: the decoded table
local function read_yaml(self, l)
    local len = match(l, "^OK (%d+)$")
    if not len then
        return nil
    end
    local data, err = read_body(self, l, len, "YAML body")
    if not data then
        return nil, err
    end
    local t = decode_yaml(data)
    if not t then
        -- the reply was read whole: the connection is still in sync
        self.state = IDLE
        return nil, "protocol error: bad YAML: " .. excerpt(data)
    end
    return t
end

-- Sends req, reads the reply line and hands it to parse(self, line, arg), which returns the
-- results or nil for a line it does not know. A server word (NOT_FOUND...) is returned as
-- nil, word (nil, "BURIED", id for put); anything else fails the connection.
local function command(self, req, parse, arg)
    local sock, err = ready(self)
    if not sock then
        return nil, err
    end
    self.state = SENT
    local bytes
    bytes, err = sock:send(req)
    if not bytes then
        return failed(self, failed_to("send", err))
    end
    local l
    l, err = read_reply(self)
    if not l then
        return nil, err
    end
    local r1, r2 = parse(self, l, arg)
    if r1 == nil then
        if self.state ~= SENT then
            return nil, r2                  -- parse failed the connection, or a bad YAML
        end
        local word, num = match(l, "^(%u[%u_]*) ?(%d*)$")
        if not (word and SERVER_WORDS[word]) then
            return failed(self, "protocol error: unexpected reply: " .. excerpt(l))
        end
        self.state = IDLE
        if num ~= "" then
            return nil, word, tonumber(num)     -- put: BURIED <id>
        end
        return nil, word
    end
    self.state = IDLE
    if r2 == nil then
        return r1
    end
    return r1, r2
end

local function parse_word(_, l, want)
    if l == want then
        return true
    end
end

local function parse_number(_, l, prefix)
    local n = match(l, prefix)
    if n then
        return tonumber(n)
    end
end

local function parse_using(_, l)
    return match(l, "^USING (%S+)$")
end

local function parse_job(self, l, word)
    return read_job(self, l, word)
end

-- reserved jobs are connection state: counted for set_keepalive
local function track_reserved(self, id)
    if not self.reserved[id] then
        self.reserved[id] = true
        self.nreserved = self.nreserved + 1
    end
end

local function untrack(self, id)
    id = tonumber(id)
    if self.reserved[id] then
        self.reserved[id] = nil
        self.nreserved = self.nreserved - 1
    end
end

-- producer

function _M.use(self, tube)
    if not valid_tube(tube) then
        return bad_arg("tube name", tube)
    end
    local name, err = command(self, line("use", tube), parse_using)
    if not name then
        return nil, err
    end
    self.used = name
    return name
end

-- put(body, pri?, delay?, ttr?) -> id; nil, "BURIED", id (stored but buried: the server is
-- out of memory); nil, "JOB_TOO_BIG" / "DRAINING" / "EXPECTED_CRLF"
function _M.put(self, body, pri, delay, ttr)
    local tb = type(body)
    if tb == "number" then
        body = tostring(body)
    elseif tb ~= "string" then
        return nil, "bad body type: " .. tb
    end
    local p, d, t = uint(pri or DEFAULT_PRI, MAX_U32), uint(delay or DEFAULT_DELAY, MAX_U32),
                    uint(ttr or DEFAULT_TTR, MAX_U32)
    if not p then return bad_arg("priority", pri) end
    if not d then return bad_arg("delay", delay) end
    if not t then return bad_arg("ttr", ttr) end
    return command(self, push(line("put", p, d, t, #body), body, "\r\n"), parse_number,
                   "^INSERTED (%d+)$")
end

-- worker

-- reserve(timeout?) -> id, body; nil, "TIMED_OUT" / "DEADLINE_SOON". Without a timeout the
-- server waits for a job as long as it takes: the socket's read timeout then bounds the wait
-- (and closes the connection when it fires); keep it above `timeout`.
function _M.reserve(self, timeout)
    local req
    if timeout ~= nil then
        local t = uint(timeout, MAX_U32)
        if not t then return bad_arg("timeout", timeout) end
        req = line("reserve-with-timeout", t)
    else
        req = "reserve\r\n"
    end
    local id, body = command(self, req, parse_job, "RESERVED")
    if id then
        track_reserved(self, id)
    end
    return id, body
end

local function job_command(self, name, id, want, ...)
    local i = uint(id, 2 ^ 53)
    if not i then return bad_arg("job id", id) end
    local ok, err = command(self, line(name, i, ...), parse_word, want)
    if ok or err == "NOT_FOUND" or err == "BURIED" then
        -- deleted, released, buried, or no longer reserved by this connection
        if not (ok and name == "touch") then
            untrack(self, i)
        end
    end
    if not ok then
        return nil, err
    end
    return ok
end

function _M.delete(self, id)
    return job_command(self, "delete", id, "DELETED")
end

-- release(id, pri?, delay?) -> true; nil, "BURIED" / "NOT_FOUND"
function _M.release(self, id, pri, delay)
    local p, d = uint(pri or DEFAULT_PRI, MAX_U32), uint(delay or 0, MAX_U32)
    if not p then return bad_arg("priority", pri) end
    if not d then return bad_arg("delay", delay) end
    return job_command(self, "release", id, "RELEASED", p, d)
end

function _M.bury(self, id, pri)
    local p = uint(pri or DEFAULT_PRI, MAX_U32)
    if not p then return bad_arg("priority", pri) end
    return job_command(self, "bury", id, "BURIED", p)
end

function _M.touch(self, id)
    return job_command(self, "touch", id, "TOUCHED")
end

-- watch(tube) -> the number of tubes watched
function _M.watch(self, tube)
    if not valid_tube(tube) then
        return bad_arg("tube name", tube)
    end
    local n, err = command(self, line("watch", tube), parse_number, "^WATCHING (%d+)$")
    if not n then
        return nil, err
    end
    self.watched[tube] = true
    return n
end

-- ignore(tube) -> the number of tubes watched; nil, "NOT_IGNORED" for the last one
function _M.ignore(self, tube)
    if not valid_tube(tube) then
        return bad_arg("tube name", tube)
    end
    local n, err = command(self, line("ignore", tube), parse_number, "^WATCHING (%d+)$")
    if not n then
        return nil, err
    end
    self.watched[tube] = nil
    return n
end

-- other commands

local function peek(self, req)
    return command(self, req, parse_job, "FOUND")
end

function _M.peek(self, id)
    local i = uint(id, 2 ^ 53)
    if not i then return bad_arg("job id", id) end
    return peek(self, line("peek", i))
end

function _M.peek_ready(self)
    return peek(self, "peek-ready\r\n")
end

function _M.peek_delayed(self)
    return peek(self, "peek-delayed\r\n")
end

function _M.peek_buried(self)
    return peek(self, "peek-buried\r\n")
end

-- kick(bound) -> the number of jobs kicked (buried ones, else delayed ones) in the used tube
function _M.kick(self, bound)
    local b = uint(bound, MAX_U32)
    if not b then return bad_arg("bound", bound) end
    return command(self, line("kick", b), parse_number, "^KICKED (%d+)$")
end

function _M.kick_job(self, id)
    local i = uint(id, 2 ^ 53)
    if not i then return bad_arg("job id", id) end
    return command(self, line("kick-job", i), parse_word, "KICKED")
end

function _M.stats(self)
    return command(self, "stats\r\n", read_yaml)
end

function _M.stats_job(self, id)
    local i = uint(id, 2 ^ 53)
    if not i then return bad_arg("job id", id) end
    return command(self, line("stats-job", i), read_yaml)
end

function _M.stats_tube(self, tube)
    if not valid_tube(tube) then
        return bad_arg("tube name", tube)
    end
    return command(self, line("stats-tube", tube), read_yaml)
end

function _M.list_tubes(self)
    return command(self, "list-tubes\r\n", read_yaml)
end

function _M.list_tube_used(self)
    return command(self, "list-tube-used\r\n", parse_using)
end

function _M.list_tubes_watched(self)
    return command(self, "list-tubes-watched\r\n", read_yaml)
end

function _M.pause_tube(self, tube, delay)
    if not valid_tube(tube) then
        return bad_arg("tube name", tube)
    end
    local d = uint(delay, MAX_U32)
    if not d then return bad_arg("delay", delay) end
    return command(self, line("pause-tube", tube, d), parse_word, "PAUSED")
end

return _M
