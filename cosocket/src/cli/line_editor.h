#pragma once
// The REPL's line editing on a terminal: BSD libedit (Debian's libedit, histedit.h), driven
// one keystroke at a time so that the event loop keeps running while the user types, and
// a history file kept line by line (each entered line is appended at once: a session that
// ends any way keeps what was typed).
#include <string>

#include <histedit.h>

namespace cosocket {

class LineEditor {
 public:
  LineEditor();  // on stdin / stdout; ~/.editrc applies
  ~LineEditor();
  LineEditor(const LineEditor&) = delete;
  LineEditor& operator=(const LineEditor&) = delete;

  // Loads the last `max` lines of `path` and appends every later add_history line to it
  // (a missing or unwritable file is no error: the history then stays in memory).
  void use_history_file(const std::string& path, int max);
  void add_history(const std::string& line);

  // Terminal in edit mode, an empty line after `prompt`, which is drawn.
  void start(const char* prompt);
  // The terminal back in its normal mode.
  void stop();

  enum class Got { nothing, line, eof };
  // One keystroke is waiting on stdin: edits the line; a complete line (without its
  // newline) goes to `line`.
  Got feed(std::string& line);

  std::string typed() const;             // the line being edited
  void retype(const std::string& text);  // after start(): puts text back on the line
  void clear_visible();                  // takes the prompt line off the screen
  void redisplay();                      // draws the prompt and the line again
  void resize();                         // the terminal changed size

 private:
  static char* prompt_of(EditLine* el);

  EditLine* el_ = nullptr;
  History* hist_ = nullptr;
  HistEvent ev_{};
  std::string prompt_;
  std::string history_file_;
};

}  // namespace cosocket
