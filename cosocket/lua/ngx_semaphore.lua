-- require "ngx.semaphore": lua-resty-core's API on the runtime's park/wake primitive.
local C = require "cosocket.private"
local park, wake, current = C.park, C.wake, C.current
local setmetatable, type, tonumber, error, floor = setmetatable, type, tonumber, error, math.floor

local _M = { version = "0.1.0" }
local mt = { __index = _M }

function _M.new(n)
    n = tonumber(n) or 0
    if n < 0 then
        return nil, "no memory"
    end
    return setmetatable({ resources = floor(n), waiters = {}, head = 1, tail = 0 }, mt)
end

function _M.wait(self, seconds)
    if type(self) ~= "table" or not self.waiters then
        error("not a semaphore instance", 2)
    end
    seconds = tonumber(seconds) or error("bad timeout argument", 2)
    if seconds < 0 then
        error("bad timeout argument", 2)
    end
    if self.resources > 0 and self.head > self.tail then
        self.resources = self.resources - 1
        return true
    end
    if seconds == 0 then
        return nil, "timeout"
    end
    local co = current()
    self.tail = self.tail + 1
    self.waiters[self.tail] = co
    local ok, err = park(seconds * 1000)
    if ok then
        return true
    end
    -- timed out (or was killed): leave the queue
    for i = self.head, self.tail do
        if self.waiters[i] == co then
            self.waiters[i] = false
            break
        end
    end
    return nil, err
end

function _M.post(self, n)
    if type(self) ~= "table" or not self.waiters then
        error("not a semaphore instance", 2)
    end
    n = tonumber(n) or 1
    if n < 1 then
        return nil, "bad argument"
    end
    while n > 0 do
        if self.head > self.tail then
            self.resources = self.resources + n
            break
        end
        local co = self.waiters[self.head]
        self.waiters[self.head] = nil
        self.head = self.head + 1
        if co and wake(co, true) then
            n = n - 1
        end
    end
    return true
end

function _M.count(self)
    if type(self) ~= "table" or not self.waiters then
        error("not a semaphore instance", 2)
    end
    local waiting = 0
    for i = self.head, self.tail do
        if self.waiters[i] then
            waiting = waiting + 1
        end
    end
    return self.resources - waiting
end

return _M
