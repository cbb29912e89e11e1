-- Usage checks of lua-resty-lrucache (both implementations), unmodified.
local check = require "check"

for _, name in ipairs({ "resty.lrucache", "resty.lrucache.pureffi" }) do
    local lrucache = require(name)
    local c = assert(lrucache.new(3))
    c:set("a", 1)
    c:set("b", 2)
    c:set("c", 3, 0.1)
    check.eq(name .. " get", (c:get("a")), 1)
    c:set("d", 4)   -- evicts b, the least recently used
    check.eq(name .. " evicts LRU", (c:get("b")), nil)
    check.eq(name .. " count", c:count(), 3)
    ngx.sleep(0.15)
    local v, stale = c:get("c")
    check.eq(name .. " expired", v, nil)
    check.eq(name .. " stale value", stale, 3)
    c:delete("a")
    check.eq(name .. " delete", (c:get("a")), nil)
    c:set("f", "x", nil, 7)
    local _, _, flags = c:get("f")
    check.eq(name .. " flags", flags, 7)
    c:flush_all()
    check.eq(name .. " flush_all", c:count(), 0)
    check.eq(name .. " capacity", c:capacity(), 3)
end

check.done()
