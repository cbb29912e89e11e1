// libFuzzer target: the ngx.shared store (ngx/shdict_store.h) driven by a sequence of
// operations decoded from the input, on a small region so that eviction, slabs and page
// runs all churn, with a fake clock so that expiry happens. After every operation the
// region's invariants must hold (Store::check), and a value just stored must read back.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "ngx/shdict_store.h"

namespace {

long g_now = 1000000;
long fake_now() { return g_now; }

struct Reader {
  const uint8_t* p;
  size_t n;
  size_t i = 0;
  unsigned byte() { return i < n ? p[i++] : 0; }
  bool more() const { return i < n; }
};

void must(bool ok, cosocket::shdict::Store& s, const char* what) {
  std::string why;
  if (!ok) {
    fprintf(stderr, "shdict_fuzz: %s\n", what);
    abort();
  }
  if (!s.check(&why)) {
    fprintf(stderr, "shdict_fuzz: after %s: %s\n", what, why.c_str());
    abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace cosocket::shdict;
  static std::unique_ptr<Store> store = [] {
    Store::set_clock(fake_now);
    std::string err;
    auto s = Store::create(64 * 1024, &err);
    if (!s) abort();
    return s;
  }();
  Store& s = *store;
  s.flush_all();
  s.flush_expired(0);
  Reader r{data, size};
  std::string buf;
  while (r.more()) {
    unsigned op = r.byte() % 10;
    std::string key = "k" + std::to_string(r.byte() % 40);
    unsigned len = r.byte();
    size_t vlen = static_cast<size_t>(len) * (len > 200 ? 97 : 3);  // some values > 4 KB
    std::string val(vlen, static_cast<char>('a' + len % 26));
    long ttl = (r.byte() % 4 == 0) ? static_cast<long>(1 + r.byte() % 50) : 0;
    bool forcible = false;
    switch (op) {
      case 0:
      case 1: {
        const char* err = s.store(kSet, key, kString, val, 0, ttl, 7, &forcible);
        if (!err) {
          Type t;
          double num;
          int32_t flags;
          bool stale;
          Store::Get g = s.get(key, false, &t, &buf, &num, &flags, &stale);
          must(g == Store::Get::found && t == kString && buf == val && flags == 7, s, "set then get");
        }
        must(true, s, "set");
        break;
      }
      case 2:
        s.store(kAdd | (len & 1 ? kSafe : 0), key, kNumber, {}, len, ttl, 0, &forcible);
        must(true, s, "add");
        break;
      case 3: {
        double v = 1;
        s.incr(key, &v, len & 1, 10, ttl, &forcible);
        must(true, s, "incr");
        break;
      }
      case 4:
        s.store(kSet, key, kNil, {}, 0, 0, 0, &forcible);
        must(true, s, "delete");
        break;
      case 5: {
        const char* err = nullptr;
        bool err_false = false;
        s.push(key, len & 1, kString, val.substr(0, 300), &err, &err_false);
        must(true, s, "push");
        break;
      }
      case 6: {
        Type t;
        s.pop(key, len & 1, &t, &buf);
        s.llen(key);
        must(true, s, "pop");
        break;
      }
      case 7:
        g_now += 1 + len % 60;  // time passes
        s.flush_expired(len % 3);
        must(true, s, "flush_expired");
        break;
      case 8: {
        long ms;
        s.ttl(key, &ms);
        s.expire(key, ttl);
        std::vector<std::string> keys;
        s.get_keys(len % 5, &keys);
        must(true, s, "ttl/expire/get_keys");
        break;
      }
      case 9:
        if (len == 255) {
          s.flush_all();
          must(true, s, "flush_all");
        }
        break;
    }
  }
  return 0;
}
