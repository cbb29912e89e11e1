// TLS pieces shared by the TCP cosocket and the listening sockets.
#include "net/tls.h"

#include <arpa/inet.h>
#include <cstring>
#include <vector>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "runtime/runtime.h"

namespace cosocket {

namespace {

const char* const kSessionMeta = "cosocket.ssl_session";
const char* const kCertMeta = "cosocket.ssl_cert";
const char* const kKeyMeta = "cosocket.ssl_pkey";
const char* const kServerCtxMeta = "cosocket.ssl_server_ctx";

struct CtxFree {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;

// The SSL's ex_data slot holding a heap std::weak_ptr<SessionBox>; OpenSSL's free
// callback deletes it with the SSL, so the slot owns it.
void free_box_ref(void*, void* ptr, CRYPTO_EX_DATA*, int, long, void*) {
  delete static_cast<std::weak_ptr<SessionBox>*>(ptr);
}

int box_index() {
  static int idx = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, free_box_ref);
  return idx;
}

int on_new_session(SSL* ssl, SSL_SESSION* sess) {
  auto* ref = static_cast<std::weak_ptr<SessionBox>*>(SSL_get_ex_data(ssl, box_index()));
  if (!ref) return 0;
  std::shared_ptr<SessionBox> box = ref->lock();
  if (!box) return 0;
  box->set(sess);  // keeps the reference OpenSSL gave us
  return 1;
}


void set_modes(SSL_CTX* ctx) {
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
  // a peer that closes without close_notify ends the stream like a plain EOF (nginx)
  SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
}

std::unique_ptr<SSL_CTX, CtxFree>& client_ctx_slot() {
  static std::unique_ptr<SSL_CTX, CtxFree> ctx;
  return ctx;
}

bool is_pem(const std::string& s) { return s.find("-----BEGIN") != std::string::npos; }

BioPtr open_bio(const std::string& text_or_file, std::string& err) {
  BioPtr bio(is_pem(text_or_file) ? BIO_new_mem_buf(text_or_file.data(), static_cast<int>(text_or_file.size()))
                                  : BIO_new_file(text_or_file.c_str(), "r"));
  if (!bio) err = "cannot open \"" + text_or_file + "\": " + ssl_error_text();
  return bio;
}

}  // namespace

struct CertChain {
  std::vector<X509*> certs;
  CertChain() = default;
  CertChain(const CertChain&) = delete;
  CertChain& operator=(const CertChain&) = delete;
  ~CertChain() {
    for (X509* c : certs) X509_free(c);
  }
};

struct PrivKey {
  EVP_PKEY* pkey = nullptr;
  PrivKey() = default;
  PrivKey(const PrivKey&) = delete;
  PrivKey& operator=(const PrivKey&) = delete;
  ~PrivKey() {
    if (pkey) EVP_PKEY_free(pkey);
  }
};

namespace {

std::shared_ptr<CertChain> parse_chain(const std::string& src, std::string& err) {
  BioPtr bio = open_bio(src, err);
  if (!bio) return nullptr;
  auto chain = std::make_shared<CertChain>();
  while (X509* c = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) chain->certs.push_back(c);
  ERR_clear_error();  // the end of the input
  if (chain->certs.empty()) {
    err = "PEM_read_bio_X509_AUX() failed";
    return nullptr;
  }
  return chain;
}

std::shared_ptr<PrivKey> parse_key(const std::string& src, std::string& err) {
  BioPtr bio = open_bio(src, err);
  if (!bio) return nullptr;
  auto key = std::make_shared<PrivKey>();
  key->pkey = PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr);
  if (!key->pkey) {
    ERR_clear_error();
    err = "PEM_read_bio_PrivateKey() failed";
    return nullptr;
  }
  return key;
}

template <class T>
void push_shared(lua_State* L, std::shared_ptr<T> p, const char* meta) {
  void* mem = lua_newuserdata(L, sizeof(std::shared_ptr<T>));
  new (mem) std::shared_ptr<T>(std::move(p));
  luaL_getmetatable(L, meta);
  lua_setmetatable(L, -2);
}

template <class T>
std::shared_ptr<T>* test_shared(lua_State* L, int idx, const char* meta) {
  if (lua_type(L, idx) != LUA_TUSERDATA || !lua_getmetatable(L, idx)) return nullptr;
  luaL_getmetatable(L, meta);
  bool same = lua_rawequal(L, -1, -2);
  lua_pop(L, 2);
  return same ? static_cast<std::shared_ptr<T>*>(lua_touserdata(L, idx)) : nullptr;
}

template <class T>
int gc_shared(lua_State* L) {
  static_cast<std::shared_ptr<T>*>(lua_touserdata(L, 1))->~shared_ptr<T>();
  return 0;
}

template <class T>
void new_meta(lua_State* L, const char* meta, const char* name) {
  luaL_newmetatable(L, meta);
  lua_pushcfunction(L, gc_shared<T>);
  lua_setfield(L, -2, "__gc");
  lua_pushstring(L, name);
  lua_setfield(L, -2, "__name");
  lua_pop(L, 1);
}

// The two kinds of PEM objects (ngx.ssl's parse_pem_cert / parse_pem_priv_key).
struct CertKind {
  using Obj = CertChain;
  static const char* meta() { return kCertMeta; }
  static std::shared_ptr<Obj> parse(const std::string& s, std::string& e) { return parse_chain(s, e); }
  static const char* parse_error() { return "PEM_read_bio_X509_AUX() failed"; }
  static const char* arg() { return "cert"; }
  static const char* ctor() { return "ngx.ssl.parse_pem_cert"; }
};

struct KeyKind {
  using Obj = PrivKey;
  static const char* meta() { return kKeyMeta; }
  static std::shared_ptr<Obj> parse(const std::string& s, std::string& e) { return parse_key(s, e); }
  static const char* parse_error() { return "PEM_read_bio_PrivateKey() failed"; }
  static const char* arg() { return "pkey"; }
  static const char* ctor() { return "ngx.ssl.parse_pem_priv_key"; }
};

template <class K>
int l_parse_pem(lua_State* L) {
  size_t n;
  const char* p = luaL_checklstring(L, 1, &n);
  std::string text(p, n), err;
  auto obj = is_pem(text) ? K::parse(text, err) : nullptr;
  if (!obj) {
    lua_pushnil(L);
    lua_pushstring(L, K::parse_error());
    return 2;
  }
  push_shared(L, std::move(obj), K::meta());
  return 1;
}

// An ngx.ssl object or PEM text at idx: the object, or nullptr and err.
template <class K>
std::shared_ptr<typename K::Obj> get_pem_object(lua_State* L, int idx, std::string& err) {
  if (auto* p = test_shared<typename K::Obj>(L, idx, K::meta())) return *p;
  if (lua_type(L, idx) == LUA_TSTRING) {
    size_t n;
    const char* s = lua_tolstring(L, idx, &n);
    std::string text(s, n);
    if (is_pem(text)) {
      auto obj = K::parse(text, err);
      if (!obj) err = std::string("bad ") + K::arg() + " arg: " + err;
      return obj;
    }
  }
  err = std::string("bad ") + K::arg() + " arg: " + K::arg() + " (" + K::ctor() + ") or PEM string expected, got " +
        luaL_typename(L, idx);
  return nullptr;
}

int l_open_ngx_ssl(lua_State* L) {
  lua_newtable(L);
  lua_pushcfunction(L, l_parse_pem<CertKind>);
  lua_setfield(L, -2, "parse_pem_cert");
  lua_pushcfunction(L, l_parse_pem<KeyKind>);
  lua_setfield(L, -2, "parse_pem_priv_key");
  return 1;
}

int l_session_tostring(lua_State* L) {
  lua_pushfstring(L, "ssl session: %p", lua_touserdata(L, 1));
  return 1;
}

}  // namespace

std::string ssl_error_text() {
  std::string out;
  unsigned long e;
  while ((e = ERR_get_error()) != 0) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out;
}

SSL_CTX* client_ctx(std::string& err) {
  auto& slot = client_ctx_slot();
  if (slot) return slot.get();
  std::unique_ptr<SSL_CTX, CtxFree> ctx(SSL_CTX_new(TLS_client_method()));
  if (!ctx) {
    err = "failed to create the ssl context: " + ssl_error_text();
    return nullptr;
  }
  set_modes(ctx.get());
  const Config& cfg = runtime().cfg();
  int ok = cfg.ssl_trusted_certificate.empty()
               ? SSL_CTX_set_default_verify_paths(ctx.get())
               : SSL_CTX_load_verify_locations(ctx.get(), cfg.ssl_trusted_certificate.c_str(), nullptr);
  if (!ok) {
    err = "failed to load the trusted certificates" +
          (cfg.ssl_trusted_certificate.empty() ? std::string() : " \"" + cfg.ssl_trusted_certificate + "\"") + ": " +
          ssl_error_text();
    return nullptr;
  }
  // Verification is nginx's: a client always checks the server's chain, SSL_VERIFY_NONE
  // only keeps a failure from aborting the handshake (the first error is kept); the
  // result is looked at afterwards (verify_peer), when the caller asked for it.
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);
  SSL_CTX_set_verify_depth(ctx.get(), cfg.ssl_verify_depth);
  SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_sess_set_new_cb(ctx.get(), on_new_session);
  slot = std::move(ctx);
  return slot.get();
}

SslPtr new_client_ssl(SSL_CTX* ctx, int fd, const std::shared_ptr<SessionBox>& box) {
  SslPtr ssl(SSL_new(ctx));
  if (!ssl) return ssl;
  SSL_set_fd(ssl.get(), fd);
  SSL_set_connect_state(ssl.get());
  SSL_set_ex_data(ssl.get(), box_index(), new std::weak_ptr<SessionBox>(box));
  return ssl;
}

std::shared_ptr<SSL_CTX> make_server_ctx(const std::string& cert, const std::string& key, std::string& err) {
  std::shared_ptr<SSL_CTX> ctx(SSL_CTX_new(TLS_server_method()), CtxFree());
  if (!ctx) {
    err = "failed to create the ssl context: " + ssl_error_text();
    return nullptr;
  }
  set_modes(ctx.get());
  auto chain = parse_chain(cert, err);
  if (!chain) return nullptr;
  auto pkey = parse_key(key, err);
  if (!pkey) return nullptr;
  if (SSL_CTX_use_certificate(ctx.get(), chain->certs[0]) != 1) {
    err = "bad certificate: " + ssl_error_text();
    return nullptr;
  }
  for (size_t i = 1; i < chain->certs.size(); ++i) SSL_CTX_add1_chain_cert(ctx.get(), chain->certs[i]);
  if (SSL_CTX_use_PrivateKey(ctx.get(), pkey->pkey) != 1 || SSL_CTX_check_private_key(ctx.get()) != 1) {
    err = "the private key does not match the certificate: " + ssl_error_text();
    return nullptr;
  }
  return ctx;
}

std::string verify_peer(SSL* ssl, const std::string& host) {
  long rc = SSL_get_verify_result(ssl);
  if (rc != X509_V_OK) return std::to_string(rc) + ": " + X509_verify_cert_error_string(rc);
  X509* cert = SSL_get0_peer_certificate(ssl);
  if (!cert) return "no peer certificate";
  if (host.empty()) return "";
  unsigned char ip[16];
  bool is_ip = inet_pton(AF_INET, host.c_str(), ip) == 1 || inet_pton(AF_INET6, host.c_str(), ip) == 1;
  int ok = is_ip ? X509_check_ip_asc(cert, host.c_str(), 0)
                 : X509_check_host(cert, host.data(), host.size(), X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS, nullptr);
  return ok == 1 ? "" : "certificate host mismatch";
}

void push_session(lua_State* L, std::shared_ptr<SessionBox> box) { push_shared(L, std::move(box), kSessionMeta); }

SessionBox* test_session(lua_State* L, int idx) {
  auto* p = test_shared<SessionBox>(L, idx, kSessionMeta);
  return p ? p->get() : nullptr;
}

std::shared_ptr<CertChain> get_cert(lua_State* L, int idx, std::string& err) {
  return get_pem_object<CertKind>(L, idx, err);
}

std::shared_ptr<PrivKey> get_key(lua_State* L, int idx, std::string& err) {
  return get_pem_object<KeyKind>(L, idx, err);
}

bool use_client_cert(SSL* ssl, const CertChain& chain, const PrivKey& key, std::string& err) {
  if (SSL_use_certificate(ssl, chain.certs[0]) != 1) {
    err = "failed to set the client certificate: " + ssl_error_text();
    return false;
  }
  for (size_t i = 1; i < chain.certs.size(); ++i) SSL_add1_chain_cert(ssl, chain.certs[i]);
  if (SSL_use_PrivateKey(ssl, key.pkey) != 1 || SSL_check_private_key(ssl) != 1) {
    err = "the client private key does not match the certificate: " + ssl_error_text();
    return false;
  }
  return true;
}

void push_server_ctx(lua_State* L, std::shared_ptr<SSL_CTX> ctx) { push_shared(L, std::move(ctx), kServerCtxMeta); }

std::shared_ptr<SSL_CTX> check_server_ctx(lua_State* L, int idx) {
  auto* p = test_shared<SSL_CTX>(L, idx, kServerCtxMeta);
  if (!p) luaL_argerror(L, idx, "ssl server context expected");
  return *p;
}

int l_ssl_server_context(lua_State* L) {
  size_t cl, kl;
  const char* c = luaL_checklstring(L, 1, &cl);
  const char* k = luaL_checklstring(L, 2, &kl);
  std::string err;
  auto ctx = make_server_ctx(std::string(c, cl), std::string(k, kl), err);
  if (!ctx) {
    lua_pushnil(L);
    lua_pushstring(L, err.c_str());
    return 2;
  }
  push_server_ctx(L, std::move(ctx));
  return 1;
}

void open_tls(lua_State* L) {
  new_meta<SessionBox>(L, kSessionMeta, "ssl session");
  luaL_getmetatable(L, kSessionMeta);
  lua_pushcfunction(L, l_session_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);
  new_meta<CertChain>(L, kCertMeta, "ssl cert");
  new_meta<PrivKey>(L, kKeyMeta, "ssl pkey");
  new_meta<SSL_CTX>(L, kServerCtxMeta, "ssl server context");
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "preload");
  lua_pushcfunction(L, l_open_ngx_ssl);
  lua_setfield(L, -2, "ngx.ssl");
  lua_pop(L, 2);
}

}  // namespace cosocket
