// shdict_store.cc -- the region, the allocator, the items; see shdict_store.h.
#include "ngx/shdict_store.h"

#include "loop/clock.h"

#include "ngx/shdict_layout.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include <pthread.h>
#include <sys/mman.h>

namespace cosocket::shdict {

namespace {

long (*g_clock)() = nullptr;
void (*g_crash_hook)(std::string_view) = nullptr;
int g_recoveries = 0;

}  // namespace

// The loop's cached monotonic time (loop/clock.h), as nginx's shdict uses its cached
// time: a clock_gettime per operation was a fifth of a get's CPU. CLOCK_MONOTONIC is the
// same clock in every worker.
long now_ms() {
  if (g_clock) return g_clock();
  return static_cast<long>(clock_mono_ms());
}

// 32-bit hash of the key (64-bit multiply-mix over 8-byte words)
uint32_t hash_key(std::string_view k) {
  uint64_t h = 0x9e3779b97f4a7c15ULL ^ (k.size() * 0xff51afd7ed558ccdULL);
  const char* p = k.data();
  size_t n = k.size();
  while (n >= 8) {
    uint64_t w;
    memcpy(&w, p, 8);
    h = (h ^ w) * 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 29;
    p += 8;
    n -= 8;
  }
  // the last 0-7 bytes in whole loads (two overlapping 4-byte ones, or three bytes): a
  // memcpy of n bytes is a byte loop whose stores the 8-byte load waits for
  uint64_t w = 0;
  if (n >= 4) {
    uint32_t a, b;
    memcpy(&a, p, 4);
    memcpy(&b, p + n - 4, 4);
    w = uint64_t{a} << 32 | b;
  } else if (n > 0) {
    auto byte = [p](size_t i) { return uint64_t{static_cast<unsigned char>(p[i])}; };
    w = byte(0) << 16 | byte(n / 2) << 8 | byte(n - 1);
  }
  h = (h ^ w) * 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 32;
  return static_cast<uint32_t>(h);
}

// --- the lock ---------------------------------------------------------------

class Store::Lock {
 public:
  explicit Lock(Store& s) : s_(s) {
    int rc = pthread_mutex_lock(&s_.hdr()->mutex);
    if (rc == EOWNERDEAD) {
      ++g_recoveries;
      if (s_.hdr()->dirty) s_.recover();
      s_.hdr()->dirty = 0;
      s_.hdr()->dirty_node = 0;
      pthread_mutex_consistent(&s_.hdr()->mutex);
    } else if (rc != 0) {
      fprintf(stderr, "cosocket: shared dict lock failed: %s\n", strerror(rc));
      abort();
    }
  }
  ~Lock() { pthread_mutex_unlock(&s_.hdr()->mutex); }
  Lock(const Lock&) = delete;
  Lock& operator=(const Lock&) = delete;

 private:
  Store& s_;
};

// a mutation under way: the header says so until it ends
class Dirty {
 public:
  explicit Dirty(Header* h) : h_(h) { h_->dirty = 1; }
  ~Dirty() {
    h_->dirty_node = 0;
    h_->dirty = 0;
  }
  Dirty(const Dirty&) = delete;
  Dirty& operator=(const Dirty&) = delete;

 private:
  Header* h_;
};

void Store::set_clock(long (*f)()) { g_clock = f; }
void Store::set_crash_hook(void (*hook)(std::string_view)) { g_crash_hook = hook; }
int Store::recoveries() { return g_recoveries; }

// --- the region -------------------------------------------------------------

std::unique_ptr<Store> Store::create(size_t capacity, std::string* err) {
  if (capacity < 8192 || capacity > 0xffff0000u) {
    *err = "a shared dict's size must be between 8k and 4095m";
    return nullptr;
  }
  void* p = mmap(nullptr, capacity, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    *err = std::string("mmap failed: ") + strerror(errno);
    return nullptr;
  }
  auto* base = static_cast<char*>(p);
  Header* h = reinterpret_cast<Header*>(base);
  pthread_mutexattr_t a;
  pthread_mutexattr_init(&a);
  pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
  pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
  int rc = pthread_mutex_init(&h->mutex, &a);
  pthread_mutexattr_destroy(&a);
  if (rc != 0) {
    munmap(p, capacity);
    *err = std::string("pthread_mutex_init failed: ") + strerror(rc);
    return nullptr;
  }
  std::unique_ptr<Store> s(new Store(base, capacity));
  s->init_layout();
  return s;
}

Store::Store(char* base, size_t capacity) : base_(base), capacity_(capacity) {}

Store::~Store() { munmap(base_, capacity_); }

// Lays out the header, the buckets, the page descriptors and the pages, all free (the
// mutex is left as it is).
void Store::init_layout() {
  Header* h = hdr();
  h->magic = kMagic;
  h->capacity = capacity_;
  h->dirty = 0;
  h->dirty_node = 0;
  uint32_t nb = 64;
  while (nb * 256 < capacity_) nb <<= 1;
  h->nbuckets = nb;
  h->buckets_off = static_cast<uint32_t>((sizeof(Header) + 63) & ~size_t{63});
  h->pages_off = h->buckets_off + nb * 4;
  size_t avail = capacity_ - h->pages_off;
  uint32_t np = static_cast<uint32_t>(avail / (kPageSize + sizeof(Page)));
  for (;;) {  // the data area starts on a page boundary after the descriptors
    size_t data = (h->pages_off + np * sizeof(Page) + kPageSize - 1) & ~(kPageSize - 1);
    if (data + size_t{np} * kPageSize <= capacity_) {
      h->data_off = static_cast<uint32_t>(data);
      break;
    }
    --np;
  }
  h->npages = np;
  memset(base_ + h->buckets_off, 0, nb * 4);
  memset(base_ + h->pages_off, 0, np * sizeof(Page));
  for (auto& p : h->partial) p = kNone;
  h->lru_head = h->lru_tail = 0;
  h->count = 0;
  h->free_pages = 0;
  h->free_head = kNone;
  if (np > 0) free_pages(0, np);
}

size_t Store::free_space() {
  Lock lk(*this);
  return size_t{hdr()->free_pages} * kPageSize;
}

bool Store::check(std::string* why) {
  Lock lk(*this);
  return check_locked(why);
}

size_t Store::count() {
  Lock lk(*this);
  return hdr()->count;
}

// --- the allocator: free runs of pages (first fit, merged with their neighbours on
// free) and, for objects up to 2048 bytes, slab pages of one size class each

uint32_t Store::alloc_pages(uint32_t n) {
  Header* h = hdr();
  Page* pages = at<Page>(h->pages_off);
  for (uint32_t p = h->free_head; p != kNone; p = pages[p].next) {
    Page& r = pages[p];
    if (r.run < n) continue;
    uint32_t rest = r.run - n;
    // unlink the run
    if (r.prev != kNone) pages[r.prev].next = r.next;
    else h->free_head = r.next;
    if (r.next != kNone) pages[r.next].prev = r.prev;
    if (rest > 0) {  // the rest stays free, in the list
      uint32_t q = p + n;
      Page& f = pages[q];
      f.kind = kFreePage;
      f.run = rest;
      f.head = q;
      Page& t = pages[q + rest - 1];
      t.kind = kFreePage;
      t.run = rest;
      t.head = q;
      f.prev = kNone;
      f.next = h->free_head;
      if (h->free_head != kNone) pages[h->free_head].prev = q;
      h->free_head = q;
    }
    h->free_pages -= n;
    return p;
  }
  return kNone;
}

void Store::free_pages(uint32_t first, uint32_t n) {
  Header* h = hdr();
  Page* pages = at<Page>(h->pages_off);
  for (uint32_t i = first; i < first + n; ++i) pages[i].kind = kFreePage;
  h->free_pages += n;
  auto unlink = [&](uint32_t p) {
    Page& r = pages[p];
    if (r.prev != kNone) pages[r.prev].next = r.next;
    else h->free_head = r.next;
    if (r.next != kNone) pages[r.next].prev = r.prev;
  };
  // merge with the free run before and the one after
  if (first > 0 && pages[first - 1].kind == kFreePage) {
    uint32_t lh = pages[first - 1].head;
    unlink(lh);
    n += pages[lh].run;
    first = lh;
  }
  uint32_t after = first + n;
  if (after < h->npages && pages[after].kind == kFreePage && pages[after].head == after) {
    unlink(after);
    n += pages[after].run;
  }
  Page& f = pages[first];
  f.run = n;
  f.head = first;
  Page& t = pages[first + n - 1];
  t.run = n;
  t.head = first;
  f.prev = kNone;
  f.next = h->free_head;
  if (h->free_head != kNone) pages[h->free_head].prev = first;
  h->free_head = first;
}

uint32_t Store::alloc(size_t size) {
  Header* h = hdr();
  Page* pages = at<Page>(h->pages_off);
  if (size > kMaxSlab) {
    size_t n = (size + kPageSize - 1) / kPageSize;
    if (n > h->npages) return 0;
    uint32_t p = alloc_pages(static_cast<uint32_t>(n));
    if (p == kNone) return 0;
    pages[p].kind = kBigHead;
    pages[p].run = static_cast<uint32_t>(n);
    if (n > 1) pages[p + n - 1].kind = kBigTail;
    return h->data_off + p * static_cast<uint32_t>(kPageSize);
  }
  int c = class_of(size);
  uint32_t per = static_cast<uint32_t>(kPageSize / class_size(c));
  uint32_t p = h->partial[c];
  if (p == kNone) {
    p = alloc_pages(1);
    if (p == kNone) return 0;
    Page& pg = pages[p];
    pg.kind = kSlabPage;
    pg.cls = static_cast<uint8_t>(c);
    pg.used = 0;
    memset(pg.bits, 0, sizeof pg.bits);
    pg.prev = kNone;
    pg.next = kNone;
    h->partial[c] = p;
  }
  Page& pg = pages[p];
  uint32_t slot = 0;
  for (uint32_t w = 0; w < 4; ++w) {
    uint64_t free_bits = ~pg.bits[w];
    if (free_bits) {
      slot = w * 64 + static_cast<uint32_t>(__builtin_ctzll(free_bits));
      break;
    }
  }
  pg.bits[slot / 64] |= uint64_t{1} << (slot % 64);
  if (++pg.used == per) {  // full: off the partial list
    h->partial[c] = pg.next;
    if (pg.next != kNone) pages[pg.next].prev = kNone;
    pg.next = pg.prev = kNone;
  }
  return h->data_off + p * static_cast<uint32_t>(kPageSize) + slot * static_cast<uint32_t>(class_size(c));
}

void Store::free_obj(uint32_t off) {
  Header* h = hdr();
  Page* pages = at<Page>(h->pages_off);
  uint32_t p = (off - h->data_off) / kPageSize;
  Page& pg = pages[p];
  if (pg.kind == kBigHead) {
    free_pages(p, pg.run);
    return;
  }
  int c = pg.cls;
  uint32_t per = static_cast<uint32_t>(kPageSize / class_size(c));
  uint32_t slot = static_cast<uint32_t>((off - h->data_off - p * kPageSize) / class_size(c));
  pg.bits[slot / 64] &= ~(uint64_t{1} << (slot % 64));
  if (pg.used == per) {  // was full: back on the partial list
    pg.prev = kNone;
    pg.next = h->partial[c];
    if (pg.next != kNone) pages[pg.next].prev = p;
    h->partial[c] = p;
  }
  if (--pg.used == 0) {  // empty: the page goes back
    if (pg.prev != kNone) pages[pg.prev].next = pg.next;
    else h->partial[c] = pg.next;
    if (pg.next != kNone) pages[pg.next].prev = pg.prev;
    free_pages(p, 1);
  }
}

// whether [off, off+size) lies in one allocated object starting at off
bool Store::is_allocated(uint32_t off, size_t size) const {
  const Header* h = hdr();
  if (off < h->data_off || off >= h->data_off + size_t{h->npages} * kPageSize) return false;
  const Page* pages = at<Page>(h->pages_off);
  uint32_t p = (off - h->data_off) / kPageSize;
  const Page& pg = pages[p];
  uint32_t in = off - h->data_off - p * static_cast<uint32_t>(kPageSize);
  if (pg.kind == kBigHead)
    return in == 0 && p + size_t{pg.run} <= h->npages && size <= size_t{pg.run} * kPageSize;
  if (pg.kind != kSlabPage || pg.cls >= kClasses) return false;
  size_t cs = class_size(pg.cls);
  uint32_t slot = static_cast<uint32_t>(in / cs);
  return in % cs == 0 && size <= cs && (pg.bits[slot / 64] >> (slot % 64) & 1);
}

// --- items ------------------------------------------------------------------

void Store::lru_unlink(Node* n, uint32_t off) {
  Header* h = hdr();
  if (n->lru_prev) at<Node>(n->lru_prev)->lru_next = n->lru_next;
  else if (h->lru_head == off) h->lru_head = n->lru_next;
  if (n->lru_next) at<Node>(n->lru_next)->lru_prev = n->lru_prev;
  else if (h->lru_tail == off) h->lru_tail = n->lru_prev;
  n->lru_prev = n->lru_next = 0;
}

void Store::lru_push_head(Node* n, uint32_t off) {
  Header* h = hdr();
  n->lru_prev = 0;
  n->lru_next = h->lru_head;
  if (h->lru_head) at<Node>(h->lru_head)->lru_prev = off;
  h->lru_head = off;
  if (!h->lru_tail) h->lru_tail = off;
}

void Store::touch(Node* n, uint32_t off) {
  if (hdr()->lru_head == off) return;
  lru_unlink(n, off);
  lru_push_head(n, off);
}

Store::Found Store::lookup(std::string_view key, uint32_t hash, uint32_t* out, bool touch_it) {
  Header* h = hdr();
  uint32_t off = at<uint32_t>(h->buckets_off)[hash & (h->nbuckets - 1)];
  while (off) {
    Node* n = at<Node>(off);
    if (n->hash == hash && n->key_len == key.size() && memcmp(n->data(), key.data(), key.size()) == 0) {
      *out = off;
      if (n->expires != 0 && n->expires <= now_ms()) return Found::expired;
      if (touch_it) touch(n, off);
      return Found::ok;
    }
    off = n->hnext;
  }
  *out = 0;
  return Found::missing;
}

void Store::link_new(uint32_t off, uint32_t hash) {
  Header* h = hdr();
  Node* n = at<Node>(off);
  n->hash = hash;
  uint32_t* b = at<uint32_t>(h->buckets_off) + (hash & (h->nbuckets - 1));
  n->hnext = *b;
  *b = off;
  if (g_crash_hook) g_crash_hook(n->key());
  lru_push_head(n, off);
  ++h->count;
}

void Store::free_list_elems(Node* n) {
  uint32_t e = n->list_first;
  while (e) {
    uint32_t next = at<Elem>(e)->next;
    free_obj(e);
    e = next;
  }
  n->list_first = n->list_last = 0;
}

void Store::remove_node(uint32_t off) {
  Header* h = hdr();
  Node* n = at<Node>(off);
  lru_unlink(n, off);
  uint32_t* link = at<uint32_t>(h->buckets_off) + (n->hash & (h->nbuckets - 1));
  while (*link && *link != off) link = &at<Node>(*link)->hnext;
  if (*link) *link = n->hnext;
  if (n->type == kList) free_list_elems(n);
  --h->count;
  free_obj(off);
}

// lua-nginx-module's ngx_http_lua_shdict_expire: n == 1 removes up to two expired items
// at the LRU tail; n == 0 removes the tail item whatever it is, then up to two expired.
int Store::expire_some(int n) {
  Header* h = hdr();
  long now = now_ms();
  int freed = 0;
  while (n < 3) {
    uint32_t off = h->lru_tail;
    if (!off) return freed;
    Node* node = at<Node>(off);
    if (n++ != 0) {
      if (node->expires == 0 || node->expires > now) return freed;
    }
    remove_node(off);
    ++freed;
  }
  return freed;
}

// lua-nginx-module evicts from the LRU tail for 30 rounds and then says "no memory"; an
// object that fits in the empty region is given more rounds, until it fits or nothing is
// left, so that a set never fails because the freed space is scattered over slab pages.
uint32_t Store::alloc_evicting(size_t size, bool* forcible) {
  uint32_t off = alloc(size);
  bool could_fit = size <= size_t{hdr()->npages} * kPageSize;
  for (int i = 0; !off && (i < kEvictRounds || could_fit); ++i) {
    if (expire_some(0) == 0) break;
    *forcible = true;
    off = alloc(size);
  }
  return off;
}

const char* Store::store(int op, std::string_view key, Type type, std::string_view str, double num,
                         long exptime_ms, int32_t flags, bool* forcible) {
  *forcible = false;
  if (key.size() > kMaxKeyLen) return "key too long";
  char scratch[8];
  std::string_view val;
  switch (type) {
    case kString: val = str; break;
    case kNumber:
      memcpy(scratch, &num, 8);
      val = {scratch, 8};
      break;
    case kBoolean:
      scratch[0] = num != 0 ? 1 : 0;
      val = {scratch, 1};
      break;
    case kNil:
      if (op & (kAdd | kReplace)) return "attempt to add or replace nil values";
      break;
    default: return "unsupported value type";
  }
  uint32_t hash = hash_key(key);
  Lock lk(*this);
  Header* h = hdr();
  Dirty d(h);
  expire_some(1);
  uint32_t off;
  Found f = lookup(key, hash, &off, true);
  long now = exptime_ms > 0 ? now_ms() : 0;
  if (op & kReplace) {
    if (f != Found::ok) return "not found";
  } else if (op & kAdd) {
    if (f == Found::ok) return "exists";
  }
  if (f != Found::missing) {
    Node* n = at<Node>(off);
    if (type != kNil && val.size() == n->value_len && n->type != kList) {  // reuse it
      h->dirty_node = off;
      touch(n, off);
      n->expires = exptime_ms > 0 ? now + exptime_ms : 0;
      n->flags = flags;
      n->type = type;
      if (!val.empty()) memcpy(n->value(), val.data(), val.size());
      return nullptr;
    }
    remove_node(off);
  }
  if (type == kNil) return nullptr;
  size_t need = sizeof(Node) + key.size() + val.size();
  off = (op & kSafe) ? alloc(need) : alloc_evicting(need, forcible);
  if (!off) return "no memory";
  Node* n = at<Node>(off);
  n->key_len = static_cast<uint16_t>(key.size());
  n->type = type;
  n->flags = flags;
  n->value_len = static_cast<uint32_t>(val.size());
  n->expires = exptime_ms > 0 ? now + exptime_ms : 0;
  n->list_first = n->list_last = 0;
  memcpy(n->data(), key.data(), key.size());
  if (!val.empty()) memcpy(n->value(), val.data(), val.size());  // no data pointer when empty
  link_new(off, hash);
  return nullptr;
}

Store::Get Store::get(std::string_view key, bool stale, Value* v) {
  uint32_t hash = hash_key(key);
  Lock lk(*this);
  Header* h = hdr();
  uint32_t off;
  Found f;
  {
    Dirty d(h);
    if (!stale) expire_some(1);
    f = lookup(key, hash, &off, true);
  }
  if (f == Found::missing || (f == Found::expired && !stale)) return Get::missing;
  Node* n = at<Node>(off);
  if (n->type == kList) return Get::is_list;
  v->type = static_cast<Type>(n->type);
  if (n->type == kString) {
    if (n->value_len > v->len) {
      v->str = static_cast<char*>(malloc(n->value_len));
      if (!v->str) return Get::no_memory;
      v->malloced = true;
    }
    v->len = n->value_len;
    if (v->len) memcpy(v->str, n->value(), v->len);
  } else if (n->type == kNumber) {
    memcpy(&v->num, n->value(), 8);
  } else {
    v->num = n->value()[0] ? 1 : 0;
  }
  v->flags = n->flags;
  v->stale = f == Found::expired;
  return Get::found;
}

const char* Store::incr(std::string_view key, double* value, bool has_init, double init, long init_ttl_ms,
                        bool* forcible) {
  *forcible = false;
  if (key.size() > kMaxKeyLen) return "key too long";
  uint32_t hash = hash_key(key);
  Lock lk(*this);
  Header* h = hdr();
  Dirty d(h);
  expire_some(1);
  uint32_t off;
  Found f = lookup(key, hash, &off, true);
  if (f == Found::ok) {
    Node* n = at<Node>(off);
    if (n->type != kNumber || n->value_len != 8) return "not a number";
    double v;
    memcpy(&v, n->value(), 8);
    v += *value;
    h->dirty_node = off;
    memcpy(n->value(), &v, 8);
    *value = v;
    return nullptr;
  }
  if (!has_init) return "not found";
  double v = *value + init;
  Node* n = nullptr;
  bool reused = false;
  if (f == Found::expired) {
    n = at<Node>(off);
    if (n->value_len == 8 && n->type != kList) {
      h->dirty_node = off;
      reused = true;
      touch(n, off);
    } else {
      remove_node(off);
      n = nullptr;
    }
  }
  if (!n) {
    off = alloc_evicting(sizeof(Node) + key.size() + 8, forcible);
    if (!off) return "no memory";
    n = at<Node>(off);
    n->key_len = static_cast<uint16_t>(key.size());
    n->value_len = 8;
    n->list_first = n->list_last = 0;
    memcpy(n->data(), key.data(), key.size());
  }
  n->flags = 0;
  n->expires = init_ttl_ms > 0 ? now_ms() + init_ttl_ms : 0;
  n->type = kNumber;
  memcpy(n->value(), &v, 8);
  if (!reused) link_new(off, hash);
  *value = v;
  return nullptr;
}

bool Store::ttl(std::string_view key, long* ms) {
  uint32_t hash = hash_key(key);
  Lock lk(*this);
  uint32_t off;
  if (lookup(key, hash, &off, false) == Found::missing) return false;
  int64_t e = at<Node>(off)->expires;
  *ms = e == 0 ? 0 : static_cast<long>(e - now_ms());
  return true;
}

bool Store::expire(std::string_view key, long exptime_ms) {
  uint32_t hash = hash_key(key);
  Lock lk(*this);
  uint32_t off;
  if (lookup(key, hash, &off, false) == Found::missing) return false;
  at<Node>(off)->expires = exptime_ms > 0 ? now_ms() + exptime_ms : 0;
  return true;
}

void Store::flush_all() {
  Lock lk(*this);
  Header* h = hdr();
  Dirty d(h);
  for (uint32_t off = h->lru_head; off; off = at<Node>(off)->lru_next) at<Node>(off)->expires = 1;
  expire_some(0);
}

int Store::flush_expired(int max_count) {
  Lock lk(*this);
  Header* h = hdr();
  Dirty d(h);
  long now = now_ms();
  int freed = 0;
  uint32_t off = h->lru_tail;
  while (off) {
    Node* n = at<Node>(off);
    uint32_t prev = n->lru_prev;
    if (n->expires != 0 && n->expires <= now) {
      remove_node(off);
      ++freed;
      if (max_count && freed == max_count) break;
    }
    off = prev;
  }
  return freed;
}

void Store::get_keys(int max_count, std::vector<std::string>* out) {
  Lock lk(*this);
  Header* h = hdr();
  long now = now_ms();
  int total = 0;
  for (uint32_t off = h->lru_tail; off; off = at<Node>(off)->lru_prev) {
    Node* n = at<Node>(off);
    if (n->expires == 0 || n->expires > now) {
      out->emplace_back(n->key());
      if (max_count && ++total == max_count) break;
    }
  }
}

// --- lists ------------------------------------------------------------------

long Store::push(std::string_view key, bool left, Type type, std::string_view bytes, const char** err,
                 bool* err_false) {
  *err = nullptr;
  *err_false = false;
  uint32_t hash = hash_key(key);
  Lock lk(*this);
  Header* h = hdr();
  Dirty d(h);
  expire_some(1);
  uint32_t off;
  Found f = lookup(key, hash, &off, true);
  Node* n = nullptr;
  if (f == Found::expired) {
    n = at<Node>(off);
    if (n->type != kList) {
      remove_node(off);
      n = nullptr;
    } else {  // an expired list is emptied and reused
      n->expires = 0;
      n->value_len = 0;
      free_list_elems(n);
      touch(n, off);
    }
  } else if (f == Found::ok) {
    n = at<Node>(off);
    if (n->type != kList) {
      *err = "value not a list";
      return 0;
    }
  }
  if (!n) {
    off = alloc(sizeof(Node) + key.size());
    if (!off) {
      *err = "no memory";
      *err_false = true;
      return 0;
    }
    n = at<Node>(off);
    n->key_len = static_cast<uint16_t>(key.size());
    n->type = kList;
    n->flags = 0;
    n->expires = 0;
    n->value_len = 0;
    n->list_first = n->list_last = 0;
    memcpy(n->data(), key.data(), key.size());
    link_new(off, hash);
  }
  uint32_t e = alloc(sizeof(Elem) + bytes.size());
  if (!e) {
    if (n->value_len == 0) remove_node(off);
    *err = "no memory";
    return 0;
  }
  Elem* el = at<Elem>(e);
  el->len = static_cast<uint32_t>(bytes.size());
  el->type = type;
  memcpy(el->data(), bytes.data(), bytes.size());
  if (left) {
    el->prev = 0;
    el->next = n->list_first;
    if (n->list_first) at<Elem>(n->list_first)->prev = e;
    else n->list_last = e;
    n->list_first = e;
  } else {
    el->next = 0;
    el->prev = n->list_last;
    if (n->list_last) at<Elem>(n->list_last)->next = e;
    else n->list_first = e;
    n->list_last = e;
  }
  return ++n->value_len;
}

Store::Pop Store::pop(std::string_view key, bool left, Type* type, std::string* buf) {
  uint32_t hash = hash_key(key);
  Lock lk(*this);
  Header* h = hdr();
  Dirty d(h);
  expire_some(1);
  uint32_t off;
  if (lookup(key, hash, &off, true) != Found::ok) return Pop::none;
  Node* n = at<Node>(off);
  if (n->type != kList) return Pop::not_list;
  uint32_t e = left ? n->list_first : n->list_last;
  if (!e) return Pop::none;  // cannot happen: empty lists are removed
  Elem* el = at<Elem>(e);
  *type = static_cast<Type>(el->type);
  buf->assign(el->data(), el->len);
  if (n->value_len <= 1) {
    remove_node(off);
    return Pop::ok;
  }
  if (left) {
    n->list_first = el->next;
    at<Elem>(el->next)->prev = 0;
  } else {
    n->list_last = el->prev;
    at<Elem>(el->prev)->next = 0;
  }
  free_obj(e);
  --n->value_len;
  return Pop::ok;
}

long Store::llen(std::string_view key) {
  uint32_t hash = hash_key(key);
  Lock lk(*this);
  Header* h = hdr();
  Dirty d(h);
  expire_some(1);
  uint32_t off;
  if (lookup(key, hash, &off, true) != Found::ok) return 0;
  Node* n = at<Node>(off);
  if (n->type != kList) return -1;
  return n->value_len;
}

}  // namespace cosocket::shdict
