"""resty.memcached (issue 5): the lua-resty-memcached API, the meta commands and faults.

Protocol behaviour runs against the real memcached (the session `memcached` fixture, plus
private servers started here for the unix socket and the item-size limit); the fake server
is used only for faults (truncated or garbage replies, stalls, a server dying mid-reply).
Every test uses its own key prefix, so the shared server needs no flushing between tests.
"""
import os
import socket
import subprocess
import time

import pytest

import services
from helpers.socket_lua import lua

MC = r'''
local memcached = require "resty.memcached"
local function C(port, opts)
  local m = assert(memcached:new(opts))
  m:set_timeout(2000)
  local ok, err = m:connect("127.0.0.1", port or @PORT@)
  assert(ok, err)
  return m
end
local function sorted_keys(t)
  local ks = {}
  for k in pairs(t) do ks[#ks + 1] = k end
  table.sort(ks)
  return ks
end
local function MF(r, e)   -- a meta result on one line: status|value|flags sorted
  if not r then P("nil", e) return end
  local t = {}
  for k, v in pairs(r.flags) do t[#t + 1] = k .. "=" .. tostring(v) end
  table.sort(t)
  P(r.status, r.value, table.concat(t, " "))
end
'''


def mc(run_lua_ok, code, port, subst=None, **kw):
    s = {"PORT": port}
    s.update(subst or {})
    return lua(run_lua_ok, MC + code, s, **kw)


class Private:
    """A memcached of our own (the unix-socket one, small item limits)."""

    def __init__(self, args, unix_path=None, port=None):
        self.port = port if unix_path is None else None
        self.path = unix_path
        argv = ["memcached", "-U", "0", "-m", "16"] + args
        if unix_path:
            argv += ["-s", unix_path, "-a", "0700"]
        else:
            self.port = self.port or services.free_port()
            argv += ["-l", "127.0.0.1", "-p", str(self.port)]
        if os.geteuid() == 0:
            argv += ["-u", "root"]
        self.argv = argv
        self.start()

    def start(self):
        self.proc = subprocess.Popen(["setpriv", "--pdeathsig", "KILL", "--"] + self.argv,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.ping():
                return
            time.sleep(0.01)
        self.stop()
        raise RuntimeError(f"memcached {self.argv} did not start")

    def ping(self):
        try:
            if self.path:
                s = socket.socket(socket.AF_UNIX)
                s.settimeout(1)
                s.connect(self.path)
            else:
                s = socket.create_connection(("127.0.0.1", self.port), timeout=1)
            with s:
                s.sendall(b"version\r\n")
                return s.recv(100).startswith(b"VERSION")
        except OSError:
            return False

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None


# --------------------------------------------------------------------------
# storage and retrieval

def test_set_get_add_replace_append_prepend(run_lua_ok, memcached):
    out = mc(run_lua_ok, r'''
local m = C()
P(m:set("sg:dog", "animal", 0, 42))
P(m:get("sg:dog"))
P(m:get("sg:missing"))
P(m:add("sg:dog", "x"))
P(m:add("sg:cat", "meow", 0, 3))
P(m:replace("sg:dog", "hound"))
P(m:replace("sg:nope", "x"))
P(m:append("sg:dog", "!"))
P(m:prepend("sg:dog", "big "))
P(m:append("sg:nope", "x"))
P(m:get("sg:dog"))
P(m:set("sg:tab", {"a ", {"kind", " of"}, " animal"}))   -- an array of pieces
P(m:get("sg:tab"))
P(m:set("sg:num", 32))
P(m:get("sg:num"))
P(m:set("sg:empty", ""))
P(m:get("sg:empty"))
P(type(select(2, m:get("sg:dog"))))
''', memcached.port)
    assert out == ["1", "animal|42|nil", "nil|nil|nil", "nil|NOT_STORED", "1", "1",
                   "nil|NOT_STORED", "1", "1", "nil|NOT_STORED", "big hound!|0|nil",
                   "1", "a kind of animal|0|nil", "1", "32|0|nil", "1", "|0|nil", "number"]


def test_wire_format_of_a_set_with_pieces(run_lua_ok, fake_server):
    # the exact request bytes (escaped key, flags, exptime, length, pieces unjoined)
    srv = fake_server([("expect", b"set a%20b 7 30 16\r\na kind of animal\r\n"),
                       ("reply", b"STORED\r\n"),
                       ("expect", b"get a%20b\r\n"),
                       ("reply", b"VALUE a%20b 7 3\r\nxyz\r\nEND\r\n"), ("stall",)])
    out = mc(run_lua_ok, r'''
local m = C()
P(m:set("a b", {"a ", {"kind of"}, " animal"}, 30, 7))
P(m:get("a b"))
''', srv.port)
    assert out == ["1", "xyz|7|nil"]


def test_binary_values(run_lua_ok, memcached):
    out = mc(run_lua_ok, r'''
local m = C()
local all = {}
for i = 0, 255 do all[#all + 1] = string.char(i) end
all = table.concat(all)
local v = "a\r\nEND\r\nVALUE x 0 1\r\n" .. all .. "\r\n\0"
P(m:set("bin:v", v, 0, 65535))
local got, flags = m:get("bin:v")
P(got == v, #got, flags)
local r = m:get{"bin:v", "bin:none"}
P(r["bin:v"][1] == v, r["bin:none"])
P(m:get("bin:v") == v)   -- the connection stayed in step
''', memcached.port)
    assert out == ["1", "true|%d|65535" % (21 + 256 + 3), "true|nil", "true"]


def test_one_megabyte_value_and_the_item_size_limit(run_lua_ok, memcached):
    out = mc(run_lua_ok, r'''
local m = C()
local big = string.rep("0123456789abcdef", 62500)       -- 1,000,000 bytes
P(m:set("big:1m", big))
local v = m:get("big:1m")
P(#v, v == big)
local r = m:get{"big:1m", "big:x"}
P(#r["big:1m"][1])
-- over the server's 1 MB item limit: the server's words, and the connection stays usable
P(m:set("big:2m", string.rep("x", 2 * 1024 * 1024)))
P(m:get("big:2m"))
P(m:set("big:after", "ok"))
P(m:get("big:after"))
P(m:set_keepalive())
''', memcached.port)
    assert out == ["1", "1000000|true", "1000000", "nil|SERVER_ERROR object too large for cache",
                   "nil|nil|nil", "1", "ok|0|nil", "1"]


def test_multi_get_of_1000_keys(run_lua_ok, memcached):
    out = mc(run_lua_ok, r'''
local m = C()
m:init_pipeline(1000)
local keys = {}
for i = 1, 1000 do
  keys[i] = "mg:" .. i
  m:set(keys[i], "value " .. i, 0, i)
end
local res = assert(m:commit_pipeline())
local stored = 0
for i = 1, #res do if res[i][1] == 1 then stored = stored + 1 end end
P(#res, stored)
keys[1001] = "mg:missing"
keys[1002] = "mg:with space"
local r = assert(m:get(keys))
local n, bad = 0, 0
for k, v in pairs(r) do
  n = n + 1
  local i = tonumber(k:match("^mg:(%d+)$"))
  if not i or v[1] ~= "value " .. i or v[2] ~= i then bad = bad + 1 end
end
P(n, bad, r["mg:missing"])
local g = assert(m:gets{"mg:1", "mg:2"})
P(#g["mg:1"], g["mg:1"][1], type(g["mg:1"][3]), g["mg:1"][3] ~= g["mg:2"][3])
P(next(m:get{}))
''', memcached.port)
    assert out == ["1000|1000", "1000|0|nil", "3|value 1|string|true", "nil"]


def test_gets_and_cas_conflicts(run_lua_ok, memcached):
    out = mc(run_lua_ok, r'''
local a, b = C(), C()
P(a:set("cas:k", "v1", 0, 5))
local v, f, cas, err = a:gets("cas:k")
P(v, f, cas:match("^%d+$") ~= nil, err)
P(b:set("cas:k", "changed"))          -- someone else updates it
P(a:cas("cas:k", "mine", cas))         -- conflict
local v2, f2, cas2 = a:gets("cas:k")
P(v2, cas2 ~= cas)
P(a:cas("cas:k", "mine", cas2, 0, 9))
P(a:get("cas:k"))
P(a:cas("cas:gone", "x", cas2))
P(a:gets("cas:gone"))
P(a:cas("cas:k", "x", "12abc"))
''', memcached.port)
    assert out == ["1", "v1|5|true|nil", "1", "nil|EXISTS", "changed|true", "1", "mine|9|nil",
                   "nil|NOT_FOUND", "nil|nil|nil|nil", "nil|bad cas_unique"]


def test_incr_decr_touch_delete(run_lua_ok, memcached):
    out = mc(run_lua_ok, r'''
local m = C()
P(m:set("num:n", 10))
P(m:incr("num:n", 5))
P(m:decr("num:n", 3))
P(m:decr("num:n", 100))      -- memcached stops at 0
P(m:incr("num:gone", 1))
P(m:set("num:s", "text"))
P(m:incr("num:s", 1))
P(m:incr("num:n", "x"))
P(m:incr("num:n", "18446744073709551615"))
P(m:touch("num:n", 100))
P(m:touch("num:gone", 100))
P(m:delete("num:n"))
P(m:delete("num:n"))
P(m:get("num:n"))
''', memcached.port)
    assert out == ["1", "15", "12", "0", "nil|NOT_FOUND", "1",
                   "nil|CLIENT_ERROR cannot increment or decrement non-numeric value",
                   "nil|bad delta: x", "18446744073709551615", "1", "nil|NOT_FOUND", "1",
                   "nil|NOT_FOUND", "nil|nil|nil"]


def test_expiry_and_touch(run_lua_ok, memcached):
    out = mc(run_lua_ok, r'''
local m = C()
P(m:set("exp:short", "v", 1))
P(m:set("exp:touched", "v", 1))
P(m:touch("exp:touched", 100))
P(m:get("exp:short"))
ngx.sleep(2.1)
P(m:get("exp:short"))
P(m:get("exp:touched"))
''', memcached.port)
    assert out == ["1", "1", "1", "v|0|nil", "nil|nil|nil", "v|0|nil"]


def test_stats_version_verbosity_flush_all(run_lua_ok):
    srv = Private([])
    try:
        out = mc(run_lua_ok, r'''
local m = C()
P(m:version():match("^1%.6%.%d+$") ~= nil)
local st = assert(m:stats())
local names = {}
for _, l in ipairs(st) do names[l:match("^STAT (%S+) ")] = true end
P(#st > 40, names.pid, names.curr_items, names.version)
local slabs = assert(m:stats("settings"))
P(#slabs > 10, slabs[1]:match("^STAT ") ~= nil)
P(m:stats("bogus"))
P(m:verbosity(1))
P(m:verbosity("x"))
P(m:set("fl:a", "1"))
P(m:flush_all())
P(m:get("fl:a"))
P(m:set("fl:b", "1"))
P(m:flush_all(0))
P(m:get("fl:b"))
P(m:version():match("^1%.6") ~= nil)
''', srv.port)
    finally:
        srv.stop()
    assert out == ["true", "true|true|true|true", "true|true", "nil|ERROR", "1",
                   "nil|bad level", "1", "1", "nil|nil|nil", "1", "1", "nil|nil|nil", "true"]


def test_pipeline(run_lua_ok, memcached):
    out = mc(run_lua_ok, r'''
local m = C()
P(m:commit_pipeline())
P(m:init_pipeline())
P(m:set("pl:a", "A", 0, 1))
P(m:get("pl:a"))
P(m:get("pl:none"))
P(m:add("pl:a", "again"))
P(m:incr("pl:a", 1))
P(m:gets("pl:a"))
P(m:get{"pl:a", "pl:none"})
P(m:delete("pl:a"))
P(m:set_keepalive())                 -- refused while commands are queued
local res = assert(m:commit_pipeline())
P(#res)
for i = 1, #res do
  local r = res[i]
  local t = {}
  for j = 1, r.n do t[j] = type(r[j]) == "table" and "table" or tostring(r[j]) end
  P(i, table.concat(t, ","))
end
P(res[7][1]["pl:a"][1], res[7][1]["pl:none"])
-- cancel: nothing is sent
m:init_pipeline()
m:set("pl:cancel", "x")
m:cancel_pipeline()
P(m:get("pl:cancel"))
P(m:commit_pipeline())
P(m:set_keepalive())
''', memcached.port)
    assert out[17].startswith("6|A,1,") and out[17][6:].isdigit()  # gets: value, flags, cas
    out[17] = "6|A,1,CAS"
    assert out == ["nil|no pipeline", "1", "true", "true", "true", "true", "true", "true", "true",
                   "true", "nil|pipeline not committed", "8",
                   "1|1", "2|A,1", "3|nil,nil,nil", "4|nil,NOT_STORED",
                   "5|nil,CLIENT_ERROR cannot increment or decrement non-numeric value",
                   "6|A,1,CAS", "7|table", "8|1", "A|nil",
                   "nil|nil|nil", "nil|no pipeline", "1"]


def test_keys_are_checked_before_sending(run_lua_ok, fake_server):
    # only the version command reaches the server; bad keys never do
    srv = fake_server([("expect", b"version\r\n"), ("reply", b"VERSION 1.6.18\r\n"), ("stall",)])
    out = mc(run_lua_ok, r'''
local raw = {function(k) return k end, function(k) return k end}
local m = C(nil, {key_transform = raw})
P(m:get(string.rep("k", 251)))
P(m:set(string.rep("k", 251), "v"))
P(m:get("bad key"))
P(m:get("bad\r\nkey"))
P(m:set("ctl\1", "v"))
P(m:get{"ok", "new\nline"})
P(m:get(""))
P(m:incr("k\0", 1))
P(m:meta_get("a b", "v"))
P(m:set("k", function() end))
P(m:version())
''', srv.port)
    assert out == ["nil|nil|key too long", "nil|key too long",
                   "nil|nil|bad key: control character or space",
                   "nil|nil|bad key: control character or space",
                   "nil|bad key: control character or space",
                   "nil|bad key: control character or space", "nil|nil|empty key",
                   "nil|bad key: control character or space",
                   "nil|bad key: control character or space", "nil|bad value type: function",
                   "1.6.18"]


def test_key_transform(run_lua_ok, memcached):
    out = mc(run_lua_ok, r'''
local m = C()
P(m:set("kt:a b/ü", "v1"))                  -- default: URI escaping, as upstream
P(m:get("kt:a b/ü"))
local r = m:get{"kt:a b/ü"}
P(sorted_keys(r)[1])
local up = {function(k) return k:upper() end, function(k) return k:lower() end}
local u = C(nil, {key_transform = up})
P(u:set("ktupper", "v2"))
P(m:get("KTUPPER"))
P(sorted_keys(u:get{"ktupper"})[1])
P(pcall(memcached.new, memcached, {key_transform = {1, 2}}))
''', memcached.port)
    assert out[:6] == ["1", "v1|0|nil", "kt:a b/ü", "1", "v2|0|nil", "ktupper"]
    assert out[6].startswith("false|") and "key_transform" in out[6]


def test_keepalive_reuse_and_state_gate(run_lua_ok, memcached):
    out = mc(run_lua_ok, r'''
local m = C()
P(m:get_reused_times())
P(m:set("ka:k", "v"))
P(m:set_keepalive(10000, 10))
P(m:get("ka:k"))                        -- the object is closed now
P(m:set_keepalive())
local m2 = C()
P(m2:get_reused_times())                -- from the pool
P(m2:get("ka:k"))
P(m2:quit())                             -- the server closes it: never pooled
P(m2:set_keepalive())
local m3 = C()
P(m3:get_reused_times())
P(m3:close())
P(m3:get("ka:k"))
local n = memcached.new()                -- new() without self works too
P(type(n))
P(memcached:new():get("ka:k"))            -- not connected
''', memcached.port)
    assert out == ["0", "1", "1", "nil|nil|closed", "nil|closed", "1", "v|0|nil", "1",
                   "nil|closed", "0", "1", "nil|nil|closed", "table", "nil|nil|closed"]


def test_set_timeout_and_set_timeouts(run_lua_ok, memcached):
    out = mc(run_lua_ok, r'''
local m = assert(memcached:new())
P(m:set_timeouts(500, 500, 500))
P(m:connect("127.0.0.1", @PORT@))
P(m:set_timeout(1000))
P(m:version() ~= nil)
P(m:sslhandshake())
''', memcached.port)
    assert out[:4] == ["1", "1", "1", "true"]
    # a TLS handshake with a plain memcached fails: nil, err (TLS itself: test_memcached_tls.py)
    assert out[4].startswith("nil|")


def test_unix_socket(run_lua_ok, tmp_path):
    path = str(tmp_path / "mc.sock")
    srv = Private([], unix_path=path)
    try:
        out = mc(run_lua_ok, r'''
local m = assert(memcached:new())
m:set_timeout(1000)
P(m:connect("unix:@SOCK@"))
P(m:set("ux:k", "over unix"))
P(m:get("ux:k"))
P(m:set_keepalive())
local m2 = assert(memcached:new())
P(m2:connect("unix:@SOCK@"))
P(m2:get_reused_times())
''', None, {"SOCK": path})
    finally:
        srv.stop()
    assert out == ["1", "1", "over unix|0|nil", "1", "1", "1"]


def test_fifty_light_threads_share_a_pool(run_lua_ok, memcached):
    out = mc(run_lua_ok, r'''
local bad, reused = 0, 0
local threads = {}
for t = 1, 50 do
  threads[t] = ngx.thread.spawn(function()
    for i = 1, 20 do
      local m = C()
      if m:get_reused_times() > 0 then reused = reused + 1 end
      local k = "lt:" .. t .. ":" .. i
      if not m:set(k, k) or m:get(k) ~= k then bad = bad + 1 end
      assert(m:set_keepalive(10000, 20))
    end
  end)
end
for t = 1, 50 do assert(ngx.thread.wait(threads[t])) end
P(bad, reused > 500)
''', memcached.port)
    assert out == ["0|true"]


# --------------------------------------------------------------------------
# meta commands

def test_meta_get_set_flags(run_lua_ok, memcached):
    out = mc(run_lua_ok, r'''
local m = C()
MF(m:meta_noop())
MF(m:meta_set("mt:a", "hello world", {"T60", "F7"}))
MF(m:meta_get("mt:a", "v f t s k Oab"))
local r = m:meta_get("mt:a", "c")
P(r.status, r.value, r.flags.c:match("^%d+$") ~= nil)
MF(m:meta_get("mt:none", "v"))
MF(m:meta_get("mt:none", "v q"))          -- quiet: the miss is suppressed
MF(m:meta_get("mt:a", "v q"))             -- quiet: a hit still answers
MF(m:meta_set("mt:a", "x", {"C" .. (tonumber(r.flags.c) + 1000)}))   -- wrong cas
MF(m:meta_set("mt:a", "new", {"C" .. r.flags.c}))
MF(m:meta_set("mt:a", "+", "MA"))             -- append mode
MF(m:meta_set("mt:a", "-", "MP q"))           -- prepend, quiet
MF(m:meta_get("mt:a", "v"))
MF(m:meta_set("mt:b", "x", "ME"))             -- add mode
MF(m:meta_set("mt:b", "y", "ME"))
MF(m:meta_set("mt:nope", "y", "MR"))          -- replace a missing key
MF(m:meta_set("mt:pieces", {"a", {"b", "c"}}, "c"))
MF(m:meta_get("mt:pieces", "v"))
MF(m:meta_delete("mt:b"))
MF(m:meta_delete("mt:b"))
MF(m:meta_delete("mt:pieces", "q"))
MF(m:meta_get("mt:pieces", "v"))
P(m:get("mt:a"))          -- classic and meta commands see the same keys
''', memcached.port)
    assert out[15].startswith("HD|nil|c=") and out[15][9:].isdigit()
    out[15] = "HD|nil|c=N"
    assert out == ["MN|nil|", "HD|nil|", "VA|hello world|O=ab f=7 k=mt:a s=11 t=60",
                   "HD|nil|true", "EN|nil|", "EN|nil|", "VA|hello world|", "EX|nil|", "HD|nil|",
                   "HD|nil|", "HD|nil|", "VA|-new+|", "HD|nil|", "NS|nil|", "NS|nil|",
                   "HD|nil|c=N", "VA|abc|", "HD|nil|", "NF|nil|", "HD|nil|", "EN|nil|",
                   "-new+|0|nil"]


def test_meta_value_with_crlf_and_flags(run_lua_ok, memcached):
    # exact flags of a VA reply with a value holding CR LF
    out = mc(run_lua_ok, r'''
local m = C()
m:meta_set("mv:a", "x\r\ny", {"T60", "F7"})
local r = m:meta_get("mv:a", "v f t s k Oab")
Q(r.status, r.value, r.flags.f, r.flags.t, r.flags.s, r.flags.k, r.flags.O)
local q = m:meta_get("mv:a", "v q")
Q(q.status, q.value)
''', memcached.port)
    assert out == ['"VA"|"x\\013\\010y"|"7"|"60"|"4"|"mv:a"|"ab"', '"VA"|"x\\013\\010y"']


def test_meta_arithmetic_and_base64_keys(run_lua_ok, memcached):
    out = mc(run_lua_ok, r'''
local m = C()
MF(m:meta_arithmetic("ma:none", "v"))
MF(m:meta_arithmetic("ma:c", "N0 J10 v"))      -- auto-create with 10
MF(m:meta_arithmetic("ma:c", "D5 v"))
MF(m:meta_arithmetic("ma:c", "MD D3 v"))
MF(m:meta_arithmetic("ma:c", "q"))
MF(m:meta_get("ma:c", "v"))
m:set("ma:s", "text")
MF(m:meta_arithmetic("ma:s", "v"))
-- base64 keys: the driver encodes; binary keys work
local bkey = "bin\0key with spaces\r\n"
MF(m:meta_set(bkey, "binval", "b"))
local r = m:meta_get(bkey, "b v k")
Q(r.status, r.value, r.flags.k, r.flags.b)
MF(m:meta_get("other", "b v"))
MF(m:meta_delete(bkey, "b"))
MF(m:meta_get(bkey, "b v"))
P(m:meta_get("ma:c", "v !"))
P(m:meta_get("ma:c", "zz"))
MF(m:meta_noop())      -- still in step after the server's error
''', memcached.port)
    assert out == ["NF|nil|", "VA|10|", "VA|15|", "VA|12|", "HD|nil|", "VA|13|",
                   "nil|CLIENT_ERROR cannot increment or decrement non-numeric value",
                   "HD|nil|", '"VA"|"binval"|"bin\\000key with spaces\\013\\010"|true', "EN|nil|",
                   "HD|nil|", "EN|nil|", "nil|bad meta flag: !", "nil|CLIENT_ERROR invalid flag",
                   "MN|nil|"]


def test_meta_stale_while_revalidate(run_lua_ok, memcached):
    # invalidate -> the first reader wins the recache (W), others see stale (X, Z) until set
    out = mc(run_lua_ok, r'''
local m = C()
MF(m:meta_set("sw:k", "old", "T60"))
MF(m:meta_delete("sw:k", "I T30"))
local a = m:meta_get("sw:k", "v c")
P(a.status, a.value, a.flags.W, a.flags.X, a.flags.Z)
local b = m:meta_get("sw:k", "v")
P(b.status, b.value, b.flags.W, b.flags.X, b.flags.Z)
MF(m:meta_set("sw:k", "new", {"T60", "C" .. a.flags.c}))
MF(m:meta_get("sw:k", "v"))
-- vivify on miss: the first gets W, the next Z
MF(m:meta_get("sw:viv", "v N30"))
MF(m:meta_get("sw:viv", "v N30"))
''', memcached.port)
    assert out == ["HD|nil|", "HD|nil|", "VA|old|true|true|nil", "VA|old|nil|true|true",
                   "HD|nil|", "VA|new|", "VA||W=true", "VA||Z=true"]


# --------------------------------------------------------------------------
# faults (fake server)

def test_truncated_value_closes_and_stays_closed(run_lua_ok, fake_server):
    srv = fake_server([("read_until", b"\r\n"), ("reply", b"VALUE k 0 10\r\nabc"), ("close",)])
    out = mc(run_lua_ok, r'''
local m = C()
P(m:get("k"))
P(m:get("k"))                    -- sticky: no use of a connection in an unknown state
P(m:set_keepalive())
''', srv.port)
    assert out[0] == "nil|nil|closed"
    assert out[1] == "nil|nil|connection closed after error: closed"
    assert out[2] == "nil|connection closed after error: closed"


def test_huge_length_is_refused_without_allocating(run_lua_ok, fake_server):
    srv = fake_server([("read_until", b"\r\n"), ("reply", b"VALUE k 0 999999999\r\nabc"),
                       ("stall",)])
    t0 = time.monotonic()
    out = mc(run_lua_ok, r'''
local m = C()
P(m:get("k"))
P(m:set_keepalive())
P(collectgarbage("count") < 10000)
''', srv.port)
    assert out == ["nil|nil|value too large: 999999999 bytes",
                   "nil|connection closed after error: value too large: 999999999 bytes", "true"]
    assert time.monotonic() - t0 < 5


def test_max_value_size_option_and_meta_sizes(run_lua_ok, fake_server):
    srv = fake_server([("read_until", b"\r\n"), ("reply", b"VA 2000 v\r\n"), ("stall",)])
    out = mc(run_lua_ok, r'''
local m = C(nil, {max_value_size = 1000})
P(m:meta_get("k", "v"))
''', srv.port)
    assert out == ["nil|bad VA size: VA 2000 v"]


@pytest.mark.parametrize("reply,err", [
    (b"HELLO\r\n", "bad reply: HELLO"),
    (b"VALUE k x 3\r\nabc\r\nEND\r\n", "bad reply: VALUE k x 3"),
    (b"VALUE k 0 3\r\nabcXYEND\r\n", "bad value terminator"),
    (b"VALUE k 0 3\r\nabc\r\nVALUE k 0 3\r\nabc\r\nEND\r\n",
     "bad reply: more than one value for one key"),
])
def test_garbage_replies(run_lua_ok, fake_server, reply, err):
    srv = fake_server([("read_until", b"\r\n"), ("reply", reply), ("stall",)])
    out = mc(run_lua_ok, r'''
local m = C()
P(m:get("k"))
P(m:set_keepalive())
''', srv.port)
    assert out == [f"nil|nil|{err}", f"nil|connection closed after error: {err}"]


@pytest.mark.parametrize("steps,first", [
    # the reply in pieces: the value and its END are read in one receive(n + 7)
    ([("reply", b"VALUE k 7 3\r\nab"), ("delay", 0.05), ("reply", b"c\r\nEN"), ("delay", 0.05),
      ("reply", b"D\r\n")], "abc|7|nil"),
    # a server error after the value: the server's words, the connection stays usable
    ([("reply", b"VALUE k 0 3\r\nabc\r\nSERVER_ERROR busy\r\n")], "nil|nil|SERVER_ERROR busy"),
    # a value ending in CR LF E N D: the data is not mistaken for the end
    ([("reply", b"VALUE k 0 5\r\nEND\r\n\r\nEND\r\n")], r"END\r\n|0|nil"),
])
def test_single_get_reply_in_pieces(run_lua_ok, fake_server, steps, first):
    srv = fake_server([("read_until", b"\r\n"), *steps,
                       ("expect", b"get k\r\n"), ("reply", b"VALUE k 0 2\r\nok\r\nEND\r\n"),
                       ("stall",)])
    out = mc(run_lua_ok, r'''
local m = C()
local v, f, err = m:get("k")
P(v and v:gsub("\r", "\\r"):gsub("\n", "\\n") or v, f, err)
P(m:get("k"))
''', srv.port)
    assert out == [first, "ok|0|nil"]


@pytest.mark.parametrize("steps,err", [
    ([("reply", b"VALUE k 0 3\r\nabc\r\n"), ("close",)], "closed"),
    ([("reply", b"VALUE k 0 3\r\nabcXY"), ("close",)], "bad value terminator"),
    ([("reply", b"VALUE k 0 3\r\nabc\r\nEND\nX")], "bad reply: END (bare LF)"),
    ([("reply", b"VALUE k 0 3\r\nabc\r\nJUNK\r\n")], "bad reply: JUNK"),
])
def test_single_get_bad_endings(run_lua_ok, fake_server, steps, err):
    srv = fake_server([("read_until", b"\r\n"), *steps, ("stall",)])
    out = mc(run_lua_ok, r'''
local m = C()
P(m:get("k"))
P(m:set_keepalive())
''', srv.port)
    assert out == [f"nil|nil|{err}", f"nil|connection closed after error: {err}"]


@pytest.mark.parametrize("reply,call,err", [
    # found by tests/test_fuzz.py (seed 21, cases 50, 82, 70, 155): the line that answers the
    # second command is not one of its replies -- the connection is out of step (the real
    # reply is still coming) and must not be pooled
    (b"STORED\r\n\r\n", 'm:set("b", "2")', "bad reply: "),
    (b"STORED\r\nORED\r\n", 'm:set("b", "2")', "bad reply: ORED"),
    (b"STORED\r\nEND\r\n", 'm:incr("b", 1)', "bad reply: END"),
    (b"STORED\r\n\r\n", "m:version()", "bad reply: "),
    (b"STORED\r\nSTORED\r\n", 'm:delete("b")', "bad reply: STORED"),
])
def test_one_line_reply_out_of_step_closes(run_lua_ok, fake_server, reply, call, err):
    srv = fake_server([("read_until", b"\r\n1\r\n"), ("reply", reply), ("read_until", b"\r\n"),
                       ("reply", b"STORED\r\n"), ("stall",)])
    out = mc(run_lua_ok, f'''
local m = C()
P(m:set("a", "1"))
P({call})
P(m:set_keepalive())
''', srv.port)
    assert out == ["1", f"nil|{err}", f"nil|connection closed after error: {err}"]


def test_one_line_reply_words_keep_the_connection(run_lua_ok, fake_server):
    srv = fake_server([("read_until", b"\r\n1\r\n"), ("reply", b"NOT_STORED\r\n"),
                       ("read_until", b"\r\n"), ("reply", b"NOT_FOUND\r\n"),
                       ("read_until", b"\r\n"), ("reply", b"SERVER_ERROR out of memory\r\n"),
                       ("read_until", b"\r\n"), ("reply", b"CLIENT_ERROR bad\r\n"), ("stall",)])
    out = mc(run_lua_ok, '''
local m = C()
P(m:add("a", "1"))
P(m:incr("a", 1))
P(m:delete("a"))
P(m:version())
P(m:set_keepalive())
''', srv.port)
    assert out == ["nil|NOT_STORED", "nil|NOT_FOUND", "nil|SERVER_ERROR out of memory",
                   "nil|CLIENT_ERROR bad", "1"]


def test_garbage_meta_and_stats_replies(run_lua_ok, fake_server):
    srv = fake_server([("read_until", b"\r\n"), ("reply", b"STAT a 1\r\nWHAT\r\n"), ("stall",)])
    out = mc(run_lua_ok, 'local m = C()\nP(m:stats())\n', srv.port)
    assert out == ["nil|bad reply: WHAT"]
    srv2 = fake_server([("read_until", b"\r\n"), ("reply", b"HDX\r\n"), ("stall",)])
    out = mc(run_lua_ok, 'local m = C()\nP(m:meta_get("k", "v"))\n', srv2.port)
    assert out == ["nil|bad reply: HDX"]


def test_stalled_server_times_out_and_is_never_pooled(run_lua_ok, fake_server):
    srv = fake_server([("read_until", b"\r\n"), ("reply", b"VALUE k 0 5\r\nab"), ("stall",)])
    out = mc(run_lua_ok, r'''
local m = C()
m:set_timeout(200)
local t0 = ngx.now()
P(m:get("k"))
P(m:set_keepalive())
local m2 = C()
m2:set_timeout(200)
P(m2:get_reused_times())        -- a fresh connection, not the timed-out one
P(m2:get("k"))
''', srv.port)
    assert out == ["nil|nil|timeout", "nil|connection closed after error: timeout", "0",
                   "nil|nil|timeout"]
    assert srv.connections == 2


def test_server_dies_mid_multi_get(run_lua_ok, fake_server):
    body = b"".join(b"VALUE k%d 0 5\r\nvalue\r\n" % i for i in range(50))
    srv = fake_server([("read_until", b"\r\n"), ("reply", body + b"VALUE k50 0 5\r\nva"),
                       ("reset",)])
    out = mc(run_lua_ok, r'''
local m = C()
local keys = {}
for i = 0, 99 do keys[#keys + 1] = "k" .. i end
P(m:get(keys))
P(m:set_keepalive())
''', srv.port)
    assert out[0] in ("nil|connection reset by peer", "nil|closed")
    assert out[1].startswith("nil|connection closed after error")


def test_server_error_keeps_the_connection(run_lua_ok, fake_server):
    srv = fake_server([("read_until", b"\r\n"), ("reply", b"SERVER_ERROR out of memory\r\n"),
                       ("read_until", b"\r\n"), ("reply", b"SERVER_ERROR busy\r\n"),
                       ("read_until", b"\r\n"), ("reply", b"END\r\n"),
                       ("read_until", b"\r\n"), ("reply", b"CLIENT_ERROR bad command\r\n"),
                       ("stall",)])
    out = mc(run_lua_ok, r'''
local m = C()
P(m:get("a"))
P(m:get{"a", "b"})
P(m:get("a"))
P(m:set("a", "b"))
P(m:set_keepalive())
''', srv.port)
    assert out == ["nil|nil|SERVER_ERROR out of memory", "nil|SERVER_ERROR busy", "nil|nil|nil",
                   "nil|CLIENT_ERROR bad command", "1"]
