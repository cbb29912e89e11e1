// Unit tests for epoll_tap.cc and io_reg.cc over a real event_base and socketpairs.
#include <sys/socket.h>
#include <unistd.h>

#include <vector>

#include <event2/event.h>
#include <gtest/gtest.h>

#include "loop/epoll_tap.h"
#include "loop/io_reg.h"

namespace cosocket {
namespace {

class IoTest : public ::testing::Test {
 protected:
  void SetUp() override {
    base_ = event_base_new();
    ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds_));
  }
  void TearDown() override {
    for (int fd : fds_)
      if (fd >= 0) close(fd);
    event_base_free(base_);
  }
  void run_once() { event_base_loop(base_, EVLOOP_NONBLOCK); }

  static void record(void* owner, short what) { static_cast<std::vector<short>*>(owner)->push_back(what); }

  event_base* base_ = nullptr;
  int fds_[2] = {-1, -1};
};

TEST_F(IoTest, TapSeesThePeersCloseThatLibeventFoldsAway) {
  std::vector<short> seen;
  IoRegPtr io = IoReg::open(base_, fds_[0], &IoTest::record, &seen);
  ASSERT_NE(nullptr, io);
  epoll_tap::forget(fds_[0]);
  run_once();
  EXPECT_TRUE(epoll_tap::live()) << "libevent's epoll_wait goes through the tap";
  EXPECT_FALSE(epoll_tap::peer_gone(fds_[0]));
  seen.clear();  // the first report: writable
  // data and the close in one event
  ASSERT_EQ(2, write(fds_[1], "hi", 2));
  close(fds_[1]);
  fds_[1] = -1;
  run_once();
  EXPECT_TRUE(epoll_tap::peer_gone(fds_[0]));
  ASSERT_FALSE(seen.empty());
  EXPECT_EQ(EV_READ, seen.front());
  epoll_tap::forget(fds_[0]);
  EXPECT_FALSE(epoll_tap::peer_gone(fds_[0]));
}

TEST_F(IoTest, OneRegistrationForBothDirectionsAndRetarget) {
  std::vector<short> a, b;
  IoRegPtr io = IoReg::open(base_, fds_[0], &IoTest::record, &a);
  ASSERT_NE(nullptr, io);
  run_once();  // the first report: writable
  ASSERT_FALSE(a.empty());
  EXPECT_EQ(EV_WRITE, a.back());
  a.clear();
  io->retarget(&IoTest::record, &b);
  ASSERT_EQ(1, write(fds_[1], "x", 1));
  run_once();
  EXPECT_TRUE(a.empty()) << "the old holder hears nothing after retarget";
  ASSERT_FALSE(b.empty());
  EXPECT_EQ(EV_READ, b.front()) << "the read side goes first";
}

TEST_F(IoTest, LazyIdleTimerFiresOnceAndDisarmIsFree) {
  std::vector<short> seen;
  IoRegPtr io = IoReg::open(base_, fds_[0], &IoTest::record, &seen);
  ASSERT_NE(nullptr, io);
  run_once();
  seen.clear();
  // (margins of hundreds of ms: the ASan build on a loaded machine is slow)
  io->arm_idle(100);
  io->disarm_idle();  // taken back before it expired: no timeout
  io->arm_idle(600);  // idle again: the armed timer fires at 100 ms and re-arms for the rest
  timeval tv{0, 300 * 1000};
  event_base_loopexit(base_, &tv);
  event_base_dispatch(base_);
  EXPECT_TRUE(seen.empty()) << "no timeout before 600 ms";
  tv = {0, 600 * 1000};
  event_base_loopexit(base_, &tv);
  event_base_dispatch(base_);
  ASSERT_EQ(1u, seen.size());
  EXPECT_EQ(EV_TIMEOUT, seen[0]);
}

TEST_F(IoTest, FreedDuringItsReadCallbackGetsNoWriteCall) {
  struct Box {
    IoRegPtr io;
    int calls = 0;
  } box;
  box.io = IoReg::open(base_, fds_[0], [](void* owner, short) {
    auto* b = static_cast<Box*>(owner);
    ++b->calls;
    b->io.reset();  // the holder closes the connection in the read callback
  }, &box);
  ASSERT_NE(nullptr, box.io);
  ASSERT_EQ(1, write(fds_[1], "x", 1));  // readable and writable in one event
  run_once();
  EXPECT_EQ(1, box.calls);
  EXPECT_EQ(nullptr, box.io);
}

}  // namespace
}  // namespace cosocket
