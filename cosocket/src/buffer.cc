#include "buffer.h"

#include <cstring>
#include <sys/uio.h>
#include <unistd.h>

namespace cosocket {

namespace {
constexpr size_t kScratch = 65536;
constexpr size_t kMinStorage = 4096;
}  // namespace

char* Buffer::scratch() {
  static char area[kScratch];  // one event loop per process: one buffer borrows at a time
  return area;
}

void Buffer::consume(size_t n) {
  if (n > size()) n = size();
  rpos_ += n;
  consumed_total_ += n;
  if (rpos_ == wpos_) rpos_ = wpos_ = 0;
}

void Buffer::clear() {
  rpos_ = wpos_ = 0;
  borrowed_ = false;
  std::vector<char>().swap(buf_);
}

void Buffer::own() {
  size_t n = size();
  std::vector<char> mine(n > kMinStorage ? n : kMinStorage);
  std::memcpy(mine.data(), scratch() + rpos_, n);
  buf_.swap(mine);
  rpos_ = 0;
  wpos_ = n;
  borrowed_ = false;
}

void Buffer::settle() {
  if (borrowed_) {
    if (empty()) {
      borrowed_ = false;
      rpos_ = wpos_ = 0;
    } else {
      own();
    }
  } else if (empty() && !buf_.empty()) {
    std::vector<char>().swap(buf_);
  }
}

void Buffer::ensure_writable(size_t n) {
  if (borrowed_) own();
  if (buf_.size() - wpos_ >= n) return;
  if (rpos_ > 0 && buf_.size() - size() >= n) {  // compact before growing
    std::memmove(buf_.data(), buf_.data() + rpos_, size());
    wpos_ -= rpos_;
    rpos_ = 0;
    return;
  }
  size_t want = wpos_ + n;
  size_t cap = buf_.size() < kMinStorage ? kMinStorage : buf_.size();
  while (cap < want) cap *= 2;
  buf_.resize(cap);
}

void Buffer::append(const char* p, size_t n) {
  ensure_writable(n);
  std::memcpy(buf_.data() + wpos_, p, n);
  wpos_ += n;
}

ssize_t Buffer::read_with(ssize_t (*fn)(void*, char*, size_t), void* ctx) {
  if (!borrowed_ && buf_.empty()) {
    borrowed_ = true;
    rpos_ = wpos_ = 0;
  }
  if (borrowed_ && wpos_ == kScratch) own();
  char* p;
  size_t room;
  if (borrowed_) {
    p = scratch() + wpos_;
    room = kScratch - wpos_;
  } else {
    ensure_writable(16384);
    p = buf_.data() + wpos_;
    room = buf_.size() - wpos_;
  }
  ssize_t n = fn(ctx, p, room);
  if (n > 0) wpos_ += static_cast<size_t>(n);
  return n;
}

ssize_t Buffer::read_fd(int fd, bool* drained) {
  if (!borrowed_ && buf_.empty()) {  // no storage: read into the scratch area
    borrowed_ = true;
    rpos_ = wpos_ = 0;
  }
  if (borrowed_) {
    if (wpos_ < kScratch) {
      size_t room = kScratch - wpos_;
      ssize_t n = ::read(fd, scratch() + wpos_, room);
      if (n > 0) wpos_ += static_cast<size_t>(n);
      if (drained) *drained = n > 0 && static_cast<size_t>(n) < room;
      return n;
    }
    own();
  }
  char extra[65536];
  ensure_writable(4096);
  size_t writable = buf_.size() - wpos_;
  iovec iov[2];
  iov[0].iov_base = buf_.data() + wpos_;
  iov[0].iov_len = writable;
  iov[1].iov_base = extra;
  iov[1].iov_len = sizeof extra;
  ssize_t n = readv(fd, iov, 2);
  if (drained) *drained = n > 0 && static_cast<size_t>(n) < writable + sizeof extra;
  if (n <= 0) return n;
  if (static_cast<size_t>(n) <= writable) {
    wpos_ += static_cast<size_t>(n);
  } else {
    wpos_ = buf_.size();
    append(extra, static_cast<size_t>(n) - writable);
  }
  return n;
}

}  // namespace cosocket
