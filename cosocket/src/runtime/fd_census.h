#pragma once
// The process's open file descriptors, for the leak check at exit: with
// COSOCKET_CHECK_LEAKS=1 in the environment, a runtime notes the descriptors open when it
// starts and, once it has closed its Lua state, its pools and its resolver, reports on
// stderr every other one still open ("cosocket: leak check: ..."). The test suite runs
// every process that way and fails a test whose process reports.
#include <set>
#include <string>

namespace cosocket {

// The descriptors open now (from /proc/self/fd, without the one used to read it).
std::set<int> open_fds();

// What fd is: its /proc/self/fd link ("socket:[123]", "/dev/null", "anon_inode:[eventfd]").
std::string describe_fd(int fd);

// The report line for the descriptors open now and not in `at_start`; "" when none.
std::string leaked_fds_report(const std::set<int>& at_start);

}  // namespace cosocket
