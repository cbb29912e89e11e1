#pragma once
// A contiguous read buffer (muduo style): [consumed | readable | writable]. It compacts
// before it grows, and reads from a file descriptor with readv plus a stack extra
// buffer, so one recv can take up to 64 KiB more than the free space.
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
  const char* data() const { return buf_.data() + rpos_; }
  std::string_view view() const { return {data(), size()}; }
  void consume(size_t n);
  void append(const char* p, size_t n);
  void clear() { rpos_ = wpos_ = 0; }
  // Total bytes consumed since creation: lets a scanner know whether what it saw
  // is still where it left it.
  uint64_t consumed_total() const { return consumed_total_; }
  // recv()s once into the buffer: >0 bytes read, 0 on EOF, -1 with errno set.
  ssize_t read_fd(int fd);
  // Room for at least n more bytes at the end: fill some of it, then commit() them.
  char* prepare(size_t n) {
    ensure_writable(n);
    return buf_.data() + wpos_;
  }
  size_t room() const { return buf_.size() - wpos_; }
  void commit(size_t n) { wpos_ += n; }

 private:
  void ensure_writable(size_t n);
  std::vector<char> buf_;
  size_t rpos_ = 0;
  size_t wpos_ = 0;
  uint64_t consumed_total_ = 0;
};

}  // namespace cosocket
