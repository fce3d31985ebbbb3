// Unit tests of carrier doctor's SPF evaluator (src/doctor/spf.hpp) with synthetic DNS data:
// record selection (RFC 7208 4.5), qualifiers (4.6.2), ip4/ip6 with CIDR (5.6), a and mx
// (5.3, 5.4, dual CIDR), include results (5.2), redirect (6.1), the limits of 4.6.4 (10
// DNS-querying terms, 10 MX names, 2 void lookups), syntax errors as permerror (4.6), DNS
// failures as temperror, and the unsupported parts (macros, ptr) reported as notes.
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "doctor/spf.hpp"

using namespace carrier;
using namespace carrier::doctor;

namespace {

// DNS data from maps; names not present are NXDOMAIN. Counts the queries.
class FakeDns : public SpfDns {
 public:
  std::map<std::string, std::vector<std::string>> txts, addrs;
  std::map<std::string, std::vector<std::pair<std::string, std::vector<std::string>>>> mxs;  // host, addresses
  std::vector<std::string> tempfail;  // names whose every lookup fails temporarily
  int queries = 0;

  dns::TxtResult txt(const std::string& n) override {
    ++queries;
    dns::TxtResult r;
    if (is_temp(n)) return r;
    auto it = txts.find(n);
    r.status = it == txts.end() ? dns::Status::NotFound : dns::Status::Ok;
    if (it != txts.end()) r.records = it->second;
    return r;
  }
  dns::AddrResult addresses(const std::string& n) override {
    ++queries;
    dns::AddrResult r;
    if (is_temp(n)) return r;
    auto it = addrs.find(n);
    r.status = it == addrs.end() ? dns::Status::NotFound : dns::Status::Ok;
    if (it != addrs.end()) r.addresses = it->second;
    return r;
  }
  dns::MxResult mx(const std::string& n) override {
    ++queries;
    dns::MxResult r;
    if (is_temp(n)) return r;
    auto it = mxs.find(n);
    if (it == mxs.end()) {
      r.status = dns::Status::NotFound;
      return r;
    }
    r.status = dns::Status::Ok;
    int pref = 10;
    for (const auto& [h, a] : it->second) r.hosts.push_back(dns::Host{h, pref++, a, dns::Status::Ok, {}});
    return r;
  }

 private:
  bool is_temp(const std::string& n) const {
    for (const auto& t : tempfail) {
      if (t == n) return true;
    }
    return false;
  }
};

SpfVerdict verdict(FakeDns& d, const std::string& ip, const std::string& domain) {
  return evaluate_spf(ip, domain, d).verdict;
}

}  // namespace

TEST(SpfIp, NetworksAndPrefixes) {
  auto ip = [](const char* s) { return *parse_ip(s); };
  EXPECT_TRUE(in_network(ip("127.0.0.1"), ip("127.0.0.0"), 8));
  EXPECT_FALSE(in_network(ip("128.0.0.1"), ip("127.0.0.0"), 8));
  EXPECT_TRUE(in_network(ip("192.0.2.130"), ip("192.0.2.128"), 25));
  EXPECT_FALSE(in_network(ip("192.0.2.127"), ip("192.0.2.128"), 25));
  EXPECT_TRUE(in_network(ip("1.2.3.4"), ip("9.9.9.9"), 0));
  EXPECT_TRUE(in_network(ip("2001:db8::1"), ip("2001:db8::"), 32));
  EXPECT_FALSE(in_network(ip("2001:db9::1"), ip("2001:db8::"), 32));
  EXPECT_FALSE(in_network(ip("127.0.0.1"), ip("::ffff:127.0.0.1"), 0));  // families differ
  EXPECT_FALSE(in_network(ip("127.0.0.1"), ip("127.0.0.1"), 33));
  EXPECT_FALSE(parse_ip("127.0.0.1/8"));
  EXPECT_FALSE(parse_ip(""));
  EXPECT_FALSE(parse_ip("mx.good.test"));
}

// RFC 7208 5.6 (ip4, ip6) and 4.6.2 (qualifiers); 4.7: no match and no all -> neutral.
TEST(Spf, Ip4Ip6AndQualifiers) {
  FakeDns d;
  d.txts["good.test"] = {"v=spf1 ip4:127.0.0.0/8 -all"};
  d.txts["soft.test"] = {"v=spf1 ip4:192.0.2.0/24 ~all"};
  d.txts["q.test"] = {"v=spf1 ?ip4:127.0.0.1 -all"};
  d.txts["six.test"] = {"v=spf1 ip6:2001:db8::/32 ip4:192.0.2.1 -all"};
  d.txts["noall.test"] = {"v=spf1 ip4:192.0.2.1"};
  d.txts["bad.test"] = {"v=spf1 -all"};
  auto r = evaluate_spf("127.0.0.1", "good.test", d);
  EXPECT_EQ(r.verdict, SpfVerdict::Pass);
  EXPECT_EQ(r.matched, "ip4:127.0.0.0/8");
  EXPECT_EQ(r.record, "v=spf1 ip4:127.0.0.0/8 -all");
  EXPECT_EQ(verdict(d, "10.0.0.1", "good.test"), SpfVerdict::Fail);
  EXPECT_EQ(verdict(d, "127.0.0.1", "soft.test"), SpfVerdict::SoftFail);
  EXPECT_EQ(verdict(d, "127.0.0.1", "q.test"), SpfVerdict::Neutral);
  EXPECT_EQ(verdict(d, "2001:db8:5::1", "six.test"), SpfVerdict::Pass);
  EXPECT_EQ(verdict(d, "2001:db9::1", "six.test"), SpfVerdict::Fail);
  EXPECT_EQ(verdict(d, "192.0.2.1", "six.test"), SpfVerdict::Pass);
  EXPECT_EQ(verdict(d, "127.0.0.1", "noall.test"), SpfVerdict::Neutral);
  auto b = evaluate_spf("127.0.0.1", "bad.test", d);
  EXPECT_EQ(b.verdict, SpfVerdict::Fail);
  EXPECT_EQ(b.matched, "-all");
  EXPECT_EQ(d.queries, 9);  // one TXT lookup per evaluation: ip4/ip6/all query nothing
}

// RFC 7208 4.5: exactly one record starting "v=spf1" (then space or end), case-insensitive.
TEST(Spf, RecordSelection) {
  FakeDns d;
  d.txts["none.test"] = {"google-site-verification=abc", "v=spf10 -all", "v=spf1-all"};
  d.txts["two.test"] = {"v=spf1 -all", "V=SPF1 +all"};
  d.txts["case.test"] = {"something", "V=Spf1 +ALL"};
  d.txts["bare.test"] = {"v=spf1"};
  EXPECT_EQ(verdict(d, "127.0.0.1", "none.test"), SpfVerdict::None);
  EXPECT_EQ(verdict(d, "127.0.0.1", "missing.test"), SpfVerdict::None);  // NXDOMAIN
  EXPECT_EQ(verdict(d, "127.0.0.1", "two.test"), SpfVerdict::PermError);
  EXPECT_EQ(verdict(d, "127.0.0.1", "case.test"), SpfVerdict::Pass);
  EXPECT_EQ(verdict(d, "127.0.0.1", "bare.test"), SpfVerdict::Neutral);
  EXPECT_EQ(verdict(d, "127.0.0.1", "bad domain"), SpfVerdict::None);  // RFC 7208 4.3
  EXPECT_EQ(verdict(d, "not-an-ip", "case.test"), SpfVerdict::PermError);
}

// RFC 7208 5.3 (a) and 5.4 (mx) with dual CIDR lengths (5.6).
TEST(Spf, AAndMx) {
  FakeDns d;
  d.addrs["a.test"] = {"192.0.2.10", "2001:db8::10"};
  d.addrs["other.test"] = {"198.51.100.1"};
  d.txts["a.test"] = {"v=spf1 a -all"};
  d.txts["acidr.test"] = {"v=spf1 a:a.test/24//64 -all"};
  d.txts["aother.test"] = {"v=spf1 a:other.test -all"};
  d.mxs["m.test"] = {{"mx1.m.test", {"192.0.2.20"}}, {"mx2.m.test", {"192.0.2.21", "2001:db8::21"}}};
  d.txts["m.test"] = {"v=spf1 mx -all"};
  d.txts["mx.test"] = {"v=spf1 mx:m.test/30 -all"};
  EXPECT_EQ(verdict(d, "192.0.2.10", "a.test"), SpfVerdict::Pass);
  EXPECT_EQ(verdict(d, "2001:db8::10", "a.test"), SpfVerdict::Pass);
  EXPECT_EQ(verdict(d, "192.0.2.11", "a.test"), SpfVerdict::Fail);
  EXPECT_EQ(verdict(d, "192.0.2.99", "acidr.test"), SpfVerdict::Pass);
  EXPECT_EQ(verdict(d, "2001:db8::ffff", "acidr.test"), SpfVerdict::Pass);
  EXPECT_EQ(verdict(d, "2001:db8:1::1", "acidr.test"), SpfVerdict::Fail);
  EXPECT_EQ(verdict(d, "192.0.2.10", "aother.test"), SpfVerdict::Fail);
  EXPECT_EQ(verdict(d, "192.0.2.21", "m.test"), SpfVerdict::Pass);
  EXPECT_EQ(verdict(d, "2001:db8::21", "m.test"), SpfVerdict::Pass);
  EXPECT_EQ(verdict(d, "192.0.2.22", "m.test"), SpfVerdict::Fail);
  EXPECT_EQ(verdict(d, "192.0.2.22", "mx.test"), SpfVerdict::Pass);  // /30 covers .20-.23
  EXPECT_EQ(verdict(d, "192.0.2.24", "mx.test"), SpfVerdict::Fail);
}

// RFC 7208 5.2: include matches only on pass; none -> permerror; temperror propagates.
TEST(Spf, Include) {
  FakeDns d;
  d.txts["top.test"] = {"v=spf1 include:_spf.top.test -all"};
  d.txts["_spf.top.test"] = {"v=spf1 ip4:192.0.2.0/24 ip4:198.51.100.0/24 -all"};
  d.txts["chain.test"] = {"v=spf1 include:top.test ~all"};
  d.txts["inc-fail.test"] = {"v=spf1 include:bad.test ?all"};
  d.txts["bad.test"] = {"v=spf1 -all"};
  d.txts["inc-none.test"] = {"v=spf1 include:nothing.test -all"};
  d.txts["inc-temp.test"] = {"v=spf1 include:temp.test -all"};
  d.tempfail = {"temp.test"};
  auto r = evaluate_spf("198.51.100.7", "top.test", d);
  EXPECT_EQ(r.verdict, SpfVerdict::Pass);
  EXPECT_EQ(r.matched, "include:_spf.top.test");
  EXPECT_EQ(r.dns_terms, 1);
  EXPECT_EQ(verdict(d, "203.0.113.1", "top.test"), SpfVerdict::Fail);
  EXPECT_EQ(verdict(d, "192.0.2.1", "chain.test"), SpfVerdict::Pass);
  EXPECT_EQ(verdict(d, "203.0.113.1", "chain.test"), SpfVerdict::SoftFail);  // inner fail = no match
  EXPECT_EQ(verdict(d, "192.0.2.1", "inc-fail.test"), SpfVerdict::Neutral);
  EXPECT_EQ(verdict(d, "192.0.2.1", "inc-none.test"), SpfVerdict::PermError);
  EXPECT_EQ(verdict(d, "192.0.2.1", "inc-temp.test"), SpfVerdict::TempError);
  EXPECT_EQ(verdict(d, "192.0.2.1", "temp.test"), SpfVerdict::TempError);
}

// RFC 7208 6.1: redirect only when nothing matched; a target without SPF is a permerror.
TEST(Spf, Redirect) {
  FakeDns d;
  d.txts["r.test"] = {"v=spf1 ip4:203.0.113.1 redirect=_spf.r.test"};
  d.txts["_spf.r.test"] = {"v=spf1 ip4:192.0.2.0/24 -all"};
  d.txts["rall.test"] = {"v=spf1 -all redirect=_spf.r.test"};
  d.txts["rnone.test"] = {"v=spf1 redirect=nothing.test"};
  d.txts["rtwo.test"] = {"v=spf1 redirect=a.test redirect=b.test"};
  EXPECT_EQ(verdict(d, "192.0.2.1", "r.test"), SpfVerdict::Pass);
  EXPECT_EQ(verdict(d, "198.51.100.1", "r.test"), SpfVerdict::Fail);
  EXPECT_EQ(verdict(d, "203.0.113.1", "r.test"), SpfVerdict::Pass);
  EXPECT_EQ(verdict(d, "192.0.2.1", "rall.test"), SpfVerdict::Fail);  // "all" wins, redirect ignored
  EXPECT_EQ(verdict(d, "192.0.2.1", "rnone.test"), SpfVerdict::PermError);
  EXPECT_EQ(verdict(d, "192.0.2.1", "rtwo.test"), SpfVerdict::PermError);
}

// RFC 7208 4.6.4: at most 10 DNS-querying terms (includes nest and loops count), at most 10
// MX names for one mx, at most 2 void lookups.
TEST(Spf, Limits) {
  FakeDns d;
  d.addrs["h.test"] = {"198.51.100.1"};
  std::string ten = "v=spf1", eleven;
  for (int i = 0; i < 10; ++i) ten += " a:h.test";
  eleven = ten + " a:h.test";
  d.txts["ten.test"] = {ten + " ip4:192.0.2.1 -all"};
  d.txts["eleven.test"] = {eleven + " ip4:192.0.2.1 -all"};
  EXPECT_EQ(verdict(d, "192.0.2.1", "ten.test"), SpfVerdict::Pass);
  auto r = evaluate_spf("192.0.2.1", "eleven.test", d);
  EXPECT_EQ(r.verdict, SpfVerdict::PermError);
  EXPECT_NE(r.reason.find("4.6.4"), std::string::npos) << r.reason;
  // An include loop ends at the limit instead of recursing for ever.
  d.txts["loop.test"] = {"v=spf1 include:loop.test -all"};
  d.queries = 0;
  EXPECT_EQ(verdict(d, "192.0.2.1", "loop.test"), SpfVerdict::PermError);
  EXPECT_LE(d.queries, 12);
  // More than 10 MX names.
  for (int i = 0; i < 11; ++i) d.mxs["many.test"].push_back({"mx" + std::to_string(i) + ".many.test", {"198.51.100.9"}});
  d.txts["manymx.test"] = {"v=spf1 mx:many.test -all"};
  EXPECT_EQ(verdict(d, "192.0.2.1", "manymx.test"), SpfVerdict::PermError);
  // Void lookups: two are tolerated, the third is a permerror.
  d.txts["void2.test"] = {"v=spf1 a:no1.test a:no2.test ip4:192.0.2.1 -all"};
  d.txts["void3.test"] = {"v=spf1 a:no1.test a:no2.test mx:no3.test ip4:192.0.2.1 -all"};
  EXPECT_EQ(verdict(d, "192.0.2.1", "void2.test"), SpfVerdict::Pass);
  EXPECT_EQ(verdict(d, "192.0.2.1", "void3.test"), SpfVerdict::PermError);
}

// RFC 7208 4.6: any syntax error -> permerror, even after a matching term; unknown modifiers are
// ignored (6), exp= is accepted.
TEST(Spf, SyntaxErrors) {
  FakeDns d;
  const std::vector<std::string> bad = {
      "v=spf1 ip4:127.0.0.1 foo -all",   "v=spf1 ip4:127.0.0.1 ip4:1.2.3.4/33 -all",
      "v=spf1 ip4:::1 -all",             "v=spf1 ip6:127.0.0.1 -all",
      "v=spf1 ip4:127.0.0.1 include -all", "v=spf1 all:x.test",
      "v=spf1 a/08 -all",                "v=spf1 a//129 -all",
      "v=spf1 +redirect=x.test",         "v=spf1 a:bad..name -all",
      "v=spf1 ip4:127.0.0.1/ -all",      "v=spf1 mx:x.test/24//",
      "v=spf1 ptr/24 -all",              "v=spf1 exp= -all",
  };
  for (const auto& rec : bad) {
    SCOPED_TRACE(rec);
    d.txts["s.test"] = {rec};
    EXPECT_EQ(verdict(d, "127.0.0.1", "s.test"), SpfVerdict::PermError);
  }
  d.txts["ok.test"] = {"v=spf1  ip4:127.0.0.1   foo=bar exp=explain.test -all "};
  EXPECT_EQ(verdict(d, "127.0.0.1", "ok.test"), SpfVerdict::Pass);
  d.txts["long.test"] = {"v=spf1 " + std::string(kSpfMaxRecord, 'a')};
  EXPECT_EQ(verdict(d, "127.0.0.1", "long.test"), SpfVerdict::PermError);
  std::string many = "v=spf1";
  for (std::size_t i = 0; i <= kSpfMaxTerms; ++i) many += " ip4:192.0.2.1";
  d.txts["many.test"] = {many};
  EXPECT_EQ(verdict(d, "127.0.0.1", "many.test"), SpfVerdict::PermError);
}

// Not supported: macros (RFC 7208 7) and ptr (5.5) never match and are named in the notes.
TEST(Spf, UnsupportedPartsAreNoted) {
  FakeDns d;
  d.txts["m.test"] = {"v=spf1 exists:%{i}._spf.m.test ptr ip4:127.0.0.1 -all"};
  auto r = evaluate_spf("127.0.0.1", "m.test", d);
  EXPECT_EQ(r.verdict, SpfVerdict::Pass);
  ASSERT_EQ(r.notes.size(), 2u);
  EXPECT_NE(r.notes[0].find("macros are not supported"), std::string::npos);
  EXPECT_NE(r.notes[1].find("ptr"), std::string::npos);
  EXPECT_EQ(r.dns_terms, 2);
  d.txts["e.test"] = {"v=spf1 exists:h.test -all"};
  d.addrs["h.test"] = {"127.0.0.2"};
  EXPECT_EQ(verdict(d, "192.0.2.1", "e.test"), SpfVerdict::Pass);  // RFC 7208 5.7: any A record
}
