// Unit tests for buffer.cc: the contiguous read buffer used by the cosockets.
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>

#include <gtest/gtest.h>

#include "net/buffer.h"

namespace cosocket {
namespace {

struct SocketPair {
  int fds[2] = {-1, -1};
  SocketPair() { EXPECT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM, 0, fds)); }
  ~SocketPair() {
    for (int fd : fds)
      if (fd >= 0) close(fd);
  }
  void close_end(int i) {
    close(fds[i]);
    fds[i] = -1;
  }
};

void write_all(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = write(fd, s.data() + off, s.size() - off);
    ASSERT_GT(n, 0) << strerror(errno);
    off += static_cast<size_t>(n);
  }
}

std::string pattern_bytes(size_t n, unsigned seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + (i * 7 + seed) % 26);
  return s;
}

TEST(Buffer, StartsEmpty) {
  Buffer b;
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(0u, b.size());
  EXPECT_EQ("", b.view());
  EXPECT_EQ(0u, b.consumed_total());
}

TEST(Buffer, AppendConsumeView) {
  Buffer b;
  b.append("hello ", 6);
  b.append("world", 5);
  EXPECT_FALSE(b.empty());
  EXPECT_EQ(11u, b.size());
  EXPECT_EQ("hello world", b.view());
  EXPECT_EQ(0, std::memcmp(b.data(), "hello world", 11));

  b.consume(6);
  EXPECT_EQ("world", b.view());
  EXPECT_EQ(5u, b.size());
  EXPECT_EQ(6u, b.consumed_total());

  b.append("!", 1);
  EXPECT_EQ("world!", b.view());

  b.consume(6);
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(12u, b.consumed_total());
}

TEST(Buffer, ConsumeMoreThanSizeIsClampedAndCounted) {
  Buffer b;
  b.append("abc", 3);
  b.consume(100);
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(3u, b.consumed_total()) << "only the bytes actually consumed count";
  b.consume(5);
  EXPECT_EQ(3u, b.consumed_total());
}

TEST(Buffer, ConsumedTotalSurvivesClearAndResets) {
  Buffer b;
  b.append("0123456789", 10);
  b.consume(4);
  b.clear();
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(4u, b.consumed_total()) << "clear() is not a consume";
  b.append("xy", 2);
  EXPECT_EQ("xy", b.view());
  b.consume(2);
  EXPECT_EQ(6u, b.consumed_total());
}

TEST(Buffer, FullConsumeRewindsToStart) {
  Buffer b;
  b.append("abcd", 4);
  const char* start = b.data();
  b.consume(2);
  EXPECT_EQ(start + 2, b.data());
  b.consume(2);
  b.append("z", 1);
  EXPECT_EQ(start, b.data()) << "an emptied buffer reuses its space from the start";
}

TEST(Buffer, CompactsBeforeGrowing) {
  Buffer b;
  // first append sizes the buffer to 4096 bytes
  std::string fill = pattern_bytes(4096, 1);
  b.append(fill.data(), fill.size());
  const char* base = b.data();
  ASSERT_EQ(4096u, b.size());

  // consume most, then append something that fits only after compaction
  b.consume(4000);
  ASSERT_EQ(96u, b.size());
  std::string more = pattern_bytes(3000, 2);
  b.append(more.data(), more.size());
  EXPECT_EQ(base, b.data()) << "compaction keeps the same storage and moves the data to the front";
  EXPECT_EQ(fill.substr(4000) + more, b.view());
  EXPECT_EQ(4000u, b.consumed_total());

  // now exactly fill the remaining room: 96 + 3000 + 1000 = 4096 still fits
  std::string fit = pattern_bytes(1000, 3);
  b.append(fit.data(), fit.size());
  EXPECT_EQ(base, b.data());
  EXPECT_EQ(4096u, b.size());

  // a large append must grow (the storage moves) and keep the contents
  std::string big = pattern_bytes(20000, 4);
  b.append(big.data(), big.size());
  EXPECT_EQ(4096u + 20000u, b.size());
  EXPECT_EQ(fill.substr(4000) + more + fit + big, b.view());
}

TEST(Buffer, GrowthKeepsUnconsumedDataWhenCompactionIsNotEnough) {
  Buffer b;
  std::string a = pattern_bytes(4096, 5);
  b.append(a.data(), a.size());
  b.consume(10);  // 4086 left, 10 bytes reclaimable: not enough for 100
  std::string c = pattern_bytes(100, 6);
  b.append(c.data(), c.size());
  EXPECT_EQ(a.substr(10) + c, b.view());
  EXPECT_EQ(10u, b.consumed_total());
}

TEST(Buffer, ManySmallAppendsAndConsumes) {
  Buffer b;
  std::string expect;
  uint64_t consumed = 0;
  for (int i = 0; i < 5000; ++i) {
    std::string piece = pattern_bytes(static_cast<size_t>(i % 37 + 1), static_cast<unsigned>(i));
    b.append(piece.data(), piece.size());
    expect += piece;
    size_t c = static_cast<size_t>(i % 29);
    if (c > expect.size()) c = expect.size();
    b.consume(c);
    expect.erase(0, c);
    consumed += c;
    ASSERT_EQ(expect, b.view()) << "iteration " << i;
  }
  EXPECT_EQ(consumed, b.consumed_total());
}

TEST(Buffer, ReadFdSmall) {
  SocketPair sp;
  write_all(sp.fds[1], "ping");
  Buffer b;
  b.append("x", 1);
  ssize_t n = b.read_fd(sp.fds[0]);
  EXPECT_EQ(4, n);
  EXPECT_EQ("xping", b.view());
}

TEST(Buffer, ReadFdLargerThanFreeSpaceUsesExtraBuffer) {
  SocketPair sp;
  // make the socket buffers big enough to hold the whole payload at once
  int sz = 1 << 20;
  setsockopt(sp.fds[1], SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
  setsockopt(sp.fds[0], SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);

  Buffer b;
  std::string prefix = pattern_bytes(100, 7);
  b.append(prefix.data(), prefix.size());  // capacity 4096, ~4000 free

  // 60000 bytes: more than the free space, less than free + 64 KiB, so one readv
  // should take it all (a unix stream socket delivers what is queued).
  std::string payload = pattern_bytes(60000, 8);
  ASSERT_NO_FATAL_FAILURE(write_all(sp.fds[1], payload));

  std::string got = prefix;
  size_t want = prefix.size() + payload.size();
  ssize_t first = b.read_fd(sp.fds[0]);
  ASSERT_GT(first, 0);
  // the buffer holds at most 8 KiB at this point: one read_fd takes everything queued
  EXPECT_EQ(static_cast<ssize_t>(payload.size()), first)
      << "a single read_fd should go past the free space via the extra buffer";
  while (b.size() < want) {
    ssize_t n = b.read_fd(sp.fds[0]);
    ASSERT_GT(n, 0);
  }
  EXPECT_EQ(want, b.size());
  EXPECT_EQ(prefix + payload, b.view());
}

TEST(Buffer, ReadFdVeryLargeInManyReads) {
  SocketPair sp;
  int sz = 1 << 20;
  setsockopt(sp.fds[1], SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
  setsockopt(sp.fds[0], SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
  std::string payload = pattern_bytes(300000, 9);
  Buffer b;
  size_t written = 0;
  // interleave writes and reads so the socket buffers never block the writer
  int fl = fcntl(sp.fds[1], F_GETFL);
  fcntl(sp.fds[1], F_SETFL, fl | O_NONBLOCK);
  while (b.size() < payload.size()) {
    if (written < payload.size()) {
      ssize_t w = write(sp.fds[1], payload.data() + written, payload.size() - written);
      if (w > 0) written += static_cast<size_t>(w);
      else ASSERT_EQ(EAGAIN, errno);
    }
    ssize_t n = b.read_fd(sp.fds[0]);
    ASSERT_GT(n, 0);
  }
  EXPECT_EQ(payload, b.view());
}

TEST(Buffer, ReadFdEofReturnsZero) {
  SocketPair sp;
  write_all(sp.fds[1], "last");
  sp.close_end(1);
  Buffer b;
  EXPECT_EQ(4, b.read_fd(sp.fds[0]));
  EXPECT_EQ(0, b.read_fd(sp.fds[0]));
  EXPECT_EQ("last", b.view()) << "EOF leaves the data alone";
}

TEST(Buffer, ReadFdEagainOnEmptyNonBlockingSocket) {
  SocketPair sp;
  int fl = fcntl(sp.fds[0], F_GETFL);
  ASSERT_EQ(0, fcntl(sp.fds[0], F_SETFL, fl | O_NONBLOCK));
  Buffer b;
  b.append("keep", 4);
  errno = 0;
  EXPECT_EQ(-1, b.read_fd(sp.fds[0]));
  EXPECT_TRUE(errno == EAGAIN || errno == EWOULDBLOCK) << strerror(errno);
  EXPECT_EQ("keep", b.view()) << "a failed read leaves the data alone";
}

TEST(Buffer, ReadFdBadFdReturnsMinusOne) {
  Buffer b;
  errno = 0;
  EXPECT_EQ(-1, b.read_fd(-1));
  EXPECT_EQ(EBADF, errno);
  EXPECT_TRUE(b.empty());
}

// A read lands in the shared scratch area: nothing is allocated while the bytes are
// consumed there; another buffer's read moves what is left into storage of its own.
TEST(BufferTest, IdleBufferOwnsNoStorage) {
  SocketPair sp;
  Buffer b;
  write_all(sp.fds[1], "hello world");
  ASSERT_EQ(11, b.read_fd(sp.fds[0]));
  EXPECT_TRUE(b.borrowed());
  EXPECT_EQ(0u, b.capacity());
  EXPECT_EQ("hello", std::string(b.data(), 5));
  b.consume(5);
  b.settle();  // still borrowed: " world" stays in the scratch area
  EXPECT_EQ(0u, b.capacity());
  EXPECT_EQ(" world", std::string(b.view()));
  write_all(sp.fds[1], "!!");
  ASSERT_EQ(2, b.read_fd(sp.fds[0]));  // appended in the scratch area
  EXPECT_EQ(" world!!", std::string(b.view()));
  // another buffer reads: b's bytes are evicted into b's own storage, unchanged
  SocketPair sp2;
  Buffer other;
  write_all(sp2.fds[1], "other bytes");
  ASSERT_EQ(11, other.read_fd(sp2.fds[0]));
  EXPECT_FALSE(b.borrowed());
  EXPECT_GE(b.capacity(), 8u);
  EXPECT_EQ(" world!!", std::string(b.view()));
  EXPECT_EQ("other bytes", std::string(other.view()));
  b.consume(8);
  EXPECT_EQ(13u, b.consumed_total());
  b.settle();
  EXPECT_EQ(0u, b.capacity());  // empty: freed
  // and b borrows again, evicting `other`
  write_all(sp.fds[1], "again");
  ASSERT_EQ(5, b.read_fd(sp.fds[0]));
  EXPECT_TRUE(b.borrowed());
  EXPECT_FALSE(other.borrowed());
  EXPECT_EQ("other bytes", std::string(other.view()));
  EXPECT_EQ("again", std::string(b.view()));
}

TEST(BufferTest, BorrowedReadsAccumulate) {
  SocketPair sp;
  Buffer b;
  write_all(sp.fds[1], "abc");
  ASSERT_EQ(3, b.read_fd(sp.fds[0]));
  write_all(sp.fds[1], "def");
  ASSERT_EQ(3, b.read_fd(sp.fds[0]));  // still borrowed, after the first bytes
  EXPECT_EQ("abcdef", std::string(b.view()));
  b.append("gh", 2);  // writing makes it owned, the bytes kept
  EXPECT_FALSE(b.borrowed());
  EXPECT_EQ("abcdefgh", std::string(b.view()));
  EXPECT_GE(b.capacity(), 8u);
  b.consume(8);
  b.settle();
  EXPECT_EQ(0u, b.capacity());
  // a destroyed holder gives the scratch area up
  {
    SocketPair sp3;
    Buffer gone;
    write_all(sp3.fds[1], "tmp");
    ASSERT_EQ(3, gone.read_fd(sp3.fds[0]));
  }
  write_all(sp.fds[1], "x");
  ASSERT_EQ(1, b.read_fd(sp.fds[0]));
  EXPECT_EQ("x", std::string(b.view()));
  b.clear();
  EXPECT_TRUE(b.empty());
  EXPECT_FALSE(b.borrowed());
}

TEST(BufferTest, ReadWithCallback) {
  Buffer b;
  auto fill = [](void* ctx, char* p, size_t room) -> ssize_t {
    const std::string* src = static_cast<const std::string*>(ctx);
    size_t n = std::min(room, src->size());
    memcpy(p, src->data(), n);
    return static_cast<ssize_t>(n);
  };
  std::string src = "payload";
  ASSERT_EQ(7, b.read_with(fill, &src));
  EXPECT_EQ("payload", std::string(b.view()));
  b.settle();
  EXPECT_EQ("payload", std::string(b.view()));
  ASSERT_EQ(7, b.read_with(fill, &src));  // appended
  EXPECT_EQ("payloadpayload", std::string(b.view()));
  b.clear();
  EXPECT_EQ(0u, b.capacity());
}

}  // namespace
}  // namespace cosocket
