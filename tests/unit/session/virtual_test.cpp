// carrier session tests: virtual (hosted) domains in the RCPT decision — each with its own
// mailboxes, aliases and catch-all; unknown users 550 5.1.1 (RFC 5321 3.3, 4.2.2); postmaster
// in every domain (RFC 5321 4.5.1); targets across domains and to other MTAs.
#include <gtest/gtest.h>

#include "proto/address.hpp"
#include "session/policy.hpp"

namespace carrier::session {
namespace {

LocalPolicyData data() {
  LocalPolicyData d;
  d.domains = {"localhost"};
  d.mailboxes = {"postmaster", "demo"};
  d.trusted_networks = {};
  VirtualDomainData a;
  a.domain = "Example.ORG";
  a.mailboxes = {"alice", "Bob"};
  a.aliases = {{"info", {"alice", "bob"}},
               {"sales", {"carol@example.net", "outside@elsewhere.test"}},
               {"ops", {"demo@localhost"}}};
  VirtualDomainData b;
  b.domain = "example.net";
  b.mailboxes = {"carol"};
  b.catch_all = "carol";
  d.virtual_domains = {a, b};
  return d;
}

RcptDecision check(const LocalPolicy& p, const char* addr) {
  auto m = proto::parse_mailbox(addr, true);
  EXPECT_TRUE(m) << addr;
  return p.check(*m, ClientInfo{"192.0.2.1", "", 1, false, false, "", "", {}, {}});
}

std::vector<std::string> boxes(const RcptDecision& d) {
  std::vector<std::string> r;
  for (const auto& x : d.recipients)
    r.push_back(x.route == proto::RcptRoute::Local ? x.mailbox : "relay:" + x.address.str());
  return r;
}

TEST(VirtualDomains, MailboxesAliasesAndUnknownUsers) {
  LocalPolicy p(data());
  EXPECT_TRUE(p.is_local_domain("example.org"));
  EXPECT_TRUE(p.is_virtual_domain("EXAMPLE.org."));
  EXPECT_FALSE(p.is_virtual_domain("localhost"));
  auto a = check(p, "Alice@example.org");
  ASSERT_TRUE(a.accept);
  EXPECT_EQ(boxes(a), (std::vector<std::string>{"alice@example.org"}));
  EXPECT_EQ(boxes(check(p, "bob+tag@example.org")), (std::vector<std::string>{"bob@example.org"}));
  EXPECT_EQ(boxes(check(p, "info@example.org")),
            (std::vector<std::string>{"alice@example.org", "bob@example.org"}));
  // Targets in another virtual domain, outside (relayed) and in [local].
  EXPECT_EQ(boxes(check(p, "sales@example.org")),
            (std::vector<std::string>{"carol@example.net", "relay:outside@elsewhere.test"}));
  EXPECT_EQ(boxes(check(p, "ops@example.org")), (std::vector<std::string>{"demo"}));
  // Names are per domain: demo is a [local] mailbox, not one of example.org.
  auto u = check(p, "demo@example.org");
  EXPECT_FALSE(u.accept);
  EXPECT_EQ(u.reply.code, 550);
  EXPECT_EQ(u.reply.status, "5.1.1");
  EXPECT_FALSE(check(p, "alice@localhost").accept);
  // RFC 5321 4.5.1: postmaster in every domain.
  EXPECT_EQ(boxes(check(p, "postmaster@example.org")), (std::vector<std::string>{"postmaster"}));
}

TEST(VirtualDomains, CatchAllTakesEveryOtherLocalPart) {
  LocalPolicy p(data());
  EXPECT_EQ(boxes(check(p, "anything@example.net")), (std::vector<std::string>{"carol@example.net"}));
  auto r = check(p, "whoever@example.net");
  ASSERT_TRUE(r.accept);
  EXPECT_EQ(r.recipients[0].original.str(), "whoever@example.net");
}

TEST(VirtualDomains, NoRelayThroughAVirtualDomain) {
  LocalPolicy p(data());
  // Percent hack and quoted @ stay unknown local names, never routes.
  EXPECT_FALSE(check(p, "user%elsewhere.test@example.org").accept);
  EXPECT_FALSE(check(p, "\"x@elsewhere.test\"@example.org").accept);
  EXPECT_EQ(check(p, "x@elsewhere.test").reply.code, 554);
}

}  // namespace
}  // namespace carrier::session
