// libFuzzer target: the socket read buffer (net/buffer.h) against a std::string model.
// Each input byte pair is an operation: append n bytes, consume n, clear, settle, or read
// through read_with; after each, the buffer's bytes must be the model's.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "net/buffer.h"

namespace {
struct Source {
  const uint8_t* p;
  size_t n;
};
ssize_t feed(void* ctx, char* dst, size_t room) {
  auto* s = static_cast<Source*>(ctx);
  size_t k = s->n < room ? s->n : room;
  memcpy(dst, s->p, k);
  return static_cast<ssize_t>(k);
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  cosocket::Buffer b;
  std::string model;
  uint64_t consumed = 0;
  for (size_t i = 0; i + 1 < size; i += 2) {
    unsigned op = data[i] % 5;
    size_t n = data[i + 1];
    switch (op) {
      case 0: {  // append n * 5 bytes (from the input itself, cycling)
        std::string bytes;
        for (size_t j = 0; j < n * 5; ++j) bytes.push_back(static_cast<char>(data[(i + j) % size]));
        b.append(bytes.data(), bytes.size());
        model += bytes;
        break;
      }
      case 1: {  // consume up to n * 13 bytes
        size_t k = std::min(model.size(), n * 13);
        b.consume(k);
        model.erase(0, k);
        consumed += k;
        break;
      }
      case 2:  // (clear drops the bytes without counting them consumed)
        b.clear();
        model.clear();
        break;
      case 3:
        b.settle();
        break;
      case 4: {  // a read of up to n * 31 bytes through read_with
        std::string bytes;
        for (size_t j = 0; j < n * 31; ++j) bytes.push_back(static_cast<char>(j ^ n));
        Source src{reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()};
        ssize_t got = b.read_with(feed, &src);
        if (got < 0 || static_cast<size_t>(got) > bytes.size()) abort();
        model.append(bytes.data(), static_cast<size_t>(got));
        break;
      }
    }
    if (b.size() != model.size() || b.view() != model) abort();
    if (b.consumed_total() != consumed) abort();
  }
  return 0;
}
