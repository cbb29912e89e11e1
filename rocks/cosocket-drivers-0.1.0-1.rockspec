-- One rock for all of cosocket's pure-Lua drivers (resty.redis, resty.mysql,
-- resty.memcached, resty.dns.*, resty.websocket.*, resty.beanstalkd and their shared
-- helpers resty.cosocket.*). They need the cosocket API: run them on `cosocket` or on
-- OpenResty (nginx + ngx_lua). Install from a checkout (docs/packaging.md):
--   luarocks make rocks/cosocket-drivers-0.1.0-1.rockspec [--tree DIR]
-- tests/test_rocks.py checks that every resty/*.lua of the driver folders is listed here.
rockspec_format = "3.0"
package = "cosocket-drivers"
version = "0.1.0-1"
source = {
   url = "git+https://example.invalid/cosocket.git",  -- no public repository yet: `luarocks make`
   tag = "v0.1.0",
}
description = {
   summary = "Pure-Lua lua-resty drivers (redis, mysql, memcached, dns, websocket, beanstalkd)",
   detailed = [[
The drivers bundled with cosocket, written against OpenResty's cosocket API
(ngx.socket.tcp/udp, ngx.thread, ngx.timer). They run unchanged on the cosocket
command (no nginx) and inside nginx + ngx_lua (OpenResty). LuaJIT is required
(they use bit and ffi).
]],
   license = "BSD-2-Clause",
   labels = { "openresty", "cosocket", "redis", "mysql", "memcached", "dns", "websocket" },
}
dependencies = {
   "lua >= 5.1",
}
build = {
   type = "builtin",
   modules = {
      ["resty.beanstalkd"]         = "beanstalkd/resty/beanstalkd.lua",
      ["resty.dns.client"]         = "dns/resty/dns/client.lua",
      ["resty.dns.resolver"]       = "dns/resty/dns/resolver.lua",
      ["resty.cosocket.bytes"]     = "drivers/resty/cosocket/bytes.lua",
      ["resty.cosocket.driver"]    = "drivers/resty/cosocket/driver.lua",
      ["resty.memcached"]          = "memcached/resty/memcached.lua",
      ["resty.memcached.ring"]     = "memcached/resty/memcached/ring.lua",
      ["resty.mysql"]              = "mysql/resty/mysql.lua",
      ["resty.mysql.auth"]         = "mysql/resty/mysql/auth.lua",
      ["resty.mysql.binary"]       = "mysql/resty/mysql/binary.lua",
      ["resty.mysql.crypto"]       = "mysql/resty/mysql/crypto.lua",
      ["resty.mysql.ed25519"]      = "mysql/resty/mysql/ed25519.lua",
      ["resty.mysql.handshake"]    = "mysql/resty/mysql/handshake.lua",
      ["resty.mysql.packet"]       = "mysql/resty/mysql/packet.lua",
      ["resty.mysql.prepared"]     = "mysql/resty/mysql/prepared.lua",
      ["resty.mysql.quote"]        = "mysql/resty/mysql/quote.lua",
      ["resty.mysql.result"]       = "mysql/resty/mysql/result.lua",
      ["resty.mysql.stmt_cache"]   = "mysql/resty/mysql/stmt_cache.lua",
      ["resty.redis"]              = "redis/resty/redis.lua",
      ["resty.redis.cluster"]      = "redis/resty/redis/cluster.lua",
      ["resty.redis.sentinel"]     = "redis/resty/redis/sentinel.lua",
      ["resty.websocket.client"]   = "websocket/resty/websocket/client.lua",
      ["resty.websocket.conn"]     = "websocket/resty/websocket/conn.lua",
      ["resty.websocket.deflate"]  = "websocket/resty/websocket/deflate.lua",
      ["resty.websocket.protocol"] = "websocket/resty/websocket/protocol.lua",
      ["resty.websocket.server"]   = "websocket/resty/websocket/server.lua",
   },
}
