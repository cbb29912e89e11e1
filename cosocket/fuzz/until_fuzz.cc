// libFuzzer target: receiveuntil's matcher (net/until_matcher.h) against a plain search.
// Input: [pattern length 1..32][pattern][chunk sizes and text...]. The text is fed to
// UntilMatcher::scan in chunks, carrying its state, as receiveuntil does across reads; the
// first match must end where std::string::find says, in every split.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "net/until_matcher.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  size_t plen = 1 + data[0] % 32;
  if (size < 1 + plen) return 0;
  std::string pattern(reinterpret_cast<const char*>(data + 1), plen);
  std::string_view rest(reinterpret_cast<const char*>(data + 1 + plen), size - 1 - plen);
  if (rest.empty()) return 0;
  // the first byte of the rest picks the chunk size; the remainder is the text
  size_t chunk = 1 + static_cast<unsigned char>(rest[0]) % 17;
  std::string text(rest.substr(1));

  cosocket::UntilMatcher m(pattern);
  size_t want = text.find(pattern);
  size_t want_end = want == std::string::npos ? cosocket::UntilMatcher::npos : want + plen;

  size_t k = 0, got_end = cosocket::UntilMatcher::npos;
  for (size_t off = 0; off < text.size(); off += chunk) {
    std::string_view piece(text.data() + off, std::min(chunk, text.size() - off));
    size_t r = m.scan(piece, k);
    if (r != cosocket::UntilMatcher::npos) {
      got_end = off + r;
      break;
    }
    if (k >= plen) abort();  // the state is a proper prefix length
  }
  if (got_end != want_end) abort();
  return 0;
}
