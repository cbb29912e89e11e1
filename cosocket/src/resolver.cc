#include "resolver.h"

#include <arpa/inet.h>
#include <cctype>
#include <cstring>
#include <netinet/in.h>
#include <random>
#include <sys/un.h>
#include <vector>

#include <event2/dns.h>
#include <event2/util.h>

#include "runtime.h"

namespace cosocket {

std::string errno_text(int err) {
  std::string s = strerror(err);
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool parse_unix(const std::string& host, Address& out, std::string& err) {
  if (host.compare(0, 5, "unix:") != 0) return false;
  std::string path = host.substr(5);
  auto* sun = reinterpret_cast<sockaddr_un*>(&out.ss);
  if (path.empty() || path.size() >= sizeof sun->sun_path) {
    err = "failed to parse host name \"" + host + "\": " + (path.empty() ? "no path in the unix domain socket"
                                                                          : "too long path in the unix domain socket");
    return true;
  }
  sun->sun_family = AF_UNIX;
  memcpy(sun->sun_path, path.data(), path.size());
  sun->sun_path[path.size()] = '\0';
  out.len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + 1);
  return true;
}

bool parse_numeric(const std::string& host, int port, Address& out) {
  auto* sin = reinterpret_cast<sockaddr_in*>(&out.ss);
  if (inet_pton(AF_INET, host.c_str(), &sin->sin_addr) == 1) {
    sin->sin_family = AF_INET;
    sin->sin_port = htons(static_cast<uint16_t>(port));
    out.len = sizeof(sockaddr_in);
    return true;
  }
  std::string h = host;
  if (h.size() > 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  auto* sin6 = reinterpret_cast<sockaddr_in6*>(&out.ss);
  if (inet_pton(AF_INET6, h.c_str(), &sin6->sin6_addr) == 1) {
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(static_cast<uint16_t>(port));
    out.len = sizeof(sockaddr_in6);
    return true;
  }
  return false;
}

struct Lookup::Ctx {
  Lookup* owner = nullptr;
};

Lookup::Lookup(Runtime& rt, const std::string& host, int port, long timeout_ms, Done done)
    : rt_(rt), host_(host), port_(port), done_(std::move(done)) {
  evutil_addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_protocol = IPPROTO_TCP;
  ctx_ = new Ctx{this};  // handed to libevent; on_result frees it
  evdns_getaddrinfo_request* req = evdns_getaddrinfo(rt.dns(), host.c_str(), nullptr, &hints, &Lookup::on_result, ctx_);
  if (ctx_) {  // still pending (no synchronous answer)
    req_ = req;
    timer_ = std::make_unique<Timer>(rt.base(), timeout_ms, [this] {
      err_ = host_ + " could not be resolved (110: Operation timed out)";
      deliver();
    });
  } else {
    timer_ = std::make_unique<Timer>(rt.base(), 0, [this] { deliver(); });
  }
}

Lookup::~Lookup() {
  if (ctx_) {
    ctx_->owner = nullptr;
    ctx_ = nullptr;
    if (req_) evdns_getaddrinfo_cancel(req_);
  }
}

void Lookup::on_result(int code, evutil_addrinfo* res, void* arg) {
  auto* ctx = static_cast<Ctx*>(arg);
  Lookup* self = ctx->owner;
  delete ctx;
  if (!self) {
    if (res) evutil_freeaddrinfo(res);
    return;
  }
  self->ctx_ = nullptr;
  self->req_ = nullptr;
  if (code != 0 || !res) {
    const char* why = code == EVUTIL_EAI_NONAME ? "3: Host not found"
                      : code == EVUTIL_EAI_CANCEL ? "canceled"
                                                  : "2: Server failure";
    self->err_ = self->host_ + " could not be resolved (" + why + ")";
  } else {
    // a random IPv4 address if there is one, as nginx picks one of the answers
    std::vector<evutil_addrinfo*> v4, v6;
    for (evutil_addrinfo* ai = res; ai; ai = ai->ai_next) {
      if (ai->ai_family == AF_INET) v4.push_back(ai);
      else if (ai->ai_family == AF_INET6) v6.push_back(ai);
    }
    auto& pick = v4.empty() ? v6 : v4;
    if (pick.empty()) {
      self->err_ = self->host_ + " could not be resolved (3: Host not found)";
    } else {
      static std::minstd_rand rng{std::random_device{}()};
      evutil_addrinfo* ai = pick[rng() % pick.size()];
      memcpy(&self->addr_.ss, ai->ai_addr, ai->ai_addrlen);
      self->addr_.len = static_cast<socklen_t>(ai->ai_addrlen);
      if (ai->ai_family == AF_INET) reinterpret_cast<sockaddr_in*>(&self->addr_.ss)->sin_port = htons(self->port_);
      else reinterpret_cast<sockaddr_in6*>(&self->addr_.ss)->sin6_port = htons(self->port_);
    }
  }
  if (res) evutil_freeaddrinfo(res);
  if (self->req_ == nullptr && self->timer_) self->deliver();
}

void Lookup::deliver() {
  timer_.reset();
  if (ctx_) {  // timed out: stop the query
    ctx_->owner = nullptr;
    ctx_ = nullptr;
    if (req_) evdns_getaddrinfo_cancel(req_);
    req_ = nullptr;
  }
  auto done = std::move(done_);
  done_ = nullptr;
  if (done) done(err_, addr_);  // may destroy this
}

}  // namespace cosocket
