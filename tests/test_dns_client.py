"""resty.dns.client (dns/resty/dns/client.lua): the caching stub resolver.

Real answers come from Knot (`knot` fixture); counting and TTL tests use dnslib stub servers
(tests/helpers/stub_dns.py) whose query log shows what went on the wire. resolv.conf and hosts
are temp files (the paths are options of client.new).
"""
import time

from helpers.stub_dns import StubDNS
from test_dns_resolver import UdpResponder, good_a, lua, parse_query


def files(tmp_path, resolv, hosts=""):
    (tmp_path / "resolv.conf").write_text(resolv)
    (tmp_path / "hosts").write_text(hosts)
    return tmp_path / "resolv.conf", tmp_path / "hosts"


NEW = """
local client = require "resty.dns.client"
local c = assert(client.new{resolv_conf = "@RC@", hosts = "@HOSTS@"})
local function A(recs, err)
  if not recs then print("ERR " .. err) return end
  local t = {}
  for _, r in ipairs(recs) do t[#t + 1] = r.address or r.target or r.type end
  print(table.concat(t, ","))
end
"""


def run(run_lua_ok, tmp_path, resolv, code, hosts="", **subs):
    rc, h = files(tmp_path, resolv, hosts)
    return lua(run_lua_ok, NEW + code, RC=rc, HOSTS=h, **subs)


def test_parse_resolv_conf_and_hosts(run_lua_ok, tmp_path):
    out = run(run_lua_ok, tmp_path, """# comment
domain ignored.example
nameserver 10.0.0.1
nameserver fe80::1%eth0   ; zone id dropped
search Corp.Example. example.org
options ndots:3 timeout:7 attempts:9 rotate
""", """
local conf = client.parse_resolv_conf("@RC@")
P(table.concat(conf.nameservers, " "), table.concat(conf.search, " "), conf.ndots,
  conf.timeout, conf.attempts, conf.rotate)
local h = client.parse_hosts("@HOSTS@")
P(h["myhost"].ipv4, h["myhost"].ipv6, h["alias.local"].ipv4, h["other"].ipv4, h["commented"])
P(client.parse_resolv_conf("/nonexistent/resolv.conf"))
""", hosts="""127.0.0.1 localhost
10.1.1.1  MyHost alias.local # trailing comment
10.1.1.2  myhost other
::5 myhost
# 10.9.9.9 commented
""")
    assert out[0] == "10.0.0.1 fe80::1 corp.example example.org 3 7 5 true"
    assert out[1] == "10.1.1.1 ::5 10.1.1.1 10.1.1.2 nil"
    assert out[2].startswith("nil /nonexistent/resolv.conf")


def test_resolve_a_aaaa_cname_and_errors(run_lua_ok, tmp_path, knot):
    out = run(run_lua_ok, tmp_path, f"nameserver {knot.host}\n", f"""
c = assert(client.new{{resolv_conf = "@RC@", hosts = "@HOSTS@",
                      nameservers = {{{{"{knot.host}", {knot.port}}}}}}})
A(c:resolve("dual.cosocket.test"))
A(c:resolve("chain.cosocket.test"))
A(c:resolve("v6.cosocket.test"))
A(c:resolve("dangling.cosocket.test"))
A(c:resolve("nope.cosocket.test"))
A(c:resolve("cosocket.test", {{qtype = c.TYPE_SRV}}))
A(c:resolve("_sip._tcp.cosocket.test", {{qtype = c.TYPE_SRV}}))
P(c:toip("www.cosocket.test"), c:toip("www.cosocket.test"), c:toip("www.cosocket.test"))
A(c:resolve("10.2.3.4"))
P(c.stats.queries)
A(c:resolve("chain.cosocket.test"))
P(c.stats.queries, c.stats.hits)
""")
    assert out == ["127.0.0.2,2001:db8:0:0:0:0:0:2",
                   "127.0.0.10,127.0.0.11",
                   "0:0:0:0:0:0:0:1",
                   "ERR dangling.cosocket.test: name error",
                   "ERR nope.cosocket.test: name error",
                   "ERR cosocket.test: no records",
                   "sip1.cosocket.test,sip2.cosocket.test",
                   "127.0.0.10 127.0.0.11 127.0.0.10",
                   "10.2.3.4",
                   "14", "127.0.0.10,127.0.0.11", "14 6"]


def test_hosts_file_wins_and_search_domains_with_ndots(run_lua_ok, tmp_path, stub_dns):
    stub_dns.add("app.corp.test", "A", "10.0.0.7")
    stub_dns.add("a.b.corp.test", "A", "10.0.0.8")
    stub_dns.add("a.b", "A", "10.0.0.9")
    stub_dns.add("x.y.z", "A", "10.0.0.10")
    out = run(run_lua_ok, tmp_path, f"""nameserver 127.0.0.1
search corp.test cosocket.test
options ndots:2
""", f"""
c = assert(client.new{{resolv_conf = "@RC@", hosts = "@HOSTS@",
                      nameservers = {{{{"127.0.0.1", {stub_dns.port}}}}}}})
A(c:resolve("www.cosocket.test"))
A(c:resolve("app", {{qtype = c.TYPE_A}}))
A(c:resolve("a.b", {{qtype = c.TYPE_A}}))
A(c:resolve("a.b.", {{qtype = c.TYPE_A}}))
A(c:resolve("x.y.z", {{qtype = c.TYPE_A}}))
A(c:resolve("zzz", {{qtype = c.TYPE_A}}))
""", hosts="192.0.2.5 www.cosocket.test\n")
    assert out == ["192.0.2.5", "10.0.0.7", "10.0.0.8", "10.0.0.9", "10.0.0.10",
                   "ERR zzz.corp.test: name error"]
    # hosts: no query; "app" (0 dots < 2) and "a.b" (1 dot): search list first; "a.b."
    # absolute: as is only; "x.y.z" (2 dots): as is first; "zzz": both domains then as is
    assert stub_dns.names() == ["app.corp.test", "a.b.corp.test", "a.b", "x.y.z",
                                "zzz.corp.test", "zzz.cosocket.test", "zzz"]


def test_ttl_expiry_and_negative_caching(run_lua_ok, tmp_path):
    stub = StubDNS(ttl=1)
    try:
        out = run(run_lua_ok, tmp_path, "nameserver 127.0.0.1\n", f"""
c = assert(client.new{{resolv_conf = "@RC@", hosts = "@HOSTS@", stale_ttl = 0,
                      nameservers = {{{{"127.0.0.1", {stub.port}}}}}}})
for _ = 1, 3 do A(c:resolve("www.cosocket.test", {{qtype = c.TYPE_A}})) end
for _ = 1, 3 do A(c:resolve("gone.cosocket.test", {{qtype = c.TYPE_A}})) end
P(c.stats.queries)
ngx.sleep(1.1)
A(c:resolve("www.cosocket.test", {{qtype = c.TYPE_A}}))
A(c:resolve("gone.cosocket.test", {{qtype = c.TYPE_A}}))
P(c.stats.queries)
""")
        names = stub.names()
    finally:
        stub.stop()
    assert out == ["127.0.0.1"] * 3 + ["ERR gone.cosocket.test: name error"] * 3 + ["2"] + \
        ["127.0.0.1", "ERR gone.cosocket.test: name error", "4"]
    assert names == ["www.cosocket.test", "gone.cosocket.test"] * 2


def test_stale_answer_served_while_one_refresh_runs(run_lua_ok, tmp_path):
    stub = StubDNS(ttl=1)
    try:
        out = run(run_lua_ok, tmp_path, "nameserver 127.0.0.1\n", f"""
c = assert(client.new{{resolv_conf = "@RC@", hosts = "@HOSTS@", stale_ttl = 5,
                      nameservers = {{{{"127.0.0.1", {stub.port}}}}}}})
A(c:resolve("www.cosocket.test", {{qtype = c.TYPE_A}}))
ngx.sleep(1.1)
for _ = 1, 5 do A(c:resolve("www.cosocket.test", {{qtype = c.TYPE_A}})) end
P(c.stats.stale, c.stats.queries)
ngx.sleep(0.2)
A(c:resolve("www.cosocket.test", {{qtype = c.TYPE_A}}))
P(c.stats.stale, c.stats.queries, c.stats.hits)
""")
        names = stub.names()
    finally:
        stub.stop()
    assert out == ["127.0.0.1"] * 6 + ["5 1", "127.0.0.1", "5 2 1"]
    assert names == ["www.cosocket.test"] * 2


def test_100_concurrent_identical_queries_coalesce_into_one(run_lua_ok, tmp_path):
    # the server answers after 100 ms, so all 100 threads ask while the query is in flight
    def slow(data):
        time.sleep(0.1)
        return [good_a(*parse_query(data))]
    srv = UdpResponder(slow)
    try:
        out = run(run_lua_ok, tmp_path, "nameserver 127.0.0.1\n", f"""
c = assert(client.new{{resolv_conf = "@RC@", hosts = "@HOSTS@",
                      nameservers = {{{{"127.0.0.1", {srv.port}}}}}}})
local threads = {{}}
for i = 1, 100 do
  threads[i] = ngx.thread.spawn(function()
    local recs = assert(c:resolve("same.test", {{qtype = c.TYPE_A}}))
    return recs[1].address
  end)
end
local got = {{}}
for i = 1, 100 do local ok, a = ngx.thread.wait(threads[i]); got[a] = (got[a] or 0) + 1 end
P(got["127.0.0.9"], c.stats.queries, c.stats.coalesced)
""")
    finally:
        srv.stop()
    assert out == ["100 1 99"]
    assert len(srv.queries) == 1


def test_srv_weighted_selection(run_lua_ok, tmp_path, knot):
    out = run(run_lua_ok, tmp_path, f"nameserver {knot.host}\n", f"""
c = assert(client.new{{resolv_conf = "@RC@", hosts = "@HOSTS@",
                      nameservers = {{{{"{knot.host}", {knot.port}}}}}}})
local recs = assert(c:resolve("_sip._tcp.cosocket.test", {{qtype = c.TYPE_SRV}}))
local n = {{}}
for _ = 1, 1000 do local r = client.pick_srv(recs); n[r.target] = (n[r.target] or 0) + 1 end
P(n["sip1.cosocket.test"], n["sip2.cosocket.test"])
-- same priority: weights 60/40 (pick from a fake group)
local g = {{{{type = 33, priority = 1, weight = 60, target = "x"}},
           {{type = 33, priority = 1, weight = 40, target = "y"}},
           {{type = 33, priority = 1, weight = 0, target = "z"}}}}
n = {{}}
for _ = 1, 10000 do local r = client.pick_srv(g); n[r.target] = (n[r.target] or 0) + 1 end
P(n.x > 5600 and n.x < 6400, n.y > 3600 and n.y < 4400, n.z)
P(client.pick_srv({{}}))
""")
    assert out == ["1000 nil", "true true nil", "nil no SRV records"]
