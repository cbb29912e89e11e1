// TcpDnsQuery::parse_answer: the DNS answer parser of the TCP retry, on hand-built bytes.
// Malformed input must give an error, never a crash or a read past the message.
#include <arpa/inet.h>
#include <netinet/in.h>

#include <string>

#include <gtest/gtest.h>

#include "net/resolver.h"

namespace cosocket {
namespace {

void put16(std::string& m, unsigned v) {
  m.push_back(static_cast<char>((v >> 8) & 0xff));
  m.push_back(static_cast<char>(v & 0xff));
}

// id 0x1234, a response with rcode, the question "a.test A IN", then the answers.
std::string message(unsigned rcode, int answers, bool compressed = true) {
  std::string m;
  put16(m, 0x1234);
  put16(m, 0x8180 | rcode);
  put16(m, 1);
  put16(m, static_cast<unsigned>(answers));
  put16(m, 0);
  put16(m, 0);
  m += std::string("\x01" "a" "\x04" "test" "\x00", 8);
  put16(m, 1);
  put16(m, 1);
  for (int i = 0; i < answers; ++i) {
    if (compressed) put16(m, 0xC00C);  // pointer to the question's name
    else m += std::string("\x01" "a" "\x04" "test" "\x00", 8);
    put16(m, 1);
    put16(m, 1);
    put16(m, 0);
    put16(m, 60);
    put16(m, 4);
    m += std::string("\x7f\x00\x00", 3) + static_cast<char>(10 + i);
  }
  return m;
}

std::string ip_of(const Address& a) {
  char buf[INET_ADDRSTRLEN];
  auto* sin = reinterpret_cast<const sockaddr_in*>(&a.ss);
  inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof buf);
  return buf;
}

TEST(TcpDnsAnswer, OneAddress) {
  Address a;
  EXPECT_EQ("", TcpDnsQuery::parse_answer(message(0, 1), 0x1234, "a.test", 80, a));
  EXPECT_EQ("127.0.0.10", ip_of(a));
  EXPECT_EQ(80, ntohs(reinterpret_cast<sockaddr_in*>(&a.ss)->sin_port));
}

TEST(TcpDnsAnswer, UncompressedNamesAndSeveralAddresses) {
  for (int i = 0; i < 20; ++i) {
    Address a;
    ASSERT_EQ("", TcpDnsQuery::parse_answer(message(0, 3, false), 0x1234, "a.test", 1, a));
    std::string ip = ip_of(a);
    EXPECT_TRUE(ip == "127.0.0.10" || ip == "127.0.0.11" || ip == "127.0.0.12") << ip;
  }
}

TEST(TcpDnsAnswer, ServerAnswers) {
  Address a;
  EXPECT_EQ("a.test could not be resolved (3: Host not found)",
            TcpDnsQuery::parse_answer(message(3, 0), 0x1234, "a.test", 80, a));
  EXPECT_EQ("a.test could not be resolved (2: Server failure)",
            TcpDnsQuery::parse_answer(message(2, 0), 0x1234, "a.test", 80, a));
  EXPECT_EQ("a.test could not be resolved (3: Host not found)",
            TcpDnsQuery::parse_answer(message(0, 0), 0x1234, "a.test", 80, a));  // no A record
}

TEST(TcpDnsAnswer, WrongIdOrNotAResponse) {
  Address a;
  const std::string fail = "a.test could not be resolved (2: Server failure)";
  EXPECT_EQ(fail, TcpDnsQuery::parse_answer(message(0, 1), 0x4321, "a.test", 80, a));
  std::string q = message(0, 1);
  q[2] = 0x01;  // QR bit clear: a query, not a response
  EXPECT_EQ(fail, TcpDnsQuery::parse_answer(q, 0x1234, "a.test", 80, a));
}

TEST(TcpDnsAnswer, EveryTruncationIsAnErrorNotACrash) {
  const std::string full = message(0, 2);
  for (size_t n = 0; n < full.size(); ++n) {
    Address a;
    std::string err = TcpDnsQuery::parse_answer(full.substr(0, n), 0x1234, "a.test", 80, a);
    EXPECT_NE("", err) << "length " << n;
  }
}

TEST(TcpDnsAnswer, AbsurdCountsAndLengths) {
  Address a;
  std::string m = message(0, 1);
  m[6] = '\xff';  // 65,280+ answers claimed
  EXPECT_NE("", TcpDnsQuery::parse_answer(m, 0x1234, "a.test", 80, a));
  m = message(0, 1);
  m[m.size() - 6] = '\xff';  // rdlength far past the end
  EXPECT_NE("", TcpDnsQuery::parse_answer(m, 0x1234, "a.test", 80, a));
  std::string loop = message(0, 0);
  loop.resize(12);
  put16(loop, 0xC00C);  // a question name pointing at itself
  EXPECT_NE("", TcpDnsQuery::parse_answer(loop, 0x1234, "a.test", 80, a));
}

}  // namespace
}  // namespace cosocket
