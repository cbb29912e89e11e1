-- resty.mysql scenarios for tests/fuzz (see fuzz_run.lua for the contract). Every scenario
-- starts with the handshake (greeting, mysql_native_password login as tests/services.py's
-- user native/nativepw on database testdb).
local mysql = require "resty.mysql"
local S = require("fuzz_util").S

local _M = { scenarios = {}, real = { "query", "prepared" } }

function _M.open(host, port, t)
    local db = mysql:new()
    db:set_timeout(t)
    local ok, err, errno, sqlstate = db:connect({ host = host, port = port, user = "native",
                                                  password = "nativepw", database = "testdb" })
    if not ok then
        return nil, err, db
    end
    return db
end

local function start(host, port, t)
    local db, err, half = _M.open(host, port, t)
    return db or half, err
end

function _M.keepalive(db) return db:set_keepalive(10000, 4) end
function _M.reused(db) return db:get_reused_times() end
function _M.close(db) return db:close() end

function _M.sentinel(db)
    local res, err = db:query("SELECT 1 AS sentinel")
    if not res then
        return nil, err
    end
    return S(res)
end

-- queries in turn; a server error (nil, err, errno, sqlstate) with an errno is a result, a
-- failure without one ends the scenario
local function queries(db, list)
    local out = {}
    for i, q in ipairs(list) do
        local res, err, errno, sqlstate = db:query(q)
        if res == nil and errno == nil then
            return db, nil, err
        end
        out[i] = res or { err, errno, sqlstate }
        if err == "again" then
            return db, nil, "unexpected multiple results"
        end
    end
    return db, S(out)
end

_M.scenarios.query = function(host, port, t)
    local db, err = start(host, port, t)
    if err then return db, nil, err end
    return queries(db, {
        "SELECT 1 AS a, 'x\"y' AS b, NULL AS c, 2.5 AS d, "
            .. "CAST(12345678901234567890 AS DECIMAL(30,2)) AS e, REPEAT('z', 300) AS f",
        "SELECT 1 AS n UNION ALL SELECT 2 UNION ALL SELECT 3",
    })
end

_M.scenarios.errors = function(host, port, t)
    local db, err = start(host, port, t)
    if err then return db, nil, err end
    return queries(db, { "SELECT * FROM fuzz_no_such_table", "SELEC 1", "SELECT 'after' AS ok" })
end

_M.scenarios.dml = function(host, port, t)
    local db, err = start(host, port, t)
    if err then return db, nil, err end
    return queries(db, {
        "CREATE TEMPORARY TABLE fuzz_t (id INT AUTO_INCREMENT PRIMARY KEY, v VARCHAR(20))",
        "INSERT INTO fuzz_t (v) VALUES ('a'), ('b'), (NULL)",
        "UPDATE fuzz_t SET v = 'c' WHERE id > 1",
        "SELECT id, v FROM fuzz_t ORDER BY id",
        "DROP TEMPORARY TABLE fuzz_t",
    })
end

_M.scenarios.prepared = function(host, port, t)
    local db, err = start(host, port, t)
    if err then return db, nil, err end
    local stmt, errno, sqlstate
    stmt, err, errno, sqlstate = db:prepare("SELECT ? + 1 AS x, ? AS s, NULL AS z, 1.5 AS f")
    if not stmt then
        return db, nil, err
    end
    local res
    res, err, errno, sqlstate = db:execute(stmt, 41, "str\0ing")
    if not res then
        return db, nil, err
    end
    return db, S({ stmt.nparams, stmt.ncols, res })
end

_M.scenarios.sentinel = function(host, port, t)
    local db, err = start(host, port, t)
    if err then return db, nil, err end
    return db, _M.sentinel(db)
end

return _M
