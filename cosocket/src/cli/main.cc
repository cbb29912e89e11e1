// The `cosocket` command: runs a Lua script as the entry light thread.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>

#include "cli/version.h"
#include "ngx/api.h"
#include "ngx/shdict.h"
#include "runtime/log.h"
#include "runtime/output.h"
#include "cli/repl.h"
#include "runtime/runtime.h"
#include "cli/workers.h"

namespace {

const char* const kUsage =
    "usage: cosocket [options] script.lua [args...]\n"
    "       cosocket [options] -e 'code' [args...]\n"
    "       cosocket [options] - [args...]        (script from stdin)\n"
    "       cosocket [options] [-i] [script.lua | -e 'code'] [args...]  (REPL)\n"
    "       ... | cosocket [options] [args...]    (no script, stdin not a terminal: stdin is the script)\n"
    "\n"
    "Runs a Lua script with OpenResty's cosocket API (ngx.socket.tcp/udp, ngx.thread,\n"
    "ngx.sleep, ngx.timer, ngx.semaphore, ...) outside nginx. resty-cli's flags are\n"
    "accepted where they apply (docs/cli.md).\n"
    "\n"
    "options:\n"
    "  -e CODE                 run CODE instead of a script file (repeatable: joined by lines);\n"
    "                          the first word after the options is then arg[1]\n"
    "  -l LIB                  require library LIB first (repeatable, in order), as lua and resty\n"
    "  -i                      interactive: after the script (if any), a REPL on stdin\n"
    "                          (the default when no script is given and stdin is a terminal)\n"
    "  -I DIR, -IDIR           prepend DIR to package.path and package.cpath (repeatable)\n"
    "  -j v|dump|off           LuaJIT's jit.v (traces, brief) or jit.dump (traces, in detail)\n"
    "                          on stderr, or the JIT compiler off\n"
    "  -c N                    at most N connections and files open at once (the process's\n"
    "                          descriptor limit, RLIMIT_NOFILE, is set to N plus those the\n"
    "                          runtime holds)\n"
    "  --log-level LEVEL       stderr|emerg|alert|crit|error|warn|notice|info|debug (default notice);\n"
    "  --errlog-level LEVEL    the same (resty's name)\n"
    "  --ns IP[:PORT]          name server to use instead of /etc/resolv.conf (repeatable);\n"
    "  --resolver IP[:PORT]    the same\n"
    "  --connect-timeout MS    default connect timeout (60000)\n"
    "  --send-timeout MS       default send timeout (60000)\n"
    "  --read-timeout MS       default read timeout (60000)\n"
    "  --keepalive-timeout MS  default idle timeout of pooled connections (60000)\n"
    "  --pool-size N           default connection pool size (30)\n"
    "  --resolver-timeout MS   UDP socket name resolution timeout (30000)\n"
    "  --max-pending-timers N  (1024)\n"
    "  --max-running-timers N  (256)\n"
    "  --shutdown-timeout MS   grace period after SIGINT/SIGTERM (3000)\n"
    "  --ssl-trusted-certificate FILE\n"
    "                          CA certificates (PEM) that sslhandshake verifies against\n"
    "                          (default: the system store, /etc/ssl/certs)\n"
    "  --ssl-verify-depth N    longest certificate chain accepted (5)\n"
    "  --ssl-verify on|off     whether sslhandshake verifies when the caller passes no\n"
    "                          ssl_verify argument (on: secure by default)\n"
    "  --max-connections N     default live connections per listening server (1024)\n"
    "  --capture-error-log SIZE  keep the last SIZE bytes (12k, 1m, ...) of the error log for\n"
    "                          ngx.errlog.get_logs (nginx's lua_capture_error_log)\n"
    "  --shdict 'NAME SIZE'    a shared dict, ngx.shared.NAME, of SIZE bytes (12k, 10m, ...),\n"
    "                          shared by the -w workers (repeatable)\n"
    "  -w, --workers N         run N worker processes (each its own loop and Lua state; a master\n"
    "                          restarts crashed ones and forwards SIGINT/SIGTERM); listening\n"
    "                          sockets get SO_REUSEPORT: use a fixed port, port 0 differs per worker\n"
    "  -V, -v, --version       print the version of cosocket and of its libraries\n"
    "  -h, --help              this help\n"
    "resty's nginx options (--http-conf, --main-conf, --nginx, ...) have no meaning here: cosocket\n"
    "has no nginx.\n";

int level_of(const std::string& s) {
  const char* names[] = {"stderr", "emerg", "alert", "crit", "error", "warn", "notice", "info", "debug"};
  for (int i = 0; i < 9; ++i)
    if (s == names[i]) return i;
  return -1;
}

bool parse_int(const char* s, int& out) {
  char* end = nullptr;
  long v = strtol(s, &end, 10);
  if (!*s || *end || v < 0 || v > 2147483647L) return false;
  out = static_cast<int>(v);
  return true;
}

// nginx's size syntax for lua_capture_error_log: N, Nk, Nm or Ng; at least 4k (nginx's
// minimum for the directive), at most 1g
bool parse_log_capture_size(const std::string& s, size_t* out) {
  char* end = nullptr;
  unsigned long long v = strtoull(s.c_str(), &end, 10);
  if (s.empty() || end == s.c_str() || s[0] == '-') return false;
  std::string unit(end);
  unsigned long long mul = unit.empty() ? 1 : unit == "k" || unit == "K" ? 1024ULL
                         : unit == "m" || unit == "M" ? 1024ULL * 1024
                         : unit == "g" || unit == "G" ? 1024ULL * 1024 * 1024 : 0;
  if (mul == 0 || v > (1ULL << 30) / mul) return false;
  v *= mul;
  if (v < 4096) return false;
  *out = static_cast<size_t>(v);
  return true;
}

// A bad command line: one line, and where to read more.
int die(const std::string& msg) {
  fprintf(stderr, "cosocket: %s; try 'cosocket --help'\n", msg.c_str());
  return 2;
}

// resty-cli's options that configure or wrap the nginx it runs.
bool nginx_option(const std::string& a, bool* takes_value) {
  static const char* const with_value[] = {"--http-conf",  "--main-conf",   "--stream-conf", "--http-include",
                                           "--main-include", "--nginx",     "--load-module", "--gdb-opts",
                                           "--valgrind-opts", "--stap-opts", "--user-runner"};
  static const char* const alone[] = {"--no-stream", "--gdb", "--valgrind", "--rr", "--stap", "--dump-nginx-conf"};
  for (const char* o : with_value)
    if (a == o) return *takes_value = true;
  for (const char* o : alone)
    if (a == o) return !(*takes_value = false);
  return false;
}

// Runs before the main chunk in the entry thread: -j's jit module, then the -l libraries,
// then the chunk (a tail call: no frame of its own in a traceback).
const char kEntryPreamble[] = R"(
local main, jit_mode, libs = ...
local require = require
return function(...)
    if jit_mode == "v" then
        require("jit.v").on()
    elseif jit_mode == "dump" then
        require("jit.dump").on()
    elseif jit_mode == "off" then
        require("jit").off()
    end
    for i = 1, #libs do
        require(libs[i])
    end
    return main(...)
end
)";

// Replaces the function on top of L's stack by the preamble around it.
void wrap_entry(lua_State* L, const std::string& jit_mode, const std::vector<std::string>& libs) {
  if (jit_mode.empty() && libs.empty()) return;
  luaL_loadbuffer(L, kEntryPreamble, sizeof kEntryPreamble - 1, "=[cosocket entry]");
  lua_insert(L, -2);
  lua_pushstring(L, jit_mode.c_str());
  lua_createtable(L, static_cast<int>(libs.size()), 0);
  for (size_t k = 0; k < libs.size(); ++k) {
    lua_pushstring(L, libs[k].c_str());
    lua_rawseti(L, -2, static_cast<int>(k + 1));
  }
  lua_call(L, 3, 1);
}

// -c N: the descriptor limit that leaves N for the script's connections and files.
bool set_connection_limit(int n, std::string* err) {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
    *err = std::string("getrlimit: ") + strerror(errno);
    return false;
  }
  // what is open now (stdio, inherited), and the runtime's own: the event loop's epoll
  // descriptor and its signal notification (2, measured)
  // (the limit is on descriptor numbers: up to the highest one open)
  rlim_t open_now = 3;
  if (DIR* d = opendir("/proc/self/fd")) {
    int own = dirfd(d);
    while (dirent* e = readdir(d)) {
      int fd = atoi(e->d_name);
      if (e->d_name[0] != '.' && fd != own && static_cast<rlim_t>(fd) + 1 > open_now) open_now = static_cast<rlim_t>(fd) + 1;
    }
    closedir(d);
  }
  const rlim_t kRuntimeFds = 2 + open_now;
  rlim_t want = static_cast<rlim_t>(n) + kRuntimeFds;
  if (rl.rlim_max != RLIM_INFINITY && want > rl.rlim_max) {
    *err = "-c " + std::to_string(n) + " is above the descriptor limit (" + std::to_string(rl.rlim_max - kRuntimeFds) +
           ")";
    return false;
  }
  rl.rlim_cur = want;
  if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
    *err = std::string("setrlimit: ") + strerror(errno);
    return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  cosocket::Config cfg;
  std::string code, script, jit_mode;
  std::vector<std::string> libs;
  bool have_code = false, from_stdin = false, interactive = false;
  int i = 1;
  struct IntFlag {
    const char* name;
    int* target;
  } int_flags[] = {
      {"--connect-timeout", &cfg.connect_timeout_ms}, {"--send-timeout", &cfg.send_timeout_ms},
      {"--read-timeout", &cfg.read_timeout_ms},       {"--keepalive-timeout", &cfg.keepalive_timeout_ms},
      {"--pool-size", &cfg.pool_size},                {"--resolver-timeout", &cfg.resolver_timeout_ms},
      {"--max-pending-timers", &cfg.max_pending_timers}, {"--max-running-timers", &cfg.max_running_timers},
      {"--ssl-verify-depth", &cfg.ssl_verify_depth},
      {"--shutdown-timeout", &cfg.shutdown_timeout_ms}, {"--max-connections", &cfg.max_connections},
  };
  int workers = 0, conn_limit = -1;
  for (; i < argc; ++i) {
    std::string a = argv[i];
    std::string val;
    bool has_eq = false;
    if (a.rfind("--", 0) == 0) {
      auto eq = a.find('=');
      if (eq != std::string::npos) {
        val = a.substr(eq + 1);
        a = a.substr(0, eq);
        has_eq = true;
      }
    } else if (a.size() > 2 && a[0] == '-' && strchr("elIjcw", a[1])) {
      // -Idir, -lcjson, -jv, -c64, -e'code' (and resty's -I=dir)
      val = a.substr(a[2] == '=' ? 3 : 2);
      a = a.substr(0, 2);
      has_eq = true;
    }
    auto next = [&](std::string& out) -> bool {
      if (has_eq) {
        out = val;
        return true;
      }
      if (i + 1 >= argc) return false;
      out = argv[++i];
      return true;
    };
    bool nginx_takes_value = false;
    if (a == "-h" || a == "--help") {
      fputs(kUsage, stdout);
      return 0;
    } else if (a == "-v" || a == "-V" || a == "--version") {
      cosocket::print_versions(stdout);
      return 0;
    } else if (a == "-e") {
      std::string c;
      if (!next(c)) return die("-e needs an argument");
      code += (have_code ? "\n" : "") + c;
      have_code = true;
    } else if (a == "-l") {
      std::string lib;
      if (!next(lib) || lib.empty()) return die("-l needs a library name");
      if (level_of(lib) >= 0) {
        // -l was the log level before it became lua's and resty's -l
        fprintf(stderr, "cosocket: -l %s: deprecated as the log level (-l LIB requires a library, as in lua "
                        "and resty); use --log-level %s\n", lib.c_str(), lib.c_str());
        cfg.log_level = level_of(lib);
      } else {
        libs.push_back(lib);
      }
    } else if (a == "-i") {
      interactive = true;
    } else if (a == "-I") {
      std::string d;
      if (!next(d) || d.empty()) return die("-I needs a directory");
      cfg.include_dirs.push_back(d);
    } else if (a == "-j") {
      if (!jit_mode.empty()) return die("-j given twice");
      if (!next(jit_mode) || (jit_mode != "v" && jit_mode != "dump" && jit_mode != "off"))
        return die("-j takes v, dump or off");
    } else if (a == "-c") {
      std::string v;
      if (!next(v) || !parse_int(v.c_str(), conn_limit) || conn_limit < 1) return die("-c needs a number of connections");
    } else if (a == "--log-level" || a == "--errlog-level") {
      std::string l;
      if (!next(l) || level_of(l) < 0) return die("bad log level '" + l + "'");
      cfg.log_level = level_of(l);
    } else if (a == "--resolver" || a == "--ns") {
      std::string r;
      if (!next(r) || r.empty()) return die(a + " needs an address");
      cfg.resolvers.push_back(r);
    } else if (a == "--resolve-ipv6") {
      // resty: nginx's resolver looks AAAA up too; cosocket's always does (IPv4 first)
    } else if (a == "--ssl-trusted-certificate") {
      if (!next(cfg.ssl_trusted_certificate) || cfg.ssl_trusted_certificate.empty())
        return die("--ssl-trusted-certificate needs a file");
      if (access(cfg.ssl_trusted_certificate.c_str(), R_OK) != 0)
        return die("cannot read the trusted certificate file \"" + cfg.ssl_trusted_certificate + "\"");
    } else if (a == "--ssl-verify") {
      std::string v;
      if (!next(v) || (v != "on" && v != "off")) return die("--ssl-verify takes on or off");
      cfg.ssl_verify_default = v == "on";
    } else if (a == "--capture-error-log") {
      std::string v;
      size_t bytes = 0;
      if (!next(v) || !parse_log_capture_size(v, &bytes))
        return die("--capture-error-log needs a size (4k..1g: 32k, 1m, ...)");
      cosocket::set_log_capture(bytes);
    } else if (a == "--shdict") {
      std::string v, err;
      cosocket::ShdictSpec spec;
      if (!next(v)) return die("--shdict needs 'NAME SIZE'");
      if (!cosocket::parse_shdict_spec(v, &spec, &err)) return die(err);
      for (const auto& d : cfg.shdicts)
        if (d.name == spec.name) return die("duplicate shared dict \"" + spec.name + "\"");
      cfg.shdicts.push_back(spec);
    } else if (a == "-w" || a == "--workers") {
      std::string v;
      if (!next(v) || !parse_int(v.c_str(), workers) || workers < 1 || workers > 1024)
        return die("-w needs a number of workers (1..1024)");
    } else if (nginx_option(a, &nginx_takes_value)) {
      fprintf(stderr, "cosocket: %s is an nginx option (resty-cli's); cosocket has no nginx\n", a.c_str());
      return 2;
    } else if (a == "-") {
      if (have_code) return die("- and -e both give the script");
      from_stdin = true;
      ++i;
      break;
    } else if (a == "--") {
      ++i;
      if (i < argc && !have_code) script = argv[i++];
      break;
    } else if (a.size() > 1 && a[0] == '-') {
      bool found = false;
      for (auto& f : int_flags) {
        if (a == f.name) {
          std::string v;
          if (!next(v) || !parse_int(v.c_str(), *f.target)) return die(std::string("bad value for ") + f.name);
          found = true;
        }
      }
      if (!found) {
        fprintf(stderr, "cosocket: unknown option '%s'; try 'cosocket --help'\n", argv[i]);
        return 2;
      }
    } else {
      if (!have_code) {  // with -e, the first word is arg[1]
        script = a;
        ++i;
      }
      break;
    }
  }
  bool no_chunk = !have_code && !from_stdin && script.empty();
  if (no_chunk && isatty(STDIN_FILENO)) interactive = true;
  if (no_chunk && !interactive) {  // as lua: stdin is the script
    from_stdin = true;
    no_chunk = false;
  }
  if (from_stdin && interactive) return die("-i and - both want stdin");
  if (conn_limit > 0) {
    std::string err;
    if (!set_connection_limit(conn_limit, &err)) return die(err);
  }
  cfg.sigint_shutdown = !interactive;
  if (from_stdin) {
    code.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
    have_code = true;
  }
  if (const char* p = getenv("PWD")) cfg.prefix = std::string(p) + "/";
  {
    // the dicts' shared memory, before -w forks the workers that share it
    std::string err;
    if (!cosocket::create_shared_dicts(cfg.shdicts, &err)) {
      fprintf(stderr, "cosocket: %s\n", err.c_str());
      return 1;
    }
  }

  auto run_script = [&](const cosocket::Config& c) -> int {
    cosocket::Runtime rt(c, cosocket::open_api);
    lua_State* L = rt.L();
    // arg, as the lua command sets it
    lua_createtable(L, argc - i, 2);
    lua_pushstring(L, have_code ? (from_stdin ? "-" : "-e") : script.c_str());
    lua_rawseti(L, -2, 0);
    lua_pushstring(L, argv[0]);
    lua_rawseti(L, -2, -1);
    for (int k = i; k < argc; ++k) {
      lua_pushstring(L, argv[k]);
      lua_rawseti(L, -2, k - i + 1);
    }
    lua_setglobal(L, "arg");
    if (no_chunk && jit_mode.empty() && libs.empty()) return cosocket::run_repl(rt, -1);
    int rc = no_chunk   ? luaL_loadbuffer(L, "", 0, "=(command line)")
             : have_code ? luaL_loadbuffer(L, code.data(), code.size(), from_stdin ? "=stdin" : "=(command line)")
                         : luaL_loadfile(L, script.c_str());
    if (rc != 0) {
      fprintf(stderr, "cosocket: %s\n", lua_tostring(L, -1));
      return 1;
    }
    wrap_entry(L, jit_mode, libs);
    for (int k = i; k < argc; ++k) lua_pushstring(L, argv[k]);
    return interactive ? cosocket::run_repl(rt, argc - i) : rt.run(argc - i);
  };
  if (workers > 0) {
    if (interactive) return die("-w and the REPL (-i) do not go together");
    // a script that does not compile fails once, here, rather than in a restart loop
    lua_State* L = luaL_newstate();
    int rc = have_code ? luaL_loadbuffer(L, code.data(), code.size(), from_stdin ? "=stdin" : "=(command line)")
                       : luaL_loadfile(L, script.c_str());
    if (rc != 0) fprintf(stderr, "cosocket: %s\n", lua_tostring(L, -1));
    lua_close(L);
    if (rc != 0) return 1;
    cosocket::set_log_level(cfg.log_level);
    return cosocket::run_workers(workers, [&](int id) {
      cosocket::Config c = cfg;
      c.worker_id = id;
      c.worker_count = workers;
      c.under_master = true;
      return run_script(c);
    });
  }
  int status = run_script(cfg);
  return status;
}
