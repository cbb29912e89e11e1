#include "net/resolver.h"

#include <arpa/inet.h>
#include <cctype>
#include <cstring>
#include <netinet/in.h>
#include <random>
#include <sys/random.h>
#include <sys/un.h>
#include <unistd.h>
#include <vector>

#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>

#include "runtime/runtime.h"

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

// ---- DNS over TCP -----------------------------------------------------------------

namespace {
std::minstd_rand& rng() {
  static std::minstd_rand r{std::random_device{}()};
  return r;
}
uint16_t be16(const std::string& m, size_t at) {
  return static_cast<uint16_t>((static_cast<unsigned char>(m[at]) << 8) | static_cast<unsigned char>(m[at + 1]));
}
void put16(std::string& m, uint16_t v) {
  m.push_back(static_cast<char>(v >> 8));
  m.push_back(static_cast<char>(v & 0xff));
}
// Skips a (possibly compressed) name at pos; false if it runs off the message.
bool skip_name(const std::string& m, size_t& pos) {
  for (int labels = 0; labels < 128; ++labels) {
    if (pos >= m.size()) return false;
    auto b = static_cast<unsigned char>(m[pos]);
    if (b == 0) {
      ++pos;
      return true;
    }
    if ((b & 0xC0) == 0xC0) {
      pos += 2;
      return pos <= m.size();
    }
    pos += 1 + b;
  }
  return false;
}
}  // namespace

TcpDnsQuery::TcpDnsQuery(event_base* base, const sockaddr* ns, socklen_t ns_len, const std::string& host, int port,
                         Done done)
    : base_(base), ev_(nullptr, event_free), host_(host), port_(port), done_(std::move(done)) {
  if (getrandom(&id_, sizeof id_, 0) != static_cast<ssize_t>(sizeof id_)) id_ = static_cast<uint16_t>(rng()());
  std::string q;
  put16(q, id_);
  put16(q, 0x0100);  // recursion desired
  put16(q, 1);
  put16(q, 0);
  put16(q, 0);
  put16(q, 0);
  size_t start = 0;
  while (start < host.size()) {
    size_t dot = host.find('.', start);
    if (dot == std::string::npos) dot = host.size();
    size_t len = dot - start;
    if (len == 0 || len > 63) break;
    q.push_back(static_cast<char>(len));
    q.append(host, start, len);
    start = dot + 1;
  }
  q.push_back('\0');
  put16(q, 1);  // A
  put16(q, 1);  // IN
  put16(out_, static_cast<uint16_t>(q.size()));
  out_ += q;
  fd_ = ::socket(ns->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd_ < 0 || (::connect(fd_, ns, ns_len) < 0 && errno != EINPROGRESS)) {
    // reported from the loop, never from inside the constructor
    ev_.reset(evtimer_new(base_, &TcpDnsQuery::on_event, this));
    timeval tv{0, 0};
    evtimer_add(ev_.get(), &tv);
    return;
  }
  ev_.reset(event_new(base_, fd_, EV_WRITE, &TcpDnsQuery::on_event, this));
  event_add(ev_.get(), nullptr);
}

TcpDnsQuery::~TcpDnsQuery() {
  ev_.reset();
  if (fd_ >= 0) ::close(fd_);
}

void TcpDnsQuery::on_event(int, short what, void* arg) { static_cast<TcpDnsQuery*>(arg)->step(what); }

void TcpDnsQuery::finish(const std::string& err, const Address& addr) {
  ev_.reset();
  auto done = std::move(done_);
  done_ = nullptr;
  if (done) done(err, addr);  // may destroy this
}

void TcpDnsQuery::step(short) {
  const std::string fail = host_ + " could not be resolved (2: Server failure)";
  if (fd_ < 0 || ev_ == nullptr) return finish(fail, Address{});
  if (!connected_) {
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err) return finish(fail, Address{});
    connected_ = true;
  }
  while (off_ < out_.size()) {
    ssize_t n = ::send(fd_, out_.data() + off_, out_.size() - off_, MSG_NOSIGNAL);
    if (n > 0) {
      off_ += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      event_add(ev_.get(), nullptr);
      return;
    }
    return finish(fail, Address{});
  }
  for (;;) {
    if (in_.size() >= 2 && in_.size() >= 2u + be16(in_, 0)) {
      Address addr;
      std::string err = parse_answer(in_.substr(2, be16(in_, 0)), id_, host_, port_, addr);
      return finish(err, addr);
    }
    char buf[4096];
    ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n > 0) {
      in_.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      ev_.reset(event_new(base_, fd_, EV_READ, &TcpDnsQuery::on_event, this));
      event_add(ev_.get(), nullptr);
      return;
    }
    return finish(fail, Address{});
  }
}

std::string TcpDnsQuery::parse_answer(const std::string& m, uint16_t id, const std::string& host, int port,
                                      Address& addr) {
  const std::string fail = host + " could not be resolved (2: Server failure)";
  if (m.size() < 12 || be16(m, 0) != id || !(be16(m, 2) & 0x8000)) return fail;
  int rcode = be16(m, 2) & 0xF;
  if (rcode == 3) return host + " could not be resolved (3: Host not found)";
  if (rcode != 0) return fail;
  size_t pos = 12;
  for (int i = 0, qd = be16(m, 4); i < qd; ++i) {
    if (!skip_name(m, pos)) return fail;
    pos += 4;
  }
  std::vector<uint32_t> v4;
  for (int i = 0, an = be16(m, 6); i < an; ++i) {
    if (!skip_name(m, pos) || pos + 10 > m.size()) return fail;
    uint16_t type = be16(m, pos), cls = be16(m, pos + 2), rdlen = be16(m, pos + 8);
    pos += 10;
    if (pos + rdlen > m.size()) return fail;
    if (type == 1 && cls == 1 && rdlen == 4) {
      uint32_t a;
      memcpy(&a, m.data() + pos, 4);
      v4.push_back(a);
    }
    pos += rdlen;
  }
  if (v4.empty()) return host + " could not be resolved (3: Host not found)";
  auto* sin = reinterpret_cast<sockaddr_in*>(&addr.ss);
  sin->sin_family = AF_INET;
  sin->sin_port = htons(static_cast<uint16_t>(port));
  sin->sin_addr.s_addr = v4[rng()() % v4.size()];
  addr.len = sizeof(sockaddr_in);
  return "";
}

// ---- Lookup -------------------------------------------------------------------------

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
  if (ctx_ || tcp_) {  // still pending (no synchronous answer), or retrying over TCP
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
  if (code == EVUTIL_EAI_FAIL && !self->tcp_) {
    // a server failure, a timeout or a truncated answer: ask the first name server again
    // over TCP (which is how a truncated answer is meant to be fetched)
    sockaddr_storage ns{};
    int len = evdns_base_get_nameserver_addr(self->rt_.dns(), 0, reinterpret_cast<sockaddr*>(&ns), sizeof ns);
    if (len > 0) {
      if (res) evutil_freeaddrinfo(res);
      self->tcp_ = std::make_unique<TcpDnsQuery>(
          self->rt_.base(), reinterpret_cast<sockaddr*>(&ns), static_cast<socklen_t>(len), self->host_, self->port_,
          [self](const std::string& err, const Address& addr) {
            self->err_ = err;
            self->addr_ = addr;
            self->deliver();
          });
      return;
    }
  }
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
      evutil_addrinfo* ai = pick[rng()() % pick.size()];
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
  tcp_.reset();
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
