#include "net/buffer.h"

#include <cstring>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

namespace cosocket {

namespace {
constexpr size_t kScratch = 65536;
constexpr size_t kMinStorage = 4096;
// The buffer whose bytes are in the scratch area (one event loop per process).
Buffer* g_scratch_holder = nullptr;
}  // namespace

char* Buffer::scratch() {
  static char area[kScratch];
  return area;
}

Buffer::~Buffer() {
  if (g_scratch_holder == this) g_scratch_holder = nullptr;
}

void Buffer::consume(size_t n) {
  if (n > size()) n = size();
  rpos_ += n;
  consumed_total_ += n;
  if (rpos_ == wpos_) rpos_ = wpos_ = 0;
}

void Buffer::clear() {
  rpos_ = wpos_ = 0;
  if (borrowed_) {
    borrowed_ = false;
    if (g_scratch_holder == this) g_scratch_holder = nullptr;
  }
  store_.reset();
  cap_ = 0;
}

void Buffer::grow_to(size_t cap) {
  std::unique_ptr<char[]> bigger(new char[cap]);  // not zero-filled
  if (size()) std::memcpy(bigger.get(), data(), size());
  wpos_ -= rpos_;
  rpos_ = 0;
  store_ = std::move(bigger);
  cap_ = cap;
}

void Buffer::own() {
  size_t n = size();
  const char* src = scratch() + rpos_;
  borrowed_ = false;
  if (g_scratch_holder == this) g_scratch_holder = nullptr;
  if (n == 0) {
    rpos_ = wpos_ = 0;
    return;
  }
  size_t cap = n > kMinStorage ? n : kMinStorage;
  if (cap_ < cap) {
    store_.reset(new char[cap]);
    cap_ = cap;
  }
  std::memcpy(store_.get(), src, n);
  rpos_ = 0;
  wpos_ = n;
}

void Buffer::borrow() {
  if (g_scratch_holder && g_scratch_holder != this) g_scratch_holder->own();
  g_scratch_holder = this;
  borrowed_ = true;
  rpos_ = wpos_ = 0;
}

void Buffer::settle() {
  if (!borrowed_ && cap_ && empty()) {
    store_.reset();
    cap_ = 0;
    rpos_ = wpos_ = 0;
  }
}

void Buffer::ensure_writable(size_t n) {
  if (borrowed_) own();
  if (cap_ - wpos_ >= n) return;
  if (rpos_ > 0 && cap_ - size() >= n) {  // compact before growing
    std::memmove(store_.get(), store_.get() + rpos_, size());
    wpos_ -= rpos_;
    rpos_ = 0;
    return;
  }
  size_t want = size() + n;
  size_t cap = cap_ < kMinStorage ? kMinStorage : cap_;
  while (cap < want) cap *= 2;
  grow_to(cap);
}

void Buffer::append(const char* p, size_t n) {
  if (n == 0) return;  // (an empty buffer has no storage: no memcpy to a null pointer)
  ensure_writable(n);
  std::memcpy(store_.get() + wpos_, p, n);
  wpos_ += n;
}

ssize_t Buffer::read_with(ssize_t (*fn)(void*, char*, size_t), void* ctx) {
  if (!borrowed_ && cap_ == 0) borrow();
  if (borrowed_ && wpos_ == kScratch) own();
  char* p;
  size_t room;
  if (borrowed_) {
    p = scratch() + wpos_;
    room = kScratch - wpos_;
  } else {
    ensure_writable(16384);
    p = store_.get() + wpos_;
    room = cap_ - wpos_;
  }
  ssize_t n = fn(ctx, p, room);
  if (n > 0) wpos_ += static_cast<size_t>(n);
  return n;
}

ssize_t Buffer::read_fd(int fd, bool* drained) {
  if (!borrowed_ && cap_ == 0) borrow();
  if (borrowed_) {
    if (wpos_ < kScratch) {
      size_t room = kScratch - wpos_;
      ssize_t n = ::recv(fd, scratch() + wpos_, room, 0);  // recv: no VFS layer, as read has
      if (n > 0) wpos_ += static_cast<size_t>(n);
      if (drained) *drained = n >= 0 && static_cast<size_t>(n) < room;
      return n;
    }
    own();
  }
  char extra[65536];
  ensure_writable(4096);
  size_t writable = cap_ - wpos_;
  iovec iov[2];
  iov[0].iov_base = store_.get() + wpos_;
  iov[0].iov_len = writable;
  iov[1].iov_base = extra;
  iov[1].iov_len = sizeof extra;
  msghdr msg{};
  msg.msg_iov = iov;
  msg.msg_iovlen = 2;
  ssize_t n = recvmsg(fd, &msg, 0);
  if (drained) *drained = n >= 0 && static_cast<size_t>(n) < writable + sizeof extra;
  if (n <= 0) return n;
  if (static_cast<size_t>(n) <= writable) {
    wpos_ += static_cast<size_t>(n);
  } else {
    wpos_ = cap_;
    append(extra, static_cast<size_t>(n) - writable);
  }
  return n;
}

}  // namespace cosocket
