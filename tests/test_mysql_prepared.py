"""resty.mysql server-side prepared statements (prepare / execute / stmt_close / stmt_reset,
the binary row protocol, the per-connection statement cache kept across set_keepalive),
query_params, and mysql.quote_sql_str, against the real MariaDB 10.11 (session `mariadb`
fixture)."""
import pytest

from test_mysql import my

# every column type, and Lua code that prints Q(column, type, value) for query and execute
TYPES_TABLE = r'''
local t = "ptypes_@VIA@"
Qy(db, "drop table if exists " .. t)
Qy(db, "create table " .. t .. [[ (ti tinyint, tu tinyint unsigned, si smallint,
  su smallint unsigned, mi mediumint, mu mediumint unsigned, i int, iu int unsigned, bi bigint,
  bu bigint unsigned, f float, d double, dc decimal(30,10), dt date, tm time, tm3 time(3),
  dtt datetime, dt6 datetime(6), ts timestamp null, ts2 timestamp(2) null, y year, c char(3),
  vc varchar(20), tx text, bl blob, bt bit(10), e enum('a','b'), st set('x','y'), j json,
  n int)]])
Qy(db, "insert into " .. t .. [[ values (-128, 255, -32768, 65535, -8388608, 16777215,
  -2147483648, 4294967295, -9223372036854775808, 18446744073709551615, 1.5, 0.1,
  '12345678901234567890.0123456789', '2024-02-29', '-838:59:59', '-00:00:01.5',
  '2024-01-02 03:04:05', '2024-01-02 03:04:05.000007', '2024-01-02 03:04:05',
  '2038-01-19 03:14:07.99', 2024, 'ab', 'héllo', 'text', x'00ff0d0a', b'1000000001', 'b',
  'x,y', '{"k":[1]}', NULL),
  (1, 2, 3, 4, 5, 6, 2147483647, 5, 9007199254740992, 9007199254740993, -2.25, 1e300,
  '-0.5', '1000-01-01', '00:00:00', '838:59:59.999', '9999-12-31 23:59:59',
  '0000-00-00 00:00:00', NULL, NULL, 1901, '', '', '', '', b'0', 'a', '', 'null', 7),
  (127, 0, 32767, 0, 8388607, 0, 0, 0, -9007199254740991, 9007199254740991, 1.2345678,
  -1.7976931348623157e308, '0', '2000-01-01', '12:34:56', '00:00:00', '2000-01-01 00:00:00',
  '2000-01-01 00:00:00.5', '1970-01-02 00:00:00', '1970-01-02 00:00:00.01', 0, 'abc',
  'x', NULL, NULL, NULL, NULL, NULL, NULL, -1)]])
local cols = {"ti","tu","si","su","mi","mu","i","iu","bi","bu","f","d","dc","dt","tm","tm3",
  "dtt","dt6","ts","ts2","y","c","vc","tx","bl","bt","e","st","j","n"}
local function show(tag, rows)
  for r, row in ipairs(rows) do
    for _, c in ipairs(cols) do
      local v = row[c]
      if type(v) == "string" and (c == "bl" or c == "bt") then
        v = v:gsub(".", function(ch) return ("%02x"):format(ch:byte()) end)
      end
      Q(tag, r, c, v == ngx.null and "NULL" or type(v), v)
    end
  end
end
local sql = "select * from " .. t .. " order by n"
'''


def parse_types(lines):
    got = {}
    for line in lines:
        tag, r, c, t, v = line.split("|", 4)
        got[(tag.strip('"'), int(r), c.strip('"'))] = (t.strip('"'), v)
    return got


@pytest.mark.parametrize("via", ["tcp", "unix"])
def test_execute_types_match_query(run_lua_ok, mariadb, via):
    out = my(run_lua_ok, mariadb, "local db = C()\n" + TYPES_TABLE + r'''
show("query", Qy(db, sql))
local rows, err, errno = db:execute(sql)
if not rows then P("execute failed", err, errno) end
show("exec", rows)
''', via=via)
    got = parse_types(out)
    q = {k[1:]: v for k, v in got.items() if k[0] == "query"}
    e = {k[1:]: v for k, v in got.items() if k[0] == "exec"}
    assert len(q) == 90 and len(e) == 90
    # row order: n = NULL, -1, 7
    assert e == q, {k: (q[k], e.get(k)) for k in q if q[k] != e.get(k)}
    # and the values are the documented ones (the comparison above is not between two nils)
    assert e[(1, "ti")] == ("number", "-128") and e[(1, "tu")] == ("number", "255")
    assert e[(1, "su")] == ("number", "65535") and e[(1, "mu")] == ("number", "16777215")
    assert e[(1, "iu")] == ("number", "4294967295")
    assert e[(1, "bi")] == ("string", '"-9223372036854775808"')
    assert e[(1, "bu")] == ("string", '"18446744073709551615"')
    assert e[(3, "bi")] == ("string", '"9007199254740992"')
    assert e[(2, "bi")] == ("number", "-9.007199254741e+15")   # -(2^53 - 1): tostring's %.14g
    assert e[(2, "bu")] == ("number", "9.007199254741e+15")
    assert e[(1, "f")] == ("number", "1.5") and e[(2, "f")] == ("number", "1.23457")
    assert e[(1, "d")] == ("number", "0.1") and e[(3, "d")] == ("number", "1e+300")
    assert e[(2, "d")] == ("number", "-1.7976931348623e+308")
    assert e[(1, "dc")] == ("string", '"12345678901234567890.0123456789"')
    assert e[(1, "tm")] == ("string", '"-838:59:59"')
    assert e[(1, "tm3")] == ("string", '"-00:00:01.500"')
    assert e[(3, "tm3")] == ("string", '"838:59:59.999"')
    assert e[(1, "dt6")] == ("string", '"2024-01-02 03:04:05.000007"')
    assert e[(3, "dt6")] == ("string", '"0000-00-00 00:00:00.000000"')
    assert e[(1, "ts2")] == ("string", '"2038-01-19 03:14:07.99"')
    assert e[(3, "ts")] == ("NULL", "userdata: NULL")
    assert e[(1, "bl")] == ("string", '"00ff0d0a"') and e[(1, "bt")] == ("string", '"0201"')
    assert e[(1, "vc")] == ("string", '"héllo"') and e[(1, "j")] == ("string", '"{\\034k\\034:[1]}"')
    assert e[(1, "n")] == ("NULL", "userdata: NULL") and e[(3, "n")] == ("number", "7")


def test_execute_parameters_of_each_type(run_lua_ok, mariadb):
    out = my(run_lua_ok, mariadb, r'''
local ffi = require "ffi"
local db = C()
Qy(db, "drop table if exists params")
Qy(db, "create table params (id int primary key, i bigint, u bigint unsigned, d double, "
  .. "s longblob, b tinyint, n int)")
local all = {}
for i = 0, 255 do all[#all + 1] = string.char(i) end
all = table.concat(all)
local big = ("\0'\\\"x"):rep(20000)        -- 100000 bytes: a 3-byte length prefix
local mid = ("m"):rep(300)                 -- a 2-byte length prefix
local ins = "insert into params values (?, ?, ?, ?, ?, ?, ?)"
local vals = {
  { 1, -9007199254740991, 9007199254740991, 0.1, all, true, nil },
  { 2, 2^53, 2^62, -1.5e300, big, false, ngx.null },
  { 3, ffi.new("int64_t", -9223372036854775807LL - 1), ffi.new("uint64_t", 18446744073709551615ULL),
    1/0 - 1/0 == 1/0 - 1/0 and 0 or 2.5, mid, 1 == 1, 42 },
  { 4, -1, 0, 123, "", false, -7 },
}
for _, v in ipairs(vals) do
  local r, err, errno = db:execute(ins, unpack(v, 1, 7))
  P(r and r.affected_rows, err, errno)
end
local rows = db:execute("select * from params order by id")
for _, r in ipairs(rows) do
  Q(r.id, r.i, r.u, r.d, r.s == all, r.s == big, r.s == mid, #r.s, r.b, r.n)
end
-- typed parameters come back typed
local r = db:execute("select ? a, ? b, ? c, ? d, ? e, ? f", 7, 2.5, "7", true, nil, -0.0)[1]
Q(r.a, type(r.a), r.b, r.c, r.d, r.e, r.f)
-- the same values through query + quote_sql_str
local row = Qy(db, "select " .. mysql.quote_sql_str(all) .. " s")[1]
P(row.s == all)
-- bad parameters
P(db:execute("select ? a", {}))
P(db:execute("select ? a", print))
P(db:execute("select ? a"))
P(db:execute("select ? a", 1, 2))
P(db:execute("select 1 a", 1))
P(db:execute("select 8 a")[1].a)
''')
    assert out[:4] == ["1|nil|nil"] * 4
    assert out[4] == '1|-9.007199254741e+15|9.007199254741e+15|0.1|true|false|false|256|1|userdata: NULL'
    assert out[5] == '2|"9007199254740992"|"4611686018427387904"|-1.5e+300|false|true|false|100000|0|userdata: NULL'
    assert out[6] == '3|"-9223372036854775808"|"18446744073709551615"|2.5|false|false|true|300|1|42'
    assert out[7] == '4|-1|0|123|false|false|false|0|0|-7'
    assert out[8] == '7|"number"|2.5|"7"|1|userdata: NULL|0'
    assert out[9] == "true"
    assert out[10:] == [
        "nil|failed to execute: bad parameter #1: unsupported parameter type table",
        "nil|failed to execute: bad parameter #1: unsupported parameter type function",
        "nil|failed to execute: wrong number of parameters: the statement has 1, got 0",
        "nil|failed to execute: wrong number of parameters: the statement has 1, got 2",
        "nil|failed to execute: wrong number of parameters: the statement has 0, got 1",
        "8",
    ]


STATUS = r'''
local function status(d, name)
  return tonumber(Qy(d, "show session status like '" .. name .. "'")[1].Value)
end
'''


def test_statement_cache_across_keepalive(run_lua_ok, mariadb):
    out = my(run_lua_ok, mariadb, STATUS + r'''
local db = C()
local id = Qy(db, "select connection_id() id")[1].id
local sql = "select ? + 1 x"
local p0 = status(db, "Com_stmt_prepare")
P(db:execute(sql, 1)[1].x, db:execute(sql, 2)[1].x)
local st = db:prepare(sql)
P(st == db:prepare(sql), st.nparams, st.ncols, st.sql == sql)
P(status(db, "Com_stmt_prepare") - p0)
P(db:set_keepalive(10000, 4))
-- the same server connection from the pool: the statement is still there
local db2 = C()
P(db2:get_reused_times(), Qy(db2, "select connection_id() id")[1].id == id)
P(db2:execute(sql, 3)[1].x, db2:prepare(sql) == st, st:execute(4)[1].x)
P(status(db2, "Com_stmt_prepare") - p0, status(db2, "Com_stmt_execute"))
-- the old object no longer owns the connection
P(db:execute(sql, 1))
-- another connection prepares its own
local db3 = C({ pool = "other" })
P(db3:execute(sql, 5)[1].x, status(db3, "Com_stmt_prepare"))
P(db3:execute(st, 1))
P(st:close())
P(st:close(), db2:stmt_close(st))
P(db2:execute(st, 1))
P(status(db2, "Com_stmt_close"), status(db2, "Prepared_stmt_count") >= 0)
-- closed while pooled: the close goes out with the next command of the next user
local st2 = db2:prepare("select ? y")
P(db2:set_keepalive(10000, 4))
P(st2:close(), st2:execute(1))
local db4 = C()
P(db4:get_reused_times(), status(db4, "Com_stmt_close"))
-- a closed connection drops its cache: the next one prepares again
db4:close()
local db5 = C()
P(db5:get_reused_times(), db5:execute(sql, 6)[1].x, status(db5, "Com_stmt_prepare"))
''')
    assert out == [
        "2|3", "true|1|1|true", "1", "1",
        "1|true", "4|true|5", "1|4",
        "nil|failed to execute: cannot send query in the current context: nil",
        "6|1",
        "nil|failed to execute: statement not prepared on this connection",
        "1", "nil|nil|statement already closed",
        "nil|failed to execute: statement closed",
        "1|true",
        "1", "1|nil|statement closed",
        "2|2",
        "0|7|1",
    ]


def test_statement_cache_eviction_and_reset(run_lua_ok, mariadb):
    out = my(run_lua_ok, mariadb, STATUS + r'''
local db = C({ max_prepared_statements = 2 })
local a = db:prepare("select 1 a")
local b = db:prepare("select 2 b")
P(db:execute(a)[1].a)                 -- a is now more recent than b
local c = db:prepare("select 3 c")    -- evicts b
P(status(db, "Com_stmt_close"), db:execute(b))
P(db:execute(a)[1].a, db:execute(c)[1].c, db:execute("select 2 b")[1].b)
P(db:execute(a))                      -- a was least recently used: evicted by "select 2 b"
P(status(db, "Com_stmt_prepare"), status(db, "Com_stmt_close"))
P(db:stmt_reset(c), c:reset(), status(db, "Com_stmt_reset"))
P(db:stmt_reset(a))
''')
    assert out == ["1", "1|nil|failed to execute: statement closed",
                   "1|3|2", "nil|failed to execute: statement closed",
                   "4|2", "1|1|2", "nil|statement closed"]


def test_execute_errors_and_connection_state(run_lua_ok, mariadb):
    out = my(run_lua_ok, mariadb, r'''
local db = C()
Qy(db, "drop table if exists perr")
Qy(db, "create table perr (id int primary key)")
P(db:prepare("selec ?"))
P(db:prepare("select * from no_such_table where id = ?"))
local ins = "insert into perr values (?)"
local r = db:execute(ins, 1)
P(r.affected_rows, r.insert_id)
P(db:execute(ins, 1))
P(db:execute(ins, "x"))
P(db:execute("select 1 / ? a", 0)[1].a)
-- still usable
P(db:execute("select count(*) n from perr")[1].n)
P(db:prepare(42))
P(db:execute(42))
P(db:execute({}))
-- busy connection
P(db:send_query("select 1"))
P(db:execute(ins, 2))
P(db:prepare("select 2"))
db:read_result()
-- unconnected, closed
local d2 = mysql:new()
P(d2:execute("select 1"))
P(d2:prepare("select 1"))
db:close()
P(db:execute(ins, 3))
''')
    assert out[0].startswith("nil|You have an error in your SQL syntax") and out[0].endswith("|1064|42000")
    assert out[1:] == [
        "nil|Table 'testdb.no_such_table' doesn't exist|1146|42S02",
        "1|0",
        "nil|Duplicate entry '1' for key 'PRIMARY'|1062|23000",
        "nil|Incorrect integer value: 'x' for column `testdb`.`perr`.`id` at row 1|1366|22007",
        "userdata: NULL",
        "1",
        "nil|bad sql: string expected, got number",
        "nil|failed to execute: bad statement: statement object or SQL string expected",
        "nil|failed to execute: bad statement: statement object or SQL string expected",
        "13",
        "nil|failed to execute: cannot send query in the current context: command sent",
        "nil|cannot prepare in the current context: command sent",
        "nil|failed to execute: cannot send query in the current context: nil",
        "nil|cannot prepare in the current context: nil",
        "nil|failed to execute: cannot send query in the current context: nil",
    ]


def test_execute_compact_arrays_multi_results_and_query_params(run_lua_ok, mariadb):
    out = my(run_lua_ok, mariadb, r'''
local db = C({ compact_arrays = true })
local r = db:execute("select ? a, null b, 'x' c union all select 2, 3, 'y'", 1)
P(#r, r[1][1], r[1][2] == ngx.null, r[1][3], r[2][1], r[2][2], r[2][3], r[1].a)
db:set_compact_arrays(false)
Qy(db, "drop procedure if exists pp")
Qy(db, "create procedure pp(in v int) begin select v a; select v + 1 b, now(6) c; end")
local res, err = db:execute("call pp(?)", 10)
P(res[1].a, err)
res, err = db:read_result()
P(res[1].b, #res[1].c, err)
res, err = db:read_result()
P(res.affected_rows, err)
P(db:read_result())
-- query_params: a SQL string with ? placeholders, through the statement cache
res = db:query_params("select ? + ? s, ? t", 1, 2, "it's")
P(res[1].s, res[1].t)
-- the plain query(sql, est_nrows) is unchanged: the number is est_nrows, not a parameter
res = db:query("select 5 q", 10)
P(res[1].q)
P(db:set_keepalive())
''')
    assert out == ["2|1|true|x|2|3|y|nil", "10|again", "11|26|again", "0|nil",
                   "nil|cannot read result in the current context: connected",
                   "3|it's", "5", "1"]


def test_quote_sql_str_and_injection(run_lua_ok, mariadb):
    out = my(run_lua_ok, mariadb, r'''
local db = C()
Qy(db, "drop table if exists inj")
Qy(db, "create table inj (id int auto_increment primary key, s varbinary(1000))")
local all = {}
for i = 0, 255 do all[#all + 1] = string.char(i) end
all = table.concat(all)
P(mysql.quote_sql_str == ngx.quote_sql_str,
  mysql._quote_sql_str_lua(all) == ngx.quote_sql_str(all))
Q(mysql._quote_sql_str_lua("a'b\"c\\d\0e\n\r\t\b\26f"))
local attacks = { all, "' or '1'='1", "\\' or 1=1 -- ", "'); drop table inj; -- ",
                  "\\", "\\\\'", "' union select 1, 'x' -- ", "\0'" }
for _, s in ipairs(attacks) do
  Qy(db, "insert into inj (s) values (" .. mysql.quote_sql_str(s) .. ")")
  db:execute("insert into inj (s) values (?)", s)
end
local rows = Qy(db, "select s from inj order by id")
local ok = #rows == 2 * #attacks
for i, s in ipairs(attacks) do
  ok = ok and rows[2 * i - 1].s == s and rows[2 * i].s == s
  -- looked up both ways: exactly the two rows holding it
  local n1 = Qy(db, "select count(*) n from inj where s = " .. mysql.quote_sql_str(s))[1].n
  local n2 = db:query_params("select count(*) n from inj where s = ?", s)[1].n
  ok = ok and n1 == 2 and n2 == 2
end
P(ok, #rows, Qy(db, "select count(*) n from inj")[1].n)
P(pcall(mysql._quote_sql_str_lua, 1))
''')
    assert out[0] == "true|true"
    assert out[1] == '"\'a\\092\'b\\092\\034c\\092\\092d\\0920e\\092n\\092r\\092t\\092b\\092Zf\'"'
    assert out[2] == "true|16|16"
    assert out[3].startswith("false|") and "string expected, got number" in out[3]


def test_no_getfd_closes_statements_at_keepalive(run_lua_ok, mariadb):
    # ngx_lua 0.10.23 sockets have no getfd(): the cache cannot follow the connection through
    # the pool, so set_keepalive closes the statements instead of leaking them
    out = my(run_lua_ok, mariadb, STATUS + r'''
local idx = getmetatable(ngx.socket.tcp()).__index
idx.getfd = nil
local db = C()
P(db:execute("select ? + 1 x", 1)[1].x, status(db, "Com_stmt_close"))
db:set_keepalive(10000, 4)
local db2 = C()
P(db2:get_reused_times(), status(db2, "Com_stmt_close"), db2:execute("select ? + 1 x", 2)[1].x,
  status(db2, "Com_stmt_prepare"))
''')
    assert out == ["2|0", "1|1|3|2"]


# ---------------------------------------------------------------------------
# malformed binary rows: a scripted fake server (the real one never sends them)

def _fake_execute_session(rows):
    import struct
    from test_mysql import greeting, pkt, AUTH_LEN, OK2, COLDEF, EOF3
    prep_ok = pkt(b"\x00" + struct.pack("<IHH", 7, 1, 0) + b"\x00\x00\x00", 1)
    return [("reply", greeting()), ("read", AUTH_LEN), ("reply", OK2),
            ("expect", pkt(b"\x16select 1", 0)), ("reply", prep_ok + COLDEF + EOF3),
            ("expect", pkt(b"\x17" + struct.pack("<I", 7) + b"\x00\x01\x00\x00\x00", 0)),
            ("reply", pkt(b"\x01", 1) + COLDEF + EOF3 + rows), ("stall",)]


@pytest.mark.parametrize("row,want", [
    (b"\x00\x00" + (-5).to_bytes(8, "little", signed=True), "rows|-5"),
    (b"\x00\x04", "rows|userdata: NULL"),                   # the NULL bit of column 1
    (b"\x00\x00\x01\x02\x03", "nil|malformed row packet"),  # a truncated LONGLONG
    (b"\x00\x00" + b"\x01" * 8 + b"x", "nil|malformed row packet"),
    (b"\x00", "nil|malformed row packet"),                  # no NULL bitmap
    (b"\x05\x00" + b"\x01" * 8, "nil|malformed row packet"),
])
def test_fake_binary_rows(run_lua_ok, fake_server, row, want):
    from helpers.socket_lua import lua
    from test_mysql import pkt
    srv = fake_server(_fake_execute_session(pkt(row, 4) + pkt(b"\xfe\x00\x00\x02\x00", 5)))
    out = lua(run_lua_ok, r'''
local mysql = require "resty.mysql"
local db = mysql:new()
db:set_timeout(2000)
P(db:connect{ host = "127.0.0.1", port = @FPORT@, user = "u", password = "p", database = "d" })
local res, err = db:execute("select 1")
if res then P("rows", res[1].a) else P(res, err) end
P(db:set_keepalive())
''', {"FPORT": srv.port})
    assert out[0] == "1"
    assert out[1] == want
    assert out[2] == ("1" if want.startswith("rows") else
                      "nil|cannot be reused in the current connection state: nil")
