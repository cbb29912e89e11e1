// shdict_recover.cc -- a shared dict after a worker died holding its lock (recover), and
// the full invariant check the unit tests run after every scenario (check).
#include <cstring>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "ngx/shdict_layout.h"
#include "ngx/shdict_store.h"

namespace cosocket::shdict {

namespace {

struct Saved {
  std::string key;
  uint8_t type = 0;
  int32_t flags = 0;
  int64_t expires = 0;
  std::string value;
  std::vector<std::pair<uint8_t, std::string>> elems;
};

}  // namespace

// The owner of the lock died in the middle of a mutation. What the LRU list still reaches,
// node by node validated (allocated, sizes, types, the key's hash, the links both ways),
// is kept, except the node that was being changed in place; the region is laid out anew
// and the kept items put back in their LRU order.
void Store::recover() {
  Header* h = hdr();
  const uint32_t skip = h->dirty_node;
  auto valid = [&](uint32_t off, Saved* s) -> bool {
    if (!is_allocated(off, sizeof(Node))) return false;
    Node* n = at<Node>(off);
    size_t vlen = n->type == kList ? 0 : n->value_len;
    if (n->key_len == 0 || !is_allocated(off, sizeof(Node) + n->key_len + vlen)) return false;
    if (n->hash != hash_key(n->key())) return false;
    switch (n->type) {
      case kString: break;
      case kNumber:
        if (n->value_len != 8) return false;
        break;
      case kBoolean:
        if (n->value_len != 1) return false;
        break;
      case kList: break;
      default: return false;
    }
    s->key.assign(n->key());
    s->type = n->type;
    s->flags = n->flags;
    s->expires = n->expires;
    s->elems.clear();
    if (n->type != kList) {
      s->value.assign(n->value(), n->value_len);
      return true;
    }
    uint32_t prev = 0, e = n->list_first;
    for (uint32_t i = 0; i < n->value_len; ++i) {
      if (!e || !is_allocated(e, sizeof(Elem))) return false;
      Elem* el = at<Elem>(e);
      if (el->prev != prev || !is_allocated(e, sizeof(Elem) + el->len)) return false;
      if (el->type != kString && !(el->type == kNumber && el->len == 8)) return false;
      s->elems.emplace_back(el->type, std::string(el->data(), el->len));
      prev = e;
      e = el->next;
    }
    return e == 0 && prev == n->list_last && n->value_len > 0;
  };
  std::unordered_set<uint32_t> seen;
  std::vector<Saved> from_head, from_tail;
  Saved s;
  // forwards from the head while the links agree, then backwards from the tail
  uint32_t prev = 0;
  for (uint32_t off = h->lru_head; off && !seen.count(off) && seen.size() <= h->count;) {
    if (!is_allocated(off, sizeof(Node)) || at<Node>(off)->lru_prev != prev) break;
    seen.insert(off);
    if (off != skip && valid(off, &s)) from_head.push_back(s);
    prev = off;
    off = at<Node>(off)->lru_next;
  }
  prev = 0;
  for (uint32_t off = h->lru_tail; off && !seen.count(off) && seen.size() <= h->count + 1;) {
    if (!is_allocated(off, sizeof(Node)) || at<Node>(off)->lru_next != prev) break;
    seen.insert(off);
    if (off != skip && valid(off, &s)) from_tail.push_back(s);
    prev = off;
    off = at<Node>(off)->lru_prev;
  }
  init_layout();
  auto put = [&](const Saved& it) {
    size_t vlen = it.type == kList ? 0 : it.value.size();
    uint32_t off = alloc(sizeof(Node) + it.key.size() + vlen);
    if (!off) return;
    Node* n = at<Node>(off);
    n->key_len = static_cast<uint16_t>(it.key.size());
    n->type = it.type;
    n->flags = it.flags;
    n->expires = it.expires;
    n->value_len = static_cast<uint32_t>(it.type == kList ? 0 : vlen);
    n->list_first = n->list_last = 0;
    memcpy(n->data(), it.key.data(), it.key.size());
    memcpy(n->value(), it.value.data(), vlen);
    n->hash = hash_key(it.key);
    uint32_t* b = at<uint32_t>(h->buckets_off) + (n->hash & (h->nbuckets - 1));
    n->hnext = *b;
    *b = off;
    lru_push_head(n, off);
    ++h->count;
    for (const auto& el : it.elems) {
      uint32_t e = alloc(sizeof(Elem) + el.second.size());
      if (!e) break;
      Elem* x = at<Elem>(e);
      x->len = static_cast<uint32_t>(el.second.size());
      x->type = el.first;
      memcpy(x->data(), el.second.data(), el.second.size());
      x->next = 0;
      x->prev = n->list_last;
      if (n->list_last) at<Elem>(n->list_last)->next = e;
      else n->list_first = e;
      n->list_last = e;
      ++n->value_len;
    }
    if (it.type == kList && n->value_len == 0) remove_node(off);
  };
  for (const auto& it : from_tail) put(it);
  for (auto i = from_head.rbegin(); i != from_head.rend(); ++i) put(*i);
}

bool Store::check_locked(std::string* why) {
  Header* h = hdr();
  auto fail = [&](const std::string& m) {
    *why = m;
    return false;
  };
  if (h->magic != kMagic) return fail("bad magic");
  if (h->dirty) return fail("dirty outside a mutation");
  std::unordered_map<uint32_t, int> objects;  // page -> objects reached on it
  auto reach = [&](uint32_t off, size_t size) -> bool {
    if (!is_allocated(off, size)) return false;
    objects[(off - h->data_off) / static_cast<uint32_t>(kPageSize)]++;
    return true;
  };
  // the LRU list, both ways, and each node's list
  uint32_t n_lru = 0, prev = 0;
  for (uint32_t off = h->lru_head; off; off = at<Node>(off)->lru_next) {
    if (++n_lru > h->count) return fail("LRU list longer than count");
    Node* n = at<Node>(off);
    size_t vlen = n->type == kList ? 0 : n->value_len;
    if (!reach(off, sizeof(Node) + n->key_len + vlen)) return fail("LRU node not allocated");
    if (n->lru_prev != prev) return fail("LRU back link broken");
    if (n->hash != hash_key(n->key())) return fail("node hash wrong");
    uint32_t found;
    if (lookup(n->key(), n->hash, &found, false) == Found::missing || found != off)
      return fail("node not in its bucket");
    if (n->type == kList) {
      uint32_t ep = 0, cnt = 0;
      for (uint32_t e = n->list_first; e; e = at<Elem>(e)->next) {
        if (++cnt > n->value_len) return fail("list longer than its length");
        if (!reach(e, sizeof(Elem) + at<Elem>(e)->len)) return fail("list element not allocated");
        if (at<Elem>(e)->prev != ep) return fail("list back link broken");
        ep = e;
      }
      if (cnt != n->value_len || ep != n->list_last || cnt == 0) return fail("list length or tail wrong");
    }
    prev = off;
  }
  if (prev != h->lru_tail) return fail("LRU tail wrong");
  if (n_lru != h->count) return fail("count differs from the LRU list");
  uint32_t n_hash = 0;
  for (uint32_t b = 0; b < h->nbuckets; ++b)
    for (uint32_t off = at<uint32_t>(h->buckets_off)[b]; off; off = at<Node>(off)->hnext)
      if (++n_hash > h->count) return fail("buckets hold more nodes than count");
  if (n_hash != h->count) return fail("buckets hold fewer nodes than count");
  // the pages, in order
  Page* pages = at<Page>(h->pages_off);
  std::unordered_set<uint32_t> free_heads;
  uint32_t fp = 0;
  for (uint32_t p = h->free_head, last = kNone; p != kNone; last = p, p = pages[p].next) {
    if (p >= h->npages || pages[p].prev != last) return fail("free run list broken");
    if (!free_heads.insert(p).second) return fail("free run list loops");
    fp += pages[p].run;
  }
  if (fp != h->free_pages) return fail("free pages differ from the runs");
  std::unordered_set<uint32_t> partial[kClasses];
  for (int c = 0; c < kClasses; ++c)
    for (uint32_t p = h->partial[c]; p != kNone; p = pages[p].next) {
      if (p >= h->npages || pages[p].kind != kSlabPage || pages[p].cls != c) return fail("partial list broken");
      if (!partial[c].insert(p).second) return fail("partial list loops");
    }
  for (uint32_t p = 0; p < h->npages;) {
    Page& pg = pages[p];
    if (pg.kind == kFreePage) {
      if (!free_heads.count(p) || pg.run == 0 || p + pg.run > h->npages) return fail("free page outside a run");
      if (pages[p + pg.run - 1].head != p) return fail("free run tail wrong");
      if (objects.count(p)) return fail("object on a free page");
      uint32_t next = p + pg.run;
      if (next < h->npages && pages[next].kind == kFreePage) return fail("free runs not merged");
      p = next;
    } else if (pg.kind == kSlabPage) {
      int bits = 0;
      for (auto w : pg.bits) bits += __builtin_popcountll(w);
      uint32_t per = static_cast<uint32_t>(kPageSize / class_size(pg.cls));
      if (bits != pg.used || pg.used == 0) return fail("slab page count wrong");
      if (objects[p] != pg.used) return fail("slab page holds unreachable objects (a leak)");
      if ((pg.used < per) != (partial[pg.cls].count(p) > 0)) return fail("slab page on the wrong list");
      ++p;
    } else if (pg.kind == kBigHead) {
      if (objects[p] != 1) return fail("big block not reached once");
      p += pg.run;
    } else {
      return fail("page of unknown kind " + std::to_string(pg.kind) + " at " + std::to_string(p));
    }
  }
  return true;
}

}  // namespace cosocket::shdict
