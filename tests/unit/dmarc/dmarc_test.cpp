// DMARC (RFC 7489): Public Suffix List, record parsing, alignment, policy with pct.
#include <gtest/gtest.h>

#include "dmarc/dmarc.hpp"

using namespace carrier::dmarc;

namespace {

const PublicSuffixList& psl() {
  static const PublicSuffixList p = PublicSuffixList::parse(
      "// comment\n"
      "com\n"
      "uk\n"
      "co.uk\n"
      "*.ck\n"
      "!www.ck\n"
      "test   trailing words ignored\n"
      "\n");
  return p;
}

}  // namespace

TEST(Psl, PublicSuffixAndOrganizationalDomain) {
  EXPECT_EQ(psl().public_suffix("mail.example.com"), "com");
  EXPECT_EQ(psl().organizational_domain("mail.example.com"), "example.com");
  EXPECT_EQ(psl().organizational_domain("a.b.example.co.uk"), "example.co.uk");
  EXPECT_EQ(psl().organizational_domain("Example.CO.UK."), "example.co.uk");
  // Wildcard: every label under ck is a suffix, except www.ck.
  EXPECT_EQ(psl().public_suffix("shop.foo.ck"), "foo.ck");
  EXPECT_EQ(psl().organizational_domain("a.shop.foo.ck"), "shop.foo.ck");
  EXPECT_EQ(psl().public_suffix("www.ck"), "ck");
  EXPECT_EQ(psl().organizational_domain("x.www.ck"), "www.ck");
  // The implicit "*" rule; a public suffix is its own organizational domain.
  EXPECT_EQ(psl().organizational_domain("a.b.unlisted"), "b.unlisted");
  EXPECT_EQ(psl().organizational_domain("co.uk"), "co.uk");
  EXPECT_EQ(psl().organizational_domain("localhost"), "localhost");
  EXPECT_EQ(psl().organizational_domain(""), "");
}

TEST(Psl, TheDebianListLoads) {
  auto p = PublicSuffixList::load("/usr/share/publicsuffix/public_suffix_list.dat");
  ASSERT_TRUE(p) << p.error().message;
  EXPECT_GT(p->size(), 5000u);
  EXPECT_EQ(p->organizational_domain("a.b.example.co.uk"), "example.co.uk");
  EXPECT_EQ(p->organizational_domain("mail.example.org"), "example.org");
  auto missing = PublicSuffixList::load("/nonexistent/psl.dat");
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find("cannot read /nonexistent/psl.dat"), std::string::npos);
}

TEST(DmarcRecord, Parses) {
  auto r = parse_record("v=DMARC1; p=reject; sp=quarantine; adkim=s; aspf=r; pct=30; rua=mailto:d@example.com");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->p, Policy::Reject);
  ASSERT_TRUE(r->sp);
  EXPECT_EQ(*r->sp, Policy::Quarantine);
  EXPECT_TRUE(r->adkim_strict);
  EXPECT_FALSE(r->aspf_strict);
  EXPECT_EQ(r->pct, 30);
  r = parse_record("v=DMARC1;p=none");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->p, Policy::None);
  EXPECT_FALSE(r->sp);
  EXPECT_EQ(r->pct, 100);
  r = parse_record("  v = DMARC1 ; p = Quarantine ; unknown=tag ;");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->p, Policy::Quarantine);
}

TEST(DmarcRecord, NotDmarcOrInvalid) {
  std::string why;
  EXPECT_FALSE(parse_record("v=spf1 -all", &why));
  EXPECT_TRUE(why.empty());
  EXPECT_FALSE(parse_record("p=reject; v=DMARC1", &why));  // v= must come first
  EXPECT_TRUE(why.empty());
  EXPECT_FALSE(parse_record("v=DMARC2; p=reject", &why));
  EXPECT_FALSE(parse_record("v=DMARC1; p=maybe", &why));
  EXPECT_EQ(why, "p= must be none, quarantine or reject");
  EXPECT_FALSE(parse_record("v=DMARC1", &why));
  EXPECT_EQ(why, "no p= tag");
  EXPECT_FALSE(parse_record("v=DMARC1; p=reject; pct=101", &why));
  EXPECT_EQ(why, "pct= must be 0..100");
  EXPECT_FALSE(parse_record("v=DMARC1; p=reject; adkim=x", &why));
  EXPECT_EQ(why, "adkim= must be r or s");
  EXPECT_FALSE(parse_record("v=DMARC1; p=reject; junk", &why));
  EXPECT_FALSE(parse_record("v=DMARC1; p=reject; x=" + std::string(5000, 'a'), &why));
  EXPECT_EQ(why, "record longer than 4096 bytes");
  // RFC 7489 6.6.3: an invalid p= with a rua= is p=none.
  auto r = parse_record("v=DMARC1; p=bogus; rua=mailto:a@b.c");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->p, Policy::None);
}

TEST(DmarcRecord, ExactlyOneRecordAtAName) {
  bool several = false;
  auto r = pick_record({"v=spf1 -all", "v=DMARC1; p=reject"}, &several);
  ASSERT_TRUE(r);
  EXPECT_FALSE(several);
  EXPECT_FALSE(pick_record({"v=DMARC1; p=reject", "v=DMARC1; p=none"}, &several));
  EXPECT_TRUE(several);
  EXPECT_FALSE(pick_record({"v=spf1 -all"}, &several));
  EXPECT_FALSE(several);
  EXPECT_FALSE(pick_record({"v=DMARC1; p=what"}));
}

TEST(DmarcAlignment, RelaxedAndStrict) {
  EXPECT_TRUE(aligned("example.com", "EXAMPLE.com", true, psl()));
  EXPECT_FALSE(aligned("mail.example.com", "example.com", true, psl()));
  EXPECT_TRUE(aligned("mail.example.com", "example.com", false, psl()));
  EXPECT_TRUE(aligned("a.example.co.uk", "b.example.co.uk", false, psl()));
  EXPECT_FALSE(aligned("example.co.uk", "other.co.uk", false, psl()));
  EXPECT_FALSE(aligned("", "example.com", false, psl()));
}

TEST(DmarcEvaluate, PassByEitherAlignedMethod) {
  Record rec = *parse_record("v=DMARC1; p=reject");
  Input in{"example.com", "pass", "bounces.example.com", {}};
  auto o = evaluate(in, rec, "example.com", psl(), 0);
  EXPECT_EQ(o.result, "pass");
  EXPECT_TRUE(o.spf_aligned);
  in = Input{"example.com", "fail", "other.net", {"other.net", "mail.example.com"}};
  o = evaluate(in, rec, "example.com", psl(), 0);
  EXPECT_EQ(o.result, "pass");
  EXPECT_TRUE(o.dkim_aligned);
  EXPECT_FALSE(o.spf_aligned);
  // Strict DKIM alignment: a subdomain's signature no longer counts.
  rec = *parse_record("v=DMARC1; p=reject; adkim=s");
  o = evaluate(in, rec, "example.com", psl(), 0);
  EXPECT_EQ(o.result, "fail");
  EXPECT_EQ(o.policy, Policy::Reject);
}

TEST(DmarcEvaluate, FailPolicySubdomainsAndPct) {
  Record rec = *parse_record("v=DMARC1; p=reject; sp=quarantine; pct=50");
  Input in{"news.example.com", "softfail", "example.com", {}};
  // Found at the organizational domain: sp= applies.
  auto o = evaluate(in, rec, "example.com", psl(), 10);
  EXPECT_EQ(o.result, "fail");
  EXPECT_EQ(o.policy, Policy::Quarantine);
  // Outside the pct sample: one step down.
  o = evaluate(in, rec, "example.com", psl(), 70);
  EXPECT_EQ(o.policy, Policy::None);
  // Found at the From domain itself: p= applies.
  in.from_domain = "example.com";
  o = evaluate(in, rec, "example.com", psl(), 10);
  EXPECT_EQ(o.policy, Policy::Reject);
  o = evaluate(in, rec, "example.com", psl(), 50);
  EXPECT_EQ(o.policy, Policy::Quarantine);
  // A passing SPF for an unrelated domain does not help.
  in = Input{"example.com", "pass", "spammer.net", {"spammer.net"}};
  o = evaluate(in, rec, "example.com", psl(), 0);
  EXPECT_EQ(o.result, "fail");
}
