#pragma once
// The pids of the `-w N` worker processes, in one shared mapping that the master writes
// (at each fork and each exit) and every worker reads: ngx.worker.pids().
#include <sys/types.h>

#include <vector>

namespace cosocket {

// Master, before the first fork: room for n workers, all "not running".
void worker_table_init(int n);
// Master: worker id now runs as pid (0: it is gone).
void worker_table_set(int id, pid_t pid);
// The running workers' pids in worker-id order; without workers, this process's pid.
std::vector<pid_t> worker_table_pids();

}  // namespace cosocket
