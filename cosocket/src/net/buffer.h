#pragma once
// A contiguous read buffer (muduo style): [consumed | readable | writable]. It compacts
// before it grows, and reads from a file descriptor with readv plus an extra buffer, so
// one recv can take up to 64 KiB more than the free space.
//
// An idle connection costs no buffer memory: a read into a buffer without storage lands
// in a scratch area shared by all buffers ("borrowed"). The bytes stay there until
// another buffer needs the area: then they are copied into storage of their own (only
// then is anything allocated). settle() frees storage that has become empty. So a read
// consumed by the next calls (a line, then a body) allocates nothing.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>
#include <sys/types.h>

namespace cosocket {

class Buffer {
 public:
  Buffer() = default;
  ~Buffer();
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

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
  // recv()s once from socket fd into the buffer: >0 bytes read, 0 on EOF, -1 with errno set. *drained
  // (when given) says whether the read took less than it asked for, so the kernel's queue
  // was empty after it.
  ssize_t read_fd(int fd, bool* drained = nullptr);
  // Reads once through fn(ctx, p, room) (e.g. SSL_read): >0 bytes, or what fn returned.
  ssize_t read_with(ssize_t (*fn)(void* ctx, char* p, size_t room), void* ctx);
  // Frees storage that has become empty (an idle connection owns no memory).
  void settle();
  // Bytes of storage this buffer owns (for tests).
  size_t capacity() const { return cap_; }
  bool borrowed() const { return borrowed_; }

 private:
  const char* base() const { return borrowed_ ? scratch() : store_.get(); }
  static char* scratch();
  void borrow();  // takes the scratch area (evicting its holder), when empty and storage-less
  void own();     // copies borrowed bytes into storage of its own
  void ensure_writable(size_t n);
  void grow_to(size_t cap);
  std::unique_ptr<char[]> store_;
  size_t cap_ = 0;
  size_t rpos_ = 0;
  size_t wpos_ = 0;
  bool borrowed_ = false;
  uint64_t consumed_total_ = 0;
};

}  // namespace cosocket
