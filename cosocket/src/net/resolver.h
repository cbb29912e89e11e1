#pragma once
// Address parsing and non-blocking name resolution (evdns: /etc/resolv.conf and
// /etc/hosts, or the --resolver servers). A Lookup delivers its result exactly once,
// never from inside the call that started it; destroying it cancels it.
#include <functional>
#include <memory>
#include <cstdint>
#include <string>

#include <netdb.h>
#include <sys/socket.h>

struct evdns_getaddrinfo_request;
struct event;
struct event_base;

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

// One DNS query for a name's A records over TCP (RFC 7766), used when the UDP lookup
// fails: libevent 2.1's evdns cannot retry a truncated answer over TCP itself.
class TcpDnsQuery {
 public:
  using Done = std::function<void(const std::string& err, const Address& addr)>;
  TcpDnsQuery(event_base* base, const sockaddr* ns, socklen_t ns_len, const std::string& host, int port, Done done);
  ~TcpDnsQuery();
  TcpDnsQuery(const TcpDnsQuery&) = delete;
  TcpDnsQuery& operator=(const TcpDnsQuery&) = delete;
  // Parses a DNS answer (without the TCP length prefix): "" and addr, or the error.
  static std::string parse_answer(const std::string& msg, uint16_t id, const std::string& host, int port,
                                  Address& addr);

 private:
  static void on_event(int fd, short what, void* arg);
  void step(short what);
  void finish(const std::string& err, const Address& addr);

  event_base* base_;
  int fd_ = -1;
  std::unique_ptr<event, void (*)(event*)> ev_;
  std::string host_;
  int port_;
  Done done_;
  uint16_t id_ = 0;
  std::string out_;
  size_t off_ = 0;
  std::string in_;
  bool connected_ = false;
};

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
  std::unique_ptr<TcpDnsQuery> tcp_;  // the TCP retry after a failed UDP lookup
  std::string err_;
  Address addr_;
};

}  // namespace cosocket
