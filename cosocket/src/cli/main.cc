// The `cosocket` command: runs a Lua script as the entry light thread.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <iterator>
#include <string>
#include <vector>

#include <unistd.h>

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
    "\n"
    "Runs a Lua script with OpenResty's cosocket API (ngx.socket.tcp/udp, ngx.thread,\n"
    "ngx.sleep, ngx.timer, ngx.semaphore, ...) outside nginx.\n"
    "\n"
    "options:\n"
    "  -e CODE                 run CODE instead of a script file\n"
    "  -i                      interactive: after the script (if any), a REPL on stdin\n"
    "                          (the default when no script is given and stdin is a terminal)\n"
    "  -I DIR                  prepend DIR to package.path (repeatable)\n"
    "  -l, --log-level LEVEL   stderr|emerg|alert|crit|error|warn|notice|info|debug (default notice)\n"
    "  --resolver IP[:PORT]    name server to use instead of /etc/resolv.conf (repeatable)\n"
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
    "  --shdict 'NAME SIZE'    a shared dict, ngx.shared.NAME, of SIZE bytes (12k, 10m, ...),\n"
    "                          shared by the -w workers (repeatable)\n"
    "  -w, --workers N         run N worker processes (each its own loop and Lua state; a master\n"
    "                          restarts crashed ones and forwards SIGINT/SIGTERM); listening\n"
    "                          sockets get SO_REUSEPORT: use a fixed port, port 0 differs per worker\n"
    "  -v, --version           print the version\n"
    "  -h, --help              this help\n";

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

int die(const std::string& msg) {
  fprintf(stderr, "cosocket: %s\n%s", msg.c_str(), kUsage);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  cosocket::Config cfg;
  std::string code, script;
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
  int workers = 0;
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
    if (a == "-h" || a == "--help") {
      fputs(kUsage, stdout);
      return 0;
    } else if (a == "-v" || a == "--version") {
      printf("cosocket %s (LuaJIT, libevent, OpenSSL)\n", COSOCKET_VERSION);
      return 0;
    } else if (a == "-e") {
      if (!next(code)) return die("-e needs an argument");
      have_code = true;
      ++i;
      break;
    } else if (a == "-i") {
      interactive = true;
    } else if (a == "-I") {
      std::string d;
      if (!next(d)) return die("-I needs a directory");
      cfg.include_dirs.push_back(d);
    } else if (a == "-l" || a == "--log-level") {
      std::string l;
      if (!next(l) || level_of(l) < 0) return die("bad log level");
      cfg.log_level = level_of(l);
    } else if (a == "--resolver") {
      std::string r;
      if (!next(r) || r.empty()) return die("--resolver needs an address");
      cfg.resolvers.push_back(r);
    } else if (a == "--ssl-trusted-certificate") {
      if (!next(cfg.ssl_trusted_certificate) || cfg.ssl_trusted_certificate.empty())
        return die("--ssl-trusted-certificate needs a file");
      if (access(cfg.ssl_trusted_certificate.c_str(), R_OK) != 0)
        return die("cannot read the trusted certificate file \"" + cfg.ssl_trusted_certificate + "\"");
    } else if (a == "--ssl-verify") {
      std::string v;
      if (!next(v) || (v != "on" && v != "off")) return die("--ssl-verify takes on or off");
      cfg.ssl_verify_default = v == "on";
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
    } else if (a == "-") {
      from_stdin = true;
      ++i;
      break;
    } else if (a == "--") {
      ++i;
      if (i < argc) script = argv[i++];
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
      if (!found) return die("unknown option " + a);
    } else {
      script = a;
      ++i;
      break;
    }
  }
  bool no_chunk = !have_code && !from_stdin && script.empty();
  if (no_chunk && isatty(STDIN_FILENO)) interactive = true;
  if (no_chunk && !interactive) return die("no script given");
  if (from_stdin && interactive) return die("-i and - both want stdin");
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
    if (no_chunk) return cosocket::run_repl(rt, -1);
    int rc = have_code ? luaL_loadbuffer(L, code.data(), code.size(), from_stdin ? "=stdin" : "=(command line)")
                       : luaL_loadfile(L, script.c_str());
    if (rc != 0) {
      fprintf(stderr, "cosocket: %s\n", lua_tostring(L, -1));
      return 1;
    }
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
      return run_script(c);
    });
  }
  int status = run_script(cfg);
  return status;
}
