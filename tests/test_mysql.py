"""resty.mysql (issue 6): the lua-resty-mysql API against the real MariaDB 10.11 (session
`mariadb` fixture, over TCP and the unix socket), ed25519 authentication, big packets, pool
reuse, KILL mid-query; faults (truncated, oversized, garbage, out-of-order packets) against
a scripted fake server only.
"""
import struct
import subprocess

import pytest

from helpers.socket_lua import lua

MY = r'''
local mysql = require "resty.mysql"
local function C(extra, user, pass)
  local db = assert(mysql:new())
  db:set_timeout(5000)
  local o = { user = user or "native", password = pass or "nativepw", database = "testdb",
              host = "127.0.0.1", port = @PORT@ }
  if "@VIA@" == "unix" then o.host, o.port, o.path = nil, nil, "@SOCK@" end
  for k, v in pairs(extra or {}) do o[k] = v end
  local ok, err, errno, sqlstate = db:connect(o)
  assert(ok, tostring(err) .. " " .. tostring(errno))
  return db
end
local function Qy(db, sql, n)
  local res, err, errno, sqlstate = db:query(sql, n)
  if not res then P("nil", err, errno, sqlstate) end
  return res, err
end
'''


def my(run_lua_ok, mariadb, code, via="tcp", subst=None, **kw):
    # the socket path only when used: an external MariaDB (COSOCKET_MARIADB) may have none
    sock = mariadb.path if via == "unix" or "@SOCK@" in code else ""
    s = {"PORT": mariadb.port, "SOCK": sock, "VIA": via}
    s.update(subst or {})
    return lua(run_lua_ok, MY + code, s, **kw)


def root_sql(mariadb, sql):
    r = subprocess.run(["mariadb", "--no-defaults", f"--socket={mariadb.path}", "-uroot", "-N",
                        "-e", sql], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


@pytest.mark.parametrize("via", ["tcp", "unix"])
def test_types_and_nulls(run_lua_ok, mariadb, via):
    out = my(run_lua_ok, mariadb, r'''
local db = C()
local t = "types_@VIA@"
Qy(db, "drop table if exists " .. t)
Qy(db, "create table " .. t .. [[ (ti tinyint, tu tinyint unsigned, si smallint, mi mediumint,
  i int, iu int unsigned, bi bigint, bu bigint unsigned, f float, d double, dc decimal(30,10),
  dt date, tm time, dtt datetime, ts timestamp null, y year, c char(3), vc varchar(20),
  tx text, bl blob, e enum('a','b'), st set('x','y'), j json, n int)]])
local r = Qy(db, "insert into " .. t .. [[ values (-128, 255, -32768, -8388608, -2147483648,
  4294967295, -9223372036854775808, 18446744073709551615, 1.5, 0.1,
  '12345678901234567890.0123456789', '2024-02-29', '-838:59:59', '2024-01-02 03:04:05',
  '2024-01-02 03:04:05', 2024, 'ab', 'héllo', 'text', x'00ff0d0a', 'b', 'x,y', '{"k":[1]}', NULL),
  (1, 2, 3, 4, 2147483647, 5, 9007199254740992, 9007199254740993, -2.25, 1e300,
  '-0.5', '1000-01-01', '00:00:01', '9999-12-31 23:59:59', NULL, 1901, '', '', '', '', 'a', '',
  'null', 7)]])
P("ok", r.affected_rows, r.insert_id, r.warning_count)
local rows = Qy(db, "select * from " .. t .. " order by ti")
local cols = {"ti","tu","si","mi","i","iu","bi","bu","f","d","dc","dt","tm","dtt","ts","y","c",
              "vc","tx","bl","e","st","j","n"}
for _, row in ipairs(rows) do
  for _, c in ipairs(cols) do
    local v = row[c]
    if c == "bl" then v = v:gsub(".", function(ch) return ("%02x"):format(ch:byte()) end) end
    Q(c, type(v) == "userdata" and (v == ngx.null and "NULL" or "?") or type(v), v)
  end
end
''', via=via)
    assert out[0] == "ok|2|0|0"
    got = {}
    for line in out[1:]:
        c, t, v = line.split("|", 2)
        got.setdefault(c.strip('"'), []).append((t.strip('"'), v))
    # row 1 (ti = -128) then row 2 (ti = 1)
    assert got["ti"] == [("number", "-128"), ("number", "1")]
    assert got["tu"][0] == ("number", "255")
    assert got["si"][0] == ("number", "-32768") and got["mi"][0] == ("number", "-8388608")
    assert got["i"] == [("number", "-2147483648"), ("number", "2147483647")]
    assert got["iu"][0] == ("number", "4294967295")
    # BIGINT: exact numbers below 2^53, strings beyond
    assert got["bi"] == [("string", '"-9223372036854775808"'), ("string", '"9007199254740992"')]
    assert got["bu"] == [("string", '"18446744073709551615"'), ("string", '"9007199254740993"')]
    assert got["f"] == [("number", "1.5"), ("number", "-2.25")]
    assert got["d"] == [("number", "0.1"), ("number", "1e+300")]
    # DECIMAL: exact strings
    assert got["dc"] == [("string", '"12345678901234567890.0123456789"'),
                         ("string", '"-0.5000000000"')]
    assert got["dt"] == [("string", '"2024-02-29"'), ("string", '"1000-01-01"')]
    assert got["tm"][0] == ("string", '"-838:59:59"')
    assert got["dtt"][1] == ("string", '"9999-12-31 23:59:59"')
    assert got["ts"] == [("string", '"2024-01-02 03:04:05"'), ("NULL", "userdata: NULL")]
    assert got["y"] == [("number", "2024"), ("number", "1901")]
    assert got["c"] == [("string", '"ab"'), ("string", '""')]
    assert got["vc"][0] == ("string", '"héllo"')
    assert got["bl"] == [("string", '"00ff0d0a"'), ("string", '""')]
    assert got["e"] == [("string", '"b"'), ("string", '"a"')]
    assert got["st"][0] == ("string", '"x,y"')
    assert got["j"][0] == ("string", '"{\\034k\\034:[1]}"')
    assert got["n"] == [("NULL", "userdata: NULL"), ("number", "7")]


def test_int_column_2_53_boundary(run_lua_ok, mariadb):
    out = my(run_lua_ok, mariadb, r'''
local db = C()
local r = Qy(db, "select 9007199254740991 a, -9007199254740991 b, 9007199254740992 c, "
  .. "cast(-9007199254740993 as signed) d")
P(type(r[1].a), r[1].a == 2^53 - 1, type(r[1].b), type(r[1].c), r[1].d)
''')
    assert out == ["number|true|number|string|-9007199254740993"]


def test_ok_packet_errors_and_bad_login(run_lua_ok, mariadb):
    out = my(run_lua_ok, mariadb, r'''
local db = C()
Qy(db, "drop table if exists okp")
Qy(db, "create table okp (id int auto_increment primary key, v int)")
local r = Qy(db, "insert into okp (v) values (1), (2), (3)")
P(r.affected_rows, r.insert_id, r.server_status ~= nil, r.warning_count, r.message)
r = Qy(db, "update okp set v = v + 1 where v > 1")
P(r.affected_rows, r.insert_id, r.message)
Qy(db, "select * from no_such_table")
Qy(db, "selec 1")
Qy(db, "insert into okp (id, v) values (1, 1)")
-- the connection stays usable after a server error
P(Qy(db, "select 5 x")[1].x)
local db2 = mysql:new()
P(db2:connect{ host = "127.0.0.1", port = @PORT@, user = "native", password = "wrong" })
P(db2:connect{ host = "127.0.0.1", port = @PORT@, user = "native", password = "nativepw",
               database = "no_such_db" })
P(db2:connect{ host = "127.0.0.1", port = @PORT@, user = "native", password = "nativepw",
               charset = "klingon" })
''')
    assert out[0] == "3|1|true|0|Records: 3  Duplicates: 0  Warnings: 0"
    assert out[1] == "2|0|Rows matched: 2  Changed: 2  Warnings: 0"
    assert out[2] == "nil|Table 'testdb.no_such_table' doesn't exist|1146|42S02"
    assert out[3].startswith("nil|You have an error in your SQL syntax") and \
        out[3].endswith("|1064|42000")
    assert out[4] == "nil|Duplicate entry '1' for key 'PRIMARY'|1062|23000"
    assert out[5] == "5"
    assert out[6] == "nil|Access denied for user 'native'@'127.0.0.1' (using password: YES)|1045|28000"
    assert out[7] == "nil|Access denied for user 'native'@'%' to database 'no_such_db'|1044|42000"
    assert out[8] == "nil|unknown charset: klingon|nil|nil"


def test_multi_results_procedure_send_query(run_lua_ok, mariadb):
    out = my(run_lua_ok, mariadb, r'''
local db = C()
Qy(db, "drop procedure if exists p2")
Qy(db, "create procedure p2() begin select 1 a; select 'b' b, 2 c; end")
local res, err = db:query("select 1 x; select 2 y; insert into no_such values (1)")
P(res[1].x, err)
res, err = db:read_result()
P(res[1].y, err)
P(db:read_result())
-- the connection is idle again
P(db:query("select 3 z")[1].z)
res, err = db:query("call p2()")
P(res[1].a, err)
res, err = db:read_result()
P(res[1].b, res[1].c, err)
res, err = db:read_result()
P(res.affected_rows, err)
-- reading with nothing sent
P(db:read_result())
-- send_query / read_result, and set_keepalive refused while a result is pending
P(db:send_query("select 4 w"))
P(db:set_keepalive())
P(db:send_query("select 5"))
res, err = db:read_result()
P(res[1].w, err)
P(db:set_keepalive(1000, 5))
''')
    assert out == [
        "1|again", "2|again",
        "nil|Table 'testdb.no_such' doesn't exist|1146|42S02",
        "3",
        "1|again", "b|2|again", "0|nil",
        "nil|cannot read result in the current context: connected",
        "15",
        "nil|cannot be reused in the current connection state: command sent",
        "nil|cannot send query in the current context: command sent",
        "4|nil",
        "1",
    ]


def test_compact_arrays_and_est_nrows(run_lua_ok, mariadb):
    out = my(run_lua_ok, mariadb, r'''
local db = C({ compact_arrays = true })
local r = Qy(db, "select 1 a, null b, 'x' c union all select 2, 3, 'y'", 2)
P(#r, r[1][1], r[1][2] == ngx.null, r[1][3], r[2][1], r[2][2], r[2][3], r[1].a)
db:set_compact_arrays(false)
r = Qy(db, "select 1 a, 'x' c")
P(r[1][1], r[1].a, r[1].c)
''')
    assert out == ["2|1|true|x|2|3|y|nil", "nil|1|x"]


def test_pool_reuse_skips_handshake(run_lua_ok, mariadb):
    out = my(run_lua_ok, mariadb, r'''
local db = C()
local id = Qy(db, "select connection_id() id")[1].id
P(db:get_reused_times(), db:server_ver() ~= nil)
P(db:set_keepalive(10000, 4))
local db2 = C()
P(db2:get_reused_times(), Qy(db2, "select connection_id() id")[1].id == id,
  db2:server_ver() == db:server_ver())
P(db2:set_keepalive(10000, 4))
-- another user / database / explicit pool name gets another connection
local db3 = C(nil, "edu", "edpw")
P(db3:get_reused_times(), Qy(db3, "select connection_id() id")[1].id ~= id)
local db4 = C({ pool = "mine" })
P(db4:get_reused_times())
db4:close()
-- the pool name default is user:database:host:port
local s = ngx.socket.tcp()
P(s:connect("127.0.0.1", @PORT@, { pool = "native:testdb:127.0.0.1:@PORT@" }))
P(s:getreusedtimes())
''')
    assert out == ["0|true", "1", "1|true|true", "1", "0|true", "0", "1", "2"]


def test_unix_pool_name_and_close(run_lua_ok, mariadb):
    out = my(run_lua_ok, mariadb, r'''
local db = C()
P(Qy(db, "select @@socket s")[1].s == "@SOCK@")
P(db:set_keepalive())
local s = ngx.socket.tcp()
P(s:connect("unix:@SOCK@", { pool = "native:testdb:@SOCK@" }), s:getreusedtimes())
s:setkeepalive()
local db2 = C()
P(db2:get_reused_times(), db2:close())
P(db2:query("select 1"))
P(db2:set_keepalive())
''', via="unix")
    assert out == ["true", "1", "1|1", "2|1",
                   "nil|failed to send query: cannot send query in the current context: nil",
                   "nil|cannot be reused in the current connection state: nil"]


def test_ed25519_user_and_rfc8032_vector(run_lua_ok, mariadb):
    out = my(run_lua_ok, mariadb, r'''
local ed = require "resty.mysql.ed25519"
local function hex(s) return (s:gsub(".", function(c) return ("%02x"):format(c:byte()) end)) end
local function unhex(h) return (h:gsub("..", function(x) return string.char(tonumber(x, 16)) end)) end
-- with a 32-byte password the derivation is RFC 8032's: its test 1 and test 2
P(hex(ed.sign(unhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"), "")))
P(hex(ed.sign(unhex("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb"), "\114")))
P(ngx.encode_base64(ed.public_key("edpw")))
for _, via in ipairs { "tcp", "unix" } do
  local db = mysql:new()
  local o = { user = "edu", password = "edpw", database = "testdb" }
  if via == "tcp" then o.host, o.port = "127.0.0.1", @PORT@ else o.path = "@SOCK@" end
  P(db:connect(o))
  P(Qy(db, "select current_user() u")[1].u)
end
local db = mysql:new()
P(db:connect{ host = "127.0.0.1", port = @PORT@, user = "edu", password = "edpW" })
''')
    stored = root_sql(mariadb, "select json_value(priv, '$.authentication_string') "
                      "from mysql.global_priv where user = 'edu'")
    assert out[0] == ("e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a3"
                      "3bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b")
    assert out[1] == ("92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15"
                      "996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00")
    assert out[2].rstrip("=") == stored
    assert out[3:] == ["1", "edu@%", "1", "edu@%",
                       "nil|Access denied for user 'edu'@'127.0.0.1' (using password: YES)|1045|28000"]


def test_auth_switch_to_native(run_lua_ok, mariadb):
    # the ed25519 user connecting through a server greeting that offers mysql_native_password:
    # MariaDB answers with an auth switch request to client_ed25519 (and vice versa)
    out = my(run_lua_ok, mariadb, r'''
local db = mysql:new()
local o = { host = "127.0.0.1", port = @PORT@, user = "edu", password = "edpw" }
P(db:connect(o))
P(Qy(db, "select current_user() u")[1].u)
''')
    assert out == ["1", "edu@%"]


@pytest.fixture(scope="module")
def big_packets(mariadb):
    root_sql(mariadb, "set global max_allowed_packet = 64 * 1024 * 1024")
    return mariadb


def test_packets_of_16mb_and_more(run_lua_ok, big_packets):
    out = my(run_lua_ok, big_packets, r'''
local db = C({ max_packet_size = 40 * 1024 * 1024 })
db:set_timeout(60000)  -- 40 MB statements: the server may be slow on a loaded machine
Qy(db, "drop table if exists big")
Qy(db, "create table big (id int primary key, b longblob)")
-- all 256 byte values, repeated: 20 MB, and exactly 2 * 0xffffff - 1 bytes of payload
local chunk = {}
for i = 0, 255 do chunk[#chunk + 1] = string.char(i) end
chunk = table.concat(chunk)
local blob = chunk:rep(20 * 4096)
local hex = blob:gsub(".", function(c) return ("%02x"):format(c:byte()) end)
local r = Qy(db, "insert into big values (1, x'" .. hex .. "')")
P(r.affected_rows)
local pre, post = "insert into big values (2, '", "')"
local zn = 2 * 0xffffff - 1 - #pre - #post
local sql = pre .. ("z"):rep(zn) .. post
P(#sql + 1 == 2 * 0xffffff)
r = Qy(db, sql)
P(r.affected_rows)
local rows = Qy(db, "select b, length(b) l from big order by id")
P(#rows[1].b, rows[1].b == blob, rows[1].l, #rows[2].b, rows[2].b == ("z"):rep(zn))
rows = Qy(db, "select repeat('q', 16777215) a, 1 b")
P(#rows[1].a, rows[1].b)
-- the default max_packet_size (1 MB) refuses the big row before reading it
local db2 = C()
P(db2:query("select b from big where id = 1"))
P(db2:set_keepalive())
local db3 = C({ max_packet_size = 1000 })
P(db3:query("select repeat('a', 999) a"))
''', timeout=150)
    assert out == ["1", "true", "1",
                   "20971520|true|20971520|33554399|true",
                   "16777215|1",
                   "nil|packet size too big: 16777215 bytes (max_packet_size is 1048576)",
                   "nil|cannot be reused in the current connection state: nil",
                   "nil|packet size too big: 1002 bytes (max_packet_size is 1000)"]


def test_100k_rows(run_lua_ok, mariadb):
    out = my(run_lua_ok, mariadb, r'''
local db = C()
local rows = Qy(db, "select seq, concat('row', seq) s from seq_1_to_100000", 100000)
local sum = 0
for i = 1, #rows do sum = sum + rows[i].seq end
P(#rows, sum, rows[100000].s)
P(db:set_keepalive())
''')
    assert out == ["100000|5000050000|row100000", "1"]


def test_kill_mid_query(run_lua_ok, mariadb):
    out = my(run_lua_ok, mariadb, r'''
local db = C()
local id = Qy(db, "select connection_id() id")[1].id
local killer = ngx.thread.spawn(function()
  ngx.sleep(0.3)
  local k = C({ pool = "killer" })
  local r = Qy(k, "kill connection " .. id)
  P("killed", r and r.affected_rows)
end)
local res, err, errno = db:query("select sleep(5) s")
P(res, err ~= nil, errno)
ngx.thread.wait(killer)
P(db:set_keepalive())
P(db:query("select 1"))
''')
    # the killer's OK and the victim's error may come in either order
    assert sorted(out[:2]) == sorted(["killed|0", out[0] if out[0] != "killed|0" else out[1]])
    assert "killed|0" in out[:2]
    assert {l for l in out[:2] if l != "killed|0"} <= {"nil|true|1927", "nil|true|nil"}
    assert out[2] == "nil|cannot be reused in the current connection state: nil"
    assert out[3] == "nil|failed to send query: cannot send query in the current context: nil"


# ---------------------------------------------------------------------------
# faults: a scripted fake server

def greeting(plugin=b"mysql_native_password"):
    scramble = bytes(range(1, 21))
    caps = 0x00000200 | 0x00008000 | 0x00080000 | 0x00020000 | 0x00010000 | 0x8 | 0x1
    body = (b"\x0a" + b"5.5.5-10.11.99-Fake\x00" + struct.pack("<I", 7) + scramble[:8] + b"\x00"
            + struct.pack("<H", caps & 0xffff) + b"\x2d" + struct.pack("<H", 2)
            + struct.pack("<H", caps >> 16) + bytes([21]) + b"\x00" * 10 + scramble[8:] + b"\x00"
            + plugin + b"\x00")
    return pkt(body, 0)


def pkt(body, seq):
    return struct.pack("<I", len(body))[:3] + bytes([seq]) + body


# client: user "u", password "p", database "d", mysql_native_password
AUTH_LEN = 4 + 32 + 2 + 21 + 2 + 22
OK2 = pkt(b"\x00\x00\x00\x02\x00\x00\x00", 2)


def session(reply, sql=b"select 1"):
    return [("reply", greeting()), ("read", AUTH_LEN), ("reply", OK2),
            ("expect", pkt(b"\x03" + sql, 0)), *reply]


FAULT = r'''
local mysql = require "resty.mysql"
local db = mysql:new()
db:set_timeout(2000)
local ok, err = db:connect{ host = "127.0.0.1", port = @FPORT@, user = "u", password = "p",
                            database = "d" }
P("connect", ok, err, db:server_ver())
local res, e, errno, sqlstate = db:query("select 1")
if type(res) == "table" then
  P("rows", #res, res[1].a, tostring(res[2] and res[2].a), type(res[1].a))
else
  P(res, e, errno, sqlstate)
end
P(db:set_keepalive())
'''

COLDEF = pkt(b"\x03def\x00\x00\x00\x01a\x00\x0c\x3f\x00\x01\x00\x00\x00\x08\x81\x00\x00\x00\x00", 2)
EOF3 = pkt(b"\xfe\x00\x00\x02\x00", 3)
NOT_IDLE = "nil|cannot be reused in the current connection state: nil"


@pytest.mark.parametrize("reply,err", [
    ([("reply", b"\x05\x00\x00\x01\x00\x00"), ("close",)],
     "failed to read packet content: closed"),
    ([("reply", b"\x05\x00"), ("close",)], "failed to receive packet header: closed"),
    ([("reply", b"\xff\xff\xff\x01garbage"), ("close",)],
     "packet size too big: 16777215 bytes (max_packet_size is 1048576)"),
    ([("reply", pkt(b"\x01", 5))], "bad packet sequence number: got 5, expected 1"),
    ([("reply", pkt(b"\xfe\x01\x02", 1))], "malformed result set header"),
    ([("reply", pkt(b"\x01", 1) + pkt(b"\x99\x99", 2))], "malformed field packet"),
    ([("reply", pkt(b"\x01", 1) + COLDEF + pkt(b"\x00", 3))],
     "bad packet after field packets: expected EOF"),
    # a length-encoded string whose 8-byte length overflows the packet
    ([("reply", pkt(b"\x01", 1) + COLDEF + EOF3 + pkt(b"\xfe" + b"\xff" * 8, 4))],
     "malformed row packet"),
    ([("reply", pkt(b"\x01", 1) + COLDEF + EOF3 + pkt(b"\x05ab", 4))], "malformed row packet"),
    # the server dies mid-result
    ([("reply", pkt(b"\x01", 1) + COLDEF + EOF3 + pkt(b"\x011", 4)), ("reset",)],
     "failed to receive packet header: "),
    ([("reply", pkt(b"\x00\xfc\x01", 1))], "malformed OK packet"),
])
def test_faults(run_lua_ok, mariadb, fake_server, reply, err):
    srv = fake_server(session(reply))
    out = lua(run_lua_ok, FAULT, {"FPORT": srv.port})
    assert out[0] == "connect|1|nil|5.5.5-10.11.99-Fake"
    assert out[1].startswith("nil|" + err), out
    assert out[2] == NOT_IDLE


@pytest.mark.parametrize("auth_reply,err", [
    # found by tests/test_fuzz.py (seed 7, cases 784, 888, 1312, 1428): an empty packet where
    # the login's OK belongs raised "attempt to concatenate local 'first' (a nil value)"
    (pkt(b"", 2), "bad authentication packet: empty"),
    (pkt(b"\x07", 2), "bad authentication packet: first byte 7"),
])
def test_bad_authentication_packet(run_lua_ok, fake_server, auth_reply, err):
    srv = fake_server([("reply", greeting()), ("read", AUTH_LEN), ("reply", auth_reply),
                       ("stall",)])
    out = lua(run_lua_ok, FAULT.split("local res, e")[0], {"FPORT": srv.port})
    assert out == [f"connect|nil|{err}|5.5.5-10.11.99-Fake"]


def test_fake_result_and_bad_greeting(run_lua_ok, fake_server):
    good = fake_server(session([("reply", pkt(b"\x01", 1) + COLDEF + EOF3 + pkt(b"\x0242", 4)
                                 + pkt(b"\xfb", 5) + pkt(b"\xfe\x00\x00\x02\x00", 6)), ("stall",)]))
    bad = fake_server([("reply", pkt(b"\x09junk", 0))])
    err = fake_server([("reply", pkt(b"\xff\x69\x04Too many connections", 0))])
    out = lua(run_lua_ok, FAULT + r'''
for _, port in ipairs { @BAD@, @ERR@ } do
  local d = mysql:new()
  P(d:connect{ host = "127.0.0.1", port = port, user = "u" })
end
''', {"FPORT": good.port, "BAD": bad.port, "ERR": err.port})
    # the fake's column is a BIGINT (type 8): "42" -> 42; a NULL row -> ngx.null
    assert out[0] == "connect|1|nil|5.5.5-10.11.99-Fake"
    assert out[1] == "rows|2|42|userdata: NULL|number"
    assert out[2] == "1"
    assert out[3] == "nil|unsupported protocol version 9|nil|nil"
    assert out[4] == "nil|Too many connections|1129|nil"
