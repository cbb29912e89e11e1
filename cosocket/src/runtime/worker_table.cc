#include "runtime/worker_table.h"

#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <new>
#include <memory>

namespace cosocket {

namespace {

struct Unmap {
  size_t len;
  void operator()(std::atomic<pid_t>* p) const { munmap(p, len); }
};

std::unique_ptr<std::atomic<pid_t>, Unmap> g_table{nullptr, Unmap{0}};
int g_count = 0;

}  // namespace

void worker_table_init(int n) {
  size_t len = sizeof(std::atomic<pid_t>) * static_cast<size_t>(n > 0 ? n : 1);
  void* p = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return;  // pids() then answers with this process only
  auto* slots = static_cast<std::atomic<pid_t>*>(p);
  for (int i = 0; i < n; ++i) new (&slots[i]) std::atomic<pid_t>(0);
  g_table = std::unique_ptr<std::atomic<pid_t>, Unmap>(slots, Unmap{len});
  g_count = n;
}

void worker_table_set(int id, pid_t pid) {
  if (g_table && id >= 0 && id < g_count) g_table.get()[id].store(pid, std::memory_order_release);
}

std::vector<pid_t> worker_table_pids() {
  std::vector<pid_t> out;
  if (!g_table) {
    out.push_back(getpid());
    return out;
  }
  for (int i = 0; i < g_count; ++i) {
    pid_t p = g_table.get()[i].load(std::memory_order_acquire);
    if (p > 0) out.push_back(p);
  }
  return out;
}

}  // namespace cosocket
