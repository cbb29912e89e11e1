-- Usage checks of lua-resty-lock, unmodified: lock, unlock, expire, timeout, exptime,
-- waiters across light threads. Needs --shdict 'locks 1m'.
local check = require "check"
local lock = require "resty.lock"

local l = assert(lock:new("locks", { timeout = 1, exptime = 2 }))
check.eq("lock free", l:lock("k"), 0)
local l2 = lock:new("locks", { timeout = 0.1 })
local el, err = l2:lock("k")
check.eq("held: timeout", err, "timeout")
check.eq("held: no elapsed", el, nil)

local got
local t = ngx.thread.spawn(function()
    local l3 = lock:new("locks", { timeout = 2, step = 0.01 })
    local e = l3:lock("k")
    got = e
    return l3:unlock()
end)
ngx.sleep(0.3)
check.eq("unlock", l:unlock(), 1)
local _, unlocked = ngx.thread.wait(t)
check.ok("a waiting thread takes it after the unlock", got and got >= 0.25 and got < 1.5, got)
check.eq("the waiter unlocks", unlocked, 1)

local a, b = l:unlock()
check.eq("unlock twice", b, "unlocked")

check.eq("lock e", l:lock("e"), 0)
check.eq("expire", l:expire(5), true)
check.eq("unlock e", l:unlock(), 1)

-- exptime: a lock that is never unlocked goes after exptime
local short = lock:new("locks", { exptime = 0.2, timeout = 0 })
check.eq("lock with exptime", short:lock("x"), 0)
local other = lock:new("locks", { timeout = 1, step = 0.01 })
el = other:lock("x")
check.ok("taken after the exptime", el and el >= 0.1 and el < 0.9, el)
other:unlock()

-- the same lock object twice
local twice = lock:new("locks")
twice:lock("y")
a, b = twice:lock("z")
check.eq("one lock per object", b, "locked")
twice:unlock()

check.done()
