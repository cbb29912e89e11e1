// Unit tests for shdict_store.cc / shdict_recover.cc: the store behind ngx.shared.DICT,
// on a test clock; processes sharing a region (fork); owners killed holding the lock.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "ngx/shdict_store.h"

namespace cosocket::shdict {
namespace {

long g_now = 1000000;
long test_clock() { return g_now; }

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    g_now = 1000000;
    Store::set_clock(test_clock);
    Store::set_crash_hook(nullptr);
  }
  void TearDown() override { Store::set_clock(nullptr); }

  std::unique_ptr<Store> make(size_t size) {
    std::string err;
    auto s = Store::create(size, &err);
    EXPECT_TRUE(s) << err;
    return s;
  }
  static void expect_ok(Store& s) {
    std::string why;
    EXPECT_TRUE(s.check(&why)) << why;
  }
  static const char* set(Store& s, const std::string& k, const std::string& v, long ttl = 0, int op = kSet,
                         bool* forcible = nullptr) {
    bool f = false;
    const char* e = s.store(op, k, kString, v, 0, ttl, 0, &f);
    if (forcible) *forcible = f;
    return e;
  }
  static std::string get(Store& s, const std::string& k, bool stale = false, bool* is_stale = nullptr) {
    Type t;
    std::string buf;
    double num;
    int32_t flags;
    bool st = false;
    auto r = s.get(k, stale, &t, &buf, &num, &flags, &st);
    if (is_stale) *is_stale = st;
    if (r == Store::Get::missing) return "<nil>";
    if (r == Store::Get::is_list) return "<list>";
    if (t == kNumber) return "n:" + std::to_string(num);
    if (t == kBoolean) return num ? "b:true" : "b:false";
    return buf;
  }
};

TEST_F(StoreTest, TooSmallOrTooLarge) {
  std::string err;
  EXPECT_FALSE(Store::create(8191, &err));
  EXPECT_FALSE(err.empty());
  auto s = make(8192);
  EXPECT_EQ(s->capacity(), 8192u);
  EXPECT_EQ(s->free_space(), kPageSize);
}

TEST_F(StoreTest, SetGetAddReplaceDelete) {
  auto s = make(256 * 1024);
  bool f = true;
  EXPECT_EQ(nullptr, s->store(kSet, "n", kNumber, {}, 3.5, 0, 7, &f));
  EXPECT_FALSE(f);
  Type t;
  std::string buf;
  double num = 0;
  int32_t flags = 0;
  bool st;
  ASSERT_EQ(Store::Get::found, s->get("n", false, &t, &buf, &num, &flags, &st));
  EXPECT_EQ(t, kNumber);
  EXPECT_EQ(num, 3.5);
  EXPECT_EQ(flags, 7);
  EXPECT_EQ(nullptr, s->store(kSet, "b", kBoolean, {}, 1, 0, 0, &f));
  EXPECT_EQ(get(*s, "b"), "b:true");
  EXPECT_STREQ("exists", set(*s, "b", "x", 0, kAdd));
  EXPECT_STREQ("not found", set(*s, "zz", "x", 0, kReplace));
  EXPECT_STREQ("attempt to add or replace nil values", s->store(kAdd, "q", kNil, {}, 0, 0, 0, &f));
  EXPECT_EQ(nullptr, set(*s, "b", "now a string"));
  EXPECT_EQ(get(*s, "b"), "now a string");
  EXPECT_EQ(nullptr, set(*s, "b", "same length!"));  // same length: the node is reused
  EXPECT_EQ(get(*s, "b"), "same length!");
  EXPECT_EQ(nullptr, set(*s, "e", ""));
  EXPECT_EQ(get(*s, "e"), "");
  EXPECT_EQ(nullptr, s->store(kSet, "b", kNil, {}, 0, 0, 0, &f));
  EXPECT_EQ(get(*s, "b"), "<nil>");
  EXPECT_EQ(nullptr, s->store(kSet, "b", kNil, {}, 0, 0, 0, &f));  // deleting nothing is fine
  std::string longkey(kMaxKeyLen, 'k');
  EXPECT_EQ(nullptr, set(*s, longkey, "v"));
  EXPECT_EQ(get(*s, longkey), "v");
  EXPECT_STREQ("key too long", set(*s, longkey + "k", "v"));
  EXPECT_EQ(s->count(), 3u);  // n, e and the long key
  expect_ok(*s);
}

TEST_F(StoreTest, ExpiryInMilliseconds) {
  auto s = make(64 * 1024);
  EXPECT_EQ(nullptr, set(*s, "old", "at the LRU tail"));  // else get() would remove "k" (as nginx)
  EXPECT_EQ(nullptr, set(*s, "k", "v", 15));
  long ms = 0;
  ASSERT_TRUE(s->ttl("k", &ms));
  EXPECT_EQ(ms, 15);
  g_now += 14;
  EXPECT_EQ(get(*s, "k"), "v");
  g_now += 1;
  EXPECT_EQ(get(*s, "k"), "<nil>");
  bool stale = false;
  EXPECT_EQ(get(*s, "k", true, &stale), "v");
  EXPECT_TRUE(stale);
  ASSERT_TRUE(s->ttl("k", &ms));  // expired but not removed: negative, as nginx
  EXPECT_EQ(ms, 0);
  g_now += 5;
  ASSERT_TRUE(s->ttl("k", &ms));
  EXPECT_EQ(ms, -5);
  EXPECT_TRUE(s->expire("k", 100));  // revives it
  EXPECT_EQ(get(*s, "k"), "v");
  EXPECT_TRUE(s->expire("k", 0));
  ASSERT_TRUE(s->ttl("k", &ms));
  EXPECT_EQ(ms, 0);
  EXPECT_FALSE(s->expire("nope", 1));
  EXPECT_FALSE(s->ttl("nope", &ms));
  // add over an expired key succeeds
  EXPECT_EQ(nullptr, set(*s, "a", "1", 10));
  g_now += 10;
  EXPECT_EQ(nullptr, set(*s, "a", "2", 0, kAdd));
  EXPECT_EQ(get(*s, "a"), "2");
  // flush_expired with a limit, get_keys skips the expired
  for (int i = 0; i < 5; ++i) EXPECT_EQ(nullptr, set(*s, "x" + std::to_string(i), "v", 1));
  g_now += 1;
  std::vector<std::string> keys;
  s->get_keys(0, &keys);
  EXPECT_EQ(keys.size(), 3u);  // old, k, a
  EXPECT_EQ(s->flush_expired(2), 2);
  EXPECT_EQ(s->flush_expired(0), 3);
  EXPECT_EQ(s->flush_expired(0), 0);
  expect_ok(*s);
}

TEST_F(StoreTest, IncrInitAndErrors) {
  auto s = make(64 * 1024);
  bool f;
  double v = 1;
  EXPECT_STREQ("not found", s->incr("c", &v, false, 0, 0, &f));
  v = 1;
  EXPECT_EQ(nullptr, s->incr("c", &v, true, 10, 20, &f));
  EXPECT_EQ(v, 11);
  v = -2.5;
  EXPECT_EQ(nullptr, s->incr("c", &v, false, 0, 0, &f));
  EXPECT_EQ(v, 8.5);
  long ms;
  ASSERT_TRUE(s->ttl("c", &ms));
  EXPECT_EQ(ms, 20);  // incr keeps the ttl
  g_now += 20;
  v = 1;
  EXPECT_EQ(nullptr, s->incr("c", &v, true, 100, 0, &f));  // expired: init again
  EXPECT_EQ(v, 101);
  EXPECT_EQ(nullptr, set(*s, "s", "str"));
  v = 1;
  EXPECT_STREQ("not a number", s->incr("s", &v, true, 0, 0, &f));
  expect_ok(*s);
}

TEST_F(StoreTest, Lists) {
  auto s = make(64 * 1024);
  const char* err;
  bool ef;
  EXPECT_EQ(1, s->push("l", true, kString, "a", &err, &ef));
  EXPECT_EQ(2, s->push("l", false, kString, "b", &err, &ef));
  EXPECT_EQ(3, s->push("l", true, kString, "c", &err, &ef));
  EXPECT_EQ(3, s->llen("l"));
  EXPECT_EQ(get(*s, "l"), "<list>");
  Type t;
  std::string buf;
  ASSERT_EQ(Store::Pop::ok, s->pop("l", true, &t, &buf));
  EXPECT_EQ(buf, "c");
  ASSERT_EQ(Store::Pop::ok, s->pop("l", false, &t, &buf));
  EXPECT_EQ(buf, "b");
  ASSERT_EQ(Store::Pop::ok, s->pop("l", false, &t, &buf));
  EXPECT_EQ(buf, "a");
  EXPECT_EQ(Store::Pop::none, s->pop("l", false, &t, &buf));
  EXPECT_EQ(0, s->llen("l"));
  EXPECT_EQ(s->count(), 0u);
  EXPECT_EQ(nullptr, set(*s, "s", "v"));
  EXPECT_EQ(0, s->push("s", true, kString, "a", &err, &ef));
  EXPECT_STREQ(err, "value not a list");
  EXPECT_EQ(-1, s->llen("s"));
  EXPECT_EQ(Store::Pop::not_list, s->pop("s", true, &t, &buf));
  // a set over a list frees its elements
  for (int i = 0; i < 100; ++i) s->push("l2", false, kString, std::string(100, 'x'), &err, &ef);
  EXPECT_EQ(nullptr, set(*s, "l2", "plain"));
  expect_ok(*s);
}

TEST_F(StoreTest, FullDictEvictsLeastRecentlyUsed) {
  auto s = make(64 * 1024);
  size_t initial = s->free_space();
  bool forcible = false;
  int first_forced = -1;
  for (int i = 0; i < 2000; ++i) {
    ASSERT_EQ(nullptr, set(*s, "k" + std::to_string(i), std::string(100, 'v'), 0, kSet, &forcible));
    if (forcible && first_forced < 0) first_forced = i;
    if (i < 10) continue;
    EXPECT_EQ(get(*s, "k0"), std::string(100, 'v')) << i;  // k0 kept recent
  }
  ASSERT_GT(first_forced, 100);
  EXPECT_EQ(get(*s, "k1"), "<nil>");     // the oldest went first
  EXPECT_EQ(get(*s, "k1999"), std::string(100, 'v'));
  EXPECT_STREQ("no memory", set(*s, "new", std::string(100, 'v'), 0, kSafe));
  EXPECT_STREQ("no memory", set(*s, "huge", std::string(128 * 1024, 'v'), 0, kSet, &forcible));
  EXPECT_TRUE(forcible);  // it evicted trying (30 rounds, as nginx)
  EXPECT_GT(s->count(), 100u);
  EXPECT_EQ(nullptr, set(*s, "big", std::string(40 * 1024, 'v'), 0, kSet, &forcible));
  EXPECT_TRUE(forcible);  // it fits in the region: evicted until it did
  const char* err;
  bool ef;
  while (set(*s, "f" + std::to_string(s->count()), std::string(100, 'v'), 0, kSafe) == nullptr) {
  }
  EXPECT_EQ(0, s->push("list", true, kString, std::string(3000, 'x'), &err, &ef));
  EXPECT_STREQ(err, "no memory");
  expect_ok(*s);
  s->flush_all();
  std::vector<std::string> keys;
  s->get_keys(0, &keys);
  EXPECT_TRUE(keys.empty());
  s->flush_expired(0);
  EXPECT_EQ(s->count(), 0u);
  EXPECT_EQ(s->free_space(), initial);
  expect_ok(*s);
}

TEST_F(StoreTest, ChurnOfRandomSizesDoesNotFragmentToDeath) {
  auto s = make(256 * 1024);
  size_t initial = s->free_space();
  std::mt19937 rng(42);
  std::uniform_int_distribution<int> key(0, 3000), kind(0, 9);
  std::lognormal_distribution<double> size(5.0, 1.5);
  int failures = 0, small_failures = 0, big_sets = 0;
  for (int i = 0; i < 60000; ++i) {
    std::string k = "key" + std::to_string(key(rng));
    int what = kind(rng);
    size_t len = std::min<size_t>(static_cast<size_t>(size(rng)), 20000);
    if (what < 6) {
      if (len > 2048) ++big_sets;
      if (set(*s, k, std::string(len, 'a' + static_cast<char>(i % 26)), what == 0 ? 5 : 0) != nullptr) {
        ++failures;
        if (len <= 2048) ++small_failures;
      }
    } else if (what == 6) {
      bool f;
      s->store(kSet, k, kNil, {}, 0, 0, 0, &f);
    } else if (what == 7) {
      const char* err;
      bool ef;
      s->push("list" + k, what & 1, kString, std::string(len % 300, 'l'), &err, &ef);
    } else if (what == 8) {
      Type t;
      std::string buf;
      s->pop("list" + k, true, &t, &buf);
    } else {
      get(*s, k);
    }
    if (i % 97 == 0) g_now += 1;
    if (i % 5000 == 0) expect_ok(*s);
  }
  // a set that fits in the empty dict always makes room by eviction
  EXPECT_EQ(small_failures, 0);
  EXPECT_EQ(failures, 0) << failures << " of " << big_sets << " sets over 2048 bytes failed";
  EXPECT_GT(big_sets, 500);
  expect_ok(*s);
  s->flush_all();
  s->flush_expired(0);
  EXPECT_EQ(s->free_space(), initial);  // everything came back, merged
  EXPECT_EQ(nullptr, set(*s, "big", std::string(initial - kPageSize, 'x')));  // one run again
  expect_ok(*s);
}

TEST_F(StoreTest, ProcessesShareTheRegion) {
  Store::set_clock(nullptr);
  auto s = make(64 * 1024);
  constexpr int kProcs = 4, kIncrs = 5000;
  std::vector<pid_t> kids;
  for (int p = 0; p < kProcs; ++p) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      bool f;
      for (int i = 0; i < kIncrs; ++i) {
        double v = 1;
        s->incr("counter", &v, true, 0, 0, &f);
      }
      _exit(0);
    }
    kids.push_back(pid);
  }
  for (pid_t k : kids) {
    int st = 0;
    ASSERT_EQ(k, waitpid(k, &st, 0));
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  }
  EXPECT_EQ(get(*s, "counter"), "n:" + std::to_string(double{kProcs * kIncrs}));
  expect_ok(*s);
}

void die_on_boom(std::string_view key) {
  if (key == "boom") _exit(9);
}

TEST_F(StoreTest, OwnerDiedMidMutationTheStoreIsRebuilt) {
  auto s = make(64 * 1024);
  const char* err;
  bool ef;
  for (int i = 0; i < 50; ++i) ASSERT_EQ(nullptr, set(*s, "k" + std::to_string(i), "v" + std::to_string(i)));
  s->push("list", false, kString, "one", &err, &ef);
  s->push("list", false, kString, "two", &err, &ef);
  int before = Store::recoveries();
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    Store::set_crash_hook(die_on_boom);
    set(*s, "boom", "x");  // dies with the lock held, the node in the hash, not in the LRU list
    _exit(0);
  }
  int st = 0;
  ASSERT_EQ(pid, waitpid(pid, &st, 0));
  ASSERT_TRUE(WIFEXITED(st));
  ASSERT_EQ(WEXITSTATUS(st), 9);
  EXPECT_EQ(get(*s, "k0"), "v0");  // the lock is taken, the store rebuilt
  EXPECT_EQ(Store::recoveries(), before + 1);
  expect_ok(*s);
  EXPECT_EQ(get(*s, "boom"), "<nil>");
  for (int i = 0; i < 50; ++i) EXPECT_EQ(get(*s, "k" + std::to_string(i)), "v" + std::to_string(i));
  EXPECT_EQ(2, s->llen("list"));
  EXPECT_EQ(nullptr, set(*s, "boom", "now"));
  EXPECT_EQ(get(*s, "boom"), "now");
  expect_ok(*s);
}

TEST_F(StoreTest, OwnersKilledAtRandomPointsNeverWedgeIt) {
  Store::set_clock(nullptr);
  auto s = make(128 * 1024);
  std::mt19937 rng(7);
  for (int round = 0; round < 12; ++round) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      std::mt19937 r(static_cast<unsigned>(round));
      for (long i = 0;; ++i) {
        std::string k = "k" + std::to_string(r() % 500);
        const char* err;
        bool ef;
        Type t;
        std::string buf;
        switch (r() % 4) {
          case 0: set(*s, k, std::string(r() % 3000, 'v')); break;
          case 1: s->store(kSet, k, kNil, {}, 0, 0, 0, &ef); break;
          case 2: s->push("l" + k, true, kString, "e", &err, &ef); break;
          default: s->pop("l" + k, false, &t, &buf); break;
        }
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20 + rng() % 30));
    kill(pid, SIGKILL);
    int st = 0;
    ASSERT_EQ(pid, waitpid(pid, &st, 0));
    EXPECT_EQ(nullptr, set(*s, "after", std::to_string(round)));
    EXPECT_EQ(get(*s, "after"), std::to_string(round));
    expect_ok(*s);
  }
}

}  // namespace
}  // namespace cosocket::shdict
