// Unit tests of carrier doctor's pure checks (src/doctor/checks.hpp) with synthetic data:
// forward-confirmed reverse DNS (RFC 1912 2.1), MX pointing here (RFC 5321 5.1, null MX RFC
// 7505, implicit MX), SPF summaries, certificate validity windows (14 days), self-signed and
// name checks, listener verdicts, spool and disk space (1 GiB or 5 %), and the output format.
#include <gtest/gtest.h>

#include <cerrno>
#include <string>
#include <vector>

#include "doctor/checks.hpp"

using namespace carrier;
using namespace carrier::doctor;

namespace {

dns::AddrResult addrs(std::vector<std::string> a) {
  return dns::AddrResult{a.empty() ? dns::Status::NotFound : dns::Status::Ok, std::move(a), {}};
}
dns::PtrResult ptr(std::vector<std::string> n) {
  return dns::PtrResult{n.empty() ? dns::Status::NotFound : dns::Status::Ok, std::move(n), {}};
}
dns::MxResult mx(std::vector<dns::Host> hosts, bool implicit = false) {
  dns::MxResult r;
  r.status = dns::Status::Ok;
  r.hosts = std::move(hosts);
  r.implicit = implicit;
  return r;
}
bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace

TEST(DoctorFormat, TickCrossAndFix) {
  EXPECT_EQ(format(Check{true, "MX a.test", "10 mx.a.test is this host", "ignored"}),
            "\u2713 MX a.test: 10 mx.a.test is this host");
  EXPECT_EQ(format(Check{false, "MX b.test", "points elsewhere", "publish it"}),
            "\u2717 MX b.test: points elsewhere\n    fix: publish it");
}

TEST(DoctorHost, Addresses) {
  EXPECT_TRUE(check_host_addresses("mx.good.test", addrs({"192.0.2.1", "2001:db8::1"})).ok);
  Check none = check_host_addresses("mx.good.test", addrs({}));
  EXPECT_FALSE(none.ok);
  EXPECT_TRUE(contains(none.fix, "mx.good.test. A"));
  Check temp = check_host_addresses("mx.good.test", dns::AddrResult{dns::Status::TempFail, {}, "SERVFAIL"});
  EXPECT_FALSE(temp.ok);
  EXPECT_TRUE(contains(temp.detail, "SERVFAIL"));
}

// Forward-confirmed reverse DNS: the PTR of each address names the host (case-insensitive,
// trailing dot ignored, RFC 1035 2.3.3); any of several PTR names may.
TEST(DoctorReverse, ForwardConfirmed) {
  EXPECT_TRUE(check_reverse("mx.good.test", "127.0.0.1", ptr({"mx.good.test"})).ok);
  EXPECT_TRUE(check_reverse("MX.Good.test.", "127.0.0.1", ptr({"other.test", "mx.good.test"})).ok);
  Check wrong = check_reverse("mx.good.test", "127.0.0.1", ptr({"host-127-0-0-1.isp.test"}));
  EXPECT_FALSE(wrong.ok);
  EXPECT_TRUE(contains(wrong.detail, "host-127-0-0-1.isp.test"));
  EXPECT_TRUE(contains(wrong.fix, "PTR record to mx.good.test"));
  Check none = check_reverse("mx.good.test", "192.0.2.1", ptr({}));
  EXPECT_FALSE(none.ok);
  EXPECT_TRUE(contains(none.detail, "no PTR"));
  EXPECT_FALSE(check_reverse("mx.good.test", "192.0.2.1", dns::PtrResult{dns::Status::TempFail, {}, "timeout"}).ok);
}

// RFC 5321 5.1: an MX host named like this host, or with one of its addresses, is this host.
TEST(DoctorMx, PointsHere) {
  const std::vector<std::string> here = {"192.0.2.1"};
  EXPECT_TRUE(check_mx("good.test", "mx.good.test", here, mx({{"mx.good.test", 10, {"192.0.2.1"}, dns::Status::Ok, {}}})).ok);
  // Another name with this host's address (e.g. a CNAME-like alias).
  Check alias = check_mx("good.test", "mx.good.test", here, mx({{"mail.good.test", 10, {"192.0.2.1"}, dns::Status::Ok, {}}}));
  EXPECT_TRUE(alias.ok);
  // A backup MX: still this host, said so.
  Check backup = check_mx("good.test", "mx.good.test", here,
                          mx({{"mx1.other.test", 10, {"198.51.100.1"}, dns::Status::Ok, {}},
                              {"mx.good.test", 20, {"192.0.2.1"}, dns::Status::Ok, {}}}));
  EXPECT_TRUE(backup.ok);
  EXPECT_TRUE(contains(backup.detail, "backup"));
  // Elsewhere.
  Check away = check_mx("bad.test", "mx.good.test", here, mx({{"mx.elsewhere.test", 10, {"198.51.100.1"}, dns::Status::Ok, {}}}));
  EXPECT_FALSE(away.ok);
  EXPECT_TRUE(contains(away.detail, "mx.elsewhere.test"));
  EXPECT_TRUE(contains(away.fix, "bad.test. MX 10 mx.good.test."));
  // The host has no address and the MX name differs: not here.
  EXPECT_FALSE(check_mx("bad.test", "mx.good.test", {}, mx({{"mx.elsewhere.test", 10, {}, dns::Status::NotFound, {}}})).ok);
}

TEST(DoctorMx, NullNoneImplicitAndFailures) {
  const std::vector<std::string> here = {"192.0.2.1"};
  dns::MxResult null;
  null.status = dns::Status::NullMx;
  Check n = check_mx("null.test", "mx.good.test", here, null);
  EXPECT_FALSE(n.ok);
  EXPECT_TRUE(contains(n.detail, "null MX"));
  EXPECT_TRUE(contains(n.detail, "RFC 7505"));
  dns::MxResult nx;
  nx.status = dns::Status::NotFound;
  nx.error = "gone.test does not exist (NXDOMAIN)";
  Check g = check_mx("gone.test", "mx.good.test", here, nx);
  EXPECT_FALSE(g.ok);
  EXPECT_TRUE(contains(g.detail, "NXDOMAIN"));
  // No MX record: the implicit MX (RFC 5321 5.1) is fine when it is this host...
  Check imp = check_mx("mx.good.test", "mx.good.test", here, mx({{"mx.good.test", 0, {"192.0.2.1"}, dns::Status::Ok, {}}}, true));
  EXPECT_TRUE(imp.ok);
  EXPECT_TRUE(contains(imp.detail, "no MX record"));
  // ...and reported as missing when it is not.
  Check imp2 = check_mx("web.test", "mx.good.test", here, mx({{"web.test", 0, {"198.51.100.80"}, dns::Status::Ok, {}}}, true));
  EXPECT_FALSE(imp2.ok);
  EXPECT_TRUE(contains(imp2.detail, "no MX record"));
  dns::MxResult tf;
  tf.status = dns::Status::TempFail;
  tf.error = "SERVFAIL";
  EXPECT_FALSE(check_mx("x.test", "mx.good.test", here, tf).ok);
}

TEST(DoctorSpf, Summary) {
  SpfResult pass;
  pass.verdict = SpfVerdict::Pass;
  pass.matched = "ip4:127.0.0.0/8";
  SpfResult fail;
  fail.verdict = SpfVerdict::Fail;
  fail.matched = "-all";
  fail.record = "v=spf1 -all";
  SpfResult none;
  none.verdict = SpfVerdict::None;
  Check ok = check_spf("good.test", "mx.good.test", {{"127.0.0.1", pass}});
  EXPECT_TRUE(ok.ok);
  EXPECT_EQ(ok.detail, "pass for 127.0.0.1 (ip4:127.0.0.0/8)");
  Check f = check_spf("bad.test", "mx.good.test", {{"127.0.0.1", fail}});
  EXPECT_FALSE(f.ok);
  EXPECT_EQ(f.detail, "fail for 127.0.0.1 (-all)");
  EXPECT_TRUE(contains(f.fix, "ip4:127.0.0.1"));
  EXPECT_TRUE(contains(f.fix, "v=spf1 -all"));
  // One address failing is enough to fail.
  EXPECT_FALSE(check_spf("mixed.test", "mx.good.test", {{"127.0.0.1", pass}, {"2001:db8::1", fail}}).ok);
  Check n = check_spf("none.test", "mx.good.test", {{"127.0.0.1", none}});
  EXPECT_FALSE(n.ok);
  EXPECT_TRUE(contains(n.fix, "v=spf1 a:mx.good.test -all"));
  EXPECT_FALSE(check_spf("x.test", "mx.good.test", {}).ok);
}

// Validity windows: not yet valid, expired, expiring within 14 days, fine.
TEST(DoctorCert, ExpiryWindows) {
  const std::int64_t now = 1'700'000'000, day = 86400;
  CertInfo c;
  c.cert_file = "/etc/carrier/cert.pem";
  c.key_file = "/etc/carrier/key.pem";
  c.loaded = true;
  c.names_host = true;
  c.not_before = now - 10 * day;
  auto validity = [&](const CertInfo& ci) { return check_certificate(ci, "mx.good.test", now, true).at(1); };
  c.not_after = now + 90 * day;
  EXPECT_TRUE(validity(c).ok);
  c.not_after = now + 15 * day;
  EXPECT_TRUE(validity(c).ok);
  c.not_after = now + 14 * day - 1;
  Check soon = validity(c);
  EXPECT_FALSE(soon.ok);
  EXPECT_TRUE(contains(soon.detail, "in 13 days"));
  EXPECT_TRUE(contains(soon.fix, "renew"));
  c.not_after = now;
  Check expired = validity(c);
  EXPECT_FALSE(expired.ok);
  EXPECT_TRUE(contains(expired.detail, "expired"));
  c.not_after = now + 90 * day;
  c.not_before = now + day;
  Check early = validity(c);
  EXPECT_FALSE(early.ok);
  EXPECT_TRUE(contains(early.detail, "not valid before"));
}

TEST(DoctorCert, LoadSelfSignedAndName) {
  const std::int64_t now = 1'700'000'000;
  CertInfo c;
  c.cert_file = "/d/tls/cert.pem";
  c.key_file = "/d/tls/key.pem";
  c.generated = true;
  c.exists = false;
  auto r = check_certificate(c, "mx.good.test", now, true);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_FALSE(r[0].ok);
  EXPECT_EQ(r[0].fix, "get a certificate (e.g. Let's Encrypt) and set [tls] cert_file");

  c.exists = true;
  c.loaded = true;
  c.self_signed = true;
  c.not_before = now - 100;
  c.not_after = now + 3650 * 86400LL;
  c.names = {"mx.good.test"};
  c.names_host = true;
  r = check_certificate(c, "mx.good.test", now, true);
  ASSERT_EQ(r.size(), 4u);
  EXPECT_TRUE(r[0].ok);
  EXPECT_TRUE(r[1].ok);
  EXPECT_FALSE(r[2].ok);
  EXPECT_TRUE(contains(r[2].detail, "self-signed"));
  EXPECT_EQ(r[2].fix, "get a certificate (e.g. Let's Encrypt) and set [tls] cert_file");
  EXPECT_TRUE(r[3].ok);

  c.generated = false;
  c.self_signed = false;
  c.names = {"www.good.test"};
  c.names_host = false;
  r = check_certificate(c, "mx.good.test", now, true);
  ASSERT_EQ(r.size(), 4u);
  EXPECT_TRUE(r[2].ok);
  EXPECT_FALSE(r[3].ok);
  EXPECT_TRUE(contains(r[3].detail, "www.good.test"));
  EXPECT_EQ(check_certificate(c, "mx.good.test", now, false).size(), 3u);  // SNI certificates

  CertInfo broken;
  broken.cert_file = "/x/cert.pem";
  broken.load_error = "/x/key.pem: private key does not match the certificate /x/cert.pem";
  r = check_certificate(broken, "mx.good.test", now, true);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_FALSE(r[0].ok);
  EXPECT_TRUE(contains(r[0].detail, "does not match"));
}

TEST(DoctorListener, Verdicts) {
  ListenerProbe p;
  p.name = "smtp";
  p.address = "127.0.0.1";
  p.port = 25;
  p.connected = true;
  p.greeting = "220 mx.good.test ESMTP carrier";
  Check running = check_listener(p);
  EXPECT_TRUE(running.ok);
  EXPECT_EQ(running.what, "listener smtp 127.0.0.1:25");
  p.greeting = "SSH-2.0-OpenSSH_9.2";
  EXPECT_FALSE(check_listener(p).ok);
  p.greeting = "";
  EXPECT_FALSE(check_listener(p).ok);
  p.connected = false;
  p.bind_tried = true;
  p.bind_errno = 0;
  EXPECT_TRUE(check_listener(p).ok);
  p.bind_errno = EACCES;
  Check acc = check_listener(p);
  EXPECT_FALSE(acc.ok);
  EXPECT_TRUE(contains(acc.fix, "CAP_NET_BIND_SERVICE"));
  p.bind_errno = EADDRNOTAVAIL;
  p.address = "2001:db8::25";
  Check na = check_listener(p);
  EXPECT_FALSE(na.ok);
  EXPECT_EQ(na.what, "listener smtp [2001:db8::25]:25");
  p.bind_errno = EADDRINUSE;
  EXPECT_FALSE(check_listener(p).ok);
}

// Free space: at least 1 GiB or at least 5 % of the file system.
TEST(DoctorSpool, WritableAndDiskSpace) {
  SpoolProbe p;
  p.dir = "/var/spool/carrier";
  p.exists = p.writable = p.statvfs_ok = true;
  p.total_bytes = 100ull << 30;
  p.free_bytes = 1ull << 30;  // 1 GiB of 100 GiB (1 %): enough by the absolute rule
  auto r = check_spool(p);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_TRUE(r[0].ok);
  EXPECT_TRUE(r[1].ok);
  p.free_bytes = (1ull << 30) - 1;
  EXPECT_FALSE(check_spool(p)[1].ok);
  p.total_bytes = 10ull << 30;
  p.free_bytes = 512ull << 20;  // 0.5 GiB of 10 GiB = 5 %
  EXPECT_TRUE(check_spool(p)[1].ok);
  p.free_bytes = (512ull << 20) - (1ull << 20);
  Check low = check_spool(p)[1];
  EXPECT_FALSE(low.ok);
  EXPECT_TRUE(contains(low.detail, "free of 10 GiB"));
  p.free_bytes = 0;
  p.total_bytes = 0;
  EXPECT_FALSE(check_spool(p)[1].ok);

  p.writable = false;
  p.write_error = "cannot create a file in /var/spool/carrier/tmp: Permission denied";
  EXPECT_FALSE(check_spool(p)[0].ok);
  p.exists = false;
  Check missing = check_spool(p)[0];
  EXPECT_FALSE(missing.ok);
  EXPECT_TRUE(contains(missing.fix, "mkdir -p /var/spool/carrier"));
  EXPECT_EQ(human_bytes(17), "17 B");
  EXPECT_EQ(human_bytes(3ull << 29), "1.5 GiB");
}
