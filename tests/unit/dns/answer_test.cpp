// Unit tests of the pure answer rules (src/dns/answer.hpp): RCODE classification (RFC 1035
// 4.1.1), MX ordering with random order among equal preferences, null MX, unusable MX sets and
// the host cap (RFC 5321 5.1, RFC 7505 3), address ordering and caps, and the overall status
// of an MX result.
#include "dns/answer.hpp"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

using namespace carrier::dns;

namespace {

std::string mx(int pref, const std::string& host) {
  std::string out;
  out.push_back(static_cast<char>((pref >> 8) & 0xff));
  out.push_back(static_cast<char>(pref & 0xff));
  if (host != ".") {
    std::size_t start = 0;
    while (start <= host.size()) {
      auto dot = host.find('.', start);
      if (dot == std::string::npos) dot = host.size();
      out.push_back(static_cast<char>(dot - start));
      out.append(host, start, dot - start);
      start = dot + 1;
    }
  }
  out.push_back('\0');
  return out;
}

std::string a(unsigned char last, unsigned char third = 0) {
  return std::string{'\x7f', '\0', static_cast<char>(third), static_cast<char>(last)};
}

std::string aaaa(unsigned char last, unsigned char second_last = 0) {
  std::string s(16, '\0');
  s[0] = '\x20';
  s[1] = '\x01';
  s[2] = '\x0d';
  s[3] = '\xb8';
  s[14] = static_cast<char>(second_last);
  s[15] = static_cast<char>(last);
  return s;
}

Answer data(std::vector<std::string> rdata) {
  Answer ans;
  ans.kind = Answer::Kind::Data;
  ans.rdata = std::move(rdata);
  return ans;
}

Answer kind(Answer::Kind k, std::string error = {}) {
  Answer ans;
  ans.kind = k;
  ans.error = std::move(error);
  return ans;
}

std::vector<std::string> names(const MxPlan& p) {
  std::vector<std::string> out;
  for (const auto& h : p.hosts) out.push_back(h.second);
  return out;
}

}  // namespace

// RFC 1035 4.1.1: 0 NOERROR, 3 Name Error; SERVFAIL, REFUSED and the rest are not answers.
TEST(ClassifyRcode, Kinds) {
  EXPECT_EQ(classify_rcode(0, true), Answer::Kind::Data);
  EXPECT_EQ(classify_rcode(0, false), Answer::Kind::NoData);
  EXPECT_EQ(classify_rcode(3, false), Answer::Kind::NxDomain);
  EXPECT_EQ(classify_rcode(2, false), Answer::Kind::TempFail);
  EXPECT_EQ(classify_rcode(5, false), Answer::Kind::TempFail);
  EXPECT_EQ(classify_rcode(1, false), Answer::Kind::TempFail);
  EXPECT_EQ(classify_rcode(4, false), Answer::Kind::TempFail);
  EXPECT_EQ(rcode_name(2), "SERVFAIL");
  EXPECT_EQ(rcode_name(3), "NXDOMAIN");
  EXPECT_EQ(rcode_name(5), "REFUSED");
  EXPECT_EQ(rcode_name(11), "RCODE 11");
}

// RFC 5321 5.1: lowest preference first.
TEST(PlanMx, SortedByPreference) {
  std::mt19937_64 rng(1);
  auto p = plan_mx({mx(30, "c.test"), mx(10, "a.test"), mx(20, "b.test")}, rng);
  ASSERT_EQ(p.status, Status::Ok);
  EXPECT_EQ(names(p), (std::vector<std::string>{"a.test", "b.test", "c.test"}));
  EXPECT_EQ(p.hosts[0].first, 10);
  EXPECT_EQ(p.hosts[2].first, 30);
}

// RFC 5321 5.1: hosts of equal preference are tried in random order ("the sender-SMTP MUST
// randomize them to spread the load"); the less preferred host stays last every time.
TEST(PlanMx, EqualPreferencesInRandomOrder) {
  std::mt19937_64 rng(7);
  int a_first = 0, b_first = 0;
  for (int i = 0; i < 200; ++i) {
    auto p = plan_mx({mx(10, "a.test"), mx(10, "b.test"), mx(20, "c.test")}, rng);
    ASSERT_EQ(p.hosts.size(), 3u);
    EXPECT_EQ(p.hosts[2].second, "c.test");
    (p.hosts[0].second == "a.test" ? a_first : b_first)++;
  }
  // Uniform: about 100 each; 40 is far below any plausible fluctuation for this fixed seed.
  EXPECT_GT(a_first, 40);
  EXPECT_GT(b_first, 40);
}

TEST(PlanMx, SameSeedSameOrder) {
  std::mt19937_64 r1(99), r2(99);
  std::vector<std::string> rd;
  for (int i = 0; i < 8; ++i) rd.push_back(mx(10, "h" + std::to_string(i) + ".test"));
  EXPECT_EQ(names(plan_mx(rd, r1)), names(plan_mx(rd, r2)));
}

// RFC 7505 3: a single MX with preference 0 and exchange "." means no mail service.
TEST(PlanMx, NullMx) {
  std::mt19937_64 rng(1);
  auto p = plan_mx({mx(0, ".")}, rng);
  EXPECT_EQ(p.status, Status::NullMx);
  EXPECT_TRUE(p.hosts.empty());
  EXPECT_FALSE(p.error.empty());
}

// RFC 7505 3 forbids a null MX next to other MX records; "." is not a host, so the real
// exchanges are used.
TEST(PlanMx, DotNextToRealHostsIsSkipped) {
  std::mt19937_64 rng(1);
  auto p = plan_mx({mx(0, "."), mx(10, "mx.test")}, rng);
  ASSERT_EQ(p.status, Status::Ok);
  EXPECT_EQ(names(p), (std::vector<std::string>{"mx.test"}));
}

// A "." exchange with a preference other than 0 is not a null MX; with nothing else it leaves no
// usable host (RFC 5321 5.1: MX present but none usable is an error).
TEST(PlanMx, DotWithNonZeroPreferenceIsUnusable) {
  std::mt19937_64 rng(1);
  auto p = plan_mx({mx(10, ".")}, rng);
  EXPECT_EQ(p.status, Status::NotFound);
}

TEST(PlanMx, MalformedRecordsSkipped) {
  std::mt19937_64 rng(1);
  auto p = plan_mx({std::string("\0", 1), mx(10, "ok.test"), std::string("\0\x0a\xc0\x0c", 4)}, rng);
  ASSERT_EQ(p.status, Status::Ok);
  EXPECT_EQ(names(p), (std::vector<std::string>{"ok.test"}));
}

// RFC 5321 5.1: MX records present but none usable -> error, not an implicit MX.
TEST(PlanMx, NothingUsableIsNotFound) {
  std::mt19937_64 rng(1);
  auto p = plan_mx({std::string("\0", 1), std::string("\0\x0a\x03\x61", 4)}, rng);
  EXPECT_EQ(p.status, Status::NotFound);
  EXPECT_NE(p.error.find("2 malformed"), std::string::npos) << p.error;
}

TEST(PlanMx, DuplicateNamesKeepMostPreferred) {
  std::mt19937_64 rng(1);
  auto p = plan_mx({mx(20, "a.test"), mx(10, "a.test"), mx(15, "b.test")}, rng);
  ASSERT_EQ(p.status, Status::Ok);
  ASSERT_EQ(p.hosts.size(), 2u);
  EXPECT_EQ(p.hosts[0], (std::pair<int, std::string>{10, "a.test"}));
  EXPECT_EQ(p.hosts[1], (std::pair<int, std::string>{15, "b.test"}));
}

// Bounded work: at most 16 hosts, the 16 most preferred.
TEST(PlanMx, AtMost16Hosts) {
  std::mt19937_64 rng(1);
  std::vector<std::string> rd;
  for (int i = 40; i >= 1; --i) rd.push_back(mx(i, "h" + std::to_string(i) + ".test"));
  auto p = plan_mx(rd, rng);
  ASSERT_EQ(p.status, Status::Ok);
  ASSERT_EQ(p.hosts.size(), kMaxMxHosts);
  for (std::size_t i = 0; i < p.hosts.size(); ++i) EXPECT_EQ(p.hosts[i].first, static_cast<int>(i + 1));
}

TEST(CombineAddresses, Ipv4FirstByDefault) {
  auto ra = data({a(1), a(2)});
  auto r6 = data({aaaa(1)});
  auto r = combine_addresses("h.test", &ra, &r6, false);
  EXPECT_EQ(r.status, Status::Ok);
  EXPECT_EQ(r.addresses, (std::vector<std::string>{"127.0.0.1", "127.0.0.2", "2001:db8::1"}));
  EXPECT_TRUE(r.error.empty());
  r = combine_addresses("h.test", &ra, &r6, true);
  EXPECT_EQ(r.addresses, (std::vector<std::string>{"2001:db8::1", "127.0.0.1", "127.0.0.2"}));
}

TEST(CombineAddresses, FamilyNotLookedUp) {
  auto ra = data({a(1)});
  auto r = combine_addresses("h.test", &ra, nullptr, true);
  EXPECT_EQ(r.addresses, (std::vector<std::string>{"127.0.0.1"}));
  auto r6 = data({aaaa(1)});
  r = combine_addresses("h.test", nullptr, &r6, false);
  EXPECT_EQ(r.addresses, (std::vector<std::string>{"2001:db8::1"}));
}

TEST(CombineAddresses, MalformedAndDuplicateRecordsSkipped) {
  auto ra = data({a(1), std::string(3, 'x'), a(1), std::string(16, '\0')});
  auto r = combine_addresses("h.test", &ra, nullptr, false);
  EXPECT_EQ(r.addresses, (std::vector<std::string>{"127.0.0.1"}));
}

// Bounded: 16 addresses per host, and both families keep a share (up to 8) when both exist.
TEST(CombineAddresses, AtMost16KeepingBothFamilies) {
  std::vector<std::string> v4, v6;
  for (int i = 1; i <= 20; ++i) {
    v4.push_back(a(static_cast<unsigned char>(i)));
    v6.push_back(aaaa(static_cast<unsigned char>(i)));
  }
  auto ra = data(v4), r6 = data(v6);
  auto r = combine_addresses("h.test", &ra, &r6, false);
  ASSERT_EQ(r.addresses.size(), kMaxAddresses);
  EXPECT_EQ(r.addresses[0], "127.0.0.1");
  EXPECT_EQ(r.addresses[7], "127.0.0.8");
  EXPECT_EQ(r.addresses[8], "2001:db8::1");
  EXPECT_EQ(r.addresses[15], "2001:db8::8");
  // Few of the other family: the preferred one fills the rest.
  auto r6few = data({aaaa(1), aaaa(2)});
  r = combine_addresses("h.test", &ra, &r6few, false);
  ASSERT_EQ(r.addresses.size(), kMaxAddresses);
  EXPECT_EQ(r.addresses[13], "127.0.0.14");
  EXPECT_EQ(r.addresses[14], "2001:db8::1");
  EXPECT_EQ(r.addresses[15], "2001:db8::2");
  // One family only: 16 of it.
  r = combine_addresses("h.test", &ra, nullptr, false);
  EXPECT_EQ(r.addresses.size(), kMaxAddresses);
}

// An address from one family is enough; the other family's temporary failure is not an error.
TEST(CombineAddresses, OneFamilyFailingTemporarilyStillOk) {
  auto ra = data({a(1)});
  auto r6 = kind(Answer::Kind::TempFail, "SERVFAIL");
  auto r = combine_addresses("h.test", &ra, &r6, false);
  EXPECT_EQ(r.status, Status::Ok);
  EXPECT_EQ(r.addresses.size(), 1u);
}

TEST(CombineAddresses, NoAddressWithTempFailIsTempFail) {
  auto ra = kind(Answer::Kind::TempFail, "SERVFAIL");
  auto r6 = kind(Answer::Kind::NoData);
  auto r = combine_addresses("h.test", &ra, &r6, false);
  EXPECT_EQ(r.status, Status::TempFail);
  EXPECT_NE(r.error.find("SERVFAIL"), std::string::npos) << r.error;
  EXPECT_NE(r.error.find("h.test"), std::string::npos) << r.error;
}

TEST(CombineAddresses, NoDataOrNxDomainIsNotFound) {
  auto nd = kind(Answer::Kind::NoData);
  auto r = combine_addresses("h.test", &nd, &nd, false);
  EXPECT_EQ(r.status, Status::NotFound);
  EXPECT_NE(r.error.find("no address"), std::string::npos) << r.error;
  auto nx = kind(Answer::Kind::NxDomain);
  r = combine_addresses("h.test", &nx, &nx, false);
  EXPECT_EQ(r.status, Status::NotFound);
  EXPECT_NE(r.error.find("NXDOMAIN"), std::string::npos) << r.error;
  // Data whose records are all malformed counts as no address.
  auto junk = data({std::string(5, 'x')});
  r = combine_addresses("h.test", &junk, nullptr, false);
  EXPECT_EQ(r.status, Status::NotFound);
}

namespace {
Host host(std::string name, Status s, std::vector<std::string> addrs = {}, std::string err = {}) {
  Host h;
  h.name = std::move(name);
  h.status = s;
  h.addresses = std::move(addrs);
  h.error = std::move(err);
  return h;
}
}  // namespace

// RFC 5321 5.1: one usable host is enough; the caller skips the others.
TEST(FinishMx, OkIfAnyHostHasAddresses) {
  MxResult r;
  r.hosts = {host("a", Status::TempFail, {}, "A lookup of a failed: SERVFAIL"),
             host("b", Status::NotFound, {}, "b does not exist (NXDOMAIN)"),
             host("c", Status::Ok, {"127.0.0.1"})};
  finish_mx(r);
  EXPECT_EQ(r.status, Status::Ok);
  EXPECT_TRUE(r.error.empty());
}

// Only when every host failed, and at least one temporarily, is the whole lookup temporary.
TEST(FinishMx, TempFailIfNoAddressAndAnyTemporary) {
  MxResult r;
  r.hosts = {host("a", Status::NotFound, {}, "a does not exist (NXDOMAIN)"),
             host("b", Status::TempFail, {}, "A lookup of b failed: SERVFAIL")};
  finish_mx(r);
  EXPECT_EQ(r.status, Status::TempFail);
  EXPECT_NE(r.error.find("SERVFAIL"), std::string::npos) << r.error;
  EXPECT_NE(r.error.find("NXDOMAIN"), std::string::npos) << r.error;
}

// RFC 5321 5.1: MX present but none usable is reported as an error (permanent).
TEST(FinishMx, NotFoundIfEveryHostLacksAddresses) {
  MxResult r;
  r.hosts = {host("a", Status::NotFound, {}, "a has no address record"),
             host("b", Status::NotFound, {}, "b does not exist (NXDOMAIN)")};
  finish_mx(r);
  EXPECT_EQ(r.status, Status::NotFound);
  EXPECT_NE(r.error.find("no MX host has an address"), std::string::npos) << r.error;
  r.implicit = true;
  finish_mx(r);
  EXPECT_EQ(r.status, Status::NotFound);
  EXPECT_NE(r.error.find("no MX and no address"), std::string::npos) << r.error;
}

TEST(FinishMx, NullMxUntouched) {
  MxResult r;
  r.status = Status::NullMx;
  r.error = "null";
  finish_mx(r);
  EXPECT_EQ(r.status, Status::NullMx);
  EXPECT_EQ(r.error, "null");
}

TEST(StatusNames, Distinct) {
  std::set<std::string_view> s{to_string(Status::Ok), to_string(Status::NullMx), to_string(Status::NotFound),
                               to_string(Status::TempFail)};
  EXPECT_EQ(s.size(), 4u);
}
