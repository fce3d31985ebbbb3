// carrier config tests: the pure value parsers — parse_host_port, parse_duration, parse_size —
// and the syntax checks for domains (RFC 1035 2.3.1, RFC 3696 2), addresses (RFC 5321 4.1.2,
// 4.5.3.1.1), mailbox names and CIDRs. Edge cases: empty, signs, whitespace, overflow.
#include <gtest/gtest.h>

#include "config/config.hpp"
#include "config/syntax.hpp"

namespace carrier::config {
namespace {

using namespace std::chrono_literals;
using HP = std::pair<std::string, std::uint16_t>;

TEST(ConfigHostPort, ValidForms) {
  EXPECT_EQ(parse_host_port("127.0.0.1:2525"), (HP{"127.0.0.1", 2525}));
  EXPECT_EQ(parse_host_port("0.0.0.0:25"), (HP{"0.0.0.0", 25}));
  EXPECT_EQ(parse_host_port("[::1]:587"), (HP{"::1", 587}));
  EXPECT_EQ(parse_host_port("[2001:db8::1]:65535"), (HP{"2001:db8::1", 65535}));
  EXPECT_EQ(parse_host_port("127.0.0.1:0"), (HP{"127.0.0.1", 0}));
  EXPECT_EQ(parse_host_port("[::]:0"), (HP{"::", 0}));
}

TEST(ConfigHostPort, InvalidForms) {
  for (const char* bad :
       {"", ":25", "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:99999999999999999999",
        "127.0.0.1:-1", "127.0.0.1:+25", "127.0.0.1: 25", " 127.0.0.1:25", "127.0.0.1:25 ",
        "localhost:25", "127.1:25", "256.0.0.1:25", "::1:25", "[::1]", "[::1]25", "[::1:25",
        "[127.0.0.1]:25", "[]:25", "[fe80::1%eth0]:25", "[::1]:x"}) {
    EXPECT_FALSE(parse_host_port(bad).has_value()) << "accepted: '" << bad << "'";
  }
}

TEST(ConfigHostPort, ReasonsAreSpecific) {
  std::string why;
  EXPECT_FALSE(parse_host_port("127.0.0.1", why));
  EXPECT_NE(why.find("missing port"), std::string::npos) << why;
  EXPECT_FALSE(parse_host_port("::1:25", why));
  EXPECT_NE(why.find("brackets"), std::string::npos) << why;
  EXPECT_FALSE(parse_host_port("mx.example:25", why));
  EXPECT_NE(why.find("not an IPv4 address"), std::string::npos) << why;
  EXPECT_FALSE(parse_host_port("[zz::1]:25", why));
  EXPECT_NE(why.find("not an IPv6 address"), std::string::npos) << why;
  EXPECT_FALSE(parse_host_port("1.2.3.4:70000", why));
  EXPECT_NE(why.find("0 to 65535"), std::string::npos) << why;
  EXPECT_TRUE(parse_host_port("1.2.3.4:25", why));
  EXPECT_TRUE(why.empty());
}

TEST(ConfigDuration, Units) {
  EXPECT_EQ(parse_duration("90s"), 90s);
  EXPECT_EQ(parse_duration("5m"), 300s);
  EXPECT_EQ(parse_duration("1h"), 3600s);
  EXPECT_EQ(parse_duration("2d"), 172800s);
  EXPECT_EQ(parse_duration("0s"), 0s);  // syntactically fine; each key checks its range
  EXPECT_EQ(parse_duration("007m"), 420s);
}

TEST(ConfigDuration, Malformed) {
  for (const char* bad : {"", "s", "5", "5 m", " 5m", "5m ", "-5m", "+5m", "5M", "5H", "1.5h",
                          "5ms", "1h30m", "5w", "m5"}) {
    EXPECT_FALSE(parse_duration(bad).has_value()) << "accepted: '" << bad << "'";
  }
}

TEST(ConfigDuration, OverflowIsRejectedNotWrapped) {
  EXPECT_EQ(parse_duration("1099511627776d"), std::chrono::seconds(1099511627776LL * 86400));
  EXPECT_FALSE(parse_duration("1099511627777s").has_value());
  EXPECT_FALSE(parse_duration("99999999999999999999999d").has_value());
}

TEST(ConfigSize, Suffixes) {
  EXPECT_EQ(parse_size("1K"), 1024u);
  EXPECT_EQ(parse_size("1k"), 1024u);
  EXPECT_EQ(parse_size("50M"), 50ull << 20);
  EXPECT_EQ(parse_size("50m"), 50ull << 20);
  EXPECT_EQ(parse_size("2G"), 2ull << 30);
  EXPECT_EQ(parse_size("0K"), 0u);
  EXPECT_EQ(parse_size("1024G"), 1ull << 40);  // the 1 TiB ceiling itself
}

TEST(ConfigSize, MalformedOrTooLarge) {
  for (const char* bad : {"", "K", "100", "1T", "1KB", "1 K", "-1K", "1.5M", "M1", "1025G",
                          "1099511627776K", "99999999999999999999999G"}) {
    EXPECT_FALSE(parse_size(bad).has_value()) << "accepted: '" << bad << "'";
  }
}

TEST(ConfigSyntax, Domains) {
  using syntax::check_domain;
  EXPECT_FALSE(check_domain("localhost"));
  EXPECT_FALSE(check_domain("example.test"));
  EXPECT_FALSE(check_domain("MX-1.Example.COM"));
  EXPECT_FALSE(check_domain("xn--bcher-kva.example"));
  EXPECT_FALSE(check_domain("1.example"));           // RFC 1123 2.1: digits may lead a label
  EXPECT_FALSE(check_domain(std::string(63, 'a') + ".test"));
  EXPECT_TRUE(check_domain(std::string(64, 'a') + ".test"));  // RFC 1035 2.3.4: label <= 63
  std::string long_name;
  while (long_name.size() < 254) long_name += "abcdefghi.";
  long_name += "test";
  EXPECT_TRUE(check_domain(long_name));  // > 253 characters
  for (const char* bad : {"", ".", "a..b", ".a", "a.", "-a.test", "a-.test", "a_b.test",
                          "a b", "10.0.0.1", "b\xc3\xbc" "cher.example", "[127.0.0.1]"}) {
    EXPECT_TRUE(check_domain(bad)) << "accepted: '" << bad << "'";
  }
}

TEST(ConfigSyntax, MailboxNames) {
  using syntax::check_mailbox_name;
  EXPECT_FALSE(check_mailbox_name("postmaster"));
  EXPECT_FALSE(check_mailbox_name("john.doe"));
  EXPECT_FALSE(check_mailbox_name("a_b-c9"));
  EXPECT_FALSE(check_mailbox_name(std::string(64, 'x')));
  EXPECT_TRUE(check_mailbox_name(std::string(65, 'x')));
  for (const char* bad : {"", ".", "..", ".x", "Upper", "a/b", "a b", "a+b", "a@b", "caf\xc3\xa9"})
    EXPECT_TRUE(check_mailbox_name(bad)) << "accepted: '" << bad << "'";
}

TEST(ConfigSyntax, Addresses) {
  using syntax::check_address;
  EXPECT_FALSE(check_address("user@example.test"));
  EXPECT_FALSE(check_address("first.last+tag@mx.example.test"));
  EXPECT_FALSE(check_address("!#$%&'*+-/=?^_`{|}~@example.test"));  // RFC 5322 3.2.3 atext
  EXPECT_FALSE(check_address(std::string(64, 'u') + "@example.test"));
  EXPECT_TRUE(check_address(std::string(65, 'u') + "@example.test"));  // RFC 5321 4.5.3.1.1
  for (const char* bad : {"user", "@example.test", "user@", ".user@example.test",
                          "user.@example.test", "a..b@example.test", "a b@example.test",
                          "a\"b@example.test", "user@bad_domain", "user@[127.0.0.1]"})
    EXPECT_TRUE(check_address(bad)) << "accepted: '" << bad << "'";
}

TEST(ConfigSyntax, Cidrs) {
  using syntax::check_cidr;
  for (const char* ok : {"127.0.0.0/8", "10.1.2.3/32", "0.0.0.0/0", "192.168.1.0/24", "::1/128",
                         "::/0", "fd00::/8", "2001:db8::/32", "172.16.0.0/12"})
    EXPECT_FALSE(check_cidr(ok)) << "rejected: '" << ok << "': " << *check_cidr(ok);
  for (const char* bad : {"", "/8", "127.0.0.1", "127.0.0.0/", "127.0.0.0/33", "127.0.0.0/-1",
                          "127.0.0.0/+8", "127.0.0.0/8/8", "127.0.0.0/ 8", "::/129", "fd00::/7",
                          "10.0.0.1/8", "example.com/24", "127.0.0.0/0008"})
    EXPECT_TRUE(check_cidr(bad)) << "accepted: '" << bad << "'";
}

TEST(ConfigSyntax, CanonicalIp) {
  EXPECT_EQ(syntax::canonical_ip("0:0::1"), "::1");
  EXPECT_EQ(syntax::canonical_ip("2001:DB8:0:0::1"), "2001:db8::1");
  EXPECT_EQ(syntax::canonical_ip("127.0.0.1"), "127.0.0.1");
  EXPECT_FALSE(syntax::canonical_ip("localhost"));
  EXPECT_FALSE(syntax::canonical_ip(std::string(100, '1')));
}

}  // namespace
}  // namespace carrier::config
