// shdict_store.h -- the store behind ngx.shared.DICT, with no Lua: one region of shared
// memory (mmap MAP_SHARED|MAP_ANONYMOUS, made before -w N forks, so every worker sees the
// same dict), a process-shared robust mutex, a page allocator with size-class slabs, a hash
// table, an LRU list, lists, and expiry in milliseconds on CLOCK_MONOTONIC.
//
// Everything inside the region is addressed by 32-bit offsets from its start, never by
// pointers, so the region means the same in every process. The semantics (what each
// operation evicts, reuses, returns) follow lua-nginx-module 0.10.23's
// ngx_http_lua_shdict.c: a store first drops up to two expired items from the LRU tail; a
// set that does not fit evicts from the LRU tail (up to 30 rounds, `forcible`), a safe_set
// does not; lists take no eviction.
//
// A worker killed while holding the lock: the next locker gets EOWNERDEAD. Every mutation
// marks the header dirty while it runs; a dirty store is rebuilt from the items its LRU
// list still reaches (validated one by one: offsets, allocation, sizes, links), the node
// being changed in place dropped, the allocator and the hash made anew, before
// pthread_mutex_consistent.
#ifndef COSOCKET_NGX_SHDICT_STORE_H_
#define COSOCKET_NGX_SHDICT_STORE_H_

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace cosocket::shdict {

// value types, numbered as Lua's (LUA_TNIL, LUA_TBOOLEAN, LUA_TNUMBER, LUA_TSTRING) plus lists
enum Type : uint8_t { kNil = 0, kBoolean = 1, kNumber = 3, kString = 4, kList = 5 };

// store() operations, as lua-nginx-module's NGX_HTTP_LUA_SHDICT_* bits
enum Op : int { kSet = 0, kAdd = 1, kReplace = 2, kSafe = 4 };

constexpr size_t kMaxKeyLen = 65535;
constexpr size_t kPageSize = 4096;

struct Header;
struct Node;

class Store {
 public:
  // A new region of `capacity` bytes (> 8191); nullptr with *err set on failure.
  static std::unique_ptr<Store> create(size_t capacity, std::string* err);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  size_t capacity() const { return capacity_; }
  // bytes in wholly free pages (nginx's pfree * pagesize)
  size_t free_space();

  // set/add/replace (+kSafe). type kNil deletes (set). `str` is the string's bytes,
  // `num` the number or the boolean (0/1). exptime_ms <= 0: no expiry. nullptr on
  // success; else the error and whether it is a "declined" one (exists, not found:
  // false, err) -- all errors return false, err in resty.core.
  const char* store(int op, std::string_view key, Type type, std::string_view str, double num,
                    long exptime_ms, int32_t flags, bool* forcible);

  // what get() found
  struct Value {
    Type type = kNil;
    double num = 0;  // the number, or the boolean (0/1)
    int32_t flags = 0;
    bool stale = false;
    // a string: in, the caller's buffer and its size; out, where the bytes are and their
    // length. A string longer than the buffer goes into memory from malloc() (as
    // lua-nginx-module's get does), which the caller frees: `malloced` says so.
    char* str = nullptr;
    size_t len = 0;
    bool malloced = false;
  };
  enum class Get { missing, found, is_list, no_memory };
  // get (stale=false) / get_stale
  Get get(std::string_view key, bool stale, Value* v);
  // the same with the string in *buf (tests)
  Get get(std::string_view key, bool stale, Type* type, std::string* buf, double* num,
          int32_t* flags, bool* is_stale) {
    Value v;
    Get g = get(key, stale, &v);
    *type = v.type;
    if (g == Get::found && v.type == kString) buf->assign(v.str, v.len);
    if (v.malloced) free(v.str);
    *num = v.num;
    *flags = v.flags;
    *is_stale = v.stale;
    return g;
  }

  // incr: *value in, the new value out. nullptr or "not found" / "not a number" / "no memory".
  const char* incr(std::string_view key, double* value, bool has_init, double init, long init_ttl_ms,
                   bool* forcible);

  // ttl: false if not found; *ms (expires - now, 0: no expiry; negative when expired but
  // not yet removed, as nginx)
  bool ttl(std::string_view key, long* ms);
  // expire: false if not found
  bool expire(std::string_view key, long exptime_ms);

  void flush_all();
  int flush_expired(int max_count);  // 0: all
  void get_keys(int max_count, std::vector<std::string>* out);  // 0: all

  // lists. push: the new length (> 0), or an error in *err with *err_false telling
  // whether resty returns false (no memory for the list itself) or nil.
  long push(std::string_view key, bool left, Type type, std::string_view bytes, const char** err,
            bool* err_false);
  enum class Pop { none, ok, not_list };
  Pop pop(std::string_view key, bool left, Type* type, std::string* buf);
  // llen: the length, 0 when missing; -1 with "value not a list"
  long llen(std::string_view key);

  // Tests: checks every invariant of the region (lists, counts, allocator); false with
  // the first broken one in *why.
  bool check(std::string* why);
  size_t count();
  // Tests: the clock (ms) the store uses; nullptr: CLOCK_MONOTONIC.
  static void set_clock(long (*now_ms)());
  // Tests: called in the middle of a store() that inserts `key`, with the lock held and
  // the region half-updated (the new node in the hash, not yet in the LRU list), to kill
  // the process there. nullptr: none.
  static void set_crash_hook(void (*hook)(std::string_view key));
  // Tests: how many times this process found the lock's owner dead and repaired the store.
  static int recoveries();

 private:
  class Lock;
  Store(char* base, size_t capacity);
  void init_layout();
  // allocator
  uint32_t alloc(size_t size);
  void free_obj(uint32_t off);
  uint32_t alloc_pages(uint32_t n);
  void free_pages(uint32_t first, uint32_t n);
  bool is_allocated(uint32_t off, size_t size) const;
  // items
  enum class Found { missing, ok, expired };
  Found lookup(std::string_view key, uint32_t hash, uint32_t* node, bool touch);
  void remove_node(uint32_t off);
  void free_list_elems(Node* n);
  int expire_some(int n);
  uint32_t alloc_evicting(size_t size, bool* forcible);
  void link_new(uint32_t off, uint32_t hash);
  void lru_unlink(Node* n, uint32_t off);
  void lru_push_head(Node* n, uint32_t off);
  void touch(Node* n, uint32_t off);
  void recover();
  bool check_locked(std::string* why);

  template <class T>
  T* at(uint32_t off) const {
    return reinterpret_cast<T*>(base_ + off);
  }
  Header* hdr() const { return reinterpret_cast<Header*>(base_); }

  char* base_;
  size_t capacity_;
};

}  // namespace cosocket::shdict

#endif  // COSOCKET_NGX_SHDICT_STORE_H_
