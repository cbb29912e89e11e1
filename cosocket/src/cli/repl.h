#pragma once
// The interactive REPL of the `cosocket` command (`cosocket -i`, or no script with a
// terminal on stdin). Each input line runs in its own light thread while the event
// loop keeps running, so cosockets, light threads and timers work between prompts.

namespace cosocket {

class Runtime;

// Runs the REPL on rt until end of input, os.exit/ngx.exit or a shutdown signal and
// returns the process exit status. With nargs >= 0 a chunk and its arguments are on the
// Lua stack ([f, a1..an]) and run first as a light thread (`cosocket -i script.lua`);
// the first prompt appears when it ends. The runtime must have been made with
// Config::sigint_shutdown = false: Ctrl-C belongs to the REPL.
int run_repl(Runtime& rt, int nargs);

}  // namespace cosocket
