#pragma once
// `cosocket -w N`: a master process that forks N workers, each with its own event loop
// and Lua state, restarts the ones that die abnormally and forwards SIGINT/SIGTERM.
#include <functional>

namespace cosocket {

// Forks n workers; each runs run_worker(id) (id 0..n-1) and exits with its result. The
// master (the caller) restarts a worker that was killed by a signal or exited non-zero,
// under the same id and with a growing delay when it keeps dying within a second of its
// start; a worker that exits 0 stays down. SIGINT/SIGTERM are forwarded to the workers
// (no more restarts after that). Returns when every worker is down: 0 when each one's
// last exit was 0, else the last non-zero status (128+signal for a signal).
int run_workers(int n, const std::function<int(int id)>& run_worker);

}  // namespace cosocket
