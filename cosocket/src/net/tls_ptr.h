#pragma once
// Owning handles of OpenSSL objects (kept apart from tls.h so the pool need not see Lua).
#include <memory>
#include <openssl/ssl.h>

namespace cosocket {

struct SslFree {
  void operator()(SSL* s) const { SSL_free(s); }
};
using SslPtr = std::unique_ptr<SSL, SslFree>;

}  // namespace cosocket
