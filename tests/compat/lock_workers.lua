-- lua-resty-lock across `-w 2` worker processes (cosocket only: resty-cli has one
-- worker): worker 0 holds a lock for 0.3 s, worker 1 waits for it. Needs --shdict 'locks 1m'.
local check = require "check"
local lock = require "resty.lock"

local id = ngx.worker.id()
local dict = ngx.shared.locks
if id == 0 then
    local l = lock:new("locks")
    check.eq("worker 0 locks", l:lock("w"), 0)
    dict:set("held", true)
    ngx.sleep(0.3)
    check.eq("worker 0 unlocks", l:unlock(), 1)
else
    for _ = 1, 200 do
        if dict:get("held") then break end
        ngx.sleep(0.01)
    end
    local l = lock:new("locks", { timeout = 3, step = 0.01 })
    local el, err = l:lock("w")
    check.ok("worker 1 waits for worker 0's lock", el and el >= 0.15 and el < 2, el or err)
    l:unlock()
end
check.done()
