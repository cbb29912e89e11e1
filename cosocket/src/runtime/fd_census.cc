#include "runtime/fd_census.h"

#include <dirent.h>
#include <unistd.h>

#include <cstdlib>
#include <memory>

namespace cosocket {

std::set<int> open_fds() {
  std::set<int> fds;
  std::unique_ptr<DIR, int (*)(DIR*)> dir(opendir("/proc/self/fd"), &closedir);
  if (!dir) return fds;
  int self = dirfd(dir.get());
  while (dirent* e = readdir(dir.get())) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    int fd = std::atoi(e->d_name);
    if (fd != self) fds.insert(fd);
  }
  return fds;
}

std::string describe_fd(int fd) {
  std::string link = "/proc/self/fd/" + std::to_string(fd);
  char buf[256];
  ssize_t n = readlink(link.c_str(), buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string("?");
}

std::string leaked_fds_report(const std::set<int>& at_start) {
  std::string list;
  size_t count = 0;
  for (int fd : open_fds()) {
    if (at_start.count(fd)) continue;
    ++count;
    list += " " + std::to_string(fd) + " (" + describe_fd(fd) + ")";
  }
  if (count == 0) return "";
  return "cosocket: leak check: " + std::to_string(count) + " descriptor" + (count == 1 ? "" : "s") +
         " left open at exit:" + list;
}

}  // namespace cosocket
