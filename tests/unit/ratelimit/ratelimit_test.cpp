// Tests for src/ratelimit: token buckets (refill over the window, bounded keys) and the gate's
// replies at MAIL (421 4.7.0 for a client IP, 450 4.7.1 for a user or sender domain; RFC 5321
// 3.8, 4.5.3.1.10) and RCPT (450 4.7.1), counting at commit, and bounces never counted against
// users or sender domains.
#include "ratelimit/ratelimit.hpp"

#include <gtest/gtest.h>

namespace carrier::ratelimit {
namespace {

using namespace std::chrono_literals;
using TP = std::chrono::steady_clock::time_point;

TEST(Buckets, StartFullEmptyAndRefillEvenlyOverTheWindow) {
  Buckets b(10, 100s, 100);
  TP t0{};
  EXPECT_DOUBLE_EQ(b.available("k", t0), 10.0);
  b.take("k", 10, t0);
  EXPECT_DOUBLE_EQ(b.available("k", t0), 0.0);
  EXPECT_NEAR(b.available("k", t0 + 50s), 5.0, 1e-9);
  EXPECT_NEAR(b.available("k", t0 + 1000s), 10.0, 1e-9);  // never above the limit
  EXPECT_DOUBLE_EQ(b.available("other", t0), 10.0);
}

TEST(Buckets, MemoryIsBoundedFullBucketsForgottenFirst) {
  Buckets b(2, 10s, 4);
  TP t0{};
  for (int i = 0; i < 4; ++i) b.take("k" + std::to_string(i), 1, t0);
  EXPECT_EQ(b.size(), 4u);
  // Ten seconds later every bucket is full again: all are forgotten to make room.
  b.take("new", 2, t0 + 10s);
  EXPECT_EQ(b.size(), 1u);
  // Nobody is full: the fullest go, the emptiest (most informative) stay.
  Buckets c(10, 1000s, 4);
  c.take("a", 9, t0);
  c.take("b", 1, t0);
  c.take("c", 5, t0);
  c.take("d", 8, t0);
  c.take("e", 10, t0);
  EXPECT_LE(c.size(), 4u);
  EXPECT_NEAR(c.available("a", t0), 1.0, 1e-9);
  EXPECT_NEAR(c.available("e", t0), 0.0, 1e-9);
  EXPECT_DOUBLE_EQ(c.available("b", t0), 10.0);  // forgotten: full again
}

struct Fixture {
  TP now{};
  std::shared_ptr<RateGate> gate(std::vector<Rule> rules) {
    return std::make_shared<RateGate>(std::move(rules), [this] { return now; });
  }
};

session::ClientInfo client(std::string ip, std::string user = "") {
  session::ClientInfo c;
  c.ip = std::move(ip);
  c.auth_user = std::move(user);
  return c;
}

proto::Envelope env(proto::Mailbox sender, int rcpts) {
  proto::Envelope e;
  e.sender = std::move(sender);
  for (int i = 0; i < rcpts; ++i) e.recipients.push_back({});
  return e;
}

TEST(RateGate, ClientIpOverItsMessageLimitGets421UntilTheWindowRefills) {
  Fixture f;
  auto g = f.gate({{Key::Ip, 2, 0, 60s}});
  auto c = client("192.0.2.1");
  proto::Mailbox s{"a", "example.org"};
  for (int i = 0; i < 2; ++i) {
    EXPECT_FALSE(g->on_mail(c, s, {}));
    g->on_accepted(c, env(s, 1));
  }
  auto r = g->on_mail(c, s, {});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->code, 421);
  EXPECT_EQ(r->status, "4.7.0");
  EXPECT_NE(r->lines.front().find("[192.0.2.1]"), std::string::npos);
  EXPECT_NE(r->lines.front().find("limit 2 per 1m"), std::string::npos);
  EXPECT_FALSE(g->on_mail(client("192.0.2.2"), s, {}));  // another client is not affected
  f.now += 30s;                                         // half a window: one message back
  EXPECT_FALSE(g->on_mail(c, s, {}));
  EXPECT_EQ(g->refusals(), 1u);
}

TEST(RateGate, RefusedOrAbandonedTransactionsCostNothing) {
  Fixture f;
  auto g = f.gate({{Key::Ip, 1, 0, 60s}});
  auto c = client("192.0.2.1");
  proto::Mailbox s{"a", "example.org"};
  for (int i = 0; i < 5; ++i) EXPECT_FALSE(g->on_mail(c, s, {}));  // never committed
}

TEST(RateGate, UserAndSenderDomainLimitsGive450AndSkipBounces) {
  Fixture f;
  auto g = f.gate({{Key::User, 1, 0, 3600s}, {Key::SenderDomain, 2, 0, 3600s}});
  auto alice = client("192.0.2.1", "alice");
  proto::Mailbox s{"alice", "Example.ORG"};
  EXPECT_FALSE(g->on_mail(alice, s, {}));
  g->on_accepted(alice, env(s, 1));
  auto r = g->on_mail(alice, s, {});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->code, 450);
  EXPECT_EQ(r->status, "4.7.1");
  EXPECT_NE(r->lines.front().find("user alice"), std::string::npos);
  // A bounce from the same session is neither refused nor counted (RFC 3464 / 5321 4.5.5).
  proto::Mailbox null{};
  EXPECT_FALSE(g->on_mail(alice, null, {}));
  g->on_accepted(alice, env(null, 1));
  // Another sender of the same domain: the domain has one message left (case-insensitive).
  auto other = client("192.0.2.9");
  proto::Mailbox s2{"bob", "example.org"};
  EXPECT_FALSE(g->on_mail(other, s2, {}));
  g->on_accepted(other, env(s2, 1));
  auto d = g->on_mail(other, s2, {});
  ASSERT_TRUE(d);
  EXPECT_EQ(d->code, 450);
  EXPECT_NE(d->lines.front().find("sender domain example.org"), std::string::npos);
}

TEST(RateGate, RecipientLimitCountsThoseAlreadyInTheTransaction) {
  Fixture f;
  auto g = f.gate({{Key::Ip, 0, 3, 60s}});
  auto c = client("192.0.2.1");
  proto::Mailbox s{"a", "example.org"};
  proto::Mailbox r{"x", "example.net"};
  EXPECT_FALSE(g->on_rcpt(c, env(s, 0), r));
  EXPECT_FALSE(g->on_rcpt(c, env(s, 2), r));  // the third recipient fits
  auto no = g->on_rcpt(c, env(s, 3), r);      // a fourth would not
  ASSERT_TRUE(no);
  EXPECT_EQ(no->code, 450);
  EXPECT_EQ(no->status, "4.7.1");
  g->on_accepted(c, env(s, 3));
  EXPECT_TRUE(g->on_rcpt(c, env(s, 0), r));  // used up until it refills
  f.now += 20s;
  EXPECT_FALSE(g->on_rcpt(c, env(s, 0), r));
}

TEST(RateGate, RulesWithoutAKeyValueDoNotApply) {
  Fixture f;
  auto g = f.gate({{Key::User, 1, 1, 60s}});
  auto anon = client("192.0.2.1");  // not authenticated: the user rule has nothing to count
  proto::Mailbox s{"a", "example.org"};
  for (int i = 0; i < 3; ++i) {
    EXPECT_FALSE(g->on_mail(anon, s, {}));
    g->on_accepted(anon, env(s, 5));
  }
}

}  // namespace
}  // namespace carrier::ratelimit
