-- require "ngx.semaphore": lua-resty-core's API (new/post/wait/count, same return
-- values and errors) on the runtime's park/wake primitive.
local C = require "cosocket.private"
local park, wake, current, is_parked = C.park, C.wake, C.current, C.is_parked
local setmetatable, type, tonumber, error, floor = setmetatable, type, tonumber, error, math.floor

local _M = { version = "0.1.0" }
local mt = { __index = _M }

local function check(self)
    if type(self) ~= "table" or not self.waiters then
        error("not a semaphore instance", 3)
    end
end

function _M.new(n)
    n = tonumber(n) or 0
    if n < 0 then
        error("no negative number", 2)
    end
    return setmetatable({ resources = floor(n), waiters = {}, head = 1, tail = 0 }, mt)
end

-- waiters that are still parked (a killed thread is not)
local function waiting(self)
    local w = 0
    for i = self.head, self.tail do
        local co = self.waiters[i]
        if co and is_parked(co) then
            w = w + 1
        end
    end
    return w
end

function _M.wait(self, seconds)
    check(self)
    seconds = tonumber(seconds)
    if not seconds then
        error("bad timeout argument", 2)
    end
    if seconds < 0 then
        error("no negative number", 2)
    end
    if self.resources > 0 and waiting(self) == 0 then
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
        return true, nil
    end
    for i = self.head, self.tail do  -- timed out: leave the queue
        if self.waiters[i] == co then
            self.waiters[i] = false
            break
        end
    end
    return false, err
end

function _M.post(self, n)
    check(self)
    n = tonumber(n) or 1
    n = floor(n)
    if n < 1 then
        error("positive number required", 2)
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
    check(self)
    return self.resources - waiting(self)
end

return _M
