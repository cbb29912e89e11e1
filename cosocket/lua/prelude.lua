-- The runtime's Lua side, run once at start-up with (ngx, private primitives).
local ngx, C = ...

local SENTINEL = C.sentinel
local is_light_thread = C.is_light_thread
local select, error, type, pairs, ipairs, tostring, unpack = select, error, type, pairs, ipairs, tostring, unpack
local co_create, co_resume, co_yield, co_status, co_running, co_wrap =
    coroutine.create, coroutine.resume, coroutine.yield, coroutine.status, coroutine.running, coroutine.wrap

-- User coroutines: a cosocket call inside one yields SENTINEL up through every
-- enclosing coroutine to the light thread; the results travel back down the same way.
-- The originals stay reachable as coroutine._create etc., as in OpenResty.
coroutine._create, coroutine._resume, coroutine._yield = co_create, co_resume, co_yield
coroutine._wrap, coroutine._status, coroutine._running = co_wrap, co_status, co_running

local function pass(co, ok, first, ...)
    if ok and first == SENTINEL and co_status(co) == "suspended" then
        return pass(co, co_resume(co, co_yield(SENTINEL)))
    end
    return ok, first, ...
end

local function resume(co, ...)
    return pass(co, co_resume(co, ...))
end

local function yield(...)
    local co = co_running()
    if co == nil or is_light_thread(co) then
        -- a plain yield at the top of a light thread gives way to the others
        ngx.sleep(0)
        return
    end
    return co_yield(...)
end

local function wrap(f)
    local co = co_create(f)
    local function unwrap(ok, ...)
        if not ok then
            error((...), 0)
        end
        return ...
    end
    return function(...)
        return unwrap(resume(co, ...))
    end
end

coroutine.resume = resume
coroutine.yield = yield
coroutine.wrap = wrap

-- require written in Lua, so that a module's top-level code may use cosockets
-- (LuaJIT cannot yield across the C require).
do
    local package, loaded, sentinel_loading = package, package.loaded, {}
    local loaders = package.loaders
    local concat = table.concat
    function require(name)
        name = tostring(name)
        local v = loaded[name]
        if v ~= nil then
            if v == sentinel_loading then
                error("loop or previous error loading module '" .. name .. "'", 2)
            end
            return v
        end
        local msgs = {}
        local loader, extra
        for i = 1, #loaders do
            local l, x = loaders[i](name)
            if type(l) == "function" then
                loader, extra = l, x
                break
            elseif type(l) == "string" then
                msgs[#msgs + 1] = l
            end
        end
        if not loader then
            error("module '" .. name .. "' not found:" .. concat(msgs), 2)
        end
        loaded[name] = sentinel_loading
        local ok, res = pcall(loader, name, extra)
        if not ok then
            loaded[name] = nil
            error(res, 0)
        end
        if res ~= nil then
            loaded[name] = res
        elseif loaded[name] == sentinel_loading then
            loaded[name] = true
        end
        return loaded[name]
    end
end

-- ngx.socket.connect(host, port, opts) / ("unix:...", opts)
ngx.socket.connect = function(...)
    local sock = ngx.socket.tcp()
    local ok, err = sock:connect(...)
    if ok then
        return sock
    end
    return nil, err
end

os.exit = C.exit

-- lua-resty-core's module names, for code that requires them explicitly
package.loaded["resty.core"] = package.loaded["resty.core"] or true
package.loaded["resty.core.base"] = package.loaded["resty.core.base"] or {
    new_tab = require("table.new"),
    clear_tab = require("table.clear"),
}

package.preload["cosocket"] = function()
    local sema = require "ngx.semaphore"
    return {
        tcp = ngx.socket.tcp,
        udp = ngx.socket.udp,
        connect = ngx.socket.connect,
        sleep = ngx.sleep,
        spawn = ngx.thread.spawn,
        wait = ngx.thread.wait,
        kill = ngx.thread.kill,
        timer_at = ngx.timer.at,
        timer_every = ngx.timer.every,
        semaphore = sema,
        null = ngx.null,
        now = ngx.now,
        time = ngx.time,
        update_time = ngx.update_time,
        log = ngx.log,
        say = ngx.say,
        exit = ngx.exit,
        exiting = ngx.worker.exiting,
        re = ngx.re,
        ngx = ngx,
    }
end

package.loaded["cosocket.private"] = C
