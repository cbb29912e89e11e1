// shdict_layout.h -- what is inside a shared dict's region (shdict_store.h): the header,
// the page descriptors, the nodes and the list elements. Offsets, never pointers.
#ifndef COSOCKET_NGX_SHDICT_LAYOUT_H_
#define COSOCKET_NGX_SHDICT_LAYOUT_H_

#include <cstddef>
#include <cstdint>
#include <string_view>

#include <pthread.h>

namespace cosocket::shdict {

constexpr uint64_t kMagic = 0x7364696374763031ULL;  // "sdictv01"
constexpr uint32_t kNone = 0xffffffffu;             // no page (page lists)
constexpr int kClasses = 8;                          // slab objects of 16 << c bytes, c < 8
constexpr size_t kMaxSlab = 16u << (kClasses - 1);   // 2048: larger objects take pages
constexpr int kEvictRounds = 30;                     // as lua-nginx-module

enum PageKind : uint8_t { kFreePage = 1, kSlabPage = 2, kBigHead = 3, kBigTail = 4 };

// the store's clock (ms, CLOCK_MONOTONIC unless a test set one) and the keys' hash
long now_ms();
uint32_t hash_key(std::string_view k);

inline size_t class_size(int c) { return size_t{16} << c; }
inline int class_of(size_t size) {
  int c = 0;
  while (class_size(c) < size) ++c;
  return c;
}


struct Page {
  uint32_t next, prev;  // the free-run list (head pages) or the class's partial-slab list
  uint32_t run;         // free head/tail: the run's length; big head: its pages
  uint32_t head;        // free tail: the run's first page
  uint8_t kind;
  uint8_t cls;
  uint16_t used;
  uint32_t pad;
  uint64_t bits[4];  // slab: the used slots
};

struct Header {
  uint64_t magic;
  uint64_t capacity;
  pthread_mutex_t mutex;
  uint32_t dirty;       // a mutation is under way
  uint32_t dirty_node;  // the node being changed in place (dropped by recovery)
  uint32_t nbuckets, buckets_off;
  uint32_t npages, pages_off, data_off;
  uint32_t free_pages;
  uint32_t free_head;  // first page of the first free run
  uint32_t partial[kClasses];
  uint32_t lru_head, lru_tail;  // node offsets, 0: none
  uint32_t count;
};

struct Node {
  uint32_t hnext;              // the bucket's chain
  uint32_t lru_prev, lru_next;  // towards the head (more recent) / the tail
  uint32_t hash;
  int64_t expires;   // ms on the store's clock, 0: never
  uint32_t value_len;  // lists: the number of elements
  int32_t flags;
  uint16_t key_len;
  uint8_t type;
  uint8_t pad;
  uint32_t list_first, list_last;  // lists: the first and last element
  char* data() { return reinterpret_cast<char*>(this + 1); }
  std::string_view key() { return {data(), key_len}; }
  char* value() { return data() + key_len; }
};

struct Elem {  // a list element
  uint32_t prev, next;
  uint32_t len;
  uint8_t type;
  uint8_t pad[3];
  char* data() { return reinterpret_cast<char*>(this + 1); }
};

}  // namespace cosocket::shdict

#endif  // COSOCKET_NGX_SHDICT_LAYOUT_H_
