#pragma once
// TLS for cosockets (OpenSSL 3): the runtime's client context, server contexts for
// listening sockets, session objects (what sslhandshake returns), the `ngx.ssl`
// module's PEM parsers, and the post-handshake verification nginx does.
#include <memory>
#include <string>

#include <lua.hpp>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "net/tls_ptr.h"

namespace cosocket {

// A TLS session that can be resumed. In TLS 1.3 the resumable session (the ticket)
// arrives after the handshake, so the object a handshake returns is filled in later:
// the connection keeps a weak reference and its new-session callback updates it.
struct SessionBox {
  SSL_SESSION* sess = nullptr;
  ~SessionBox() {
    if (sess) SSL_SESSION_free(sess);
  }
  void set(SSL_SESSION* s) {  // takes a reference
    if (sess) SSL_SESSION_free(sess);
    sess = s;
  }
};

// The client context of the runtime, created at first use from the configuration
// (--ssl-trusted-certificate or the system CA store, --ssl-verify-depth): nullptr and
// err on failure.
SSL_CTX* client_ctx(std::string& err);

// A new SSL for a connection; the new-session callback will fill `box`.
SslPtr new_client_ssl(SSL_CTX* ctx, int fd, const std::shared_ptr<SessionBox>& box);

// A server context from PEM text or file names (cert chain, key): nullptr and err.
std::shared_ptr<SSL_CTX> make_server_ctx(const std::string& cert, const std::string& key, std::string& err);

// nginx's checks after a client handshake: the verification result ("<code>: <reason>")
// and the certificate's host name (or IP address): "" when all is well.
std::string verify_peer(SSL* ssl, const std::string& host);

// The last OpenSSL error as text ("" when the queue is empty); clears the queue.
std::string ssl_error_text();

// Session objects in Lua
void push_session(lua_State* L, std::shared_ptr<SessionBox> box);
SessionBox* test_session(lua_State* L, int idx);  // nullptr if not a session

// Client certificates: an `ngx.ssl` cert chain / key object or PEM text at idx.
struct CertChain;
struct PrivKey;
std::shared_ptr<CertChain> get_cert(lua_State* L, int idx, std::string& err);
std::shared_ptr<PrivKey> get_key(lua_State* L, int idx, std::string& err);
bool use_client_cert(SSL* ssl, const CertChain& chain, const PrivKey& key, std::string& err);

// A server context object for Lua (cosocket.listen's ssl option)
void push_server_ctx(lua_State* L, std::shared_ptr<SSL_CTX> ctx);
std::shared_ptr<SSL_CTX> check_server_ctx(lua_State* L, int idx);

// ssl_server_context(cert, key): PEM text or file names -> context, or nil, err
int l_ssl_server_context(lua_State* L);

// Registers the metatables and package.preload["ngx.ssl"].
void open_tls(lua_State* L);

}  // namespace cosocket
