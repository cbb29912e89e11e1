-- A small in-memory Redis server on cosocket.listen: RESP arrays of bulk strings and
-- inline commands, pipelining (every complete command in a read is answered in one send),
-- GET SET (EX/PX/NX/XX) DEL EXISTS INCR DECR INCRBY PING ECHO DBSIZE FLUSHDB FLUSHALL
-- CONFIG GET COMMAND QUIT.
--
--   cosocket examples/redis_server.lua [PORT [HOST [CERT KEY]]]   (PORT 0: any free port)
--   (with CERT and KEY, PEM files, it serves TLS: redis-cli --tls --cacert ca.crt -p PORT)
--   cosocket -w 2 examples/redis_server.lua 6380         (two workers, one port)
--
-- Prints "listening on PORT" once listening. With -w each worker has its own data.
local cosocket = require "cosocket"

local byte, sub, find, upper, lower, format = string.byte, string.sub, string.find, string.upper, string.lower,
    string.format
local tonumber, tostring, type, pairs, concat = tonumber, tostring, type, pairs, table.concat
local now, update_time = ngx.now, ngx.update_time

local MAX_BULK = 512 * 1024 * 1024
local MAX_INLINE = 64 * 1024
local STAR, DOLLAR = byte("*"), byte("$")

local store, expires = {}, {}  -- key -> value; key -> absolute expiry time (s)

local function alive(key)
    local at = expires[key]
    if at and at <= now() then
        store[key], expires[key] = nil, nil
    end
    return store[key]
end

local function bulk(s)
    if s == nil then
        return "$-1\r\n"
    end
    return "$" .. #s .. "\r\n" .. s .. "\r\n"
end

local function array(list)
    local out = { "*" .. #list .. "\r\n" }
    for i = 1, #list do
        out[i + 1] = bulk(list[i])
    end
    return concat(out)
end

local function wrong_args(name)
    return "-ERR wrong number of arguments for '" .. lower(name) .. "' command\r\n"
end

local NOT_INT = "-ERR value is not an integer or out of range\r\n"
local OK = "+OK\r\n"

-- an integer that a double holds exactly, or nil
local function to_int(s)
    if type(s) ~= "string" or not find(s, "^%-?%d+$") or #s > 16 then
        return nil
    end
    return tonumber(s)
end

local function incr_by(key, by)
    local v = alive(key)
    local n = 0
    if v ~= nil then
        n = to_int(v)
        if not n then
            return NOT_INT
        end
    end
    n = n + by
    if n >= 2 ^ 53 or n <= -2 ^ 53 then
        return NOT_INT
    end
    store[key] = format("%d", n)
    return ":" .. store[key] .. "\r\n"
end

local CONFIG = { save = "", appendonly = "no", databases = "1" }

-- name -> function(args, n) -> reply, close?
local commands = {}

function commands.PING(args, n)
    if n == 1 then
        return "+PONG\r\n"
    elseif n == 2 then
        return bulk(args[2])
    end
    return wrong_args("ping")
end

function commands.ECHO(args, n)
    if n ~= 2 then
        return wrong_args("echo")
    end
    return bulk(args[2])
end

function commands.GET(args, n)
    if n ~= 2 then
        return wrong_args("get")
    end
    return bulk(alive(args[2]))
end

function commands.SET(args, n)
    if n < 3 then
        return wrong_args("set")
    end
    local key, ttl, nx, xx = args[2], nil, false, false
    local i = 4
    while i <= n do
        local opt = upper(args[i])
        if opt == "NX" then
            nx = true
        elseif opt == "XX" then
            xx = true
        elseif (opt == "EX" or opt == "PX") and i < n then
            local v = to_int(args[i + 1])
            if not v or v <= 0 then
                return "-ERR invalid expire time in 'set' command\r\n"
            end
            ttl = opt == "EX" and v or v / 1000
            i = i + 1
        else
            return "-ERR syntax error\r\n"
        end
        i = i + 1
    end
    if nx and xx then
        return "-ERR syntax error\r\n"
    end
    local exists = alive(key) ~= nil
    if (nx and exists) or (xx and not exists) then
        return "$-1\r\n"
    end
    store[key] = args[3]
    if ttl then
        update_time()
        expires[key] = now() + ttl
    else
        expires[key] = nil
    end
    return OK
end

function commands.DEL(args, n)
    if n < 2 then
        return wrong_args("del")
    end
    local count = 0
    for i = 2, n do
        if alive(args[i]) ~= nil then
            store[args[i]], expires[args[i]] = nil, nil
            count = count + 1
        end
    end
    return ":" .. count .. "\r\n"
end

function commands.EXISTS(args, n)
    if n < 2 then
        return wrong_args("exists")
    end
    local count = 0
    for i = 2, n do
        if alive(args[i]) ~= nil then
            count = count + 1
        end
    end
    return ":" .. count .. "\r\n"
end

function commands.INCR(args, n)
    if n ~= 2 then
        return wrong_args("incr")
    end
    return incr_by(args[2], 1)
end

function commands.DECR(args, n)
    if n ~= 2 then
        return wrong_args("decr")
    end
    return incr_by(args[2], -1)
end

function commands.INCRBY(args, n)
    if n ~= 3 then
        return wrong_args("incrby")
    end
    local by = to_int(args[3])
    if not by then
        return NOT_INT
    end
    return incr_by(args[2], by)
end

function commands.DBSIZE(_, n)
    if n ~= 1 then
        return wrong_args("dbsize")
    end
    local count = 0
    for k in pairs(store) do
        if alive(k) ~= nil then
            count = count + 1
        end
    end
    return ":" .. count .. "\r\n"
end

function commands.FLUSHDB()
    store, expires = {}, {}
    return OK
end
commands.FLUSHALL = commands.FLUSHDB

function commands.CONFIG(args, n)
    if n == 3 and upper(args[2]) == "GET" then
        local v = CONFIG[lower(args[3])]
        if v == nil then
            return "*0\r\n"
        end
        return array({ lower(args[3]), v })
    end
    if n >= 2 and upper(args[2]) == "SET" then
        return OK
    end
    return "-ERR unsupported CONFIG subcommand\r\n"
end

function commands.COMMAND()
    return "*0\r\n"
end

function commands.QUIT()
    return OK, true
end

local function execute(args)
    local n = #args
    if n == 0 then
        return nil
    end
    local name = args[1]
    local f = commands[name] or commands[upper(name)]
    if not f then
        local shown = { "-ERR unknown command '", sub(name, 1, 128), "', with args beginning with: " }
        for i = 2, n do
            shown[#shown + 1] = "'" .. sub(args[i], 1, 128) .. "' "
        end
        shown[#shown + 1] = "\r\n"
        return concat(shown)
    end
    return f(args, n)
end

-- One command from buf at pos: args, next_pos | nil (incomplete) | false, err.
local function parse(buf, pos)
    local len = #buf
    if pos > len then
        return nil
    end
    if byte(buf, pos) ~= STAR then
        -- inline: words up to the end of the line
        local e = find(buf, "\n", pos, true)
        if not e then
            if len - pos > MAX_INLINE then
                return false, "Protocol error: too big inline request"
            end
            return nil
        end
        local line = sub(buf, pos, byte(buf, e - 1) == 13 and e - 2 or e - 1)
        local args, n = {}, 0
        for w in line:gmatch("%S+") do
            n = n + 1
            args[n] = w
        end
        return args, e + 1
    end
    local e = find(buf, "\r\n", pos, true)
    if not e then
        return nil
    end
    local count = tonumber(sub(buf, pos + 1, e - 1))
    if not count or count > 1024 * 1024 then
        return false, "Protocol error: invalid multibulk length"
    end
    local args = {}
    local p = e + 2
    for i = 1, count do
        if p > len then
            return nil
        end
        if byte(buf, p) ~= DOLLAR then
            return false, "Protocol error: expected '$', got '" .. sub(buf, p, p) .. "'"
        end
        e = find(buf, "\r\n", p, true)
        if not e then
            return nil
        end
        local blen = tonumber(sub(buf, p + 1, e - 1))
        if not blen or blen < 0 or blen > MAX_BULK then
            return false, "Protocol error: invalid bulk length"
        end
        p = e + 2
        if p + blen + 1 > len then
            return nil
        end
        args[i] = sub(buf, p, p + blen - 1)
        p = p + blen + 2
    end
    return args, p
end

local function serve(sock)
    sock:settimeout(300000)  -- an idle client is dropped after 5 minutes
    local buf, pos = "", 1
    while true do
        local data = sock:receiveany(65536)
        if not data then
            return
        end
        if pos > #buf then
            buf = data
        else
            buf = sub(buf, pos) .. data
        end
        pos = 1
        local out, n = {}, 0
        while true do
            local args, p = parse(buf, pos)
            if args == nil then
                break
            end
            if args == false then
                n = n + 1
                out[n] = "-ERR " .. p .. "\r\n"
                sock:send(out)
                return
            end
            pos = p
            local reply, quit = execute(args)
            if reply then
                n = n + 1
                out[n] = reply
            end
            if quit then
                sock:send(out)
                return
            end
        end
        if n > 0 then
            local ok = sock:send(out)
            if not ok then
                return
            end
        end
    end
end

local port = tonumber(arg[1] or "6379")
local host = arg[2] or "127.0.0.1"
local ssl = arg[3] and { cert = arg[3], key = arg[4] or arg[3] } or nil
if not port then
    io.stderr:write("usage: cosocket examples/redis_server.lua [PORT [HOST [CERT KEY]]]\n")
    os.exit(2)
end

local srv, err = cosocket.listen{ host = host, port = port, handler = serve, max_connections = 10000,
                                     ssl = ssl }
if not srv then
    io.stderr:write("cannot listen on ", host, ":", tostring(port), ": ", err, "\n")
    os.exit(1)
end
io.write("listening on ", srv:port(), "\n")
io.stdout:flush()
