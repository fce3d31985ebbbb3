// Tests for src/dnsbl (RFC 5782): query names for IPv4, IPv6 and IPv4-mapped addresses, which
// answers mean "listed" (127.0.0.0/8 only, return-code filters), scoring with allow lists, and
// reply/tag text built from untrusted TXT answers.
#include "dnsbl/dnsbl.hpp"

#include <gtest/gtest.h>

namespace carrier::dnsbl {
namespace {

TEST(Dnsbl, QueryNameReversesIpv4Octets) {  // RFC 5782 2.1
  EXPECT_EQ(query_name("192.0.2.99", "bl.test"), "99.2.0.192.bl.test");
  EXPECT_EQ(query_name("::ffff:192.0.2.99", "bl.test"), "99.2.0.192.bl.test");
}

TEST(Dnsbl, QueryNameUsesThirtyTwoNibblesForIpv6) {  // RFC 5782 2.4
  EXPECT_EQ(query_name("2001:db8::1", "bl.test"),
            "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.bl.test");
}

TEST(Dnsbl, QueryNameRefusesWhatIsNotAnAddress) {
  EXPECT_FALSE(query_name("example.org", "bl.test"));
  EXPECT_FALSE(query_name("1.2.3", "bl.test"));
  EXPECT_FALSE(query_name("", "bl.test"));
  EXPECT_FALSE(query_name(std::string(100, '1'), "bl.test"));
}

TEST(Dnsbl, OnlyLoopbackAnswersMeanListed) {  // RFC 5782 2.1
  List any{"bl.test", 1, {}, ""};
  EXPECT_TRUE(listed(any, {"127.0.0.2"}));
  EXPECT_FALSE(listed(any, {"192.0.2.1"}));  // a wildcarding or hijacked zone
  EXPECT_FALSE(listed(any, {"not-an-ip"}));
  EXPECT_FALSE(listed(any, {}));
  List some{"bl.test", 1, {"127.0.0.2", "127.0.0.8/30"}, ""};
  EXPECT_TRUE(listed(some, {"127.0.0.2"}));
  EXPECT_TRUE(listed(some, {"127.0.0.10"}));
  EXPECT_FALSE(listed(some, {"127.0.0.4"}));
  EXPECT_TRUE(listed(some, {"127.0.0.4", "127.0.0.11"}));
}

TEST(Dnsbl, ReturnsAndZonesAreValidated) {
  EXPECT_TRUE(valid_return("127.0.0.2"));
  EXPECT_TRUE(valid_return("127.0.0.0/24"));
  EXPECT_FALSE(valid_return("10.0.0.2"));
  EXPECT_FALSE(valid_return("127.0.0.0/4"));
  EXPECT_FALSE(valid_return("127.0.0.0/"));
  EXPECT_TRUE(valid_zone("zen.spamhaus.org"));
  EXPECT_FALSE(valid_zone("bad zone"));
  EXPECT_FALSE(valid_zone("a..b"));
  EXPECT_FALSE(valid_zone(""));
}

TEST(Dnsbl, WeightsAddUpAndAllowListsSubtract) {
  std::vector<List> lists{{"a.test", 1.0, {}, ""}, {"b.test", 0.5, {}, ""}, {"wl.test", -2.0, {}, ""}};
  EXPECT_FALSE(judge(lists, {}, 1.0).over);
  EXPECT_TRUE(judge(lists, {{0, "127.0.0.2", ""}}, 1.0).over);
  EXPECT_FALSE(judge(lists, {{1, "127.0.0.2", ""}}, 1.0).over);
  auto v = judge(lists, {{0, "127.0.0.2", ""}, {1, "127.0.0.2", ""}}, 1.0);
  EXPECT_TRUE(v.over);
  EXPECT_DOUBLE_EQ(v.score, 1.5);
  EXPECT_FALSE(judge(lists, {{0, "127.0.0.2", ""}, {2, "127.0.0.2", ""}}, 1.0).over);
}

TEST(Dnsbl, ReplyTextIsPrintableAndBounded) {
  List l{"bl.test", 1, {}, ""};
  EXPECT_EQ(reply_text(l, {0, "127.0.0.2", "listed: see http://bl.test/q?1.2.3.4"}, "1.2.3.4"),
            "Service unavailable; client [1.2.3.4] blocked using bl.test: listed: see http://bl.test/q?1.2.3.4");
  auto t = reply_text(l, {0, "127.0.0.2", "evil\r\n250 ok" + std::string(1000, 'x')}, "1.2.3.4");
  EXPECT_EQ(t.find('\r'), std::string::npos);
  EXPECT_EQ(t.find('\n'), std::string::npos);
  EXPECT_LE(t.size(), 400u);
  List m{"bl.test", 1, {}, "Blocked: $ip is in $zone ($text)"};
  EXPECT_EQ(reply_text(m, {0, "127.0.0.2", "spam"}, "1.2.3.4"), "Blocked: 1.2.3.4 is in bl.test (spam)");
}

TEST(Dnsbl, TagTextNamesZonesAndAnswers) {
  std::vector<List> lists{{"a.test", 1.0, {}, ""}, {"b.test", 1.0, {}, ""}};
  EXPECT_EQ(tag_text(lists, {{0, "127.0.0.2", ""}, {1, "127.0.0.4", ""}}), "a.test=127.0.0.2, b.test=127.0.0.4");
}

}  // namespace
}  // namespace carrier::dnsbl

TEST(Dnsbl, DomainQueryNamesForRhsbls) {  // RFC 5782 2.3
  EXPECT_EQ(carrier::dnsbl::domain_query_name("Mail.Example.COM.", "dbl.test"), "mail.example.com.dbl.test");
  EXPECT_EQ(carrier::dnsbl::domain_query_name("x_y.example", "z"), "x_y.example.z");
  EXPECT_FALSE(carrier::dnsbl::domain_query_name("", "z"));
  EXPECT_FALSE(carrier::dnsbl::domain_query_name("[127.0.0.1]", "z"));    // HELO address literal
  EXPECT_FALSE(carrier::dnsbl::domain_query_name("192.0.2.1", "z"));      // digits and dots only
  EXPECT_FALSE(carrier::dnsbl::domain_query_name("a..b", "z"));
  EXPECT_FALSE(carrier::dnsbl::domain_query_name(".a", "z"));
  EXPECT_FALSE(carrier::dnsbl::domain_query_name("a b.example", "z"));
  EXPECT_FALSE(carrier::dnsbl::domain_query_name("a\n.example", "z"));
  EXPECT_FALSE(carrier::dnsbl::domain_query_name(std::string(64, 'a') + ".example", "z"));
  EXPECT_TRUE(carrier::dnsbl::domain_query_name(std::string(63, 'a') + ".example", "z"));
  std::string longname;
  for (int i = 0; i < 5; ++i) longname += std::string(50, 'a') + ".";
  longname += "com";  // 258 characters
  EXPECT_FALSE(carrier::dnsbl::domain_query_name(longname, "z"));
}
