// Unit tests for pool.cc: keepalive pools over a real event_base and socketpairs.
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <utility>
#include <vector>

#include <event2/event.h>
#include <gtest/gtest.h>

#include "net/pool.h"

namespace cosocket {
namespace {

class PoolTest : public ::testing::Test {
 protected:
  void SetUp() override { base_ = event_base_new(); }
  void TearDown() override {
    pools_.clear();  // pools (and their events) go before the base
    for (int fd : peers_) close(fd);
    for (int fd : owned_) close(fd);
    event_base_free(base_);
  }

  Pool* make_pool(size_t size, const char* key = "127.0.0.1:80") {
    pools_.push_back(std::make_unique<Pool>(base_, key, size));
    return pools_.back().get();
  }

  // A connected pair: returns the end the pool will own; *peer is the other end (closed
  // by the fixture).
  int pair(int* peer) {
    int fds[2];
    EXPECT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds));
    peers_.push_back(fds[1]);
    *peer = fds[1];
    return fds[0];
  }

  // fds handed back by the pool (take() or a waiter): the test owns them now
  void own(int fd) {
    if (fd >= 0) owned_.push_back(fd);
  }

  void run_loop_ms(long ms) {
    timeval tv{ms / 1000, (ms % 1000) * 1000};
    event_base_loopexit(base_, &tv);
    event_base_dispatch(base_);
  }

  // Whether fd's other end was closed: waits a little for EOF (read returns 0).
  static bool peer_sees_eof(int fd, int wait_ms = 200) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, wait_ms) <= 0) return false;
    char c;
    for (;;) {
      ssize_t n = read(fd, &c, 1);
      if (n == 0) return true;
      if (n < 0) return errno == ECONNRESET;
      // drain anything buffered and look again
    }
  }

  static bool fd_is_open(int fd) { return fcntl(fd, F_GETFD) != -1; }

  static PooledConn conn(int fd, int reused) {
    PooledConn c;
    c.fd = fd;
    c.reused = reused;
    return c;
  }

  // take(), keeping the fd (its registration goes)
  static int take_fd(Pool* p, int& reused) {
    PooledConn c = p->take();
    reused = c.reused;
    return c.fd;
  }

  event_base* base_ = nullptr;
  std::vector<std::unique_ptr<Pool>> pools_;
  std::vector<int> peers_;
  std::vector<int> owned_;
};

TEST_F(PoolTest, EmptyPoolTakeReturnsMinusOne) {
  Pool* p = make_pool(5);
  EXPECT_EQ("127.0.0.1:80", p->key());
  EXPECT_EQ(5u, p->size());
  int reused = 42;
  EXPECT_EQ(-1, take_fd(p, reused));
  EXPECT_EQ(0u, p->idle_count());
  EXPECT_EQ(0u, p->connections());
  EXPECT_EQ(0u, p->waiting());
}

TEST_F(PoolTest, TakeIsLifoMostRecentFirst) {
  Pool* p = make_pool(10);
  int peer;
  int a = pair(&peer), b = pair(&peer), c = pair(&peer);
  p->put(conn(a, 0), 60000);
  p->put(conn(b, 0), 60000);
  p->put(conn(c, 0), 60000);
  EXPECT_EQ(3u, p->idle_count());
  int reused;
  int t1 = take_fd(p, reused);
  own(t1);
  int t2 = take_fd(p, reused);
  own(t2);
  int t3 = take_fd(p, reused);
  own(t3);
  EXPECT_EQ(c, t1);
  EXPECT_EQ(b, t2);
  EXPECT_EQ(a, t3);
  EXPECT_EQ(-1, take_fd(p, reused));
  EXPECT_EQ(0u, p->idle_count());
}

TEST_F(PoolTest, ReusedCountRoundTrip) {
  Pool* p = make_pool(10);
  int peer;
  int a = pair(&peer), b = pair(&peer);
  p->put(conn(a, 7), 60000);
  p->put(conn(b, 0), 0);
  int reused = -1;
  int fd = take_fd(p, reused);
  own(fd);
  EXPECT_EQ(b, fd);
  EXPECT_EQ(0, reused);
  fd = take_fd(p, reused);
  own(fd);
  EXPECT_EQ(a, fd);
  EXPECT_EQ(7, reused);
}

TEST_F(PoolTest, TakenConnectionIsOpenAndNoLongerWatched) {
  Pool* p = make_pool(10);
  int peer;
  int a = pair(&peer);
  p->put(conn(a, 1), 30);
  int reused;
  int fd = take_fd(p, reused);
  own(fd);
  ASSERT_EQ(a, fd);
  // bytes from the peer and the old idle timeout must not touch a taken connection
  ASSERT_EQ(1, write(peer, "x", 1));
  run_loop_ms(80);
  EXPECT_TRUE(fd_is_open(fd));
  char c = 0;
  EXPECT_EQ(1, read(fd, &c, 1));
  EXPECT_EQ('x', c);
}

TEST_F(PoolTest, LruEvictionClosesLeastRecentlyUsed) {
  Pool* p = make_pool(2);
  int pa, pb, pc;
  int a = pair(&pa), b = pair(&pb), c = pair(&pc);
  for (int i = 0; i < 3; ++i) p->opened();
  p->put(conn(a, 0), 60000);
  p->put(conn(b, 0), 60000);
  EXPECT_EQ(2u, p->idle_count());
  p->put(conn(c, 0), 60000);
  EXPECT_EQ(2u, p->idle_count());
  EXPECT_TRUE(peer_sees_eof(pa)) << "the evicted connection is closed";
  EXPECT_FALSE(peer_sees_eof(pb, 20));
  EXPECT_FALSE(peer_sees_eof(pc, 20));
  EXPECT_EQ(2u, p->connections()) << "eviction closes one of the pool's connections";
  int reused;
  int t1 = take_fd(p, reused);
  own(t1);
  int t2 = take_fd(p, reused);
  own(t2);
  EXPECT_EQ(c, t1);
  EXPECT_EQ(b, t2);
  EXPECT_EQ(-1, take_fd(p, reused));
}

TEST_F(PoolTest, LruFollowsReuseOrder) {
  Pool* p = make_pool(2);
  int pa, pb, pc;
  int a = pair(&pa), b = pair(&pb), c = pair(&pc);
  p->put(conn(a, 0), 60000);
  p->put(conn(b, 0), 60000);
  int reused;
  int fd = take_fd(p, reused);  // b
  ASSERT_EQ(b, fd);
  p->put(conn(b, reused + 1), 60000);  // b is most recent again, a least
  p->put(conn(c, 0), 60000);           // evicts a
  EXPECT_TRUE(peer_sees_eof(pa));
  EXPECT_FALSE(peer_sees_eof(pb, 20));
  fd = take_fd(p, reused);
  own(fd);
  EXPECT_EQ(c, fd);
  fd = take_fd(p, reused);
  own(fd);
  EXPECT_EQ(b, fd);
  EXPECT_EQ(1, reused);
}

TEST_F(PoolTest, SizeZeroPoolClosesAtOnce) {
  Pool* p = make_pool(0);
  int pa;
  int a = pair(&pa);
  p->opened();
  p->put(conn(a, 0), 60000);
  EXPECT_EQ(0u, p->idle_count());
  EXPECT_EQ(0u, p->connections());
  EXPECT_TRUE(peer_sees_eof(pa));
}

TEST_F(PoolTest, IdleTimeoutCloses) {
  Pool* p = make_pool(10);
  int pa, pb;
  int a = pair(&pa), b = pair(&pb);
  p->opened();
  p->opened();
  p->put(conn(a, 0), 50);      // times out
  p->put(conn(b, 0), 60000);   // stays
  EXPECT_EQ(2u, p->idle_count());
  run_loop_ms(150);
  EXPECT_EQ(1u, p->idle_count());
  EXPECT_EQ(1u, p->connections());
  EXPECT_TRUE(peer_sees_eof(pa));
  EXPECT_FALSE(peer_sees_eof(pb, 20));
  int reused;
  int fd = take_fd(p, reused);
  own(fd);
  EXPECT_EQ(b, fd);
}

TEST_F(PoolTest, NoTimeoutMeansNoExpiry) {
  Pool* p = make_pool(10);
  int pa;
  int a = pair(&pa);
  p->put(conn(a, 0), 0);
  run_loop_ms(80);
  EXPECT_EQ(1u, p->idle_count());
  EXPECT_FALSE(peer_sees_eof(pa, 20));
}

TEST_F(PoolTest, PeerCloseDropsIdleConnection) {
  Pool* p = make_pool(10);
  int pa, pb;
  int a = pair(&pa), b = pair(&pb);
  p->opened();
  p->opened();
  p->put(conn(a, 0), 60000);
  p->put(conn(b, 0), 60000);
  // the peer of a closes
  close(pa);
  peers_.erase(std::find(peers_.begin(), peers_.end(), pa));
  run_loop_ms(50);
  EXPECT_EQ(1u, p->idle_count());
  EXPECT_EQ(1u, p->connections());
  EXPECT_FALSE(fd_is_open(a)) << "the dropped connection's fd is closed";
  int reused;
  int fd = take_fd(p, reused);
  own(fd);
  EXPECT_EQ(b, fd);
}

TEST_F(PoolTest, UnexpectedBytesDropIdleConnection) {
  Pool* p = make_pool(10);
  int pa, pb;
  int a = pair(&pa), b = pair(&pb);
  p->opened();
  p->opened();
  p->put(conn(a, 0), 60000);
  p->put(conn(b, 0), 60000);
  ASSERT_EQ(5, write(pa, "hello", 5));
  run_loop_ms(50);
  EXPECT_EQ(1u, p->idle_count());
  EXPECT_EQ(1u, p->connections());
  EXPECT_TRUE(peer_sees_eof(pa));
  int reused;
  int fd = take_fd(p, reused);
  own(fd);
  EXPECT_EQ(b, fd);
}

TEST_F(PoolTest, DestructorClosesIdleConnections) {
  Pool* p = make_pool(10);
  int pa;
  int a = pair(&pa);
  p->put(conn(a, 0), 60000);
  pools_.clear();
  EXPECT_TRUE(peer_sees_eof(pa));
}

TEST_F(PoolTest, ConnectionsAccounting) {
  Pool* p = make_pool(10);
  EXPECT_EQ(0u, p->connections());
  p->opened();
  p->opened();
  p->opened();
  EXPECT_EQ(3u, p->connections());
  p->closed();
  EXPECT_EQ(2u, p->connections());
  // idling does not change the count: the connection still belongs to the pool
  int pa;
  int a = pair(&pa);
  p->put(conn(a, 0), 60000);
  EXPECT_EQ(2u, p->connections());
  int reused;
  own(take_fd(p, reused));
  EXPECT_EQ(2u, p->connections());
  p->closed();
  p->closed();
  EXPECT_EQ(0u, p->connections());
  p->closed();  // never below zero
  EXPECT_EQ(0u, p->connections());
}

TEST_F(PoolTest, BacklogClosedHandsSlotsFifo) {
  Pool* p = make_pool(10);
  p->opened();
  p->opened();
  std::vector<std::pair<int, std::pair<int, int>>> calls;  // (waiter, (fd, reused))
  uint64_t t1 = p->wait([&](PooledConn& pc) {
    int fd = pc.fd, r = pc.reused; calls.push_back({1, {fd, r}}); });
  uint64_t t2 = p->wait([&](PooledConn& pc) {
    int fd = pc.fd, r = pc.reused; calls.push_back({2, {fd, r}}); });
  EXPECT_NE(t1, t2);
  EXPECT_EQ(2u, p->waiting());
  p->closed();
  ASSERT_EQ(1u, calls.size());
  EXPECT_EQ(1, calls[0].first);
  EXPECT_EQ(-1, calls[0].second.first);
  EXPECT_EQ(0, calls[0].second.second);
  EXPECT_EQ(1u, p->waiting());
  EXPECT_EQ(1u, p->connections());
  p->closed();
  ASSERT_EQ(2u, calls.size());
  EXPECT_EQ(2, calls[1].first);
  EXPECT_EQ(-1, calls[1].second.first);
  EXPECT_EQ(0u, p->waiting());
  p->closed();  // nobody waiting: nothing called
  EXPECT_EQ(2u, calls.size());
}

TEST_F(PoolTest, PutHandsConnectionToWaiterInsteadOfIdling) {
  Pool* p = make_pool(10);
  int pa;
  int a = pair(&pa);
  p->opened();
  int got_fd = -100, got_reused = -100;
  p->wait([&](PooledConn& pc) {
    int fd = pc.fd, r = pc.reused;
    got_fd = fd;
    got_reused = r;
  });
  p->put(conn(a, 4), 60000);
  own(got_fd);
  EXPECT_EQ(a, got_fd);
  EXPECT_EQ(4, got_reused);
  EXPECT_EQ(0u, p->idle_count());
  EXPECT_EQ(0u, p->waiting());
  EXPECT_EQ(1u, p->connections());
  EXPECT_TRUE(fd_is_open(a));
  // and it is not watched by the pool: peer bytes do not close it
  ASSERT_EQ(1, write(pa, "y", 1));
  run_loop_ms(30);
  EXPECT_TRUE(fd_is_open(a));
}

TEST_F(PoolTest, WaiterMayPutTheConnectionBack) {
  Pool* p = make_pool(10);
  int pa;
  int a = pair(&pa);
  p->opened();
  int calls = 0;
  p->wait([&](PooledConn& pc) {
    int fd = pc.fd, r = pc.reused;
    ++calls;
    p->put(conn(fd, r + 1), 60000);  // queue is empty by now: it goes idle
  });
  p->put(conn(a, 0), 60000);
  EXPECT_EQ(1, calls);
  EXPECT_EQ(1u, p->idle_count());
  int reused;
  int fd = take_fd(p, reused);
  own(fd);
  EXPECT_EQ(a, fd);
  EXPECT_EQ(1, reused);
}

TEST_F(PoolTest, CancelRemovesWaiter) {
  Pool* p = make_pool(10);
  p->opened();
  std::vector<int> calls;
  uint64_t t1 = p->wait([&](PooledConn&) { calls.push_back(1); });
  uint64_t t2 = p->wait([&](PooledConn&) { calls.push_back(2); });
  uint64_t t3 = p->wait([&](PooledConn&) { calls.push_back(3); });
  p->cancel(t1);
  EXPECT_EQ(2u, p->waiting());
  p->cancel(t1);  // twice: harmless
  p->cancel(9999);
  EXPECT_EQ(2u, p->waiting());
  p->closed();
  EXPECT_EQ(std::vector<int>{2}, calls);
  p->cancel(t3);
  EXPECT_EQ(0u, p->waiting());
  p->closed();
  EXPECT_EQ(std::vector<int>{2}, calls);
  (void)t2;
}

TEST_F(PoolTest, IdleTimeoutLetsAWaiterGo) {
  // a connection dropped while idle frees a slot for a queued connect
  Pool* p = make_pool(10);
  int pa;
  int a = pair(&pa);
  p->opened();
  p->put(conn(a, 0), 30);
  int got = -100;
  p->wait([&](PooledConn& pc) {
    int fd = pc.fd; got = fd; });
  run_loop_ms(100);
  EXPECT_EQ(-1, got);
  EXPECT_EQ(0u, p->idle_count());
  EXPECT_EQ(0u, p->waiting());
}

TEST(PoolSet, GetOrCreateAndFind) {
  event_base* base = event_base_new();
  {
    PoolSet ps(base);
    EXPECT_EQ(nullptr, ps.find("a:1"));
    Pool* p = ps.get_or_create("a:1", 3);
    ASSERT_NE(nullptr, p);
    EXPECT_EQ("a:1", p->key());
    EXPECT_EQ(3u, p->size());
    EXPECT_EQ(p, ps.get_or_create("a:1", 99)) << "an existing pool keeps its size";
    EXPECT_EQ(3u, p->size());
    EXPECT_EQ(p, ps.find("a:1"));
    Pool* q = ps.get_or_create("unix:/tmp/s", 1);
    EXPECT_NE(p, q);
  }
  event_base_free(base);
}

}  // namespace
}  // namespace cosocket
