// Unit tests of the pure TXT and PTR parts of carrier DNS (src/dns/rdata.hpp, answer.hpp):
// TXT character-strings (RFC 1035 3.3.14, joined as RFC 7208 3.3 says), PTR names (RFC 1035
// 3.3.12), reverse names for IPv4 (RFC 1035 3.5) and IPv6 (RFC 3596 2.5), and the mapping of
// answers to TxtResult / PtrResult with their bounds. Malformed input gives nullopt / errors.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "dns/answer.hpp"
#include "dns/rdata.hpp"

using namespace carrier::dns;
using namespace std::string_literals;

namespace {

std::string cs(const std::string& s) { return std::string(1, static_cast<char>(s.size())) + s; }

Answer data(std::vector<std::string> rdata) {
  Answer a;
  a.kind = Answer::Kind::Data;
  a.rdata = std::move(rdata);
  return a;
}

}  // namespace

// RFC 1035 3.3.14: one or more <character-string>s; RFC 7208 3.3: joined without spaces.
TEST(TxtRdata, CharacterStrings) {
  EXPECT_EQ(parse_txt_rdata(cs("v=spf1 -all")), "v=spf1 -all");
  EXPECT_EQ(parse_txt_rdata(cs("v=spf1 ip4:192.0.2.0/24 ") + cs("-all")), "v=spf1 ip4:192.0.2.0/24 -all");
  EXPECT_EQ(parse_txt_rdata(cs("")), "");                 // one empty string is legal
  EXPECT_EQ(parse_txt_rdata(cs("a") + cs("") + cs("b")), "ab");
  EXPECT_EQ(parse_txt_rdata(cs(std::string(255, 'x'))), std::string(255, 'x'));
  EXPECT_EQ(parse_txt_rdata(cs("a\0b"s)), "a\0b"s);       // octets pass through unchanged
}

TEST(TxtRdata, Malformed) {
  EXPECT_FALSE(parse_txt_rdata(""));                       // no character-string at all
  EXPECT_FALSE(parse_txt_rdata("\x05" "abc"));             // length past the end
  EXPECT_FALSE(parse_txt_rdata(cs("ok") + "\x02" "x"));    // second string truncated
  EXPECT_FALSE(parse_txt_rdata("\xff"));
}

// RFC 1035 3.3.12: PTRDNAME, an uncompressed name here; lower-cased, no final dot.
TEST(PtrRdata, Names) {
  EXPECT_EQ(parse_ptr_rdata("\x02" "MX\x04" "Good\x04" "test\x00"s), "mx.good.test");
  EXPECT_FALSE(parse_ptr_rdata("\x00"s));                     // the root is no host
  EXPECT_FALSE(parse_ptr_rdata(""));
  EXPECT_FALSE(parse_ptr_rdata("\x02" "mx"));                  // no terminating label
  EXPECT_FALSE(parse_ptr_rdata("\xc0\x0c"));                   // compression pointer
  EXPECT_FALSE(parse_ptr_rdata("\x02" "mx\x00" "x"s));         // trailing octets
  EXPECT_FALSE(parse_ptr_rdata("\x03" "a b\x00"s));            // not a host name character
}

// RFC 1035 3.5 and RFC 3596 2.5.
TEST(ReverseName, Ipv4AndIpv6) {
  EXPECT_EQ(reverse_name("127.0.0.1").value(), "1.0.0.127.in-addr.arpa");
  EXPECT_EQ(reverse_name("192.0.2.250").value(), "250.2.0.192.in-addr.arpa");
  EXPECT_EQ(reverse_name("2001:db8::567:89ab").value(),
            "b.a.9.8.7.6.5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa");
  EXPECT_EQ(reverse_name("::1").value(),
            "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa");
}

TEST(ReverseName, NotAnAddress) {
  for (const char* bad : {"", "mx.good.test", "[::1]", "127.0.0.1 ", "1.2.3", "256.1.1.1", "fe80::1%eth0",
                          "127.0.0.1\n"}) {
    SCOPED_TRACE(bad);
    auto r = reverse_name(bad);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("not an IP address"), std::string::npos);
  }
  EXPECT_FALSE(reverse_name(std::string(1000, '1')));
  EXPECT_FALSE(reverse_name("127.0.0.1\0x"s));
}

TEST(TxtResultRules, KindsAndBounds) {
  TxtResult ok = make_txt_result("good.test", data({cs("v=spf1 -all"), "\x09" "broken", cs("other")}));
  EXPECT_EQ(ok.status, Status::Ok);
  EXPECT_EQ(ok.records, (std::vector<std::string>{"v=spf1 -all", "other"}));  // malformed skipped
  EXPECT_TRUE(ok.error.empty());

  TxtResult allbad = make_txt_result("x.test", data({"\x09" "broken"}));
  EXPECT_EQ(allbad.status, Status::NotFound);

  std::vector<std::string> many(kMaxTxtRecords + 10, cs("r"));
  EXPECT_EQ(make_txt_result("x.test", data(many)).records.size(), kMaxTxtRecords);

  Answer nod;
  nod.kind = Answer::Kind::NoData;
  EXPECT_EQ(make_txt_result("x.test", nod).status, Status::NotFound);
  Answer nx;
  nx.kind = Answer::Kind::NxDomain;
  TxtResult n = make_txt_result("x.test", nx);
  EXPECT_EQ(n.status, Status::NotFound);
  EXPECT_EQ(n.error, "x.test does not exist (NXDOMAIN)");
  Answer tf;
  tf.kind = Answer::Kind::TempFail;
  tf.error = "SERVFAIL";
  TxtResult t = make_txt_result("x.test", tf);
  EXPECT_EQ(t.status, Status::TempFail);
  EXPECT_EQ(t.error, "TXT lookup of x.test failed: SERVFAIL");
}

TEST(PtrResultRules, KindsAndBounds) {
  const std::string mx = "\x02" "mx\x04" "good\x04" "test\x00"s;
  const std::string MX = "\x02" "MX\x04" "good\x04" "test\x00"s;
  PtrResult r = make_ptr_result("1.0.0.127.in-addr.arpa", data({mx, "\xc0\x0c", MX, "\x00"s}));
  EXPECT_EQ(r.status, Status::Ok);
  EXPECT_EQ(r.names, std::vector<std::string>{"mx.good.test"});  // duplicate (by case) dropped

  std::vector<std::string> many;  // h00.test, h01.test, ... (distinct names)
  for (int i = 0; i < 40; ++i) {
    many.push_back("\x03" "h" + std::to_string(i / 10) + std::to_string(i % 10) + "\x04" "test\x00"s);
  }
  EXPECT_EQ(make_ptr_result("x", data(many)).names.size(), kMaxPtrNames);

  EXPECT_EQ(make_ptr_result("x", data({"\x00"s})).status, Status::NotFound);
  Answer tf;
  tf.kind = Answer::Kind::TempFail;
  tf.error = "no answer within 5000 ms";
  EXPECT_EQ(make_ptr_result("x", tf).status, Status::TempFail);
}
