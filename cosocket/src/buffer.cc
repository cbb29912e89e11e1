#include "buffer.h"

#include <cstring>
#include <sys/uio.h>

namespace cosocket {

void Buffer::consume(size_t n) {
  if (n > size()) n = size();
  rpos_ += n;
  consumed_total_ += n;
  if (rpos_ == wpos_) rpos_ = wpos_ = 0;
}

void Buffer::ensure_writable(size_t n) {
  if (buf_.size() - wpos_ >= n) return;
  if (rpos_ > 0 && buf_.size() - size() >= n) {  // compact before growing
    std::memmove(buf_.data(), buf_.data() + rpos_, size());
    wpos_ -= rpos_;
    rpos_ = 0;
    return;
  }
  size_t want = wpos_ + n;
  size_t cap = buf_.size() < 4096 ? 4096 : buf_.size();
  while (cap < want) cap *= 2;
  buf_.resize(cap);
}

void Buffer::append(const char* p, size_t n) {
  ensure_writable(n);
  std::memcpy(buf_.data() + wpos_, p, n);
  wpos_ += n;
}

ssize_t Buffer::read_fd(int fd) {
  char extra[65536];
  ensure_writable(4096);
  size_t writable = buf_.size() - wpos_;
  iovec iov[2];
  iov[0].iov_base = buf_.data() + wpos_;
  iov[0].iov_len = writable;
  iov[1].iov_base = extra;
  iov[1].iov_len = sizeof extra;
  ssize_t n = readv(fd, iov, 2);
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
