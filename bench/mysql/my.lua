-- bench/mysql/my.lua: a query through resty.mysql from `conc` light threads, each with its
-- own connection, `ops` queries in all. Modes: "select1" (SELECT 1), "rows100" (a 100-row,
-- 2-column SELECT through query) and "exec100" (the same SELECT as a prepared statement
-- through execute). Runs unchanged on cosocket and inside nginx + ngx_lua. Parameters come
-- from the global BENCH table; the result is one line "ops=N elapsed=S cpu=S".
local mysql = require "resty.mysql"
local B = BENCH

local common = require "common"  -- bench/lua/common.lua: cpu() and now() for both runtimes

local SQL = {
    select1 = "SELECT 1",
    rows100 = "SELECT seq, concat('row', seq) s FROM seq_1_to_100",
    exec100 = "SELECT seq, concat('row', seq) s FROM seq_1_to_100",
}
local sql, want = SQL[B.mode], B.mode == "select1" and 1 or 100
local exec = B.mode == "exec100"

local elapsed, used = common.run(B.conc, B.ops, function()
    local db = assert(mysql:new())
    db:set_timeout(10000)
    assert(db:connect{ host = "127.0.0.1", port = B.port, user = B.user,
                       password = B.password, database = B.database })
    return db
end, function(db)
    local rows, err
    if exec then
        rows, err = db:execute(sql)
    else
        rows, err = db:query(sql, want)
    end
    if not rows then return nil, err end
    if #rows ~= want then return nil, "got " .. #rows .. " rows" end
    return true
end)
common.report(B.ops, elapsed, used)
