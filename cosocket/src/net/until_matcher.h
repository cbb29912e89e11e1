#pragma once
// receiveuntil's pattern matcher: a KMP automaton whose state (how many pattern bytes
// the scanned text currently ends with) is carried across reads, so a stream is scanned
// once however it is split.
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace cosocket {

class UntilMatcher {
 public:
  explicit UntilMatcher(std::string pattern);
  const std::string& pattern() const { return pattern_; }
  size_t size() const { return pattern_.size(); }
  // Scans text starting in state k (0 <= k < size()). Returns the offset just past the
  // first full match in text, or npos; k is left as the state at that point (0 after a
  // match) or at the end of text.
  size_t scan(std::string_view text, size_t& k) const;
  // The state after a mismatch of c in state k: the longest border to fall back to
  // from which c can continue (c not consumed yet), or 0.
  size_t fallback(size_t k, char c) const {
    while (k > 0 && c != pattern_[k]) k = fail_[k];
    return k;
  }
  static constexpr size_t npos = static_cast<size_t>(-1);

 private:
  std::string pattern_;
  std::vector<size_t> fail_;  // KMP failure function
};

// The per-iterator state of receiveuntil over a socket buffer, independent of the
// socket: what has been scanned of the buffer, and whether a match sits in it.
struct UntilState {
  explicit UntilState(std::string pattern, bool inclusive) : matcher(std::move(pattern)), inclusive(inclusive) {}
  UntilMatcher matcher;
  bool inclusive = false;
  bool done = false;           // sized reads: the pattern was consumed, the next call says nil
  unsigned long long mark = ~0ull;  // buffer's consumed_total when scan_pos/k were valid
  size_t scan_pos = 0;         // buffer offset scanned so far
  size_t k = 0;                // matcher state at scan_pos
  bool found = false;          // a match ends at scan_pos
  void reset() { mark = ~0ull; scan_pos = 0; k = 0; found = false; }
};

}  // namespace cosocket
