// Unit tests of src/spf (RFC 7208 check_host) with synthetic DNS data: record selection (4.5),
// qualifiers (4.6.2), every mechanism (5.1-5.7, dual CIDR 5.6), modifiers (6), macros (7, the
// examples of 7.4), the limits of 4.6.4, syntax errors as permerror, DNS failures as
// temperror, the HELO and null-sender identities (2.3, 2.4), and the step-by-step interface.
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "spf/spf.hpp"

using namespace carrier::spf;

namespace {

// DNS data from maps keyed by (type, name); absent: NotFound. Records every query.
struct FakeDns {
  std::map<std::pair<QType, std::string>, std::vector<std::string>> data;
  std::set<std::string> tempfail;  // names whose every lookup fails temporarily
  std::vector<Query> asked;

  void txt(const std::string& n, std::vector<std::string> r) { data[{QType::Txt, n}] = std::move(r); }
  void a(const std::string& n, std::vector<std::string> r) { data[{QType::A, n}] = std::move(r); }
  void aaaa(const std::string& n, std::vector<std::string> r) { data[{QType::Aaaa, n}] = std::move(r); }
  void mx(const std::string& n, std::vector<std::string> r) { data[{QType::Mx, n}] = std::move(r); }
  void ptr(const std::string& ip, std::vector<std::string> r) { data[{QType::Ptr, ip}] = std::move(r); }

  Answer operator()(const Query& q) {
    asked.push_back(q);
    Answer a;
    if (tempfail.count(q.name)) {
      a.error = "SERVFAIL";
      return a;
    }
    auto it = data.find({q.type, q.name});
    a.status = it == data.end() ? Rcode::NotFound : Rcode::Ok;
    if (it != data.end()) a.records = it->second;
    return a;
  }
};

Result run(FakeDns& dns, const std::string& ip, const std::string& sender_domain,
           const std::string& local = "user", const std::string& helo = "mail.example.net") {
  return check_host(Request::mail_from(ip, local, sender_domain, helo), std::ref(dns));
}

Code code(FakeDns& dns, const std::string& ip, const std::string& domain) {
  return run(dns, ip, domain).code;
}

Code record(const std::string& rec, const std::string& ip = "192.0.2.10") {
  FakeDns dns;
  dns.txt("example.com", {rec});
  dns.a("example.com", {"192.0.2.10"});
  dns.a("other.example", {"198.51.100.1"});
  return code(dns, ip, "example.com");
}

// ---- record selection, qualifiers ---------------------------------------------------------

TEST(SpfRecord, NoTxtOrNoSpfRecordIsNone) {
  FakeDns dns;
  EXPECT_EQ(code(dns, "192.0.2.1", "example.com"), Code::None);  // NXDOMAIN
  dns.txt("example.com", {"google-site-verification=abc", "v=spf10 -all", "v=spf1x"});
  auto r = run(dns, "192.0.2.1", "example.com");
  EXPECT_EQ(r.code, Code::None);
  EXPECT_EQ(r.domain, "example.com");
}

TEST(SpfRecord, TwoSpfRecordsArePermerror) {  // RFC 7208 4.5
  FakeDns dns;
  dns.txt("example.com", {"v=spf1 +all", "v=spf1 -all"});
  EXPECT_EQ(code(dns, "192.0.2.1", "example.com"), Code::PermError);
}

TEST(SpfRecord, VersionIsCaseInsensitiveAndOtherTxtIgnored) {
  FakeDns dns;
  dns.txt("example.com", {"some other text", "V=SPF1 -ALL"});
  EXPECT_EQ(code(dns, "192.0.2.1", "example.com"), Code::Fail);
}

TEST(SpfRecord, QualifiersGiveTheirResults) {  // RFC 7208 4.6.2
  EXPECT_EQ(record("v=spf1 all"), Code::Pass);
  EXPECT_EQ(record("v=spf1 +all"), Code::Pass);
  EXPECT_EQ(record("v=spf1 -all"), Code::Fail);
  EXPECT_EQ(record("v=spf1 ~all"), Code::SoftFail);
  EXPECT_EQ(record("v=spf1 ?all"), Code::Neutral);
  EXPECT_EQ(record("v=spf1"), Code::Neutral);  // no match, no all: default neutral (4.7)
  EXPECT_EQ(record("v=spf1   ip4:10.0.0.1   "), Code::Neutral);  // extra spaces are fine
}

TEST(SpfRecord, FirstMatchingMechanismDecides) {
  EXPECT_EQ(record("v=spf1 ip4:192.0.2.10 -all"), Code::Pass);
  EXPECT_EQ(record("v=spf1 -ip4:192.0.2.10 +all"), Code::Fail);
  FakeDns dns;
  dns.txt("example.com", {"v=spf1 ip4:10.0.0.0/8 ~ip4:192.0.2.0/24 -all"});
  auto r = run(dns, "192.0.2.10", "example.com");
  EXPECT_EQ(r.code, Code::SoftFail);
  EXPECT_EQ(r.matched, "~ip4:192.0.2.0/24");
}

// ---- mechanisms ---------------------------------------------------------------------------

TEST(SpfMechanism, Ip4WithCidr) {  // RFC 7208 5.6
  EXPECT_EQ(record("v=spf1 ip4:192.0.2.0/24 -all"), Code::Pass);
  EXPECT_EQ(record("v=spf1 ip4:192.0.2.11 -all"), Code::Fail);
  EXPECT_EQ(record("v=spf1 ip4:192.0.2.8/29 -all"), Code::Pass);
  EXPECT_EQ(record("v=spf1 ip4:192.0.2.0/29 -all"), Code::Fail);
  EXPECT_EQ(record("v=spf1 ip4:0.0.0.0/0 -all"), Code::Pass);
  EXPECT_EQ(record("v=spf1 ip4:192.0.2.0/24 -all", "2001:db8::1"), Code::Fail);  // other family
}

TEST(SpfMechanism, Ip6WithCidr) {
  EXPECT_EQ(record("v=spf1 ip6:2001:db8::/32 -all", "2001:db8:1::5"), Code::Pass);
  EXPECT_EQ(record("v=spf1 ip6:2001:db8::/48 -all", "2001:db8:1::5"), Code::Fail);
  EXPECT_EQ(record("v=spf1 ip6:2001:db8:1::5 -all", "2001:db8:1::5"), Code::Pass);
  EXPECT_EQ(record("v=spf1 ip6:::ffff:192.0.2.10 -all"), Code::Fail);  // IPv4 clients: no ip6 match
}

TEST(SpfMechanism, Ipv4MappedClientIsTreatedAsIpv4) {
  EXPECT_EQ(record("v=spf1 ip4:192.0.2.10 -all", "::ffff:192.0.2.10"), Code::Pass);
}

TEST(SpfMechanism, AOfTheCurrentDomainAndOfANamedOne) {  // RFC 7208 5.3
  EXPECT_EQ(record("v=spf1 a -all"), Code::Pass);
  EXPECT_EQ(record("v=spf1 a:other.example -all"), Code::Fail);
  EXPECT_EQ(record("v=spf1 a:other.example -all", "198.51.100.1"), Code::Pass);
  EXPECT_EQ(record("v=spf1 a:other.example/24 -all", "198.51.100.200"), Code::Pass);
  EXPECT_EQ(record("v=spf1 a/24 -all", "192.0.2.99"), Code::Pass);
  EXPECT_EQ(record("v=spf1 a/32 -all", "192.0.2.99"), Code::Fail);
}

TEST(SpfMechanism, AUsesAaaaForIpv6ClientsWithTheIpv6Length) {
  FakeDns dns;
  dns.txt("example.com", {"v=spf1 a//64 -all"});
  dns.a("example.com", {"192.0.2.1"});
  dns.aaaa("example.com", {"2001:db8:5::1"});
  EXPECT_EQ(code(dns, "2001:db8:5::77", "example.com"), Code::Pass);
  EXPECT_EQ(code(dns, "2001:db8:6::77", "example.com"), Code::Fail);
  EXPECT_EQ(dns.asked.back().type, QType::Aaaa);
  FakeDns d2 = dns;
  d2.txt("example.com", {"v=spf1 a/24//64 -all"});
  EXPECT_EQ(code(d2, "192.0.2.200", "example.com"), Code::Pass);
  EXPECT_EQ(code(d2, "2001:db8:5::ffff", "example.com"), Code::Pass);
}

TEST(SpfMechanism, MxLooksUpEachExchange) {  // RFC 7208 5.4
  FakeDns dns;
  dns.txt("example.com", {"v=spf1 mx -all"});
  dns.mx("example.com", {"mx1.example.com", "mx2.example.com"});
  dns.a("mx1.example.com", {"192.0.2.1"});
  dns.a("mx2.example.com", {"192.0.2.2"});
  EXPECT_EQ(code(dns, "192.0.2.2", "example.com"), Code::Pass);
  EXPECT_EQ(code(dns, "192.0.2.3", "example.com"), Code::Fail);
  dns.txt("example.com", {"v=spf1 mx/30 -all"});
  EXPECT_EQ(code(dns, "192.0.2.3", "example.com"), Code::Pass);
  dns.txt("example.com", {"v=spf1 mx:other.example -all"});
  dns.mx("other.example", {"mx.other.example"});
  dns.a("mx.other.example", {"203.0.113.9"});
  EXPECT_EQ(code(dns, "203.0.113.9", "example.com"), Code::Pass);
}

TEST(SpfMechanism, MxWithoutMxRecordsDoesNotUseTheDomainsAddress) {  // no implicit MX
  FakeDns dns;
  dns.txt("example.com", {"v=spf1 mx -all"});
  dns.a("example.com", {"192.0.2.1"});
  EXPECT_EQ(code(dns, "192.0.2.1", "example.com"), Code::Fail);
}

TEST(SpfMechanism, PtrMatchesValidatedNamesInTheDomain) {  // RFC 7208 5.5
  FakeDns dns;
  dns.txt("example.com", {"v=spf1 ptr -all"});
  dns.ptr("192.0.2.7", {"evil.example.net", "mail.example.com"});
  dns.a("mail.example.com", {"192.0.2.7"});
  dns.a("evil.example.net", {"192.0.2.7"});
  EXPECT_EQ(code(dns, "192.0.2.7", "example.com"), Code::Pass);
  // A PTR name that does not resolve back to the address is not validated.
  dns.a("mail.example.com", {"192.0.2.8"});
  EXPECT_EQ(code(dns, "192.0.2.7", "example.com"), Code::Fail);
  // ptr:domain
  dns.txt("example.com", {"v=spf1 ptr:example.net -all"});
  EXPECT_EQ(code(dns, "192.0.2.7", "example.com"), Code::Pass);
  // A name merely ending in the domain's text is not in the domain.
  dns.txt("example.com", {"v=spf1 ptr:ample.net -all"});
  EXPECT_EQ(code(dns, "192.0.2.7", "example.com"), Code::Fail);
}

TEST(SpfMechanism, PtrLookupFailureIsNoMatch) {
  FakeDns dns;
  dns.txt("example.com", {"v=spf1 ptr ~all"});
  dns.tempfail.insert("192.0.2.7");
  EXPECT_EQ(code(dns, "192.0.2.7", "example.com"), Code::SoftFail);
}

TEST(SpfMechanism, ExistsMatchesAnyARecord) {  // RFC 7208 5.7
  FakeDns dns;
  dns.txt("example.com", {"v=spf1 exists:ok.example.com -all"});
  dns.a("ok.example.com", {"127.0.0.2"});
  EXPECT_EQ(code(dns, "192.0.2.1", "example.com"), Code::Pass);
  EXPECT_EQ(code(dns, "2001:db8::1", "example.com"), Code::Pass);  // still an A query
  EXPECT_EQ(dns.asked.back().type, QType::A);
  dns.txt("example.com", {"v=spf1 exists:no.example.com -all"});
  EXPECT_EQ(code(dns, "192.0.2.1", "example.com"), Code::Fail);
}

TEST(SpfMechanism, IncludeMatchesOnlyOnPass) {  // RFC 7208 5.2
  FakeDns dns;
  dns.txt("example.com", {"v=spf1 include:_spf.example.net -all"});
  dns.txt("_spf.example.net", {"v=spf1 ip4:192.0.2.0/24 -all"});
  auto r = run(dns, "192.0.2.5", "example.com");
  EXPECT_EQ(r.code, Code::Pass);
  EXPECT_EQ(r.matched, "include:_spf.example.net");
  EXPECT_EQ(code(dns, "198.51.100.5", "example.com"), Code::Fail);  // include's fail: no match
  dns.txt("_spf.example.net", {"v=spf1 ip4:192.0.2.0/24 ?all"});
  EXPECT_EQ(code(dns, "198.51.100.5", "example.com"), Code::Fail);  // neutral: no match
}

TEST(SpfMechanism, IncludeOfNoneIsPermerrorAndTemperrorPropagates) {
  FakeDns dns;
  dns.txt("example.com", {"v=spf1 include:missing.example -all"});
  EXPECT_EQ(code(dns, "192.0.2.5", "example.com"), Code::PermError);
  dns.txt("example.com", {"v=spf1 include:flaky.example -all"});
  dns.tempfail.insert("flaky.example");
  EXPECT_EQ(code(dns, "192.0.2.5", "example.com"), Code::TempError);
  dns.txt("example.com", {"v=spf1 include:bad.example -all"});
  dns.txt("bad.example", {"v=spf1 frobnicate"});
  EXPECT_EQ(code(dns, "192.0.2.5", "example.com"), Code::PermError);
}

// ---- modifiers ----------------------------------------------------------------------------

TEST(SpfModifier, RedirectAppliesWhenNothingMatched) {  // RFC 7208 6.1
  FakeDns dns;
  dns.txt("example.com", {"v=spf1 ip4:10.0.0.1 redirect=_spf.example.com"});
  dns.txt("_spf.example.com", {"v=spf1 ip4:192.0.2.0/24 -all"});
  EXPECT_EQ(code(dns, "192.0.2.9", "example.com"), Code::Pass);
  EXPECT_EQ(code(dns, "10.0.0.1", "example.com"), Code::Pass);
  EXPECT_EQ(code(dns, "198.51.100.9", "example.com"), Code::Fail);
  // "all" always matches, so a redirect after it is never used.
  dns.txt("example.com", {"v=spf1 ?all redirect=_spf.example.com"});
  EXPECT_EQ(code(dns, "198.51.100.9", "example.com"), Code::Neutral);
}

TEST(SpfModifier, RedirectToNoRecordIsPermerror) {
  FakeDns dns;
  dns.txt("example.com", {"v=spf1 redirect=nothing.example"});
  EXPECT_EQ(code(dns, "192.0.2.9", "example.com"), Code::PermError);
}

TEST(SpfModifier, RedirectUsesTheTargetAsTheCurrentDomain) {
  FakeDns dns;
  dns.txt("example.com", {"v=spf1 redirect=other.example"});
  dns.txt("other.example", {"v=spf1 a -all"});
  dns.a("other.example", {"192.0.2.50"});
  dns.a("example.com", {"192.0.2.60"});
  EXPECT_EQ(code(dns, "192.0.2.50", "example.com"), Code::Pass);
  EXPECT_EQ(code(dns, "192.0.2.60", "example.com"), Code::Fail);
}

TEST(SpfModifier, ExpAndUnknownModifiersAreIgnoredDuplicatesAreNot) {  // RFC 7208 6
  EXPECT_EQ(record("v=spf1 exp=explain.%{d} -all"), Code::Fail);
  EXPECT_EQ(record("v=spf1 foo=bar x-thing=%{d} +all"), Code::Pass);
  EXPECT_EQ(record("v=spf1 exp=a.example exp=b.example -all"), Code::PermError);
  EXPECT_EQ(record("v=spf1 redirect=a.example redirect=b.example"), Code::PermError);
  EXPECT_EQ(record("v=spf1 foo=%{q} +all"), Code::PermError);  // bad macro in a modifier
}

// ---- syntax errors ------------------------------------------------------------------------

TEST(SpfSyntax, ErrorsAnywhereArePermerrorEvenAfterAMatch) {  // RFC 7208 4.6
  const char* bad[] = {
      "v=spf1 +all frobnicate",      "v=spf1 ip4:192.0.2.300 +all", "v=spf1 ip4:192.0.2.1/33 +all",
      "v=spf1 ip4:192.0.2.1/024 +all", "v=spf1 ip6:2001:db8::/129 +all", "v=spf1 ip4 +all",
      "v=spf1 ip4:2001:db8::1 +all", "v=spf1 ip6:192.0.2.1 +all",   "v=spf1 all:x +all",
      "v=spf1 include +all",         "v=spf1 include: +all",        "v=spf1 a:example +all",
      "v=spf1 a:1.2.3.4 +all",       "v=spf1 a/ +all",              "v=spf1 a//129 +all",
      "v=spf1 mx:-bad.example- +all","v=spf1 exists +all",          "v=spf1 *all",
      "v=spf1 a:%{x}.example.com +all", "v=spf1 a:%{d0}.example.com +all",
      "v=spf1 a:%{c}.example.com +all", "v=spf1 a:%.example.com +all", "v=spf1 a:%{d +all",
      "v=spf1 =x +all",              "v=spf1 1x=y +all",            "v=spf1 ip4:192.0.2.1\t+all",
      "v=spf1 a:caf\xc3\xa9.example +all",
  };
  for (const char* r : bad) EXPECT_EQ(record(r), Code::PermError) << r;
}

TEST(SpfSyntax, ValidFormsAreAccepted) {
  const char* good[] = {
      "v=spf1 a:example.com. -all", "v=spf1 a:mail.example.com/24//64 -all", "v=spf1 mx//64 -all",
      "v=spf1 ptr:example.com -all", "v=spf1 exists:%{i}.%{d} -all", "v=spf1 a:%{d} -all",
      "v=spf1 exists:%{d2}.x-y.example -all", "v=spf1 ip6:::1 -all", "v=spf1 A:EXAMPLE.COM -ALL",
      "v=spf1 a:1-2.example.1-2 -all",
  };
  for (const char* r : good) EXPECT_NE(record(r, "203.0.113.1"), Code::PermError) << r;
}

TEST(SpfSyntax, OverlongRecordIsPermerror) {
  std::string r = "v=spf1";
  while (r.size() <= kMaxRecord) r += " ip4:192.0.2.1";
  EXPECT_EQ(record(r + " -all"), Code::PermError);
}

// ---- limits (RFC 7208 4.6.4) ----------------------------------------------------------------

TEST(SpfLimits, MoreThanTenDnsTermsIsPermerror) {
  FakeDns dns;
  std::string rec = "v=spf1";
  for (int i = 0; i < 10; ++i) {
    rec += " a:h" + std::to_string(i) + ".example.com";
    dns.a("h" + std::to_string(i) + ".example.com", {"198.51.100.1"});
  }
  dns.txt("example.com", {rec + " -all"});
  EXPECT_EQ(code(dns, "192.0.2.1", "example.com"), Code::Fail);  // exactly 10: fine
  dns.txt("example.com", {rec + " a:h0.example.com -all"});
  auto r = run(dns, "192.0.2.1", "example.com");
  EXPECT_EQ(r.code, Code::PermError);
  EXPECT_NE(r.reason.find("DNS-querying terms"), std::string::npos) << r.reason;
}

TEST(SpfLimits, IncludesCountAcrossLevelsAndLoopsEnd) {
  FakeDns dns;
  dns.txt("example.com", {"v=spf1 include:example.com -all"});  // includes itself
  EXPECT_EQ(code(dns, "192.0.2.1", "example.com"), Code::PermError);
  FakeDns chain;
  for (int i = 0; i < 11; ++i)
    chain.txt("l" + std::to_string(i) + ".example", {"v=spf1 include:l" + std::to_string(i + 1) + ".example -all"});
  chain.txt("l11.example", {"v=spf1 +all"});
  EXPECT_EQ(code(chain, "192.0.2.1", "l0.example"), Code::PermError);
  chain.txt("l9.example", {"v=spf1 +all"});  // 9 includes: fine
  EXPECT_EQ(code(chain, "192.0.2.1", "l0.example"), Code::Pass);
}

TEST(SpfLimits, ThreeVoidLookupsArePermerror) {
  FakeDns dns;
  dns.txt("example.com", {"v=spf1 a:n1.example.com a:n2.example.com -all"});
  EXPECT_EQ(code(dns, "192.0.2.1", "example.com"), Code::Fail);  // two: fine
  dns.txt("example.com", {"v=spf1 a:n1.example.com mx:n2.example.com exists:n3.example.com -all"});
  auto r = run(dns, "192.0.2.1", "example.com");
  EXPECT_EQ(r.code, Code::PermError);
  EXPECT_EQ(r.void_lookups, 3);
}

TEST(SpfLimits, MoreThanTenMxNamesIsPermerror) {
  FakeDns dns;
  std::vector<std::string> names;
  for (int i = 0; i < 11; ++i) {
    names.push_back("mx" + std::to_string(i) + ".example.com");
    dns.a(names.back(), {"192.0.2." + std::to_string(i + 1)});
  }
  dns.txt("example.com", {"v=spf1 mx -all"});
  dns.mx("example.com", names);
  EXPECT_EQ(code(dns, "192.0.2.1", "example.com"), Code::PermError);
  names.pop_back();
  dns.mx("example.com", names);
  EXPECT_EQ(code(dns, "192.0.2.10", "example.com"), Code::Pass);
}

TEST(SpfLimits, OnlyTenPtrNamesAreLookedAt) {
  FakeDns dns;
  dns.txt("example.com", {"v=spf1 ptr -all"});
  std::vector<std::string> names;
  for (int i = 0; i < 10; ++i) names.push_back("n" + std::to_string(i) + ".example.com");
  names.push_back("good.example.com");
  dns.ptr("192.0.2.7", names);
  dns.a("good.example.com", {"192.0.2.7"});
  EXPECT_EQ(code(dns, "192.0.2.7", "example.com"), Code::Fail);
}

// ---- DNS errors -----------------------------------------------------------------------------

TEST(SpfDnsErrors, TemporaryFailuresAreTemperror) {
  FakeDns dns;
  dns.tempfail.insert("example.com");
  EXPECT_EQ(code(dns, "192.0.2.1", "example.com"), Code::TempError);
  FakeDns d2;
  d2.txt("example.com", {"v=spf1 a:flaky.example -all"});
  d2.tempfail.insert("flaky.example");
  EXPECT_EQ(code(d2, "192.0.2.1", "example.com"), Code::TempError);
  d2.txt("example.com", {"v=spf1 mx -all"});
  d2.mx("example.com", {"flaky.example"});
  EXPECT_EQ(code(d2, "192.0.2.1", "example.com"), Code::TempError);
  // A match before the failing term decides first.
  d2.txt("example.com", {"v=spf1 ip4:192.0.2.1 a:flaky.example -all"});
  EXPECT_EQ(code(d2, "192.0.2.1", "example.com"), Code::Pass);
}

// ---- identities (RFC 7208 2.3, 2.4, 4.3) -----------------------------------------------------

TEST(SpfIdentity, NullSenderChecksPostmasterAtHelo) {
  auto r = Request::mail_from("192.0.2.1", "", "", "Mail.Example.NET");
  EXPECT_EQ(r.domain, "Mail.Example.NET");
  EXPECT_EQ(r.sender, "postmaster@Mail.Example.NET");
  FakeDns dns;
  dns.txt("mail.example.net", {"v=spf1 a -all"});
  dns.a("mail.example.net", {"192.0.2.1"});
  auto res = check_host(r, std::ref(dns));
  EXPECT_EQ(res.code, Code::Pass);
  EXPECT_EQ(res.domain, "mail.example.net");
}

TEST(SpfIdentity, HeloIdentityAndMalformedDomainsAreNone) {
  FakeDns dns;
  dns.txt("mail.example.net", {"v=spf1 -all"});
  EXPECT_EQ(check_host(Request::helo_identity("192.0.2.1", "mail.example.net"), std::ref(dns)).code, Code::Fail);
  EXPECT_EQ(check_host(Request::helo_identity("192.0.2.1", "[192.0.2.1]"), std::ref(dns)).code, Code::None);
  EXPECT_EQ(check_host(Request::helo_identity("192.0.2.1", "localhost"), std::ref(dns)).code, Code::None);
  EXPECT_EQ(run(dns, "192.0.2.1", "a..example").code, Code::None);
  EXPECT_EQ(run(dns, "192.0.2.1", std::string(64, 'x') + ".example").code, Code::None);
  EXPECT_EQ(run(dns, "192.0.2.1", "[192.0.2.1]").code, Code::None);
  EXPECT_TRUE(dns.asked.empty() || dns.asked.size() == 1);  // only the HELO lookup above
}

TEST(SpfIdentity, EmptyLocalPartBecomesPostmaster) {  // RFC 7208 4.3
  auto r = Request::mail_from("192.0.2.1", "", "example.com", "h.example");
  EXPECT_EQ(r.sender, "postmaster@example.com");
}

TEST(SpfIdentity, NotAnIpIsPermerror) {
  FakeDns dns;
  EXPECT_EQ(run(dns, "not-an-ip", "example.com").code, Code::PermError);
}

// ---- macros (RFC 7208 7) ----------------------------------------------------------------------

MacroVars rfc_vars(const std::string& ip) {
  Request r = Request::mail_from(ip, "strong-bad", "email.example.com", "mx.example.org");
  auto v = macro_vars(r);
  EXPECT_TRUE(v);
  v->domain = "email.example.com";
  return *v;
}

std::string ex(const std::string& s, const MacroVars& v) {
  auto e = expand(s, v);
  return e ? *e : "<error>";
}

TEST(SpfMacro, Rfc7208Section74Examples) {
  const auto v = rfc_vars("192.0.2.3");
  EXPECT_EQ(ex("%{s}", v), "strong-bad@email.example.com");
  EXPECT_EQ(ex("%{o}", v), "email.example.com");
  EXPECT_EQ(ex("%{d}", v), "email.example.com");
  EXPECT_EQ(ex("%{d4}", v), "email.example.com");
  EXPECT_EQ(ex("%{d3}", v), "email.example.com");
  EXPECT_EQ(ex("%{d2}", v), "example.com");
  EXPECT_EQ(ex("%{d1}", v), "com");
  EXPECT_EQ(ex("%{dr}", v), "com.example.email");
  EXPECT_EQ(ex("%{d2r}", v), "example.email");
  EXPECT_EQ(ex("%{l}", v), "strong-bad");
  EXPECT_EQ(ex("%{l-}", v), "strong.bad");
  EXPECT_EQ(ex("%{lr}", v), "strong-bad");
  EXPECT_EQ(ex("%{lr-}", v), "bad.strong");
  EXPECT_EQ(ex("%{l1r-}", v), "strong");
  EXPECT_EQ(ex("%{ir}.%{v}._spf.%{d2}", v), "3.2.0.192.in-addr._spf.example.com");
  EXPECT_EQ(ex("%{lr-}.lp._spf.%{d2}", v), "bad.strong.lp._spf.example.com");
  EXPECT_EQ(ex("%{lr-}.lp.%{ir}.%{v}._spf.%{d2}", v), "bad.strong.lp.3.2.0.192.in-addr._spf.example.com");
  EXPECT_EQ(ex("%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}", v), "3.2.0.192.in-addr.strong.lp._spf.example.com");
  EXPECT_EQ(ex("%{d2}.trusted-domains.example.net", v), "example.com.trusted-domains.example.net");
  const auto v6 = rfc_vars("2001:db8::cb01");
  EXPECT_EQ(ex("%{ir}.%{v}._spf.%{d2}", v6),
            "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6._spf.example.com");
}

TEST(SpfMacro, OtherLettersEscapesAndUrlEncoding) {
  const auto v = rfc_vars("192.0.2.3");
  EXPECT_EQ(ex("%{h}", v), "mx.example.org");
  EXPECT_EQ(ex("%{p}", v), "unknown");
  EXPECT_EQ(ex("%{i}", v), "192.0.2.3");
  EXPECT_EQ(ex("%%%_%-", v), "% %20");
  EXPECT_EQ(ex("%{D}", v), "email.example.com");
  auto w = v;
  w.sender = "a b/c@example.com";
  EXPECT_EQ(ex("%{S}", w), "a%20b%2Fc%40example.com");
  EXPECT_EQ(ex("%{d999}", v), "email.example.com");
  EXPECT_EQ(ex("%{l+-}", w), "strong.bad");  // delimiters + and -
  EXPECT_FALSE(expand("%{c}", v));            // c r t only in exp
  EXPECT_TRUE(expand("%{c}.%{r}.%{t}", v, true));
  EXPECT_FALSE(expand("%{d0}", v));
  EXPECT_FALSE(expand("%{d1234}", v));
  EXPECT_FALSE(expand("%x", v));
  EXPECT_FALSE(expand("%", v));
  EXPECT_FALSE(expand("a b", v));
}

TEST(SpfMacro, ExistsWithMacrosIsEvaluated) {
  FakeDns dns;
  dns.txt("example.com", {"v=spf1 exists:%{ir}.%{l1r+-}._spf.%{d} -all"});
  dns.a("1.2.0.192.someuser._spf.example.com", {"127.0.0.2"});
  EXPECT_EQ(run(dns, "192.0.2.1", "example.com", "someuser").code, Code::Pass);
  EXPECT_EQ(run(dns, "192.0.2.1", "example.com", "other").code, Code::Fail);
  EXPECT_EQ(run(dns, "192.0.2.2", "example.com", "someuser").code, Code::Fail);
}

TEST(SpfMacro, ExpandedNamesOver253OctetsLoseLeftLabels) {  // RFC 7208 7.3
  FakeDns dns;
  dns.txt("example.com", {"v=spf1 exists:%{l}.%{l}.%{l}.%{l}.%{l}.tail.example.com -all"});
  const std::string local(60, 'x');
  // 5 x 61 + "tail.example.com" > 253: the leftmost labels go.
  dns.a(local + "." + local + "." + local + ".tail.example.com", {"127.0.0.2"});
  EXPECT_EQ(run(dns, "192.0.2.1", "example.com", local).code, Code::Pass);
}

TEST(SpfMacro, ExpansionThatIsNotADnsNameHasNoAnswer) {
  FakeDns dns;
  dns.txt("example.com", {"v=spf1 exists:%{l}.example.com ~all"});
  EXPECT_EQ(run(dns, "192.0.2.1", "example.com", "a+b").code, Code::SoftFail);
  for (const auto& q : dns.asked) EXPECT_EQ(q.name.find('+'), std::string::npos);
}

// ---- the step-by-step interface ---------------------------------------------------------------

TEST(SpfCheck, AsksOneQueryAtATimeAndWaitsForItsAnswer) {
  Check c(Request::mail_from("192.0.2.1", "u", "Example.COM.", "h.example"));
  auto q = c.next();
  ASSERT_TRUE(q);
  EXPECT_EQ(q->type, QType::Txt);
  EXPECT_EQ(q->name, "example.com");
  EXPECT_EQ(c.next(), q);                                      // not answered yet: same query
  c.answer(Query{QType::Txt, "other.example"}, Answer{Rcode::Ok, {"v=spf1 +all"}, ""});  // ignored
  EXPECT_EQ(c.next(), q);
  c.answer(*q, Answer{Rcode::Ok, {"v=spf1 a:mail.example.com -all"}, ""});
  auto q2 = c.next();
  ASSERT_TRUE(q2);
  EXPECT_EQ(*q2, (Query{QType::A, "mail.example.com"}));
  c.answer(*q2, Answer{Rcode::Ok, {"192.0.2.1"}, ""});
  EXPECT_FALSE(c.next());
  ASSERT_TRUE(c.finished());
  EXPECT_EQ(c.result().code, Code::Pass);
  EXPECT_EQ(c.result().matched, "a:mail.example.com");
  EXPECT_EQ(c.result().dns_terms, 1);
  EXPECT_EQ(c.result().queries, 2u);
}

TEST(SpfCheck, AbortGivesTemperror) {
  Check c(Request::mail_from("192.0.2.1", "u", "example.com", "h.example"));
  ASSERT_TRUE(c.next());
  c.abort("took too long");
  EXPECT_FALSE(c.next());
  EXPECT_EQ(c.result().code, Code::TempError);
  EXPECT_EQ(c.result().reason, "took too long");
}

TEST(SpfCheck, EachQueryIsAskedOnce) {
  FakeDns dns;
  dns.txt("example.com", {"v=spf1 a mx include:_spf.example.com -all"});
  dns.mx("example.com", {"mx.example.com"});
  dns.a("mx.example.com", {"192.0.2.9"});
  dns.txt("_spf.example.com", {"v=spf1 a:mx.example.com ip4:10.0.0.0/8 -all"});
  EXPECT_EQ(code(dns, "10.1.1.1", "example.com"), Code::Pass);
  std::set<Query> seen(dns.asked.begin(), dns.asked.end());
  EXPECT_EQ(seen.size(), dns.asked.size());
}

TEST(SpfCheck, ToStringNames) {
  EXPECT_EQ(to_string(Code::Pass), "pass");
  EXPECT_EQ(to_string(Code::SoftFail), "softfail");
  EXPECT_EQ(to_string(Code::TempError), "temperror");
  EXPECT_EQ(to_string(Code::PermError), "permerror");
  EXPECT_EQ(to_string(Code::None), "none");
  EXPECT_EQ(to_string(Code::Neutral), "neutral");
  EXPECT_EQ(to_string(Code::Fail), "fail");
}

}  // namespace
