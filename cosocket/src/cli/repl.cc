// repl.cc -- the interactive REPL (see repl.h).
//
// On a terminal, input goes through libedit (cli/line_editor.h) one keystroke at a time,
// fed by a libevent read event on fd 0: the loop keeps serving sockets and timers while
// the user types, and output from background light threads takes the prompt off the
// screen (runtime/output.h's hook) and puts it back after. While a line's light thread
// runs, the editor is stopped (the terminal is back in cooked mode) and stdin is not read.
// When stdin is not a terminal, lines are read from it as they come, without prompts,
// each run after the previous one's thread has ended.
#include "cli/repl.h"

#include <sys/time.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include <event2/event.h>
#include <lua.hpp>  // luajit.h, with C linkage

#include "cli/line_editor.h"
#include "runtime/log.h"
#include "runtime/output.h"
#include "runtime/runtime.h"
#include "runtime/scheduler.h"

namespace cosocket {
namespace {

const char* const kPrompt = "> ";
const char* const kMorePrompt = ">> ";
const char* const kChunkName = "=stdin";
constexpr int kHistoryMax = 1000;

void print_error(const char* msg) {
  flush_stdout();
  fprintf(stderr, "%s\n", msg ? msg : "(error object is not a string)");
  fflush(stderr);
}

// A syntax error at the end of the input: the chunk goes on on the next line (lua.c's
// rule: the message ends with '<eof>').
bool incomplete(const char* msg, size_t len) {
  static const char kEof[] = "'<eof>'";
  const size_t n = sizeof kEof - 1;
  return msg && len >= n && memcmp(msg + len - n, kEof, n) == 0;
}

// Ctrl-C while Lua code runs without ever yielding (`while true do end`): the event
// loop gets no turn, so a raw handler in front of libevent's also sets a hook that
// raises "interrupted" in the running Lua code, as lua.c does. The REPL's own lines run
// with the JIT off (a loop typed at the prompt always sees the hook), but a loop LuaJIT
// compiled elsewhere (in a module) never looks at hooks: when the hook has not fired
// 300 ms after the Ctrl-C, the user is told that a second Ctrl-C quits; when it comes
// and the first one's hook is still waiting, the process leaves (status 130; the history
// is on disk already, written line by line).
struct sigaction g_libevent_sigint;  // libevent's handler, called after ours
lua_State* g_hook_L = nullptr;        // the REPL's state, while the REPL exists
volatile sig_atomic_t g_hook_set = 0;
volatile sig_atomic_t g_hook_fired = 0;
lua_State* volatile g_hook_co = nullptr;  // the coroutine that was running at the signal
bool g_have_termios = false;               // the terminal's settings at start, for _exit
struct termios g_termios;

void interrupt_hook(lua_State* L, lua_Debug*) {
  if (L != g_hook_co) return;  // it yielded meanwhile: not for another thread's code
  lua_sethook(L, nullptr, 0, 0);
  g_hook_set = 0;
  g_hook_fired = 1;
  // where: the Lua function running (a count hook in a loop), else its caller (a call or
  // return hook of a C function)
  lua_Debug ar;
  int level = lua_getstack(L, 0, &ar) && lua_getinfo(L, "l", &ar) && ar.currentline > 0 ? 0 : 1;
  luaL_where(L, level);
  lua_pushliteral(L, "interrupted");
  lua_concat(L, 2);
  lua_error(L);
}

// 300 ms after a Ctrl-C that set the hook: still not fired, the code is compiled.
void on_sigalrm(int) {
  if (!g_hook_set) return;
  static const char kMsg[] =
      "\ninterrupted, but the running Lua code was compiled by LuaJIT and does not see it; "
      "press Ctrl-C again to quit\n";
  ssize_t n = write(STDERR_FILENO, kMsg, sizeof kMsg - 1);
  (void)n;
}

void on_sigint_raw(int sig, siginfo_t* info, void* ctx) {
  if (lua_State* L = g_hook_L) {
    if (g_hook_set) {
      static const char kMsg[] = "\ninterrupted again: the Lua code does not yield, leaving\n";
      ssize_t n = write(STDERR_FILENO, kMsg, sizeof kMsg - 1);
      (void)n;
      if (g_have_termios) tcsetattr(STDIN_FILENO, TCSANOW, &g_termios);  // the editor's raw mode off
      _exit(128 + SIGINT);
    }
    if (LuaThread* t = runtime().sched().current()) {  // Lua code is running now
      g_hook_co = t->co;
      g_hook_set = 1;
      lua_sethook(L, interrupt_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
      itimerval later{};
      later.it_value.tv_usec = 300000;
      setitimer(ITIMER_REAL, &later, nullptr);
    }
  }
  if (g_libevent_sigint.sa_flags & SA_SIGINFO) {
    if (g_libevent_sigint.sa_sigaction) g_libevent_sigint.sa_sigaction(sig, info, ctx);
  } else if (g_libevent_sigint.sa_handler != SIG_DFL && g_libevent_sigint.sa_handler != SIG_IGN) {
    g_libevent_sigint.sa_handler(sig);
  }
}

class Repl {
 public:
  explicit Repl(Runtime& rt);
  ~Repl();
  Repl(const Repl&) = delete;
  Repl& operator=(const Repl&) = delete;

  int run(int nargs);

 private:
  enum class State { input, running, eof };

  static void on_stdin(int, short, void* arg);
  static void on_sigint(int, short, void* arg);
  static void on_sigwinch(int, short, void* arg);
  static void on_sigtstp(int, short, void* arg);
  static void on_output();

  void start_input();
  void stop_input();
  void got_line(const char* line);  // nullptr: end of input
  void eval(std::string line);
  void start_thread(int nargs);
  void no_jit();
  void line_finished(LuaThread* t);
  void interrupt();
  void read_pipe();
  bool take_pipe_line(std::string& line);
  void redisplay();

  Runtime& rt_;
  lua_State* L_;
  const bool tty_;
  State state_ = State::input;
  bool reading_ = false;     // waiting for input: stdin watched (and the line editor started)
  bool hidden_ = false;      // the prompt was taken off the screen for output
  bool line_done_ = false;   // the running line's thread has ended
  uint64_t line_ = 0;        // id of the running line's light thread
  uint32_t session_ = 0;     // the request every line runs in: ngx.ctx lasts the session
  std::string pending_;      // an incomplete chunk waiting for its next line
  std::string inbuf_;        // not a terminal: input read but not run yet
  bool stdin_eof_ = false;
  bool stdin_sync_ = false;  // not a terminal and not pollable (a file, /dev/null): plain reads
  std::unique_ptr<LineEditor> editor_;  // a terminal: the line editor
  EventPtr stdin_ev_{nullptr, event_free_fn};
  EventPtr sigint_ev_{nullptr, event_free_fn};
  EventPtr sigwinch_ev_{nullptr, event_free_fn};
  EventPtr sigtstp_ev_{nullptr, event_free_fn};
};

Repl* g_repl = nullptr;  // for the output hook's plain-function callback

Repl::Repl(Runtime& rt) : rt_(rt), L_(rt.L()), tty_(isatty(STDIN_FILENO) == 1) {
  g_repl = this;
  event_base* base = rt.base();
  stdin_ev_.reset(event_new(base, STDIN_FILENO, EV_READ | EV_PERSIST, &Repl::on_stdin, this));
  sigint_ev_.reset(evsignal_new(base, SIGINT, &Repl::on_sigint, this));
  evsignal_add(sigint_ev_.get(), nullptr);
  struct sigaction sa {};
  if (sigaction(SIGINT, nullptr, &g_libevent_sigint) == 0) {
    sa.sa_sigaction = &on_sigint_raw;
    sa.sa_flags = SA_SIGINFO | (g_libevent_sigint.sa_flags & SA_RESTART);
    sigemptyset(&sa.sa_mask);
    g_hook_L = L_;
    sigaction(SIGINT, &sa, nullptr);
  }
  struct sigaction alrm {};  // the Ctrl-C hook's check (on_sigint_raw), piped input too
  alrm.sa_handler = &on_sigalrm;
  sigemptyset(&alrm.sa_mask);
  sigaction(SIGALRM, &alrm, nullptr);
  // A failing line prints its error and the REPL goes on (the runtime would exit).
  rt.sched().on_entry_error = [](const std::string& tb) { print_error(tb.c_str()); };
  if (tty_) {
    editor_ = std::make_unique<LineEditor>();
    const char* home = getenv("HOME");
    if (home && *home) editor_->use_history_file(std::string(home) + "/.cosocket_history", kHistoryMax);
    sigwinch_ev_.reset(evsignal_new(base, SIGWINCH, &Repl::on_sigwinch, this));
    evsignal_add(sigwinch_ev_.get(), nullptr);
    sigtstp_ev_.reset(evsignal_new(base, SIGTSTP, &Repl::on_sigtstp, this));
    evsignal_add(sigtstp_ev_.get(), nullptr);
    g_have_termios = tcgetattr(STDIN_FILENO, &g_termios) == 0;
    set_output_hook(&Repl::on_output);
  }
}

Repl::~Repl() {
  g_hook_L = nullptr;  // libevent puts the signal's old disposition back when its event goes
  stop_input();
  set_output_hook(nullptr);
  editor_.reset();
  g_repl = nullptr;
}

int Repl::run(int nargs) {
  if (nargs >= 0) start_thread(nargs);  // cosocket -i script.lua: the script first
  Scheduler& sched = rt_.sched();
  for (;;) {
    if (rt_.exit_requested()) break;  // os.exit, ngx.exit, the end of a shutdown's grace
    if (rt_.exiting()) {
      // SIGTERM: no more input; the runtime's graceful shutdown runs its course
      stop_input();
      if (sched.alive() == 0 && rt_.timers().pending() == 0) break;
    } else {
      if (state_ == State::running && line_done_) {
        line_done_ = false;
        state_ = State::input;
        flush_stdout();
      }
      if (state_ == State::eof) break;
      if (state_ == State::input) {
        if (!tty_) {
          std::string line;
          if (take_pipe_line(line)) {
            got_line(line.c_str());
            continue;
          }
          if (stdin_eof_) {
            got_line(nullptr);
            continue;
          }
          if (stdin_sync_) {
            read_pipe();
            continue;
          }
        }
        if (!reading_) start_input();
        if (!tty_ && stdin_sync_) continue;
      }
    }
    // Always something to wait for: at least the SIGINT watcher is added.
    if (event_base_loop(rt_.base(), EVLOOP_ONCE) != 0) {
      print_error("cosocket: the event loop has nothing left to wait for");
      return 1;
    }
    flush_stdout();
    redisplay();
  }
  stop_input();
  flush_stdout();
  return rt_.exit_requested() ? rt_.exit_status() : 0;
}

void Repl::start_input() {
  if (reading_ || (!tty_ && (stdin_sync_ || stdin_eof_))) return;
  if (event_add(stdin_ev_.get(), nullptr) != 0) {
    if (tty_) {  // cannot happen for a terminal; leave rather than spin
      state_ = State::eof;
      return;
    }
    stdin_sync_ = true;
    return;
  }
  reading_ = true;
  if (tty_) editor_->start(pending_.empty() ? kPrompt : kMorePrompt);
}

void Repl::stop_input() {
  if (!reading_) return;
  reading_ = false;
  hidden_ = false;
  event_del(stdin_ev_.get());
  if (tty_) editor_->stop();  // gives the terminal its normal mode back
}

void Repl::on_stdin(int, short, void* arg) {
  auto* r = static_cast<Repl*>(arg);
  if (!r->tty_) {
    r->read_pipe();
    return;
  }
  std::string line;
  switch (r->editor_->feed(line)) {
    case LineEditor::Got::line:
      r->got_line(line.c_str());
      break;
    case LineEditor::Got::eof:
      r->got_line(nullptr);
      break;
    case LineEditor::Got::nothing:
      break;
  }
}

void Repl::read_pipe() {
  char buf[4096];
  ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
  if (n > 0) {
    inbuf_.append(buf, static_cast<size_t>(n));
  } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
    stdin_eof_ = true;
  }
  // the main loop stops watching stdin when it runs a line
}

bool Repl::take_pipe_line(std::string& line) {
  auto nl = inbuf_.find('\n');
  if (nl == std::string::npos) {
    if (!stdin_eof_ || inbuf_.empty()) return false;
    line.swap(inbuf_);  // a last line without a newline
    inbuf_.clear();
  } else {
    line.assign(inbuf_, 0, nl);
    inbuf_.erase(0, nl + 1);
  }
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return true;
}

void Repl::got_line(const char* line) {
  stop_input();  // the main loop starts it again when the line is done
  if (!line) {
    if (tty_) {
      fputs("\n", stdout);
      fflush(stdout);
    } else if (!pending_.empty()) {
      // the input ended inside a statement: say so, as a script would
      if (luaL_loadbuffer(L_, pending_.data(), pending_.size(), kChunkName) != 0) print_error(lua_tostring(L_, -1));
      lua_pop(L_, 1);
    }
    state_ = State::eof;
    return;
  }
  if (tty_ && *line) editor_->add_history(line);
  eval(line);
}

void Repl::eval(std::string line) {
  if (pending_.empty()) {
    if (!line.empty() && line[0] == '=') {
      line = "return " + line.substr(1);  // Lua 5.1's `=expr`
    } else {
      // an expression: its values are printed. Not `return <line>`: a tail call there
      // would lose the line's frame (error("x") would say "x", not "stdin:1: x").
      std::string ret = "return (function(...) return ... end)(" + line + "\n)";
      if (luaL_loadbuffer(L_, ret.data(), ret.size(), kChunkName) == 0) {
        no_jit();
        start_thread(0);
        return;
      }
      lua_pop(L_, 1);
    }
  }
  std::string chunk = pending_.empty() ? line : pending_ + "\n" + line;
  int rc = luaL_loadbuffer(L_, chunk.data(), chunk.size(), kChunkName);
  if (rc == LUA_ERRSYNTAX) {
    size_t len = 0;
    const char* msg = lua_tolstring(L_, -1, &len);
    if (incomplete(msg, len)) {
      pending_ = std::move(chunk);
      lua_pop(L_, 1);
      return;
    }
  }
  pending_.clear();
  if (rc != 0) {
    print_error(lua_tostring(L_, -1));
    lua_pop(L_, 1);
    return;
  }
  no_jit();
  start_thread(0);
}

// A line's own code (the chunk on top of the stack and the functions it defines) runs
// interpreted, so that Ctrl-C's hook stops a loop typed at the prompt.
void Repl::no_jit() { luaJIT_setmode(L_, -1, LUAJIT_MODE_ALLFUNC | LUAJIT_MODE_OFF); }

void Repl::start_thread(int nargs) {
  Scheduler& sched = rt_.sched();
  if (!session_) {
    session_ = sched.requests().open();
    sched.requests().hold(session_);  // held for the life of the REPL
  }
  LuaThread* t = sched.create(L_, nargs, ThreadKind::entry, 0, session_);
  line_ = t->id;
  line_done_ = false;
  state_ = State::running;
  t->set_on_finish([this, t] { line_finished(t); });
  sched.post(t, nargs);
}

// The line's thread has ended (returned, failed or was killed); prints what it
// returned, as `lua -i` does: print(...) with the current global print.
void Repl::line_finished(LuaThread* t) {
  line_done_ = true;
  line_ = 0;
  if (t->state == ThreadState::dead || !t->ok) return;  // killed; or the error is printed
  lua_State* co = t->co;
  int n = lua_gettop(co);
  if (n == 0 || !lua_checkstack(L_, n + 1)) return;
  lua_getfield(L_, LUA_GLOBALSINDEX, "print");
  lua_xmove(co, L_, n);
  if (lua_pcall(L_, n, 0, 0) != 0) {
    std::string msg = std::string("error calling 'print' (") + (lua_tostring(L_, -1) ? lua_tostring(L_, -1) : "?") + ")";
    lua_pop(L_, 1);
    print_error(msg.c_str());
  }
}

void Repl::on_sigint(int, short, void* arg) { static_cast<Repl*>(arg)->interrupt(); }

void Repl::interrupt() {
  if (g_hook_set) {
    // the hook did not fire: the Lua code ended by itself. Not for later code.
    lua_sethook(L_, nullptr, 0, 0);
    g_hook_set = 0;
  }
  if (g_hook_fired) {  // this Ctrl-C was for Lua code that did not yield: it is done
    g_hook_fired = 0;
    return;
  }
  if (rt_.exiting()) {  // Ctrl-C during a SIGTERM shutdown: leave now
    rt_.request_exit(128 + SIGINT);
    return;
  }
  switch (state_) {
    case State::running: {
      // Ctrl-C cancels the waiting line: its thread is killed (its pending operation
      // cancelled); light threads it spawned and timers carry on.
      Scheduler& sched = rt_.sched();
      if (LuaThread* t = sched.find(line_)) sched.kill(t);
      line_done_ = true;
      line_ = 0;
      flush_stdout();
      fputs(tty_ ? "\ninterrupted\n" : "interrupted\n", stderr);
      fflush(stderr);
      break;
    }
    case State::input:
      if (!tty_) {  // nobody is typing: Ctrl-C stops the program, as for a script
        rt_.request_exit(128 + SIGINT);
        return;
      }
      // like bash and lua: drop what was typed (and an incomplete chunk), a new prompt
      pending_.clear();
      if (reading_) {
        fputs("^C\n", stdout);  // after what was typed; the next prompt's line is empty
        fflush(stdout);
        stop_input();
      }
      break;  // the main loop shows the prompt again
    case State::eof:
      break;
  }
}

void Repl::on_sigwinch(int, short, void* arg) {
  auto* r = static_cast<Repl*>(arg);
  if (r->reading_) r->editor_->resize();
}

// Ctrl-Z: the editor's terminal mode is put away while the process is stopped, and the
// prompt (with what was typed) comes back on `fg`.
void Repl::on_sigtstp(int, short, void* arg) {
  auto* r = static_cast<Repl*>(arg);
  bool reading = r->reading_;
  std::string typed;
  if (reading) {
    typed = r->editor_->typed();
    fputs("\n", stdout);
    fflush(stdout);
    r->editor_->stop();
  }
  raise(SIGSTOP);  // returns on SIGCONT
  if (reading) {
    r->editor_->start(r->pending_.empty() ? kPrompt : kMorePrompt);
    r->editor_->retype(typed);
  }
}

// Output is about to appear while the prompt is on the screen: take the prompt (and
// what the user has typed) off; redisplay() puts it back after the output.
void Repl::on_output() {
  Repl* r = g_repl;
  if (!r || !r->tty_ || !r->reading_ || r->hidden_) return;
  r->hidden_ = true;
  r->editor_->clear_visible();
}

void Repl::redisplay() {
  if (!hidden_) return;
  hidden_ = false;
  if (!reading_) return;
  editor_->redisplay();
}

}  // namespace

int run_repl(Runtime& rt, int nargs) {
  Repl repl(rt);
  return repl.run(nargs);
}

}  // namespace cosocket
