#include "runtime/runtime.h"

#include <csignal>
#include <cstdlib>
#include <cstdio>
#include <ctime>
#include <unistd.h>

#include <event2/dns.h>
#include <event2/event.h>

#include "loop/clock.h"
#include "runtime/fd_census.h"
#include "runtime/output.h"
#include "runtime/timers.h"
#include "runtime/traceback.h"

namespace cosocket {

namespace {
Runtime* g_runtime = nullptr;
}  // namespace

Runtime& runtime() { return *g_runtime; }

void event_free_fn(event* ev) { event_free(ev); }

EventPtr make_timer(event_base* base, void (*cb)(int, short, void*), void* arg) {
  return EventPtr(evtimer_new(base, cb, arg), event_free);
}

Timer::Timer(event_base* base, long ms, std::function<void()> fn)
    : ev_(make_timer(base, &Timer::on_fire, this)), fn_(std::move(fn)) {
  if (g_runtime && g_runtime->base() == base) {
    evtimer_add(ev_.get(), g_runtime->timeout_for(ms));
  } else {
    timeval tv{ms / 1000, (ms % 1000) * 1000};
    evtimer_add(ev_.get(), &tv);
  }
}

// Equal delays fire in the order they were set, as nginx's timer tree does: libevent
// keeps a FIFO queue per "common timeout" duration (up to 256 of them per base).
const timeval* Runtime::timeout_for(long ms) {
  auto it = common_timeouts_.find(ms);
  if (it != common_timeouts_.end()) return it->second;
  timeval tv{ms / 1000, (ms % 1000) * 1000};
  if (common_timeouts_.size() < 200) {
    if (const timeval* c = event_base_init_common_timeout(base_.get(), &tv)) {
      common_timeouts_[ms] = c;
      return c;
    }
  }
  scratch_tv_ = tv;
  return &scratch_tv_;
}

void Timer::on_fire(int, short, void* arg) {
  auto fn = std::move(static_cast<Timer*>(arg)->fn_);
  fn();  // may destroy the Timer
}

// libevent's own messages (e.g. "Nameserver ... has failed") go through our log
static void on_libevent_log(int severity, const char* msg) {
  log_message(severity == EVENT_LOG_ERR ? kErr : kInfo, std::string("libevent: ") + msg);
}

Runtime::Runtime(Config cfg, ApiInstaller install_api)
    : cfg_(std::move(cfg)), base_(event_base_new(), event_base_free), dns_(nullptr, [](evdns_base* d) {
        evdns_base_free(d, 1);
      }) {
  g_runtime = this;
  event_set_log_callback(&on_libevent_log);
  set_log_level(cfg_.log_level);
  clock_update();
  signal(SIGPIPE, SIG_IGN);
  L_ = luaL_newstate();
  luaL_openlibs(L_);
  lua_getglobal(L_, "debug");  // without the runtime's frames (traceback.h)
  lua_pushcfunction(L_, l_debug_traceback);
  lua_setfield(L_, -2, "traceback");
  lua_pop(L_, 1);
  sched_ = std::make_unique<Scheduler>(L_, base_.get());
  sched_->init_dead_table();
  sched_->on_idle = [this] { check_done(); };
  timers_ = std::make_unique<Timers>(*this);
  sched_->on_entry_error = [this](const std::string& tb) {
    flush_stdout();
    fprintf(stderr, "%s\n", tb.c_str());
    fflush(stderr);
    request_exit(1);
  };
  for (int sig : {SIGINT, SIGTERM}) {
    if (sig == SIGINT && !cfg_.sigint_shutdown) continue;  // the REPL handles it
    EventPtr ev(evsignal_new(base_.get(), sig, &Runtime::on_signal_cb, this), event_free);
    evsignal_add(ev.get(), nullptr);
    signals_.push_back(std::move(ev));
  }
  install_api(L_);
  const char* check = getenv("COSOCKET_CHECK_LEAKS");
  if (check && *check && *check != '0') fds_at_start_ = std::make_unique<std::set<int>>(open_fds());
}

Runtime::~Runtime() {
  flush_stdout();
  timers_->clear();
  holds_.clear();
  closing_ = true;
  sched_->stopping = true;
  lua_close(L_);  // collects the sockets while the pools and the loop still exist
  L_ = nullptr;
  // cancelled name lookups free themselves in deferred callbacks: let those run
  for (int i = 0; i < 3; ++i) event_base_loop(base_.get(), EVLOOP_NONBLOCK);
  sched_.reset();
  while (!exts_.empty()) exts_.pop_back();  // the last made goes first
  signals_.clear();
  grace_.reset();
  dns_.reset();
  if (fds_at_start_) {
    std::string report = leaked_fds_report(*fds_at_start_);
    if (!report.empty()) fprintf(stderr, "%s\n", report.c_str());
  }
  g_runtime = nullptr;
}

evdns_base* Runtime::dns() {
  if (dns_) return dns_.get();
  evdns_base* d = evdns_base_new(base_.get(), EVDNS_BASE_DISABLE_WHEN_INACTIVE);
  dns_.reset(d);
  if (cfg_.resolvers.empty()) {
    evdns_base_resolv_conf_parse(d, DNS_OPTIONS_ALL, "/etc/resolv.conf");
  } else {
    evdns_base_resolv_conf_parse(d, DNS_OPTION_HOSTSFILE, "/etc/resolv.conf");
    for (const auto& ns : cfg_.resolvers) {
      if (evdns_base_nameserver_ip_add(d, ns.c_str()) != 0) {
        log_message(kErr, "bad resolver address \"" + ns + "\"");
      }
    }
  }
  evdns_base_set_option(d, "randomize-case:", "0");
  // retransmit every 2 s and never give up first: the resolver timeout (our own timer,
  // as nginx's resolver_timeout) decides, and says "110: Operation timed out"
  evdns_base_set_option(d, "timeout:", "2");
  evdns_base_set_option(d, "attempts:", "255");
  return d;
}

void Runtime::request_exit(int status) {
  if (exit_requested_) return;
  exit_requested_ = true;
  exit_status_ = status;
  sched_->stopping = true;
  event_base_loopbreak(base_.get());
}

void Runtime::check_done() {
  if (sched_->alive() == 0 && timers_->pending() == 0 && holds_.empty()) event_base_loopbreak(base_.get());
}

uint64_t Runtime::hold(std::function<void()> stop) {
  uint64_t id = next_hold_++;
  holds_[id] = std::move(stop);
  return id;
}

void Runtime::unhold(uint64_t id) {
  if (holds_.erase(id) && !closing_) check_done();
}

int Runtime::run(int nargs) {
  LuaThread* t = sched_->create(L_, nargs, ThreadKind::entry, 0);
  sched_->post(t, nargs);
  while (!exit_requested_ && (sched_->alive() > 0 || timers_->pending() > 0 || !holds_.empty())) {
    // the signal watchers stay added for good: anything beyond them can still wake a thread
    int events = event_base_get_num_events(base_.get(), EVENT_BASE_COUNT_ADDED | EVENT_BASE_COUNT_ACTIVE);
    if (events <= static_cast<int>(signals_.size()) || event_base_loop(base_.get(), EVLOOP_ONCE) == 1) {
      flush_stdout();
      fprintf(stderr, "cosocket: every light thread is waiting and nothing can wake them (deadlock)\n");
      exit_status_ = 1;
      break;
    }
  }
  flush_stdout();
  return exit_status_;
}

// ---- signals: graceful shutdown ------------------------------------------------

void Runtime::on_signal_cb(int sig, short, void* arg) { static_cast<Runtime*>(arg)->on_signal(sig); }

void Runtime::on_grace_cb(int, short, void* arg) {
  auto* rt = static_cast<Runtime*>(arg);
  rt->request_exit(rt->signal_ ? 128 + rt->signal_ : 1);  // graceful_exit: threads left running
}

void Runtime::on_signal(int sig) {
  clock_update();
  if (exiting_) {  // a second signal: leave now
    request_exit(128 + sig);
    return;
  }
  signal_ = sig;
  begin_shutdown(std::string("signal ") + std::to_string(sig) + " received, exiting");
}

void Runtime::request_graceful_exit() {
  if (exiting_ || graceful_) return;
  graceful_ = make_timer(base_.get(), [](int, short, void* arg) {
    auto* rt = static_cast<Runtime*>(arg);
    clock_update();
    if (!rt->exiting_) rt->begin_shutdown("gracefully shutting down");
  }, this);
  static const timeval zero{0, 0};
  evtimer_add(graceful_.get(), &zero);
}

void Runtime::begin_shutdown(const std::string& why) {
  exiting_ = true;
  log_message(kNotice, why);
  timers_->fire_all_premature();
  // listening servers stop accepting (their running handlers carry on)
  std::vector<uint64_t> held;
  for (auto& kv : holds_) held.push_back(kv.first);
  for (uint64_t id : held) {
    auto it = holds_.find(id);
    if (it == holds_.end()) continue;
    auto stop = it->second;
    stop();
  }
  grace_ = make_timer(base_.get(), &Runtime::on_grace_cb, this);
  timeval tv{cfg_.shutdown_timeout_ms / 1000, (cfg_.shutdown_timeout_ms % 1000) * 1000};
  evtimer_add(grace_.get(), &tv);
  check_done();
}

}  // namespace cosocket
