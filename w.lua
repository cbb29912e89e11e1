BENCH = {port = 45893, conc = 1, ops = 1000}
package.path = "/tmp/wt-drivers/bench/lua/?.lua;/tmp/wt-drivers/beanstalkd/?.lua;" .. package.path
assert(loadfile("/tmp/wt-drivers/bench/beanstalkd/bs.lua"))()
