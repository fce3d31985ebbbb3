// Tests of carrier::dns::Resolver against a real DNS server: ../shared/peers/unbound.sh runs an
// authoritative-only Unbound on a free 127.0.0.1 port serving tests/unit/dns/testzone.zone (one
// server per test suite, stopped in TearDownTestSuite even when a test fails). Checks MX
// ordering and shuffling (RFC 5321 5.1), implicit MX, null MX (RFC 7505), NXDOMAIN / SERVFAIL
// mapping, per-host statuses and the overall rule, IPv4/IPv6 options, caps, caching, name
// checks without queries. A second suite needs no server: init errors, query deadlines against
// a silent server, destruction with lookups in flight.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <asio/io_context.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "dns/resolver.hpp"

using namespace carrier::dns;
using namespace std::chrono_literals;

namespace {

const std::string kRepo = std::string(CARRIER_TEST_DATA_DIR) + "/../..";
const std::string kUnboundSh = kRepo + "/../shared/peers/unbound.sh";
const std::string kZone = std::string(CARRIER_TEST_DATA_DIR) + "/dns/testzone.zone";

// Runs a shell command; returns its exit status and combined output.
std::pair<int, std::string> run(const std::string& cmd) {
  std::string out;
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return {-1, "popen failed"};
  char buf[512];
  while (std::size_t n = std::fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  int st = ::pclose(p);
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}

// A port free for both TCP and UDP on 127.0.0.1 (the kernel picks it).
int free_port() {
  for (int attempt = 0; attempt < 20; ++attempt) {
    int t = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    if (t < 0 || ::bind(t, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 ||
        ::getsockname(t, reinterpret_cast<sockaddr*>(&sa), &len) != 0) {
      if (t >= 0) ::close(t);
      continue;
    }
    int u = ::socket(AF_INET, SOCK_DGRAM, 0);
    const bool udp_ok = u >= 0 && ::bind(u, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0;
    if (u >= 0) ::close(u);
    ::close(t);
    if (udp_ok) return ntohs(sa.sin_port);
  }
  return 0;
}

// Runs `io` until `done()` or `limit` passes; true if done.
bool run_until(asio::io_context& io, const std::function<bool()>& done, std::chrono::milliseconds limit = 5000ms) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done() && std::chrono::steady_clock::now() < deadline) {
    io.restart();
    io.run_for(20ms);
  }
  return done();
}

MxResult mx(asio::io_context& io, Resolver& r, const std::string& domain) {
  std::optional<MxResult> got;
  r.resolve_mx(domain, [&](MxResult m) { got = std::move(m); });
  if (!run_until(io, [&] { return got.has_value(); })) {
    ADD_FAILURE() << "no MX callback for " << domain << " within 5 s";
    return MxResult{Status::TempFail, {}, false, "test: no callback"};
  }
  return *got;
}

AddrResult addrs(asio::io_context& io, Resolver& r, const std::string& host) {
  std::optional<AddrResult> got;
  r.resolve_addresses(host, [&](AddrResult a) { got = std::move(a); });
  if (!run_until(io, [&] { return got.has_value(); })) {
    ADD_FAILURE() << "no address callback for " << host << " within 5 s";
    return AddrResult{Status::TempFail, {}, "test: no callback"};
  }
  return *got;
}

std::vector<std::string> host_names(const MxResult& r) {
  std::vector<std::string> out;
  for (const auto& h : r.hosts) out.push_back(h.name);
  return out;
}

class LiveDns : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    char tmpl[] = "/tmp/carrier-dns-test-XXXXXX";
    if (!::mkdtemp(tmpl)) {
      start_error_ = "mkdtemp failed";
      return;
    }
    dir_ = tmpl;
    // Another process may take the port between free_port() and the server's bind: retry.
    for (int attempt = 0; attempt < 3 && !up_; ++attempt) {
      port_ = free_port();
      auto [rc, out] = run(kUnboundSh + " start " + dir_ + " " + std::to_string(port_) + " " + kZone);
      up_ = rc == 0 && out.find("unbound ready:") != std::string::npos;
      if (!up_) start_error_ = kUnboundSh + " start failed (" + std::to_string(rc) + "): " + out;
    }
  }
  static void TearDownTestSuite() {
    if (!dir_.empty()) {
      run(kUnboundSh + " stop " + dir_);
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
    }
    up_ = false;
  }
  void SetUp() override { ASSERT_TRUE(up_) << start_error_; }

  ResolverOptions options() const {
    ResolverOptions o;
    o.upstream = "127.0.0.1@" + std::to_string(port_);
    o.shuffle_seed = 42;
    o.query_timeout = 4000ms;
    return o;
  }

  // Queries the server logged for "NAME TYPE" (log-queries lines, not the reply lines).
  static int logged_queries(const std::string& name, const std::string& type) {
    std::ifstream in(dir_ + "/unbound.log");
    const std::string tail = " " + name + ". " + type + " IN";
    int n = 0;
    for (std::string line; std::getline(in, line);) {
      if (line.size() >= tail.size() && line.compare(line.size() - tail.size(), tail.size(), tail) == 0) ++n;
    }
    return n;
  }
  static int logged_lines() {
    std::ifstream in(dir_ + "/unbound.log");
    int n = 0;
    for (std::string line; std::getline(in, line);) ++n;
    return n;
  }

  static inline std::string dir_;
  static inline int port_ = 0;
  static inline bool up_ = false;
  static inline std::string start_error_;

  asio::io_context io_;
};

// ctest runs every test in its own process, so each TEST_F below starts its own server (about
// 0.4 s): the live checks are grouped into a few tests, with SCOPED_TRACE naming each case.

// RFC 5321 5.1: hosts sorted by preference, equal preferences in random order; names are
// case-insensitive (RFC 1035 2.3.3), results lower case; at most 16 hosts (the most preferred).
TEST_F(LiveDns, MxOrdering) {
  Resolver r(io_, options());
  ASSERT_TRUE(r.init());
  int a_first = 0, b_first = 0;
  for (int i = 0; i < 30; ++i) {
    MxResult m = mx(io_, r, "multi.test");
    ASSERT_EQ(m.status, Status::Ok) << m.error;
    EXPECT_FALSE(m.implicit);
    EXPECT_TRUE(m.error.empty());
    ASSERT_EQ(m.hosts.size(), 3u);
    EXPECT_EQ(m.hosts[0].preference, 10);
    EXPECT_EQ(m.hosts[1].preference, 10);
    EXPECT_EQ(m.hosts[2].preference, 20);
    EXPECT_EQ(m.hosts[2].name, "c.mx.multi.test");
    EXPECT_EQ(std::set<std::string>(m.hosts[2].addresses.begin(), m.hosts[2].addresses.end()),
              (std::set<std::string>{"127.0.0.13", "127.0.0.14"}));
    EXPECT_EQ(m.hosts[2].addresses.size(), 2u);
    for (const auto& h : m.hosts) EXPECT_EQ(h.status, Status::Ok) << h.name;
    if (m.hosts[0].name == "a.mx.multi.test") {
      ++a_first;
      EXPECT_EQ(m.hosts[1].name, "b.mx.multi.test");
      EXPECT_EQ(m.hosts[0].addresses, std::vector<std::string>{"127.0.0.11"});
    } else {
      ++b_first;
      EXPECT_EQ(m.hosts[0].name, "b.mx.multi.test");
      EXPECT_EQ(m.hosts[1].name, "a.mx.multi.test");
      EXPECT_EQ(m.hosts[0].addresses, std::vector<std::string>{"127.0.0.12"});
    }
  }
  // Fixed seed: deterministic; both orders must show up.
  EXPECT_GT(a_first, 0);
  EXPECT_GT(b_first, 0);
  {
    SCOPED_TRACE("upper case and trailing dot in the query");
    MxResult m = mx(io_, r, "MULTI.Test.");
    ASSERT_EQ(m.status, Status::Ok) << m.error;
    EXPECT_EQ(m.hosts.size(), 3u);
  }
  {
    SCOPED_TRACE("upper case exchange in the answer (libunbound passes the zone's case through)");
    MxResult m = mx(io_, r, "upper.test");
    ASSERT_EQ(m.status, Status::Ok) << m.error;
    ASSERT_EQ(m.hosts.size(), 1u);
    EXPECT_EQ(m.hosts[0].name, "mx.upper.test");
    EXPECT_EQ(m.hosts[0].addresses, std::vector<std::string>{"127.0.0.60"});
  }
  {
    SCOPED_TRACE("20 MX records: the 16 most preferred");
    MxResult m = mx(io_, r, "many.test");
    ASSERT_EQ(m.status, Status::Ok) << m.error;
    ASSERT_EQ(m.hosts.size(), 16u);
    for (std::size_t i = 0; i < m.hosts.size(); ++i) {
      EXPECT_EQ(m.hosts[i].preference, static_cast<int>(10 * (i + 1)));
      EXPECT_EQ(m.hosts[i].name, "h" + std::to_string(i + 1) + ".many.test");
      EXPECT_EQ(m.hosts[i].addresses, std::vector<std::string>{"127.0.1." + std::to_string(i + 1)});
    }
    EXPECT_EQ(logged_queries("h16.many.test", "A"), 1);
    EXPECT_EQ(logged_queries("h17.many.test", "A"), 0);
  }
}

// RFC 5321 5.1 implicit MX (and when it is unusable); RFC 7505 null MX (no address lookups);
// RFC 1035 4.1.1 NXDOMAIN -> NotFound, SERVFAIL -> TempFail.
TEST_F(LiveDns, ImplicitNullMxAndErrors) {
  Resolver r(io_, options());
  ASSERT_TRUE(r.init());
  {
    SCOPED_TRACE("no MX, A record: implicit MX");
    MxResult m = mx(io_, r, "aonly.test");
    ASSERT_EQ(m.status, Status::Ok) << m.error;
    EXPECT_TRUE(m.implicit);
    ASSERT_EQ(m.hosts.size(), 1u);
    EXPECT_EQ(m.hosts[0].name, "aonly.test");
    EXPECT_EQ(m.hosts[0].preference, 0);
    EXPECT_EQ(m.hosts[0].addresses, std::vector<std::string>{"127.0.0.20"});
  }
  {
    SCOPED_TRACE("no MX and no address: NotFound");
    MxResult m = mx(io_, r, "nomx.test");
    EXPECT_EQ(m.status, Status::NotFound);
    EXPECT_TRUE(m.implicit);
    EXPECT_NE(m.error.find("nomx.test"), std::string::npos) << m.error;
  }
  {
    SCOPED_TRACE("null MX");
    MxResult m = mx(io_, r, "nullmx.test");
    EXPECT_EQ(m.status, Status::NullMx);
    EXPECT_TRUE(m.hosts.empty());
    EXPECT_FALSE(m.error.empty());
    EXPECT_EQ(logged_queries("nullmx.test", "MX"), 1);
    EXPECT_EQ(logged_queries("nullmx.test", "A"), 0);
    EXPECT_EQ(logged_queries("nullmx.test", "AAAA"), 0);
    EXPECT_EQ(logged_queries(".", "A"), 0);
  }
  for (const char* d : {"nxdomain.test", "below.nxdomain.test", "missing.multi.test"}) {
    SCOPED_TRACE(std::string("NXDOMAIN: ") + d);
    MxResult m = mx(io_, r, d);
    EXPECT_EQ(m.status, Status::NotFound);
    EXPECT_NE(m.error.find("NXDOMAIN"), std::string::npos) << m.error;
    EXPECT_TRUE(m.hosts.empty());
  }
  EXPECT_EQ(r.stats().failures, 0u);
  {
    SCOPED_TRACE("SERVFAIL");
    MxResult m = mx(io_, r, "broken.test");
    EXPECT_EQ(m.status, Status::TempFail);
    EXPECT_NE(m.error.find("SERVFAIL"), std::string::npos) << m.error;
    EXPECT_EQ(r.stats().failures, 1u);
  }
}

// Each host keeps its own status; overall Ok if any host has an address, else TempFail if any
// host failed temporarily, else NotFound (RFC 5321 5.1: MX present but none usable).
TEST_F(LiveDns, PerHostStatusAndOverallRule) {
  Resolver r(io_, options());
  ASSERT_TRUE(r.init());
  {
    SCOPED_TRACE("NXDOMAIN host, NODATA host, good host: Ok");
    MxResult m = mx(io_, r, "mixed.test");
    ASSERT_EQ(m.status, Status::Ok) << m.error;
    ASSERT_EQ(host_names(m), (std::vector<std::string>{"gone.mixed.test", "txt.mixed.test", "ok.mixed.test"}));
    EXPECT_EQ(m.hosts[0].status, Status::NotFound);
    EXPECT_NE(m.hosts[0].error.find("NXDOMAIN"), std::string::npos) << m.hosts[0].error;
    EXPECT_TRUE(m.hosts[0].addresses.empty());
    EXPECT_EQ(m.hosts[1].status, Status::NotFound);
    EXPECT_TRUE(m.hosts[1].addresses.empty());
    EXPECT_EQ(m.hosts[2].status, Status::Ok);
    EXPECT_TRUE(m.hosts[2].error.empty());
    EXPECT_EQ(m.hosts[2].addresses, std::vector<std::string>{"127.0.0.40"});
  }
  {
    SCOPED_TRACE("every host without address: NotFound");
    MxResult m = mx(io_, r, "noaddr.test");
    EXPECT_EQ(m.status, Status::NotFound);
    EXPECT_EQ(m.hosts.size(), 2u);
    EXPECT_NE(m.error.find("gone.noaddr.test"), std::string::npos) << m.error;
  }
  {
    SCOPED_TRACE("SERVFAIL host next to a good one: Ok");
    MxResult m = mx(io_, r, "sfmx.test");
    ASSERT_EQ(m.status, Status::Ok) << m.error;
    ASSERT_EQ(host_names(m), (std::vector<std::string>{"mx.broken.test", "ok.sfmx.test"}));
    EXPECT_EQ(m.hosts[0].status, Status::TempFail);
    EXPECT_NE(m.hosts[0].error.find("SERVFAIL"), std::string::npos) << m.hosts[0].error;
    EXPECT_EQ(m.hosts[1].status, Status::Ok);
    EXPECT_EQ(m.hosts[1].addresses, std::vector<std::string>{"127.0.0.50"});
    EXPECT_EQ(r.stats().failures, 0u);
  }
  {
    SCOPED_TRACE("SERVFAIL host and nonexistent host: TempFail");
    MxResult m = mx(io_, r, "sfonly.test");
    EXPECT_EQ(m.status, Status::TempFail) << m.error;
    ASSERT_EQ(m.hosts.size(), 2u);
    EXPECT_EQ(m.hosts[0].status, Status::TempFail);
    EXPECT_EQ(m.hosts[1].status, Status::NotFound);
    EXPECT_NE(m.error.find("SERVFAIL"), std::string::npos) << m.error;
    EXPECT_EQ(r.stats().failures, 1u);
  }
}

// Address families and their order follow the options (the server rotates records within an
// RRset, so only the family order is fixed); at most 16 addresses, both families kept.
TEST_F(LiveDns, AddressFamiliesAndCaps) {
  auto families = [](const std::vector<std::string>& v) {
    std::string f;
    for (const auto& a : v) f += a.find(':') == std::string::npos ? '4' : '6';
    return f;
  };
  auto sorted = [](std::vector<std::string> v) {
    std::sort(v.begin(), v.end());
    return v;
  };
  const std::vector<std::string> dual = {"127.0.0.30", "2001:db8::30", "::1"};  // sorted
  auto o = options();
  {
    SCOPED_TRACE("both families, IPv4 first");
    Resolver r(io_, o);
    ASSERT_TRUE(r.init());
    MxResult m = mx(io_, r, "v6.test");
    ASSERT_EQ(m.status, Status::Ok) << m.error;
    ASSERT_EQ(m.hosts.size(), 1u);
    EXPECT_EQ(families(m.hosts[0].addresses), "466");
    EXPECT_EQ(sorted(m.hosts[0].addresses), dual);
    AddrResult w = addrs(io_, r, "wide.test");
    ASSERT_EQ(w.status, Status::Ok);
    ASSERT_EQ(w.addresses.size(), 16u);
    EXPECT_EQ(families(w.addresses), "4444444466666666");
  }
  {
    SCOPED_TRACE("both families, IPv6 first");
    o.prefer_ipv6 = true;
    Resolver r(io_, o);
    ASSERT_TRUE(r.init());
    MxResult m = mx(io_, r, "v6.test");
    ASSERT_EQ(m.hosts.size(), 1u);
    EXPECT_EQ(families(m.hosts[0].addresses), "664");
    EXPECT_EQ(sorted(m.hosts[0].addresses), dual);
  }
  {
    SCOPED_TRACE("IPv4 only");
    o.ipv6 = false;
    Resolver r(io_, o);
    ASSERT_TRUE(r.init());
    MxResult m = mx(io_, r, "v6.test");
    ASSERT_EQ(m.hosts.size(), 1u);
    EXPECT_EQ(m.hosts[0].addresses, std::vector<std::string>{"127.0.0.30"});
    AddrResult a = addrs(io_, r, "only6.v6.test");
    EXPECT_EQ(a.status, Status::NotFound);
    EXPECT_TRUE(a.addresses.empty());
    EXPECT_EQ(r.stats().queries, 3u);  // MX, A, A: no AAAA asked
  }
  {
    SCOPED_TRACE("IPv6 only");
    o.ipv6 = true;
    o.ipv4 = false;
    Resolver r(io_, o);
    ASSERT_TRUE(r.init());
    AddrResult a = addrs(io_, r, "dual.v6.test");
    EXPECT_EQ(a.status, Status::Ok);
    EXPECT_EQ(sorted(a.addresses), (std::vector<std::string>{"2001:db8::30", "::1"}));
    a = addrs(io_, r, "only6.v6.test");
    EXPECT_EQ(a.status, Status::Ok);
    EXPECT_EQ(a.addresses, std::vector<std::string>{"2001:db8::31"});
  }
}

TEST_F(LiveDns, ResolveAddressesStatuses) {
  Resolver r(io_, options());
  ASSERT_TRUE(r.init());
  AddrResult a = addrs(io_, r, "ok.mixed.test");
  EXPECT_EQ(a.status, Status::Ok);
  EXPECT_EQ(a.addresses, std::vector<std::string>{"127.0.0.40"});
  EXPECT_TRUE(a.error.empty());
  a = addrs(io_, r, "gone.mixed.test");
  EXPECT_EQ(a.status, Status::NotFound);
  EXPECT_NE(a.error.find("NXDOMAIN"), std::string::npos) << a.error;
  a = addrs(io_, r, "txt.mixed.test");
  EXPECT_EQ(a.status, Status::NotFound);
  EXPECT_NE(a.error.find("no address"), std::string::npos) << a.error;
  a = addrs(io_, r, "mx.broken.test");
  EXPECT_EQ(a.status, Status::TempFail);
  EXPECT_NE(a.error.find("SERVFAIL"), std::string::npos) << a.error;
  const auto s = r.stats();
  EXPECT_EQ(s.lookups, 4u);
  EXPECT_EQ(s.failures, 1u);
  EXPECT_EQ(s.queries, 8u);  // A + AAAA each
}

// Invalid names fail with NotFound and an error, and never reach the DNS.
TEST_F(LiveDns, InvalidNamesNotQueried) {
  Resolver r(io_, options());
  ASSERT_TRUE(r.init());
  const int lines_before = logged_lines();
  const std::string l63(63, 'a');
  for (const std::string& d : {std::string(), std::string("."), std::string("a..test"), std::string(64, 'a') + ".test",
                               l63 + "." + l63 + "." + l63 + "." + l63 + ".test", std::string("ex ample.test"),
                               std::string("[127.0.0.1]"), std::string("multi.test\0x", 12)}) {
    SCOPED_TRACE(d);
    MxResult m = mx(io_, r, d);
    EXPECT_EQ(m.status, Status::NotFound);
    EXPECT_FALSE(m.error.empty());
    AddrResult a = addrs(io_, r, d);
    EXPECT_EQ(a.status, Status::NotFound);
    EXPECT_FALSE(a.error.empty());
  }
  EXPECT_EQ(r.stats().queries, 0u);
  EXPECT_EQ(r.stats().lookups, 16u);
  EXPECT_EQ(logged_lines(), lines_before);
}

// libunbound caches: a second lookup of the same names is answered without asking the server.
TEST_F(LiveDns, SecondLookupAnsweredFromCache) {
  Resolver r(io_, options());
  ASSERT_TRUE(r.init());
  const int mx0 = logged_queries("mixed.test", "MX"), ok0 = logged_queries("ok.mixed.test", "A"),
            gone0 = logged_queries("gone.mixed.test", "A");
  MxResult m1 = mx(io_, r, "mixed.test");
  ASSERT_EQ(m1.status, Status::Ok) << m1.error;
  EXPECT_EQ(logged_queries("mixed.test", "MX"), mx0 + 1);
  EXPECT_EQ(logged_queries("ok.mixed.test", "A"), ok0 + 1);
  EXPECT_EQ(logged_queries("gone.mixed.test", "A"), gone0 + 1);
  MxResult m2 = mx(io_, r, "mixed.test");
  ASSERT_EQ(m2.status, Status::Ok) << m2.error;
  EXPECT_EQ(host_names(m1), host_names(m2));
  EXPECT_EQ(m2.hosts[2].addresses, std::vector<std::string>{"127.0.0.40"});
  EXPECT_EQ(logged_queries("mixed.test", "MX"), mx0 + 1);
  EXPECT_EQ(logged_queries("ok.mixed.test", "A"), ok0 + 1);
  EXPECT_EQ(logged_queries("gone.mixed.test", "A"), gone0 + 1);  // NXDOMAIN is cached too
  EXPECT_EQ(r.stats().queries, 2u * (1 + 3 * 2));                // both lookups went to libunbound
}

// Many lookups in flight at once, some issued from another thread: each answered once, right;
// afterwards the resolver holds no Asio work, so run() returns by itself (clean shutdown).
TEST_F(LiveDns, ConcurrentLookupsThenIdle) {
  Resolver r(io_, options());
  ASSERT_TRUE(r.init());
  const std::vector<std::pair<std::string, Status>> cases = {
      {"multi.test", Status::Ok},          {"aonly.test", Status::Ok},      {"nullmx.test", Status::NullMx},
      {"nxdomain.test", Status::NotFound}, {"broken.test", Status::TempFail}, {"sfmx.test", Status::Ok},
      {"noaddr.test", Status::NotFound},   {"many.test", Status::Ok}};
  constexpr int kRounds = 6;
  std::vector<int> calls(cases.size() * kRounds * 2, 0);
  std::vector<Status> got(calls.size(), Status::Ok);
  int answered = 0;
  auto issue = [&](std::size_t base) {
    for (int round = 0; round < kRounds; ++round) {
      for (std::size_t i = 0; i < cases.size(); ++i) {
        const std::size_t slot = base + round * cases.size() + i;
        r.resolve_mx(cases[i].first, [&, slot](MxResult m) {
          ++calls[slot];
          got[slot] = m.status;
          ++answered;
        });
      }
    }
  };
  issue(0);
  std::thread other([&] { issue(cases.size() * kRounds); });  // resolve_mx is thread-safe
  other.join();
  ASSERT_TRUE(run_until(io_, [&] { return answered == static_cast<int>(calls.size()); }, 10000ms))
      << answered << " of " << calls.size();
  for (std::size_t s = 0; s < calls.size(); ++s) {
    EXPECT_EQ(calls[s], 1) << s;
    EXPECT_EQ(got[s], cases[s % cases.size()].second) << cases[s % cases.size()].first;
  }
  io_.restart();
  const auto t0 = std::chrono::steady_clock::now();
  io_.run_for(3000ms);
  EXPECT_TRUE(io_.stopped());
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2000ms);
}

// --- no DNS server needed ---------------------------------------------------------------------

class DnsNoServer : public ::testing::Test {
 protected:
  asio::io_context io_;
};

TEST_F(DnsNoServer, InitErrors) {
  {
    ResolverOptions o;
    o.upstream = "not-an-address";
    Resolver r(io_, o);
    auto res = r.init();
    ASSERT_FALSE(res);
    EXPECT_NE(res.error().message.find("not-an-address"), std::string::npos) << res.error().message;
  }
  {
    ResolverOptions o;
    o.upstream = "127.0.0.1@53";
    o.ipv4 = o.ipv6 = false;
    Resolver r(io_, o);
    EXPECT_FALSE(r.init());
  }
  {
    ResolverOptions o;
    o.upstream = "127.0.0.1@53";
    o.transparent_zones = {"bad zone."};
    Resolver r(io_, o);
    EXPECT_FALSE(r.init());
  }
  {
    ResolverOptions o;
    o.upstream = "127.0.0.1@53";
    Resolver r(io_, o);
    EXPECT_TRUE(r.init());
    EXPECT_FALSE(r.init());  // only once
  }
}

// Without a successful init() every lookup is a temporary failure, never a crash.
TEST_F(DnsNoServer, LookupBeforeInitIsTempFail) {
  ResolverOptions o;
  o.upstream = "127.0.0.1@53";
  Resolver r(io_, o);
  MxResult m = mx(io_, r, "multi.test");
  EXPECT_EQ(m.status, Status::TempFail);
  EXPECT_NE(m.error.find("not initialised"), std::string::npos) << m.error;
  AddrResult a = addrs(io_, r, "multi.test");
  EXPECT_EQ(a.status, Status::TempFail);
  EXPECT_EQ(r.stats().failures, 2u);
}

// A UDP port on 127.0.0.1 that receives queries and never answers.
class SilentServer {
 public:
  SilentServer() {
    fd_ = ::socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    if (fd_ >= 0 && ::bind(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0 &&
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&sa), &len) == 0) {
      port_ = ntohs(sa.sin_port);
    }
  }
  ~SilentServer() {
    if (fd_ >= 0) ::close(fd_);
  }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

// Each query has a deadline: a server that never answers gives TempFail in bounded time.
TEST_F(DnsNoServer, QueryDeadlineIsTempFail) {
  SilentServer silent;
  ASSERT_NE(silent.port(), 0);
  ResolverOptions o;
  o.upstream = "127.0.0.1@" + std::to_string(silent.port());
  o.query_timeout = 300ms;
  Resolver r(io_, o);
  ASSERT_TRUE(r.init());
  const auto t0 = std::chrono::steady_clock::now();
  MxResult m = mx(io_, r, "multi.test");
  EXPECT_EQ(m.status, Status::TempFail);
  EXPECT_NE(m.error.find("no answer within 300 ms"), std::string::npos) << m.error;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2000ms);
  AddrResult a = addrs(io_, r, "ok.mixed.test");
  EXPECT_EQ(a.status, Status::TempFail);
  EXPECT_EQ(r.stats().failures, 2u);
  // Cancelled queries leave no Asio work behind.
  io_.restart();
  io_.run_for(1000ms);
  EXPECT_TRUE(io_.stopped());
}

// Destroying the resolver with lookups in flight: each gets TempFail once, nothing hangs.
TEST_F(DnsNoServer, DestroyWithLookupsInFlight) {
  SilentServer silent;
  ASSERT_NE(silent.port(), 0);
  ResolverOptions o;
  o.upstream = "127.0.0.1@" + std::to_string(silent.port());
  std::vector<MxResult> mxs;
  std::vector<AddrResult> as;
  {
    Resolver r(io_, o);
    ASSERT_TRUE(r.init());
    r.resolve_mx("multi.test", [&](MxResult m) { mxs.push_back(std::move(m)); });
    r.resolve_addresses("ok.mixed.test", [&](AddrResult a) { as.push_back(std::move(a)); });
    io_.run_for(200ms);  // the queries are now with libunbound
    ASSERT_TRUE(mxs.empty());
    r.resolve_mx("aonly.test", [&](MxResult m) { mxs.push_back(std::move(m)); });  // not started yet
  }
  io_.restart();
  io_.run_for(2000ms);
  EXPECT_TRUE(io_.stopped());
  ASSERT_EQ(mxs.size(), 2u);
  ASSERT_EQ(as.size(), 1u);
  for (const auto& m : mxs) {
    EXPECT_EQ(m.status, Status::TempFail);
    EXPECT_EQ(m.error, "resolver shut down");
  }
  EXPECT_EQ(as[0].status, Status::TempFail);
}

}  // namespace

// --- TXT and PTR lookups (resolve_txt, resolve_ptr) --------------------------------------------

namespace {

TxtResult txt(asio::io_context& io, Resolver& r, const std::string& name) {
  std::optional<TxtResult> got;
  r.resolve_txt(name, [&](TxtResult t) { got = std::move(t); });
  if (!run_until(io, [&] { return got.has_value(); })) {
    ADD_FAILURE() << "no TXT callback for " << name << " within 5 s";
    return TxtResult{Status::TempFail, {}, "test: no callback"};
  }
  return *got;
}

PtrResult ptr(asio::io_context& io, Resolver& r, const std::string& ip) {
  std::optional<PtrResult> got;
  r.resolve_ptr(ip, [&](PtrResult p) { got = std::move(p); });
  if (!run_until(io, [&] { return got.has_value(); })) {
    ADD_FAILURE() << "no PTR callback for " << ip << " within 5 s";
    return PtrResult{Status::TempFail, {}, "test: no callback"};
  }
  return *got;
}

}  // namespace

// RFC 1035 3.3.14 / RFC 7208 3.3: a record's character-strings are joined without separators;
// every record of the RRset comes back; NXDOMAIN / NODATA are NotFound, SERVFAIL TempFail.
TEST_F(LiveDns, TxtLookups) {
  Resolver r(io_, options());
  ASSERT_TRUE(r.init());
  {
    TxtResult t = txt(io_, r, "SPF.txt.test.");
    ASSERT_EQ(t.status, Status::Ok) << t.error;
    EXPECT_TRUE(t.error.empty());
    std::set<std::string> got(t.records.begin(), t.records.end());
    EXPECT_EQ(got, (std::set<std::string>{"v=spf1 ip4:127.0.0.0/8 -all", "something else"}));
    EXPECT_EQ(t.records.size(), 2u);
  }
  {
    SCOPED_TRACE("NODATA: the name has an A record only");
    TxtResult t = txt(io_, r, "aonly.test");
    EXPECT_EQ(t.status, Status::NotFound);
    EXPECT_NE(t.error.find("no TXT records"), std::string::npos) << t.error;
  }
  {
    SCOPED_TRACE("NXDOMAIN");
    TxtResult t = txt(io_, r, "nothing-here.txt.test");
    EXPECT_EQ(t.status, Status::NotFound);
    EXPECT_NE(t.error.find("NXDOMAIN"), std::string::npos) << t.error;
  }
  {
    SCOPED_TRACE("SERVFAIL");
    TxtResult t = txt(io_, r, "broken.test");
    EXPECT_EQ(t.status, Status::TempFail);
  }
  {
    SCOPED_TRACE("a bad name is refused without a query");
    const int before = logged_lines();
    TxtResult t = txt(io_, r, "bad name.test");
    EXPECT_EQ(t.status, Status::NotFound);
    EXPECT_FALSE(t.error.empty());
    EXPECT_EQ(logged_lines(), before);
  }
}

// RFC 1035 3.5 (in-addr.arpa) and RFC 3596 2.5 (ip6.arpa): the reverse name is queried, the
// PTR name comes back lower case without the final dot.
TEST_F(LiveDns, PtrLookups) {
  ResolverOptions o = options();
  o.transparent_zones.push_back("127.in-addr.arpa");  // else libunbound answers it itself
  Resolver r(io_, o);
  ASSERT_TRUE(r.init());
  {
    PtrResult p = ptr(io_, r, "127.0.0.41");
    ASSERT_EQ(p.status, Status::Ok) << p.error;
    EXPECT_EQ(p.names, std::vector<std::string>{"host.ptr.test"});
    EXPECT_EQ(logged_queries("41.0.0.127.in-addr.arpa", "PTR"), 1);
  }
  {
    PtrResult p = ptr(io_, r, "3fff::31");  // RFC 9637 documentation prefix (2001:db8:: is served
                                             // empty by Unbound's defaults, RFC 6303)
    ASSERT_EQ(p.status, Status::Ok) << p.error;
    EXPECT_EQ(p.names, std::vector<std::string>{"v6host.ptr.test"});
  }
  {
    SCOPED_TRACE("no PTR for this address: NXDOMAIN");
    PtrResult p = ptr(io_, r, "127.0.0.42");
    EXPECT_EQ(p.status, Status::NotFound);
    EXPECT_TRUE(p.names.empty());
  }
  {
    SCOPED_TRACE("not an IP literal: no query");
    const int before = logged_lines();
    PtrResult p = ptr(io_, r, "mx.example.test");
    EXPECT_EQ(p.status, Status::NotFound);
    EXPECT_NE(p.error.find("not an IP address"), std::string::npos) << p.error;
    EXPECT_EQ(logged_lines(), before);
  }
}

// Before init(): TempFail. Lookups still running when the Resolver is destroyed are answered
// once with TempFail (posted), like resolve_mx / resolve_addresses.
TEST_F(DnsNoServer, TxtPtrBeforeInitAndAtShutdown) {
  {
    Resolver r(io_, ResolverOptions{});
    TxtResult t = txt(io_, r, "example.test");
    EXPECT_EQ(t.status, Status::TempFail);
    EXPECT_EQ(t.error, "resolver not initialised");
    PtrResult p = ptr(io_, r, "127.0.0.1");
    EXPECT_EQ(p.status, Status::TempFail);
  }
  SilentServer silent;
  ASSERT_NE(silent.port(), 0);
  ResolverOptions o;
  o.upstream = "127.0.0.1@" + std::to_string(silent.port());
  o.transparent_zones.push_back("127.in-addr.arpa");
  std::vector<TxtResult> ts;
  std::vector<PtrResult> ps;
  {
    Resolver r(io_, o);
    ASSERT_TRUE(r.init());
    r.resolve_txt("spf.txt.test", [&](TxtResult t) { ts.push_back(std::move(t)); });
    r.resolve_ptr("127.0.0.41", [&](PtrResult p) { ps.push_back(std::move(p)); });
    io_.restart();
    io_.run_for(200ms);
    ASSERT_TRUE(ts.empty());
  }
  io_.restart();
  io_.run_for(2000ms);
  EXPECT_TRUE(io_.stopped());
  ASSERT_EQ(ts.size(), 1u);
  ASSERT_EQ(ps.size(), 1u);
  EXPECT_EQ(ts[0].status, Status::TempFail);
  EXPECT_NE(ts[0].error.find("resolver shut down"), std::string::npos) << ts[0].error;
  EXPECT_EQ(ps[0].status, Status::TempFail);
}
