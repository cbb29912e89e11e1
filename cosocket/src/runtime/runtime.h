#pragma once
// The process's runtime: one event loop, one Lua state, the scheduler, the connection
// pools and the resolver. Single-threaded.
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <lua.hpp>
#include <sys/time.h>

#include "runtime/log.h"
#include "runtime/scheduler.h"
#include "runtime/timers.h"

struct event;
struct event_base;
struct evdns_base;

namespace cosocket {

// State that a layer above the runtime keeps per runtime (the sockets' connection
// pools): made on first use by Runtime::ext<T>(), destroyed with the runtime after the
// Lua state is closed, so that what is collected at exit still finds it.
class Extension {
 public:
  virtual ~Extension() = default;
};

// Fills a new Lua state with the API (ngx/api.h's open_api): the runtime is made by the
// layer that knows the API, and does not depend on it.
using ApiInstaller = void (*)(lua_State* L);

// a shared dict declared with --shdict 'NAME SIZE' (ngx.shared.NAME)
struct ShdictSpec {
  std::string name;
  size_t size = 0;
};

struct Config {
  int connect_timeout_ms = 60000;
  int send_timeout_ms = 60000;
  int read_timeout_ms = 60000;
  int keepalive_timeout_ms = 60000;
  int pool_size = 30;
  int resolver_timeout_ms = 30000;
  int max_pending_timers = 1024;
  int max_running_timers = 256;
  int shutdown_timeout_ms = 3000;
  int max_connections = 1024;  // default per listening server
  int worker_id = 0;           // -w N: this worker's id (0..N-1) and N
  int worker_count = 1;
  bool under_master = false;   // -w N: a worker forked by the master (ngx.process.type())
  int log_level = kNotice;
  // TLS: CA file for verification (empty: the system store), chain depth, and whether
  // sslhandshake verifies when the caller passes no ssl_verify (secure by default)
  std::string ssl_trusted_certificate;
  int ssl_verify_depth = 5;
  bool ssl_verify_default = true;
  std::vector<std::string> resolvers;  // ip[:port]; empty: /etc/resolv.conf
  std::vector<std::string> include_dirs;
  std::vector<ShdictSpec> shdicts;
  std::string prefix;
  bool sigint_shutdown = true;  // false: SIGINT is left to the REPL
};

// libevent objects held by unique_ptr with their own free functions
using EventPtr = std::unique_ptr<event, void (*)(event*)>;
void event_free_fn(event* ev);
EventPtr make_timer(event_base* base, void (*cb)(int, short, void*), void* arg);

// A one-shot timer that calls fn once after ms milliseconds; destroying it cancels.
// fn may destroy the Timer.
class Timer {
 public:
  Timer(event_base* base, long ms, std::function<void()> fn);
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;

 private:
  static void on_fire(int, short, void* arg);
  EventPtr ev_;
  std::function<void()> fn_;
};

class Runtime {
 public:
  Runtime(Config cfg, ApiInstaller install_api);
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  // Runs the chunk at the top of the Lua stack as the entry thread with nargs
  // arguments below it ([f, args...]); returns the process exit status.
  int run(int nargs);

  lua_State* L() const { return L_; }
  event_base* base() const { return base_.get(); }
  evdns_base* dns();
  Scheduler& sched() { return *sched_; }
  // The extension of type T (derived from Extension, constructible from Runtime&),
  // made on first use. A linear scan: a runtime has one or two.
  template <class T>
  T& ext() {
    static const char tag = 0;  // one per T
    for (auto& e : exts_)
      if (e.first == &tag) return static_cast<T&>(*e.second);
    exts_.emplace_back(&tag, std::make_unique<T>(*this));
    return static_cast<T&>(*exts_.back().second);
  }
  const Config& cfg() const { return cfg_; }
  Config& cfg() { return cfg_; }

  bool exiting() const { return exiting_; }
  // true while the Lua state is being closed at exit: no more pool bookkeeping
  bool closing() const { return closing_; }
  // ngx.exit / os.exit: stop everything and leave with this status.
  void request_exit(int status);
  // ngx.process.signal_graceful_exit(): the shutdown SIGTERM starts, on the next turn of
  // the loop (the caller may be an FFI call, which must not run Lua)
  void request_graceful_exit();
  bool exit_requested() const { return exit_requested_; }
  int exit_status() const { return exit_status_; }

  // ngx.timer.at/every
  Timers& timers() { return *timers_; }
  // a timeval for evtimer_add that keeps equal durations in FIFO order
  const timeval* timeout_for(long ms);

  // Called when something that keeps the process running may have ended.
  void check_done();

  // Things that keep the process running while they exist (listening servers). `stop`
  // is called on SIGINT/SIGTERM (it may call unhold); unhold drops the hold.
  uint64_t hold(std::function<void()> stop);
  void unhold(uint64_t id);

 private:
  void on_signal(int sig);
  // timers fire as premature, servers stop accepting, the grace period starts
  void begin_shutdown(const std::string& why);
  static void on_signal_cb(int sig, short, void* arg);
  static void on_grace_cb(int, short, void* arg);

  Config cfg_;
  std::unique_ptr<event_base, void (*)(event_base*)> base_;
  std::unique_ptr<evdns_base, void (*)(evdns_base*)> dns_;
  lua_State* L_ = nullptr;
  std::unique_ptr<Scheduler> sched_;
  std::vector<std::pair<const void*, std::unique_ptr<Extension>>> exts_;
  std::vector<EventPtr> signals_;
  EventPtr grace_{nullptr, event_free_fn};
  EventPtr graceful_{nullptr, event_free_fn};  // request_graceful_exit's zero timer
  std::unique_ptr<Timers> timers_;
  std::unique_ptr<std::set<int>> fds_at_start_;  // COSOCKET_CHECK_LEAKS: the leak check at exit
  std::unordered_map<uint64_t, std::function<void()>> holds_;
  uint64_t next_hold_ = 1;
  bool exiting_ = false;
  bool closing_ = false;
  bool exit_requested_ = false;
  int exit_status_ = 0;
  int signal_ = 0;
  std::unordered_map<long, const timeval*> common_timeouts_;
  timeval scratch_tv_{};
};

// The process's runtime (set while one exists).
Runtime& runtime();


}  // namespace cosocket
