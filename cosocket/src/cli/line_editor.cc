// line_editor.cc -- libedit behind the REPL (see line_editor.h).
#include "cli/line_editor.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <clocale>
#include <cstdio>
#include <deque>
#include <fstream>

namespace cosocket {

LineEditor::LineEditor() {
  // the terminal's character set (UTF-8 input), as readline takes it from the environment;
  // LC_CTYPE only: Lua's number formatting stays C's
  setlocale(LC_CTYPE, "");
  el_ = el_init("cosocket", stdin, stdout, stderr);
  hist_ = history_init();
  history(hist_, &ev_, H_SETSIZE, 1000);
  el_set(el_, EL_CLIENTDATA, this);
  el_set(el_, EL_EDITOR, "emacs");
  el_set(el_, EL_SIGNAL, 0);  // SIGINT, SIGTSTP and SIGWINCH come through the event loop
  el_set(el_, EL_PROMPT, &LineEditor::prompt_of);
  el_set(el_, EL_HIST, history, hist_);
  el_source(el_, nullptr);  // ~/.editrc
}

LineEditor::~LineEditor() {
  stop();
  el_end(el_);
  history_end(hist_);
}

char* LineEditor::prompt_of(EditLine* el) {
  void* self = nullptr;
  el_get(el, EL_CLIENTDATA, &self);
  return const_cast<char*>(static_cast<LineEditor*>(self)->prompt_.c_str());
}

void LineEditor::use_history_file(const std::string& path, int max) {
  history(hist_, &ev_, H_SETSIZE, max);
  std::deque<std::string> lines;
  size_t total = 0;
  {
    std::ifstream in(path);
    for (std::string l; std::getline(in, l); ++total) {
      if (l.empty()) continue;
      lines.push_back(l);
      if (lines.size() > static_cast<size_t>(max)) lines.pop_front();
    }
  }
  for (const auto& l : lines) history(hist_, &ev_, H_ENTER, l.c_str());
  history_file_ = path;
  if (total > 2 * static_cast<size_t>(max)) {  // appended to for long: keep its tail
    std::string tmp = path + ".tmp";
    std::ofstream out(tmp, std::ios::trunc);
    for (const auto& l : lines) out << l << '\n';
    out.close();
    if (out) rename(tmp.c_str(), path.c_str());
    else unlink(tmp.c_str());
  }
}

void LineEditor::add_history(const std::string& line) {
  if (line.empty()) return;
  history(hist_, &ev_, H_ENTER, line.c_str());
  if (history_file_.empty()) return;
  int fd = open(history_file_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return;  // unwritable: the history stays in memory
  std::string rec = line + "\n";
  ssize_t n = write(fd, rec.data(), rec.size());
  (void)n;
  close(fd);
}

void LineEditor::start(const char* prompt) {
  prompt_ = prompt;
  el_set(el_, EL_UNBUFFERED, 1);  // edit mode, an empty line, the prompt drawn
}

void LineEditor::stop() { el_set(el_, EL_UNBUFFERED, 0); }

LineEditor::Got LineEditor::feed(std::string& line) {
  int n = 0;
  errno = 0;
  const char* buf = el_gets(el_, &n);
  if (buf && n > 0 && buf[n - 1] == '\n') {
    line.assign(buf, static_cast<size_t>(n - 1));
    return Got::line;
  }
  // Ctrl-D on an empty line: unbuffered, libedit gives a line of one ^D
  if ((buf && n == 1 && buf[0] == '\x04') || (!buf && n == 0)) return Got::eof;
  if (!buf && errno != 0 && errno != EINTR && errno != EAGAIN) return Got::eof;  // the terminal is gone
  return Got::nothing;
}

std::string LineEditor::typed() const {
  const LineInfo* li = el_line(el_);
  return std::string(li->buffer, static_cast<size_t>(li->lastchar - li->buffer));
}

void LineEditor::retype(const std::string& text) {
  if (text.empty()) return;
  el_insertstr(el_, text.c_str());
  redisplay();
}

void LineEditor::clear_visible() {
  fputs("\r\033[K", stdout);
  fflush(stdout);
}

void LineEditor::redisplay() {
  el_set(el_, EL_REFRESH);
  fflush(stdout);
}

void LineEditor::resize() { el_resize(el_); }

}  // namespace cosocket
