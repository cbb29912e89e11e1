#pragma once
// A contiguous read buffer (muduo style): [consumed | readable | writable]. It compacts
// before it grows, and reads from a file descriptor with readv plus an extra buffer, so
// one recv can take up to 64 KiB more than the free space.
//
// An idle connection costs no buffer memory: a read into an empty buffer that has no
// storage lands in a scratch area shared by all buffers ("borrowed"); settle(), called
// before the event loop runs again, keeps only what is left over (copied into storage of
// its own) and frees storage that has become empty. So a read that is consumed at once
// (the usual request/response case) allocates nothing.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <sys/types.h>
#include <vector>

namespace cosocket {

class Buffer {
 public:
  size_t size() const { return wpos_ - rpos_; }
  bool empty() const { return wpos_ == rpos_; }
  const char* data() const { return base() + rpos_; }
  std::string_view view() const { return {data(), size()}; }
  void consume(size_t n);
  void append(const char* p, size_t n);
  void clear();
  // Total bytes consumed since creation: lets a scanner know whether what it saw
  // is still where it left it.
  uint64_t consumed_total() const { return consumed_total_; }
  // recv()s once into the buffer: >0 bytes read, 0 on EOF, -1 with errno set.
  // `drained` (if given) tells whether the read took less than it had room for: the
  // socket's receive queue was empty afterwards.
  ssize_t read_fd(int fd, bool* drained = nullptr);
  // Reads once through fn(ctx, p, room) (e.g. SSL_read): >0 bytes, or what fn returned.
  ssize_t read_with(ssize_t (*fn)(void* ctx, char* p, size_t room), void* ctx);
  // Room for at least n more bytes at the end: fill some of it, then commit() them.
  char* prepare(size_t n) {
    ensure_writable(n);
    return buf_.data() + wpos_;
  }
  size_t room() const { return buf_.size() - wpos_; }
  void commit(size_t n) { wpos_ += n; }
  // Ends the use of the shared scratch area (see above): call it before yielding to
  // the event loop. Frees the storage of an empty buffer.
  void settle();
  // Bytes of storage this buffer owns (for tests).
  size_t capacity() const { return buf_.size(); }

 private:
  const char* base() const { return borrowed_ ? scratch() : buf_.data(); }
  static char* scratch();
  void own();  // copies borrowed bytes into storage of its own
  void ensure_writable(size_t n);
  std::vector<char> buf_;
  size_t rpos_ = 0;
  size_t wpos_ = 0;
  bool borrowed_ = false;
  uint64_t consumed_total_ = 0;
};

}  // namespace cosocket
