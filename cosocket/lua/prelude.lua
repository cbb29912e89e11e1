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

-- (varargs, not a `first` parameter: a coroutine that returns nothing makes resume return
-- true alone, not true, nil)
local function pass(co, ok, ...)
    if ok and (...) == SENTINEL and co_status(co) == "suspended" then
        return pass(co, co_resume(co, co_yield(SENTINEL)))
    end
    return ok, ...
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
            local e = ...
            -- as LuaJIT's wrap: a message gets the position of the caller (level 2: this
            -- function is tail-called)
            error(e, type(e) == "string" and 2 or 0)
        end
        return ...
    end
    return function(...)
        return unwrap(resume(co, ...))
    end
end

local thread_status = C.thread_status
local function status(co)
    return thread_status(co) or co_status(co)
end

coroutine.resume = resume
coroutine.yield = yield
coroutine.wrap = wrap
coroutine.status = status

-- lua-nginx-module's own versions, which lua-resty-core's resty.core.coroutine installs
-- inside a request (everywhere on cosocket: every light thread has one)
coroutine.__create, coroutine.__resume, coroutine.__yield = co_create, resume, yield
coroutine.__status, coroutine.__wrap = status, wrap

-- The raw yield, as lua-resty-core uses it: an ngx_http_lua_ffi_* function that cannot
-- finish at once (a semaphore wait, a pipe read, ...) parks the light thread on the C side
-- and returns FFI_AGAIN; the Lua side then calls coroutine._yield(), which in nginx returns
-- to nginx's scheduler, and gets the values the waker passes. Here a parked thread yields
-- the sentinel, which goes up through any enclosing user coroutine to the scheduler (see
-- pass above); the waker's values come back down the same way.
do
    local ffi_waiting = C.ffi_waiting
    coroutine._yield = function(...)
        if ffi_waiting() then
            return co_yield(SENTINEL)
        end
        return co_yield(...)
    end
end

-- ngx.say/print keep their own buffer; io.write goes through C stdio: keep the two in
-- the order the script wrote them.
do
    local flush, io_write, stdout = ngx.flush, io.write, io.stdout
    local function after(...)
        stdout:flush()
        return ...
    end
    io.write = function(...)
        flush()
        return after(io_write(...))
    end
    local file_mt = getmetatable(stdout)
    local file_write = file_mt.__index.write
    file_mt.__index.write = function(f, ...)
        if f == stdout then
            flush()
            return after(file_write(f, ...))
        end
        return file_write(f, ...)
    end
end

-- require written in Lua, so that a module's top-level code may use cosockets
-- (LuaJIT cannot yield across the C require).
do
    local package, loaded, sentinel_loading = package, package.loaded, {}
    local loaders = package.loaders
    local concat = table.concat
    local current, park, wake = C.current, C.park, C.wake
    local xpcall, traceback_handler = xpcall, C.traceback_handler
    local loading = {}  -- name -> { by = light thread, waiters = {...} }
    local function current_or_nil()
        local ok, co = pcall(current)
        return ok and co or nil
    end
    function require(name)
        name = tostring(name)
        local v = loaded[name]
        if v ~= nil then
            if v == sentinel_loading then
                -- another light thread is running this module's top level (it yielded):
                -- wait for it rather than fail
                local l, me = loading[name], current_or_nil()
                if not l or not me or l.by == me then
                    error("loop or previous error loading module '" .. name .. "'", 2)
                end
                l.waiters[#l.waiters + 1] = me
                park()
                return require(name)
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
        local l = { by = current_or_nil(), waiters = {} }
        loading[name] = l
        -- xpcall: the traceback is taken where the module failed (runtime/traceback.h)
        local ok, res = xpcall(loader, traceback_handler, name, extra)
        loading[name] = nil
        if not ok then
            loaded[name] = nil
        elseif res ~= nil then
            loaded[name] = res
        elseif loaded[name] == sentinel_loading then
            loaded[name] = true
        end
        for i = 1, #l.waiters do
            wake(l.waiters[i])
        end
        if not ok then
            error(res, 0)
        end
        return loaded[name]
    end
end

-- Debian ships lua-resty-string and its other lua-resty-* libraries renamed: resty.string is
-- nginx.string there (package lua-nginx-string), resty.sha256 nginx.sha256, ... When no loader
-- finds a resty.X (on package.path, package.cpath, ...), the last loader gives Debian's
-- nginx.X: one module, known by both names.
do
    local loaders, searchpath, match = package.loaders, package.searchpath, string.match
    loaders[#loaders + 1] = function(name)
        local rest = match(name, "^resty%.(.+)$")
        if not rest then
            return nil
        end
        local alias = "nginx." .. rest
        if not searchpath(alias, package.path) then
            return "\n\tno Debian module '" .. alias .. "'"
        end
        return function()
            return require(alias)
        end
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

-- resty.core.base: lua-resty-core's own base.lua, unmodified, when it is on package.path
-- (Debian's lua-resty-core): its helpers (get_string_buf, get_errmsg_ptr, FFI_OK, ...) and
-- cdefs (ngx_str_t) are what FFI libraries build on. It replaces the global require with a
-- wrapper that raises "loop or previous error" for a module another light thread is still
-- loading; cosocket's require (already Lua, so JIT-compiled) waits for it instead, and is
-- put back. Without lua-resty-core, the two helpers most libraries take from it.
do
    local searchpath, loadfile, getfenv = package.searchpath, loadfile, getfenv
    package.preload["resty.core.base"] = function(name)
        local path = searchpath(name, package.path)
        if not path then
            return { new_tab = require("table.new"), clear_tab = require("table.clear") }
        end
        local chunk = assert(loadfile(path))
        local env = getfenv(0)
        local own_require = env.require
        local base = chunk(name, path)
        env.require = own_require
        return base
    end
end

package.preload["cosocket"] = function()
    local sema = require "ngx.semaphore"
    return {
        tcp = ngx.socket.tcp,
        udp = ngx.socket.udp,
        connect = ngx.socket.connect,
        listen = C.listen,
        udp_bind = C.udp_bind,
        sleep = ngx.sleep,
        spawn = ngx.thread.spawn,
        wait = ngx.thread.wait,
        kill = ngx.thread.kill,
        timer_at = ngx.timer.at,
        timer_every = ngx.timer.every,
        semaphore = sema,
        ssl_server_context = C.ssl_server_context,
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
