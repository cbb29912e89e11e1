// Unit tests for until_matcher.cc: the KMP matcher behind receiveuntil, whose state is
// carried across reads.
#include <cstddef>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include "net/until_matcher.h"

namespace cosocket {
namespace {

constexpr size_t npos = UntilMatcher::npos;

// Offset just past the first match of pat in text, or npos (the naive oracle).
size_t naive_end(const std::string& text, const std::string& pat) {
  size_t p = text.find(pat);
  return p == std::string::npos ? npos : p + pat.size();
}

// Scans text split at the given cut points, carrying k; returns the offset just past
// the first match in the whole text, or npos.
size_t split_scan(const UntilMatcher& m, const std::string& text, const std::vector<size_t>& cuts, size_t& k) {
  size_t start = 0;
  std::vector<size_t> bounds = cuts;
  bounds.push_back(text.size());
  for (size_t end : bounds) {
    std::string_view piece(text.data() + start, end - start);
    size_t r = m.scan(piece, k);
    if (r != npos) return start + r;
    start = end;
  }
  return npos;
}

TEST(UntilMatcher, SimpleMatch) {
  UntilMatcher m("--ab");
  EXPECT_EQ("--ab", m.pattern());
  EXPECT_EQ(4u, m.size());
  size_t k = 0;
  EXPECT_EQ(7u, m.scan("xyz--ab--ab", k));
  EXPECT_EQ(0u, k) << "k is 0 after a match";
}

TEST(UntilMatcher, NposWhenAbsent) {
  UntilMatcher m("abc");
  size_t k = 0;
  EXPECT_EQ(npos, m.scan("xxxxxxxx", k));
  EXPECT_EQ(0u, k);
  EXPECT_EQ(npos, m.scan("", k));
  EXPECT_EQ(0u, k);
  EXPECT_EQ(npos, m.scan("acbacb", k));
  EXPECT_EQ(0u, k);
}

TEST(UntilMatcher, NposLeavesPartialStateAtEnd) {
  UntilMatcher m("abcd");
  size_t k = 0;
  EXPECT_EQ(npos, m.scan("zzab", k));
  EXPECT_EQ(2u, k);
  EXPECT_EQ(npos, m.scan("c", k));
  EXPECT_EQ(3u, k);
  EXPECT_EQ(1u, m.scan("d", k));
  EXPECT_EQ(0u, k);
}

TEST(UntilMatcher, EmptyScanKeepsState) {
  UntilMatcher m("abc");
  size_t k = 0;
  EXPECT_EQ(npos, m.scan("ab", k));
  EXPECT_EQ(2u, k);
  EXPECT_EQ(npos, m.scan("", k));
  EXPECT_EQ(2u, k);
  EXPECT_EQ(1u, m.scan("c", k));
}

TEST(UntilMatcher, SelfOverlappingPatterns) {
  {
    UntilMatcher m("aab");
    size_t k = 0;
    EXPECT_EQ(4u, m.scan("aaab", k));
  }
  {
    UntilMatcher m("--ab");
    size_t k = 0;
    EXPECT_EQ(5u, m.scan("---ab", k));
  }
  {
    UntilMatcher m("abab");
    size_t k = 0;
    EXPECT_EQ(4u, m.scan("abababx", k));
    // the rest of the stream: "abx" does not hold another match
    EXPECT_EQ(npos, m.scan("abx", k));
  }
  {
    UntilMatcher m("ababc");
    size_t k = 0;
    EXPECT_EQ(7u, m.scan("abababc", k));
  }
  {
    UntilMatcher m("aaaa");
    size_t k = 0;
    EXPECT_EQ(npos, m.scan("aaabaaa", k));
    EXPECT_EQ(3u, k);
    EXPECT_EQ(1u, m.scan("a", k));
  }
}

TEST(UntilMatcher, StateCarriedAcrossCalls) {
  UntilMatcher m("\r\n--b\r\n");
  size_t k = 0;
  EXPECT_EQ(npos, m.scan("data\r", k));
  EXPECT_EQ(1u, k);
  EXPECT_EQ(npos, m.scan("\n-", k));
  EXPECT_EQ(3u, k);
  EXPECT_EQ(npos, m.scan("-b", k));
  EXPECT_EQ(5u, k);
  EXPECT_EQ(2u, m.scan("\r\nrest", k));
  EXPECT_EQ(0u, k);
}

TEST(UntilMatcher, CarriedStateFallsBackOnMismatch) {
  // "aab" split as "aa" | "ab": after "aa" k=2, then 'a' mismatches pattern[2]='b'
  // and must fall back to k=2 (border "a" + new 'a'), then 'b' completes.
  UntilMatcher m("aab");
  size_t k = 0;
  EXPECT_EQ(npos, m.scan("aa", k));
  EXPECT_EQ(2u, k);
  EXPECT_EQ(2u, m.scan("ab", k));
  // "--ab" split as "---" | "ab"
  UntilMatcher m2("--ab");
  k = 0;
  EXPECT_EQ(npos, m2.scan("---", k));
  EXPECT_EQ(2u, k);
  EXPECT_EQ(2u, m2.scan("ab", k));
}

TEST(UntilMatcher, SingleCharPattern) {
  UntilMatcher m("\n");
  size_t k = 0;
  EXPECT_EQ(npos, m.scan("abc", k));
  EXPECT_EQ(0u, k);
  EXPECT_EQ(4u, m.scan("abc\ndef\n", k));
  EXPECT_EQ(0u, k);
  EXPECT_EQ(1u, m.scan("\n", k));
}

TEST(UntilMatcher, BinaryBytes) {
  std::string pat("\0\xff\0", 3);
  UntilMatcher m(pat);
  std::string text("\0\0\xff\xff\0\xff\0x", 8);
  size_t k = 0;
  EXPECT_EQ(naive_end(text, pat), m.scan(text, k));
  EXPECT_EQ(7u, naive_end(text, pat));
}

// Property: for random small alphabets, patterns and texts, every split of the text
// into 1..3 scan() calls carrying k finds the same first match as std::string::find.
TEST(UntilMatcher, KmpMatchesNaiveSearchAcrossSplits) {
  std::mt19937 rng(12345);
  const std::vector<std::string> alphabets = {"ab", "ab-", "a", "abc", "\r\n-", "xyz-"};
  size_t checks = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    const std::string& alpha = alphabets[rng() % alphabets.size()];
    auto rand_str = [&](size_t n) {
      std::string s(n, ' ');
      for (char& c : s) c = alpha[rng() % alpha.size()];
      return s;
    };
    std::string pat = rand_str(1 + rng() % 8);
    std::string text = rand_str(rng() % 25);
    // sometimes plant the pattern so matches are common
    if (rng() % 3 == 0 && !text.empty()) {
      size_t at = rng() % text.size();
      text.insert(at, pat);
    }
    UntilMatcher m(pat);
    size_t expect = naive_end(text, pat);
    size_t n = text.size();
    // 1 call
    {
      size_t k = 0;
      ASSERT_EQ(expect, split_scan(m, text, {}, k)) << "pat=" << pat << " text=" << text;
      if (expect != npos) {
        ASSERT_EQ(0u, k);
      }
      ++checks;
    }
    // 2 and 3 calls: every cut point (empty pieces included)
    for (size_t a = 0; a <= n; ++a) {
      size_t k = 0;
      ASSERT_EQ(expect, split_scan(m, text, {a}, k)) << "pat=" << pat << " text=" << text << " cut=" << a;
      if (expect != npos) {
        ASSERT_EQ(0u, k);
      }
      ++checks;
      for (size_t b = a; b <= n; ++b) {
        size_t k2 = 0;
        ASSERT_EQ(expect, split_scan(m, text, {a, b}, k2))
            << "pat=" << pat << " text=" << text << " cuts=" << a << "," << b;
        ++checks;
      }
    }
  }
  EXPECT_GT(checks, 100000u);
}

// Property: after the text ends without a match, k is the longest suffix of the text
// that is a proper prefix of the pattern (what the next read continues from).
TEST(UntilMatcher, StateAtEndIsLongestPatternPrefixSuffix) {
  std::mt19937 rng(777);
  for (int iter = 0; iter < 5000; ++iter) {
    std::string alpha = iter % 2 ? "ab" : "ab-";
    auto rand_str = [&](size_t n) {
      std::string s(n, ' ');
      for (char& c : s) c = alpha[rng() % alpha.size()];
      return s;
    };
    std::string pat = rand_str(1 + rng() % 8);
    std::string text = rand_str(rng() % 20);
    if (text.find(pat) != std::string::npos) continue;
    UntilMatcher m(pat);
    size_t k = 0;
    ASSERT_EQ(npos, m.scan(text, k));
    size_t want = 0;
    for (size_t len = std::min(pat.size() - 1, text.size()); len > 0; --len) {
      if (text.compare(text.size() - len, len, pat, 0, len) == 0) {
        want = len;
        break;
      }
    }
    ASSERT_EQ(want, k) << "pat=" << pat << " text=" << text;
  }
}

// Property: repeated scanning after each match (as receiveuntil does) finds the
// successive non-overlapping matches, however the stream is chunked.
TEST(UntilMatcher, SuccessiveMatchesOverChunkedStream) {
  std::mt19937 rng(4242);
  for (int iter = 0; iter < 2000; ++iter) {
    std::string alpha = "ab-";
    auto rand_str = [&](size_t n) {
      std::string s(n, ' ');
      for (char& c : s) c = alpha[rng() % alpha.size()];
      return s;
    };
    std::string pat = rand_str(1 + rng() % 4);
    std::string text = rand_str(rng() % 60);
    // naive: non-overlapping match ends
    std::vector<size_t> want;
    for (size_t p = text.find(pat); p != std::string::npos; p = text.find(pat, p + pat.size()))
      want.push_back(p + pat.size());
    // chunked scan
    UntilMatcher m(pat);
    std::vector<size_t> got;
    size_t k = 0, pos = 0;
    while (pos < text.size()) {
      size_t chunk = 1 + rng() % 7;
      if (chunk > text.size() - pos) chunk = text.size() - pos;
      std::string_view piece(text.data() + pos, chunk);
      size_t off = 0;
      while (off < piece.size()) {
        size_t r = m.scan(piece.substr(off), k);
        if (r == npos) break;
        got.push_back(pos + off + r);
        off += r;
      }
      pos += chunk;
    }
    ASSERT_EQ(want, got) << "pat=" << pat << " text=" << text;
  }
}

TEST(UntilState, ResetClearsScanProgress) {
  UntilState st("--x", true);
  EXPECT_TRUE(st.inclusive);
  EXPECT_FALSE(st.done);
  EXPECT_EQ(~0ull, st.mark);
  EXPECT_EQ("--x", st.matcher.pattern());
  st.mark = 10;
  st.scan_pos = 5;
  st.k = 2;
  st.found = true;
  st.done = true;
  st.reset();
  EXPECT_EQ(~0ull, st.mark);
  EXPECT_EQ(0u, st.scan_pos);
  EXPECT_EQ(0u, st.k);
  EXPECT_FALSE(st.found);
  EXPECT_TRUE(st.done) << "reset() is about the scan, not the sized-read state";
}

}  // namespace
}  // namespace cosocket
