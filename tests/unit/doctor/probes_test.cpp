// Unit tests of carrier doctor's probes (src/doctor/probes.hpp) on this machine only: a
// certificate made by tls::make_self_signed (loads, self-signed, names, validity, X509_check_host
// per RFC 6125), a key that does not match; listeners on 127.0.0.1 (a server greeting 220, one
// that says nothing, a free port, a port in use); the spool directory probe (temp file
// created and removed, statvfs).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <ctime>
#include <filesystem>
#include <string>
#include <thread>

#include "doctor/probes.hpp"
#include "tls/tls.hpp"

using namespace carrier;
using namespace carrier::doctor;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    char tmpl[] = "/tmp/carrier-doctor-test-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

// A TCP listener on 127.0.0.1:<any>; optionally greets each connection once with `greeting`.
struct TestListener {
  int fd = -1;
  std::uint16_t port = 0;
  std::thread t;
  explicit TestListener(std::string greeting = "") {
    fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || ::listen(fd, 4) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len) != 0) {
      return;
    }
    port = ntohs(sa.sin_port);
    t = std::thread([this, greeting] {
      const int c = ::accept(fd, nullptr, nullptr);
      if (c < 0) return;
      if (!greeting.empty()) (void)!::send(c, greeting.data(), greeting.size(), MSG_NOSIGNAL);
      char buf[64];
      (void)!::recv(c, buf, sizeof buf, 0);  // until the prober closes (or sends QUIT)
      ::close(c);
    });
  }
  ~TestListener() {
    ::shutdown(fd, SHUT_RDWR);
    if (t.joinable()) t.join();
    ::close(fd);
  }
};

config::Listener listener(std::uint16_t port) {
  config::Listener l;
  l.address = "127.0.0.1";
  l.port = port;
  l.name = "smtp";
  return l;
}

}  // namespace

TEST(DoctorProbeCert, SelfSignedFromCarrier) {
  TempDir d;
  const tls::CertFiles f{d.path / "cert.pem", d.path / "key.pem"};
  ASSERT_TRUE(tls::make_self_signed(f, "mx.good.test"));
  const auto now = static_cast<std::int64_t>(std::time(nullptr));
  CertInfo c = inspect_certificate(f.cert_file, f.key_file, true, "mx.good.test");
  ASSERT_TRUE(c.loaded) << c.load_error;
  EXPECT_TRUE(c.exists);
  EXPECT_TRUE(c.self_signed);
  EXPECT_TRUE(c.names_host);
  EXPECT_EQ(c.names, std::vector<std::string>{"mx.good.test"});
  EXPECT_LE(c.not_before, now);
  EXPECT_GT(c.not_after, now + 9 * 365 * 86400LL);
  // RFC 6125 6.4: another name does not match.
  EXPECT_FALSE(inspect_certificate(f.cert_file, f.key_file, true, "mx.other.test").names_host);
  EXPECT_FALSE(inspect_certificate(f.cert_file, f.key_file, true, "good.test").names_host);
}

TEST(DoctorProbeCert, MissingAndMismatched) {
  TempDir d;
  CertInfo gone = inspect_certificate(d.path / "tls/cert.pem", d.path / "tls/key.pem", true, "mx.good.test");
  EXPECT_FALSE(gone.exists);
  EXPECT_FALSE(gone.loaded);
  CertInfo conf = inspect_certificate(d.path / "nope.pem", d.path / "nope.key", false, "mx.good.test");
  EXPECT_FALSE(conf.loaded);
  EXPECT_FALSE(conf.load_error.empty());
  const tls::CertFiles a{d.path / "a.pem", d.path / "a.key"}, b{d.path / "b.pem", d.path / "b.key"};
  ASSERT_TRUE(tls::make_self_signed(a, "mx.good.test"));
  ASSERT_TRUE(tls::make_self_signed(b, "mx.good.test"));
  CertInfo mixed = inspect_certificate(a.cert_file, b.key_file, false, "mx.good.test");
  EXPECT_FALSE(mixed.loaded);
  EXPECT_NE(mixed.load_error.find("does not match"), std::string::npos) << mixed.load_error;
}

// A 220 greeting is a running SMTP server (RFC 5321 4.2); silence is something else.
TEST(DoctorProbeListener, GreetingSilenceFreeAndInUse) {
  {
    TestListener smtp("220 mx.good.test ESMTP carrier\r\n");
    ASSERT_NE(smtp.port, 0);
    ListenerProbe p = probe_listener(listener(smtp.port));
    EXPECT_TRUE(p.connected);
    EXPECT_EQ(p.greeting, "220 mx.good.test ESMTP carrier");
    EXPECT_TRUE(check_listener(p).ok);
  }
  {
    TestListener silent;
    ASSERT_NE(silent.port, 0);
    const auto t0 = std::chrono::steady_clock::now();
    ListenerProbe p = probe_listener(listener(silent.port), std::chrono::milliseconds(300));
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(3));
    EXPECT_TRUE(p.connected);
    EXPECT_TRUE(p.greeting.empty());
    EXPECT_FALSE(check_listener(p).ok);
  }
  {
    // A port that was just free: nothing answers, binding works.
    std::uint16_t port = 0;
    {
      TestListener tmp;
      port = tmp.port;
    }
    ListenerProbe p = probe_listener(listener(port));
    EXPECT_FALSE(p.connected);
    EXPECT_TRUE(p.bind_tried);
    EXPECT_EQ(p.bind_errno, 0);
    EXPECT_TRUE(check_listener(p).ok);
  }
  {
    // Bound but not listening: connect is refused and bind says in use.
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
    ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len), 0);
    ListenerProbe p = probe_listener(listener(ntohs(sa.sin_port)));
    ::close(fd);
    EXPECT_FALSE(p.connected);
    EXPECT_EQ(p.bind_errno, EADDRINUSE);
    EXPECT_FALSE(check_listener(p).ok);
  }
  {
    config::Listener l = listener(0);
    l.address = "not-an-ip";
    EXPECT_FALSE(check_listener(probe_listener(l)).ok);
  }
}

TEST(DoctorProbeSpool, WritableMissingAndSpace) {
  TempDir d;
  fs::create_directories(d.path / "spool" / "tmp");
  SpoolProbe p = probe_spool(d.path / "spool");
  EXPECT_TRUE(p.exists);
  EXPECT_TRUE(p.writable) << p.write_error;
  EXPECT_TRUE(p.statvfs_ok);
  EXPECT_GT(p.total_bytes, 0u);
  EXPECT_LE(p.free_bytes, p.total_bytes);
  EXPECT_TRUE(fs::is_empty(d.path / "spool" / "tmp"));  // the temp file is gone
  SpoolProbe missing = probe_spool(d.path / "nope" / "spool");
  EXPECT_FALSE(missing.exists);
  EXPECT_FALSE(missing.writable);
  EXPECT_TRUE(missing.statvfs_ok);  // measured on the nearest existing parent
  // A directory where nobody (not even root) can create files.
  SpoolProbe ro = probe_spool("/proc");
  EXPECT_TRUE(ro.exists);
  EXPECT_FALSE(ro.writable);
  EXPECT_NE(ro.write_error.find("cannot create a file in /proc"), std::string::npos) << ro.write_error;
}
