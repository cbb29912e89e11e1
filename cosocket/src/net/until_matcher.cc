#include "net/until_matcher.h"

#include <cstring>

namespace cosocket {

UntilMatcher::UntilMatcher(std::string pattern) : pattern_(std::move(pattern)), fail_(pattern_.size() + 1, 0) {
  // fail_[i]: length of the longest proper border of pattern_[0, i)
  size_t k = 0;
  for (size_t i = 1; i < pattern_.size(); ++i) {
    while (k > 0 && pattern_[i] != pattern_[k]) k = fail_[k];
    if (pattern_[i] == pattern_[k]) ++k;
    fail_[i + 1] = k;
  }
}

size_t UntilMatcher::scan(std::string_view text, size_t& k) const {
  const size_t m = pattern_.size();
  const char first = pattern_[0];
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (k == 0) {
      // fast skip to the next possible start
      const void* p = memchr(text.data() + i, first, text.size() - i);
      if (!p) return k = 0, npos;
      i = static_cast<size_t>(static_cast<const char*>(p) - text.data());
      c = text[i];
    }
    while (k > 0 && c != pattern_[k]) k = fail_[k];
    if (c == pattern_[k]) ++k;
    if (k == m) {
      k = 0;
      return i + 1;
    }
  }
  return npos;
}

}  // namespace cosocket
