// Unit tests for shdict_ffi.cc: the ngx_http_lua_ffi_shdict_* functions called as
// lua-resty-core calls them, their return codes (nginx's 0, -1, -5), error strings and the
// value buffer's contract (a string that does not fit comes in memory from malloc()).
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "ngx/shdict_ffi.h"
#include "ngx/shdict_store.h"

namespace cosocket::shdict {
namespace {

const unsigned char* u(const char* s) { return reinterpret_cast<const unsigned char*>(s); }

class ShdictFfiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string err;
    store_ = Store::create(1 << 20, &err);
    ASSERT_TRUE(store_) << err;
    zone_ = store_.get();
  }

  int store(int op, const char* key, int type, const std::string& str, double num = 0, long exptime = 0,
            int flags = 0) {
    errmsg_ = nullptr;
    forcible_ = -1;
    return ngx_http_lua_ffi_shdict_store(zone_, op, u(key), strlen(key), type, u(str.data()), str.size(), num,
                                         exptime, flags, &errmsg_, &forcible_);
  }

  // get into a buffer of `cap` bytes
  int get(const char* key, size_t cap, bool stale = false) {
    buf_.assign(cap, '\0');
    str_ = reinterpret_cast<unsigned char*>(buf_.data());
    len_ = cap;
    errmsg_ = reinterpret_cast<char*>(1);
    is_stale_ = -1;
    return ngx_http_lua_ffi_shdict_get(zone_, u(key), strlen(key), &type_, &str_, &len_, &num_, &flags_, stale,
                                       &is_stale_, &errmsg_);
  }
  bool allocated() const { return str_ != reinterpret_cast<const unsigned char*>(buf_.data()); }

  std::unique_ptr<Store> store_;
  void* zone_ = nullptr;
  char* errmsg_ = nullptr;
  int forcible_ = 0;
  std::string buf_;
  unsigned char* str_ = nullptr;
  size_t len_ = 0;
  int type_ = -1, flags_ = 0, is_stale_ = 0;
  double num_ = 0;
};

TEST_F(ShdictFfiTest, StoreCodes) {
  EXPECT_EQ(0, store(kSet, "a", kString, "v", 0, 0, 7));
  EXPECT_EQ(0, forcible_);
  EXPECT_EQ(-5, store(kAdd, "a", kString, "w"));
  EXPECT_STREQ("exists", errmsg_);
  EXPECT_EQ(-5, store(kReplace, "nope", kString, "w"));
  EXPECT_STREQ("not found", errmsg_);
  EXPECT_EQ(-1, store(kAdd, "a", kNil, ""));
  EXPECT_STREQ("attempt to add or replace nil values", errmsg_);
  EXPECT_EQ(-1, store(kSet, "a", 7, ""));
  EXPECT_STREQ("unsupported value type", errmsg_);
  EXPECT_EQ(-1, store(kSet | kSafe, "big", kString, std::string(2 << 20, 'x')));
  EXPECT_STREQ("no memory", errmsg_);
  EXPECT_EQ(0, store(kSet, "a", kNil, ""));  // delete
  EXPECT_EQ(0, get("a", 16));
  EXPECT_EQ(kNil, type_);
}

TEST_F(ShdictFfiTest, GetIntoTheBufferOrMalloc) {
  ASSERT_EQ(0, store(kSet, "s", kString, "hello", 0, 0, 9));
  ASSERT_EQ(0, get("s", 16));
  EXPECT_EQ(nullptr, errmsg_);
  EXPECT_EQ(kString, type_);
  EXPECT_FALSE(allocated());
  EXPECT_EQ("hello", std::string(reinterpret_cast<char*>(str_), len_));
  EXPECT_EQ(9, flags_);
  EXPECT_EQ(-1, is_stale_);  // set by get_stale only
  ASSERT_EQ(0, get("s", 4));  // does not fit: malloc()
  ASSERT_TRUE(allocated());
  EXPECT_EQ("hello", std::string(reinterpret_cast<char*>(str_), len_));
  free(str_);
  ASSERT_EQ(0, get("s", 5, true));  // fits exactly
  EXPECT_FALSE(allocated());
  EXPECT_EQ(0, is_stale_);

  ASSERT_EQ(0, store(kSet, "n", kNumber, "", 2.5));
  ASSERT_EQ(0, get("n", 0));
  EXPECT_EQ(kNumber, type_);
  EXPECT_EQ(2.5, num_);
  EXPECT_EQ(sizeof(double), len_);
  ASSERT_EQ(0, store(kSet, "b", kBoolean, "", 1));
  ASSERT_EQ(0, get("b", 1));
  EXPECT_EQ(kBoolean, type_);
  EXPECT_EQ(1, str_[0]);
  EXPECT_EQ(-1, get("b", 0));  // a boolean needs a byte of buffer, as nginx
  EXPECT_EQ(nullptr, errmsg_);
}

TEST_F(ShdictFfiTest, GetAList) {
  const char* err = nullptr;
  bool err_false = false;
  ASSERT_EQ(1, store_->push("l", true, kString, "x", &err, &err_false));
  EXPECT_EQ(-1, get("l", 16));
  EXPECT_EQ(kList, type_);
  EXPECT_STREQ("value is a list", errmsg_);
}

TEST_F(ShdictFfiTest, IncrTtlExpire) {
  double v = 1;
  char* err = nullptr;
  int forcible = -1;
  EXPECT_EQ(-1, ngx_http_lua_ffi_shdict_incr(zone_, u("i"), 1, &v, &err, 0, 0, 0, &forcible));
  EXPECT_STREQ("not found", err);
  EXPECT_EQ(0, ngx_http_lua_ffi_shdict_incr(zone_, u("i"), 1, &v, &err, 1, 10, 0, &forcible));
  EXPECT_EQ(11, v);
  EXPECT_EQ(0, forcible);
  ASSERT_EQ(0, store(kSet, "s", kString, "x"));
  EXPECT_EQ(-1, ngx_http_lua_ffi_shdict_incr(zone_, u("s"), 1, &v, &err, 0, 0, 0, &forcible));
  EXPECT_STREQ("not a number", err);

  EXPECT_EQ(-5, ngx_http_lua_ffi_shdict_get_ttl(zone_, u("nope"), 4));
  EXPECT_EQ(0, ngx_http_lua_ffi_shdict_get_ttl(zone_, u("i"), 1));
  EXPECT_EQ(-5, ngx_http_lua_ffi_shdict_set_expire(zone_, u("nope"), 4, 1000));
  EXPECT_EQ(0, ngx_http_lua_ffi_shdict_set_expire(zone_, u("i"), 1, 5000));
  long ms = ngx_http_lua_ffi_shdict_get_ttl(zone_, u("i"), 1);
  EXPECT_GT(ms, 4000);
  EXPECT_LE(ms, 5000);

  EXPECT_EQ(size_t{1} << 20, ngx_http_lua_ffi_shdict_capacity(zone_));
  size_t free_before = ngx_http_lua_ffi_shdict_free_space(zone_);
  EXPECT_EQ(0, ngx_http_lua_ffi_shdict_flush_all(zone_));
  EXPECT_EQ(0, get("s", 16));
  EXPECT_EQ(kNil, type_);
  EXPECT_GE(ngx_http_lua_ffi_shdict_free_space(zone_), free_before);
}

TEST_F(ShdictFfiTest, UdataToZoneKnowsOnlyTheProcessDicts) {
  EXPECT_EQ(nullptr, ngx_http_lua_ffi_shdict_udata_to_zone(nullptr));
  void* not_a_dict = zone_;  // a Store, but not one of the --shdict dicts
  EXPECT_EQ(nullptr, ngx_http_lua_ffi_shdict_udata_to_zone(&not_a_dict));
}

}  // namespace
}  // namespace cosocket::shdict
