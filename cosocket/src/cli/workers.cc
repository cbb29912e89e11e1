#include "cli/workers.h"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

#include "runtime/log.h"
#include "runtime/output.h"
#include "runtime/runtime.h"
#include "runtime/worker_table.h"

namespace cosocket {

namespace {

constexpr long kQuickDeathMs = 1000;   // a worker that dies sooner is restarted with a delay
constexpr long kFirstBackoffMs = 100;
constexpr long kMaxBackoffMs = 5000;

long now_ms() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

struct Worker {
  int id = 0;
  pid_t pid = 0;          // 0: not running
  long started = 0;
  long backoff = 0;
  long restart_at = -1;   // >= 0: restart due then
  int last_status = 0;
};

std::string describe(int wstatus) {
  if (WIFSIGNALED(wstatus)) return "killed by signal " + std::to_string(WTERMSIG(wstatus));
  return "exited with status " + std::to_string(WEXITSTATUS(wstatus));
}

}  // namespace

int run_workers(int n, const std::function<int(int id)>& run_worker) {
  sigset_t set, old;
  sigemptyset(&set);
  for (int s : {SIGCHLD, SIGINT, SIGTERM}) sigaddset(&set, s);
  sigprocmask(SIG_BLOCK, &set, &old);
  pid_t master = getpid();
  std::vector<Worker> workers(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) workers[static_cast<size_t>(i)].id = i;
  worker_table_init(n);

  auto start = [&](Worker& w) {
    fflush(nullptr);
    pid_t pid = fork();
    if (pid < 0) {
      log_message(kAlert, "fork() failed for worker " + std::to_string(w.id) + ": " + strerror(errno));
      w.backoff = w.backoff ? std::min(w.backoff * 2, kMaxBackoffMs) : kFirstBackoffMs;
      w.restart_at = now_ms() + w.backoff;
      return;
    }
    if (pid == 0) {
      // the worker: its own process group (a terminal's ^C reaches the master only, which
      // forwards it once), gone with the master, signals as usual
      setpgid(0, 0);
      prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (getppid() != master) _exit(1);
      sigprocmask(SIG_SETMASK, &old, nullptr);
      worker_table_set(w.id, getpid());  // before the master gets to it: pids() has itself
      int st = run_worker(w.id);
      fflush(nullptr);
      exit(st);
    }
    w.pid = pid;
    worker_table_set(w.id, pid);
    w.started = now_ms();
    w.restart_at = -1;
  };

  for (auto& w : workers) start(w);
  bool stopping = false;
  for (;;) {
    // reap
    int wstatus = 0;
    pid_t pid;
    while ((pid = waitpid(-1, &wstatus, WNOHANG)) > 0) {
      for (auto& w : workers) {
        if (w.pid != pid) continue;
        w.pid = 0;
        worker_table_set(w.id, 0);
        w.last_status = WIFSIGNALED(wstatus) ? 128 + WTERMSIG(wstatus) : WEXITSTATUS(wstatus);
        bool abnormal = w.last_status != 0;
        std::string what = "worker " + std::to_string(w.id) + " (pid " + std::to_string(pid) + ") " + describe(wstatus);
        if (!abnormal || stopping) {
          log_message(abnormal ? kWarn : kInfo, what);
          break;
        }
        long t = now_ms();
        if (t - w.started < kQuickDeathMs) {
          w.backoff = w.backoff ? std::min(w.backoff * 2, kMaxBackoffMs) : kFirstBackoffMs;
        } else {
          w.backoff = 0;
        }
        w.restart_at = t + w.backoff;
        log_message(kAlert, what + ", restarting it" +
                                (w.backoff ? " in " + std::to_string(w.backoff) + " ms" : std::string()));
      }
    }
    // restarts that are due; the next wake-up
    long t = now_ms();
    long wait_ms = 1000;
    bool any = false;
    for (auto& w : workers) {
      if (w.pid == 0 && w.restart_at >= 0 && !stopping) {
        if (w.restart_at <= t) start(w);
        else wait_ms = std::min(wait_ms, w.restart_at - t);
      }
      if (w.pid != 0 || (w.restart_at >= 0 && !stopping)) any = true;
    }
    if (!any) break;
    timespec ts{wait_ms / 1000, (wait_ms % 1000) * 1000000L};
    siginfo_t info{};
    int sig = sigtimedwait(&set, &info, &ts);
    if (sig == SIGINT || sig == SIGTERM) {
      if (!stopping) log_message(kNotice, "signal " + std::to_string(sig) + " received, stopping the workers");
      stopping = true;
      for (auto& w : workers) {
        w.restart_at = -1;
        if (w.pid) kill(w.pid, sig);  // a second signal: the workers leave at once
      }
    }
  }
  int status = 0;
  for (auto& w : workers)
    if (w.last_status != 0) status = w.last_status;
  sigprocmask(SIG_SETMASK, &old, nullptr);
  return status;
}

}  // namespace cosocket
