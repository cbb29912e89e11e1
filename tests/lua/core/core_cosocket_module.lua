-- Used by tests/test_coroutines.py: a module whose top-level code uses cosockets.
-- Its top level sleeps, then talks to the echo server whose port is in the global arg[1].
local _M = { loads = (package.loaded["core_cosocket_module.count"] or 0) + 1 }
package.loaded["core_cosocket_module.count"] = _M.loads

ngx.sleep(0.01)

local sock = ngx.socket.tcp()
sock:settimeout(2000)
assert(sock:connect("127.0.0.1", tonumber(arg[1])))
assert(sock:send("module top level\n"))
_M.echo = assert(sock:receive("*l"))
sock:close()

function _M.hello()
    return "hello from module"
end

return _M
