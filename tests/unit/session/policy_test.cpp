// carrier session tests: the recipient policy (LocalPolicy) and Cidr, directly and through the
// session. Local users, unknown users (RFC 5321 4.2.2 / RFC 3463 5.1.1), postmaster in any
// case and without a domain (RFC 5321 4.5.1, 4.1.1.3), subaddresses, aliases (nested, to an
// outside address, cycles), duplicate recipients, relay control (RFC 5321 3.6.2, 7.9; RFC
// 3463 5.7.1) for trusted IPv4/IPv6/IPv4-mapped clients, and the classic relay tricks: percent
// hack, bang path, quoted "@", source route (RFC 5321 4.1.2, Appendix C, 3.6.1), address
// literals (4.1.3); domain case and trailing dot (RFC 5321 2.4, 2.3.5).
#include <gtest/gtest.h>

#include <string>

#include "proto/address.hpp"
#include "session_harness.hpp"

namespace carrier::session::test {
namespace {

// The mailbox the RCPT parser produces for "<...>" (source routes dropped as in the session).
proto::Mailbox rcpt(std::string_view path) {
  auto p = proto::parse_path(path, false, true);
  EXPECT_TRUE(p.has_value()) << path;
  return p ? p->mailbox : proto::Mailbox{};
}

RcptDecision decide(std::string_view path, std::string ip = "192.0.2.10") {
  static const LocalPolicy policy(test_policy());
  return policy.check(rcpt(path), client_at(std::move(ip)));
}

// ---------------------------------------------------------------- local recipients

TEST(LocalPolicy, LocalUser) {  // RFC 5321 3.3
  auto d = decide("<alice@localhost>");
  ASSERT_TRUE(d.accept);
  ASSERT_EQ(d.recipients.size(), 1u);
  EXPECT_EQ(d.recipients[0].route, proto::RcptRoute::Local);
  EXPECT_EQ(d.recipients[0].mailbox, "alice");
  EXPECT_EQ(d.recipients[0].original.str(), "alice@localhost");
  EXPECT_EQ(d.recipients[0].address.str(), "alice@localhost");
}

TEST(LocalPolicy, MailboxNamesAreCaseInsensitive) {  // configured "Carol"
  for (auto p : {"<carol@localhost>", "<CAROL@localhost>", "<Carol@example.test>"}) {
    auto d = decide(p);
    ASSERT_TRUE(d.accept) << p;
    EXPECT_EQ(d.recipients[0].mailbox, "carol") << p;
    EXPECT_EQ(d.recipients[0].original, rcpt(p)) << "the original is kept as written";
  }
}

TEST(LocalPolicy, UnknownUser) {  // RFC 5321 4.2.2 550; RFC 3463 X.1.1
  auto d = decide("<nobody@localhost>");
  EXPECT_FALSE(d.accept);
  EXPECT_TRUE(d.recipients.empty());
  EXPECT_EQ(d.reply.code, 550);
  EXPECT_EQ(d.reply.status, "5.1.1");
  EXPECT_EQ(d.reply.render(), "550 5.1.1 <nobody@localhost>: Recipient address rejected: User unknown\r\n");
}

TEST(LocalPolicy, PostmasterInAnyCase) {  // RFC 5321 4.5.1: case-insensitive, always accepted
  for (auto p : {"<postmaster@localhost>", "<Postmaster@localhost>", "<POSTMASTER@example.test>",
                 "<poStmASteR@LOCALHOST>", "<postmaster+tag@localhost>"}) {
    auto d = decide(p);
    ASSERT_TRUE(d.accept) << p;
    ASSERT_EQ(d.recipients.size(), 1u);
    EXPECT_EQ(d.recipients[0].route, proto::RcptRoute::Local);
    EXPECT_EQ(d.recipients[0].mailbox, "postmaster") << p;
  }
  // ... also from clients that may not relay, and even though it is not in the mailboxes.
  EXPECT_TRUE(decide("<postmaster@localhost>", "198.51.100.7").accept);
}

TEST(LocalPolicy, PostmasterAliasIsFollowed) {  // RFC 5321 4.5.1
  LocalPolicyData pd = test_policy();
  pd.aliases["PostMaster"] = {"alice"};
  LocalPolicy p(pd);
  auto d = p.check(rcpt("<postmaster@localhost>"), untrusted_client());
  ASSERT_TRUE(d.accept);
  ASSERT_EQ(d.recipients.size(), 1u);
  EXPECT_EQ(d.recipients[0].mailbox, "alice");
}

TEST(LocalPolicy, Subaddress) {  // user+tag → user (recipient_delimiter)
  auto d = decide("<alice+lists@localhost>");
  ASSERT_TRUE(d.accept);
  ASSERT_EQ(d.recipients.size(), 1u);
  EXPECT_EQ(d.recipients[0].mailbox, "alice");
  EXPECT_EQ(d.recipients[0].original.str(), "alice+lists@localhost");
  EXPECT_TRUE(decide("<alice+@localhost>").accept);
  EXPECT_TRUE(decide("<alice+a+b@localhost>").accept);
  // the part before the delimiter must be a name: "+tag" alone is not alice
  EXPECT_EQ(decide("<+alice@localhost>").reply.status, "5.1.1");
  EXPECT_EQ(decide("<nobody+alice@localhost>").reply.status, "5.1.1");
  // a subaddress of an alias expands the alias
  auto t = decide("<team+x@localhost>");
  ASSERT_TRUE(t.accept);
  EXPECT_EQ(t.recipients.size(), 2u);
}

TEST(LocalPolicy, OtherDelimiterOrNone) {
  LocalPolicyData pd = test_policy();
  pd.recipient_delimiter = "-";
  LocalPolicy dash(pd);
  EXPECT_TRUE(dash.check(rcpt("<alice-x@localhost>"), untrusted_client()).accept);
  EXPECT_FALSE(dash.check(rcpt("<alice+x@localhost>"), untrusted_client()).accept);
  pd.recipient_delimiter = "";
  LocalPolicy none(pd);
  EXPECT_FALSE(none.check(rcpt("<alice+x@localhost>"), untrusted_client()).accept);
  EXPECT_TRUE(none.check(rcpt("<alice@localhost>"), untrusted_client()).accept);
}

TEST(LocalPolicy, QuotedLocalPartIsUnquotedForLookup) {  // RFC 5321 4.1.2 Quoted-string
  auto d = decide(R"(<"alice"@localhost>)");
  ASSERT_TRUE(d.accept);
  EXPECT_EQ(d.recipients[0].mailbox, "alice");
}

TEST(LocalPolicy, AliasFanOut) {
  auto d = decide("<team@localhost>");
  ASSERT_TRUE(d.accept);
  ASSERT_EQ(d.recipients.size(), 2u);
  EXPECT_EQ(d.recipients[0].mailbox, "alice");
  EXPECT_EQ(d.recipients[1].mailbox, "bob");
  for (const auto& r : d.recipients) {
    EXPECT_EQ(r.route, proto::RcptRoute::Local);
    EXPECT_EQ(r.original.str(), "team@localhost");
  }
}

TEST(LocalPolicy, NestedAliases) {  // all → team → alice, bob; carol
  auto d = decide("<ALL@localhost>");
  ASSERT_TRUE(d.accept);
  ASSERT_EQ(d.recipients.size(), 3u);
  EXPECT_EQ(d.recipients[0].mailbox, "alice");
  EXPECT_EQ(d.recipients[1].mailbox, "bob");
  EXPECT_EQ(d.recipients[2].mailbox, "carol");
}

TEST(LocalPolicy, AliasTargetInALocalDomainIsLocal) {  // Sales → Carol@LOCALHOST
  auto d = decide("<sales@example.test>");
  ASSERT_TRUE(d.accept);
  ASSERT_EQ(d.recipients.size(), 1u);
  EXPECT_EQ(d.recipients[0].route, proto::RcptRoute::Local);
  EXPECT_EQ(d.recipients[0].mailbox, "carol");
}

TEST(LocalPolicy, AliasToAnOutsideAddressIsRelayed) {  // configured forwarding, any client
  auto d = decide("<ext@localhost>", "198.51.100.7");
  ASSERT_TRUE(d.accept);
  ASSERT_EQ(d.recipients.size(), 1u);
  EXPECT_EQ(d.recipients[0].route, proto::RcptRoute::Relay);
  EXPECT_EQ(d.recipients[0].address.str(), "someone@other.test");
  EXPECT_EQ(d.recipients[0].original.str(), "ext@localhost");
  auto m = decide("<mixed@localhost>");
  ASSERT_TRUE(m.accept);
  ASSERT_EQ(m.recipients.size(), 2u);
  EXPECT_EQ(m.recipients[0].route, proto::RcptRoute::Local);
  EXPECT_EQ(m.recipients[1].route, proto::RcptRoute::Relay);
  EXPECT_EQ(m.recipients[1].address.str(), "x@other.test");
}

TEST(LocalPolicy, AliasCycleIsBoundedAndRejected) {  // untrusted input must not loop
  auto d = decide("<loop1@localhost>");
  EXPECT_FALSE(d.accept);
  EXPECT_EQ(d.reply.code, 550);
}

TEST(LocalPolicy, LocalDomainCaseAndTrailingDot) {  // RFC 5321 2.4 (case), 2.3.5 (FQDN dot)
  for (auto p : {"<alice@LOCALHOST>", "<alice@LocalHost>", "<alice@localhost.>",
                 "<alice@EXAMPLE.test.>"}) {
    auto d = decide(p);
    ASSERT_TRUE(d.accept) << p;
    EXPECT_EQ(d.recipients[0].route, proto::RcptRoute::Local) << p;
  }
  LocalPolicy p(test_policy());
  EXPECT_TRUE(p.is_local_domain("example.test"));  // configured as "Example.TEST."
  EXPECT_TRUE(p.is_local_domain("LOCALHOST."));
  EXPECT_FALSE(p.is_local_domain("localhost.localdomain"));
  EXPECT_FALSE(p.is_local_domain("host"));
  EXPECT_FALSE(p.is_local_domain(""));
}

// ---------------------------------------------------------------- relaying

TEST(LocalPolicy, RelayDeniedForUntrusted) {  // RFC 5321 3.6.2 / 7.9; RFC 3463 X.7.1
  auto d = decide("<u@other.test>", "192.0.2.10");
  EXPECT_FALSE(d.accept);
  EXPECT_EQ(d.reply.render(), "554 5.7.1 <u@other.test>: Relay access denied\r\n");
}

TEST(LocalPolicy, RelayAllowedForTrustedNetworks) {
  for (auto ip : {"127.0.0.1", "127.255.255.254", "2001:db8::1", "2001:db8:ffff::7",
                  "::ffff:127.0.0.1", "::FFFF:127.1.2.3"}) {
    auto d = decide("<u@other.test>", ip);
    ASSERT_TRUE(d.accept) << ip;
    ASSERT_EQ(d.recipients.size(), 1u);
    EXPECT_EQ(d.recipients[0].route, proto::RcptRoute::Relay) << ip;
    EXPECT_EQ(d.recipients[0].address.str(), "u@other.test");
    EXPECT_EQ(d.recipients[0].original.str(), "u@other.test");
  }
  for (auto ip : {"128.0.0.1", "10.0.0.1", "2001:db9::1", "::1", "::ffff:192.0.2.1",
                  "::127.0.0.1", "", "not-an-ip"}) {
    EXPECT_FALSE(decide("<u@other.test>", ip).accept) << ip;
  }
}

TEST(LocalPolicy, LocalRecipientsDoNotNeedTrust) {
  EXPECT_TRUE(decide("<alice@localhost>", "203.0.113.9").accept);
  EXPECT_TRUE(decide("<alice@localhost>", "2001:db9::1").accept);
}

TEST(LocalPolicy, PercentHackBangPathAndQuotedAtNeverRelay) {
  // RFC 5321 3.6.1 / Appendix B-C: the local part is opaque; these are unknown local names.
  for (auto ip : {"192.0.2.10", "127.0.0.1"}) {
    for (auto p : {"<u%other.test@localhost>", "<other.test!u@localhost>",
                   R"(<"u@other.test"@localhost>)", "<alice%other.test@localhost>",
                   "<other.test!alice@localhost>", R"(<"alice@other.test"@localhost>)"}) {
      auto d = decide(p, ip);
      EXPECT_FALSE(d.accept) << p << " from " << ip;
      EXPECT_EQ(d.reply.status, "5.1.1") << p << " from " << ip;
    }
  }
}

TEST(LocalPolicy, SourceRouteIsDroppedSoTheFinalDomainCounts) {  // RFC 5321 4.1.2, App. C
  auto m = rcpt("<@localhost:u@other.test>");
  EXPECT_EQ(m.str(), "u@other.test");
  auto d = decide("<@localhost:u@other.test>");
  EXPECT_FALSE(d.accept);
  EXPECT_EQ(d.reply.status, "5.7.1");
  EXPECT_TRUE(decide("<@other.test,@x.test:alice@localhost>").accept);
}

TEST(LocalPolicy, AddressLiteralIsNeverLocal) {  // RFC 5321 4.1.3
  auto d = decide("<u@[127.0.0.1]>", "192.0.2.10");
  EXPECT_FALSE(d.accept);
  EXPECT_EQ(d.reply.status, "5.7.1");
  EXPECT_FALSE(decide("<alice@[IPv6:::1]>", "192.0.2.10").accept);
  auto t = decide("<u@[192.0.2.1]>", "127.0.0.1");
  ASSERT_TRUE(t.accept);
  EXPECT_EQ(t.recipients[0].route, proto::RcptRoute::Relay);
}

// ---------------------------------------------------------------- Cidr

TEST(Cidr, ParseRejectsGarbage) {
  for (std::string_view s : {"", "/", "/8", "10.0.0.0/", "10.0.0.0/33", "0.0.0.0/99",
                             "10.0.0.0/1000", "::/129", "2001:db8::/200", "10.0.0.0/8/8",
                             "10.0.0.0/a", "10.0.0.0/+8", "10.0.0.0/-1", "10.0.0.0/ 8",
                             "10.0.0.0/8 ", " 10.0.0.0/8", "10.0.0", "256.0.0.0/8", "10.0.0.0.0",
                             "localhost", "example.test/24", "::g/64", "1:2:3:4:5:6:7:8:9",
                             "[::1]/128"}) {
    EXPECT_FALSE(Cidr::parse(s).has_value()) << "'" << s << "'";
  }
}

TEST(Cidr, ParseRejectsEmbeddedNul) {  // a NUL must not cut the text short
  using namespace std::string_view_literals;
  EXPECT_FALSE(Cidr::parse("10.0.0.1\0garbage"sv).has_value());
  EXPECT_FALSE(Cidr::parse("::1\0/200"sv).has_value());
}

TEST(Cidr, ParseAccepts) {
  for (std::string_view s : {"10.0.0.0/8", "0.0.0.0/0", "192.0.2.1", "192.0.2.1/32",
                             "2001:db8::/32", "::/0", "::1", "::1/128", "::ffff:0:0/96"}) {
    EXPECT_TRUE(Cidr::parse(s).has_value()) << s;
  }
}

TEST(Cidr, ContainsIpv4) {
  auto c = Cidr::parse("10.0.0.0/9");  // a prefix that splits a byte
  ASSERT_TRUE(c);
  EXPECT_TRUE(c->contains("10.0.0.0"));
  EXPECT_TRUE(c->contains("10.127.255.255"));
  EXPECT_FALSE(c->contains("10.128.0.0"));
  EXPECT_FALSE(c->contains("11.0.0.1"));
  auto one = Cidr::parse("192.0.2.7");  // a bare address is /32
  ASSERT_TRUE(one);
  EXPECT_TRUE(one->contains("192.0.2.7"));
  EXPECT_FALSE(one->contains("192.0.2.6"));
  auto all = Cidr::parse("0.0.0.0/0");
  ASSERT_TRUE(all);
  EXPECT_TRUE(all->contains("255.255.255.255"));
  EXPECT_TRUE(all->contains("::ffff:1.2.3.4"));   // IPv4-mapped
  EXPECT_FALSE(all->contains("2001:db8::1"));     // not IPv4 at all
  EXPECT_FALSE(all->contains("garbage"));
  EXPECT_FALSE(all->contains(""));
}

TEST(Cidr, ContainsIpv6AndMapped) {
  auto c = Cidr::parse("2001:db8:8000::/33");
  ASSERT_TRUE(c);
  EXPECT_TRUE(c->contains("2001:db8:8000::1"));
  EXPECT_TRUE(c->contains("2001:DB8:FFFF:FFFF::1"));
  EXPECT_FALSE(c->contains("2001:db8:7fff::1"));
  EXPECT_FALSE(c->contains("192.0.2.1"));
  auto lo = Cidr::parse("::1");
  ASSERT_TRUE(lo);
  EXPECT_TRUE(lo->contains("::1"));
  EXPECT_TRUE(lo->contains("0:0:0:0:0:0:0:1"));
  EXPECT_FALSE(lo->contains("::2"));
  EXPECT_FALSE(lo->contains("127.0.0.1"));
  auto v4 = Cidr::parse("192.0.2.0/24");
  ASSERT_TRUE(v4);
  EXPECT_TRUE(v4->contains("::ffff:192.0.2.200"));
  EXPECT_FALSE(v4->contains("::ffff:192.0.3.1"));
  EXPECT_FALSE(v4->contains("64:ff9b::192.0.2.1"));  // NAT64 is not IPv4-mapped
}

TEST(LocalPolicy, TrustsOnlyTheConfiguredNetworks) {
  LocalPolicyData pd = test_policy();
  pd.trusted_networks = {"192.0.2.0/24"};
  LocalPolicy p(pd);
  EXPECT_TRUE(p.is_trusted("192.0.2.1"));
  EXPECT_TRUE(p.is_trusted("::ffff:192.0.2.1"));
  EXPECT_FALSE(p.is_trusted("127.0.0.1"));
  pd.trusted_networks = {};
  LocalPolicy none(pd);
  EXPECT_FALSE(none.is_trusted("127.0.0.1"));  // nothing is trusted by default
}

// ---------------------------------------------------------------- through the session

TEST_F(SessionTest, PolicyTranscriptUntrusted) {
  Smtp t;  // 192.0.2.10: not trusted
  t.greet();
  transcript(t, {
      {"MAIL FROM:<a@b.example>", "250 2.1.0"},
      {"RCPT TO:<alice@localhost>", "250 2.1.5"},
      {"RCPT TO:<nobody@localhost>",
       "550 5.1.1 <nobody@localhost>: Recipient address rejected: User unknown"},
      {"RCPT TO:<PostMaster@localhost>", "250 2.1.5"},
      {"RCPT TO:<alice+tag@localhost>", "250 2.1.5"},
      {"RCPT TO:<u@other.test>", "554 5.7.1 <u@other.test>: Relay access denied"},
      {"RCPT TO:<u%other.test@localhost>", "550 5.1.1"},
      {"RCPT TO:<other.test!u@localhost>", "550 5.1.1"},
      {"RCPT TO:<\"u@other.test\"@localhost>", "550 5.1.1"},
      {"RCPT TO:<@localhost:u@other.test>", "554 5.7.1"},
      {"RCPT TO:<u@[127.0.0.1]>", "554 5.7.1"},
      {"RCPT TO:<alice@LOCALHOST>", "250 2.1.5"},
      {"RCPT TO:<bob@localhost.>", "250 2.1.5"},
      {"RCPT TO:<ext@localhost>", "250 2.1.5"},
  });
  // alice (3 times: plain, +tag, upper-case domain) is one recipient
  const auto& r = t.env().recipients;
  ASSERT_EQ(r.size(), 4u);
  EXPECT_EQ(r[0].mailbox, "alice");
  EXPECT_EQ(r[1].mailbox, "postmaster");
  EXPECT_EQ(r[2].mailbox, "bob");
  EXPECT_EQ(r[3].route, proto::RcptRoute::Relay);
  EXPECT_EQ(r[3].address.str(), "someone@other.test");
  // The rejections were logged.
  int rejected = 0;
  for (const auto& e : t.s().events()) rejected += e.kind == ServerSession::Event::Rejected;
  EXPECT_EQ(rejected, 7);
}

TEST_F(SessionTest, PostmasterWithoutDomain) {
  // RFC 5321 4.1.1.3: rcpt = "RCPT TO:" ( "<Postmaster@" Domain ">" / "<Postmaster>" /
  // Forward-path ); 4.5.1: "RCPT TO:<Postmaster>" (no domain) MUST be supported.
  Smtp t;
  t.greet();
  transcript(t, {
      {"MAIL FROM:<a@b.example>", "250 2.1.0"},
      {"RCPT TO:<Postmaster>", "250 2.1.5"},
  });
  ASSERT_EQ(t.env().recipients.size(), 1u);
  EXPECT_EQ(t.env().recipients[0].route, proto::RcptRoute::Local);
  EXPECT_EQ(t.env().recipients[0].mailbox, "postmaster");
  EXPECT_TRUE(reply_is(t.C("RCPT TO:<POSTMASTER>"), "250 2.1.5"));
  EXPECT_EQ(t.env().recipients.size(), 1u);  // the same mailbox
  // Only exactly that form: other domain-less paths stay syntax errors (RFC 5321 4.1.2).
  transcript(t, {
      {"RCPT TO:<postmasters>", "501 5.1.3"},
      {"RCPT TO:<alice>", "501 5.1.3"},
      {"RCPT TO:<Postmaster>x", "501"},
  });
  // ... and it takes RCPT parameters like any forward-path (RFC 3461 4.1).
  Smtp u;
  u.greet();
  transcript(u, {
      {"MAIL FROM:<a@b.example>", "250 2.1.0"},
      {"RCPT TO:<Postmaster> NOTIFY=FAILURE", "250 2.1.5"},
  });
  ASSERT_EQ(u.env().recipients.size(), 1u);
  EXPECT_EQ(u.env().recipients[0].mailbox, "postmaster");
  EXPECT_EQ(u.env().recipients[0].notify, proto::kNotifyFailure);
}

TEST_F(SessionTest, PolicyTranscriptTrusted) {
  for (auto ip : {"127.0.0.1", "2001:db8::25", "::ffff:127.0.0.1"}) {
    SCOPED_TRACE(ip);
    Smtp t(test_config(), test_policy(), client_at(ip));
    t.greet();
    transcript(t, {
        {"MAIL FROM:<a@b.example>", "250 2.1.0"},
        {"RCPT TO:<u@other.test>", "250 2.1.5"},
        {"RCPT TO:<@localhost:v@other.test>", "250 2.1.5"},
        {"RCPT TO:<w@[192.0.2.1]>", "250 2.1.5"},
        {"RCPT TO:<u%other.test@localhost>", "550 5.1.1"},  // still never a relay
        {"RCPT TO:<nobody@localhost>", "550 5.1.1"},
    });
    const auto& r = t.env().recipients;
    ASSERT_EQ(r.size(), 3u);
    for (const auto& x : r) EXPECT_EQ(x.route, proto::RcptRoute::Relay);
  }
}

TEST_F(SessionTest, DuplicateRecipientsCollapse) {  // one copy per final destination
  Smtp t(test_config(), test_policy(), client_at("127.0.0.1"));
  t.greet();
  transcript(t, {
      {"MAIL FROM:<a@b.example>", "250 2.1.0"},
      {"RCPT TO:<team@localhost>", "250 2.1.5"},       // alice, bob
      {"RCPT TO:<all@localhost>", "250 2.1.5"},        // + carol
      {"RCPT TO:<ALICE@localhost>", "250 2.1.5"},
      {"RCPT TO:<alice+x@example.test>", "250 2.1.5"},
      {"RCPT TO:<mixed@localhost>", "250 2.1.5"},      // alice, + x@other.test
      {"RCPT TO:<x@other.test>", "250 2.1.5"},         // the same outside address
      {"RCPT TO:<ext@localhost>", "250 2.1.5"},        // + someone@other.test
  });
  const auto& r = t.env().recipients;
  ASSERT_EQ(r.size(), 5u);
  EXPECT_EQ(r[0].mailbox, "alice");
  EXPECT_EQ(r[1].mailbox, "bob");
  EXPECT_EQ(r[2].mailbox, "carol");
  EXPECT_EQ(r[3].address.str(), "x@other.test");
  EXPECT_EQ(r[4].address.str(), "someone@other.test");
  // The first RCPT that reached a mailbox stays its original.
  EXPECT_EQ(r[0].original.str(), "team@localhost");
}

TEST_F(SessionTest, DuplicateRelayRecipientsCollapseAcrossDomainCase) {
  // RFC 5321 2.4: domain names are case-insensitive (and 2.3.5: "other.test." is the same
  // FQDN); only the local part may be case-sensitive. The same destination twice is one copy.
  Smtp t(test_config(), test_policy(), client_at("127.0.0.1"));
  t.greet();
  transcript(t, {
      {"MAIL FROM:<a@b.example>", "250 2.1.0"},
      {"RCPT TO:<u@other.test>", "250 2.1.5"},
      {"RCPT TO:<u@OTHER.TEST>", "250 2.1.5"},
      {"RCPT TO:<u@other.test.>", "250 2.1.5"},
      {"RCPT TO:<U@other.test>", "250 2.1.5"},  // a different local part: kept
  });
  EXPECT_EQ(t.env().recipients.size(), 2u);
}

}  // namespace
}  // namespace carrier::session::test
