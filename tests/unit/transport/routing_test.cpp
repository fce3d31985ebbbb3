// Routing rules of the relay transport: configured routes, RFC 5321 5.1 MX planning and the
// rule that a host never relays to itself or to a less preferred MX.
#include "transport/smtp/routing.hpp"

#include <gtest/gtest.h>

using namespace carrier;
using namespace carrier::transport;

namespace {
SmtpRoute route(std::string d, std::string host) {
  SmtpRoute r;
  r.domain = std::move(d);
  r.host = std::move(host);
  return r;
}
dns::Host host(std::string name, int pref, std::vector<std::string> ips) {
  dns::Host h;
  h.name = std::move(name);
  h.preference = pref;
  h.addresses = std::move(ips);
  return h;
}
}  // namespace

TEST(Routing, ExactThenWildcardThenDefaultInConfiguredOrder) {
  std::vector<SmtpRoute> rs{route("example.test", "exact"), route("*.example.test", "sub"),
                            route("*", "default")};
  EXPECT_EQ(match_route(rs, "example.test")->host, "exact");
  EXPECT_EQ(match_route(rs, "EXAMPLE.test.")->host, "exact");  // case and trailing dot (RFC 5321 2.4)
  EXPECT_EQ(match_route(rs, "a.b.example.test")->host, "sub");
  EXPECT_EQ(match_route(rs, "other.test")->host, "default");
  EXPECT_EQ(match_route(rs, "badexample.test")->host, "default") << "*.example.test is not a suffix match";
  std::vector<SmtpRoute> none{route("example.test", "x")};
  EXPECT_EQ(match_route(none, "other.test"), nullptr);
  EXPECT_EQ(match_route(none, "sub.example.test"), nullptr) << "exact routes do not cover subdomains";
}

TEST(Routing, TargetsFollowMxOrderWithEveryAddress) {
  dns::MxResult mx;
  mx.status = dns::Status::Ok;
  mx.hosts = {host("mx1.example.test", 10, {"192.0.2.1", "2001:db8::1"}),
              host("mx2.example.test", 20, {"192.0.2.2"})};
  bool loops = true;
  auto t = plan_targets(mx, 2525, {}, loops);
  EXPECT_FALSE(loops);
  ASSERT_EQ(t.size(), 3u);
  EXPECT_EQ(t[0].ip, "192.0.2.1");
  EXPECT_EQ(t[1].ip, "2001:db8::1");
  EXPECT_EQ(t[2].host, "mx2.example.test");
  EXPECT_EQ(t[2].port, 2525);
}

// RFC 5321 5.1: "If it [the SMTP client] determines that it is itself one of the MX hosts
// ... it MUST discard all MX records with preference equal or greater than its own".
TEST(Routing, OurselvesAndLessPreferredMxAreDropped) {
  dns::MxResult mx;
  mx.status = dns::Status::Ok;
  mx.hosts = {host("primary.example.test", 10, {"192.0.2.1"}),
              host("me.example.test", 20, {"192.0.2.9"}),
              host("backup.example.test", 30, {"192.0.2.3"})};
  SelfIdentity self;
  self.names = {"me.example.test"};
  bool loops = true;
  auto t = plan_targets(mx, 25, self, loops);
  EXPECT_FALSE(loops);
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].host, "primary.example.test");
}

TEST(Routing, BeingTheBestMxIsALoop) {
  dns::MxResult mx;
  mx.status = dns::Status::Ok;
  mx.hosts = {host("mx.example.test", 10, {"127.0.0.3"}), host("backup.example.test", 20, {"192.0.2.3"})};
  SelfIdentity self;
  self.endpoints = {{"127.0.0.3", 25}};  // recognised by address and port
  bool loops = false;
  auto t = plan_targets(mx, 25, self, loops);
  EXPECT_TRUE(loops);
  EXPECT_TRUE(t.empty());
  // The same address on another port is not us.
  self.endpoints = {{"127.0.0.3", 2525}};
  t = plan_targets(mx, 25, self, loops);
  EXPECT_FALSE(loops);
  EXPECT_EQ(t.size(), 2u);
}

TEST(Routing, SelfNameMatchIgnoresCaseAndTrailingDot) {
  dns::MxResult mx;
  mx.status = dns::Status::Ok;
  mx.hosts = {host("MX.Example.Test.", 10, {"192.0.2.1"})};
  SelfIdentity self;
  self.names = {"mx.example.test"};
  bool loops = false;
  plan_targets(mx, 25, self, loops);
  EXPECT_TRUE(loops);
}

// Per-destination rate limit: messages are spaced 1/rate apart; the first goes at once.
TEST(Routing, RatePacerSpacesMessages) {
  using namespace std::chrono;
  RatePacer p(4.0);  // 4 per second: 250 ms apart
  steady_clock::time_point t0{};
  EXPECT_EQ(p.reserve(t0), nanoseconds{0});
  EXPECT_EQ(duration_cast<milliseconds>(p.reserve(t0)).count(), 250);
  EXPECT_EQ(duration_cast<milliseconds>(p.reserve(t0)).count(), 500);
  // Time passing frees slots; no burst is saved up beyond the next slot.
  EXPECT_EQ(p.reserve(t0 + seconds(10)), nanoseconds{0});
  EXPECT_EQ(duration_cast<milliseconds>(p.reserve(t0 + seconds(10))).count(), 250);
  RatePacer unlimited;
  for (int i = 0; i < 100; ++i) EXPECT_EQ(unlimited.reserve(t0), nanoseconds{0});
}
