#pragma once
// Address parsing and non-blocking name resolution (evdns: /etc/resolv.conf and
// /etc/hosts, or the --resolver servers). A Lookup delivers its result exactly once,
// never from inside the call that started it; destroying it cancels it.
#include <functional>
#include <memory>
#include <string>

#include <netdb.h>
#include <sys/socket.h>

struct evdns_getaddrinfo_request;

namespace cosocket {

class Runtime;
class Timer;

struct Address {
  sockaddr_storage ss{};
  socklen_t len = 0;
  int family() const { return ss.ss_family; }
};

// "unix:/path" -> true with a filled address (err set if the path is too long).
bool parse_unix(const std::string& host, Address& out, std::string& err);
// A numeric IPv4/IPv6 address (IPv6 may be in brackets) -> true.
bool parse_numeric(const std::string& host, int port, Address& out);
// Lower-cased strerror(err), as nginx reports socket errors.
std::string errno_text(int err);

class Lookup {
 public:
  using Done = std::function<void(const std::string& err, const Address& addr)>;
  Lookup(Runtime& rt, const std::string& host, int port, long timeout_ms, Done done);
  ~Lookup();
  Lookup(const Lookup&) = delete;
  Lookup& operator=(const Lookup&) = delete;

 private:
  struct Ctx;
  static void on_result(int code, ::addrinfo* res, void* arg);
  void deliver();

  Runtime& rt_;
  std::string host_;
  int port_;
  Done done_;
  Ctx* ctx_ = nullptr;  // owned by the pending evdns request; freed in on_result
  evdns_getaddrinfo_request* req_ = nullptr;
  std::unique_ptr<Timer> timer_;
  std::string err_;
  Address addr_;
};

}  // namespace cosocket
