// carrier doctor: probes of the certificate files (OpenSSL), the listener addresses (TCP
// connect + greeting, TLS for implicit-TLS listeners, else bind) and the spool directory
// (temporary file, statvfs). Every network step has a timeout; the greeting read is bounded
// (one line, at most 512 octets: RFC 5321 4.5.3.1.5 reply line limit).
#include "doctor/probes.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <memory>

#include "tls/tls.hpp"

namespace carrier::doctor {

namespace {

constexpr std::size_t kMaxGreeting = 512;  // RFC 5321 4.5.3.1.5: a reply line

std::int64_t asn1_time(const ASN1_TIME* t) {
  std::tm tm{};
  if (!t || ASN1_TIME_to_tm(t, &tm) != 1) return 0;
  return static_cast<std::int64_t>(timegm(&tm));
}

// A socket closed on scope exit.
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

union SockAddr {
  sockaddr sa;
  sockaddr_in v4;
  sockaddr_in6 v6;
};

bool make_addr(const std::string& address, std::uint16_t port, bool for_connect, SockAddr& out, socklen_t& len) {
  std::memset(&out, 0, sizeof out);
  if (::inet_pton(AF_INET, address.c_str(), &out.v4.sin_addr) == 1) {
    out.v4.sin_family = AF_INET;
    out.v4.sin_port = htons(port);
    // A wildcard listener is reached on the loopback address.
    if (for_connect && out.v4.sin_addr.s_addr == htonl(INADDR_ANY)) out.v4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    len = sizeof out.v4;
    return true;
  }
  if (::inet_pton(AF_INET6, address.c_str(), &out.v6.sin6_addr) == 1) {
    out.v6.sin6_family = AF_INET6;
    out.v6.sin6_port = htons(port);
    if (for_connect && IN6_IS_ADDR_UNSPECIFIED(&out.v6.sin6_addr)) out.v6.sin6_addr = in6addr_loopback;
    len = sizeof out.v6;
    return true;
  }
  return false;
}

// Non-blocking connect bounded by `timeout`; on success the socket is blocking again with
// send/receive timeouts set. Returns 0 or an errno.
int connect_bounded(int fd, const SockAddr& a, socklen_t len, std::chrono::milliseconds timeout) {
  const int flags = ::fcntl(fd, F_GETFL);
  ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
  if (::connect(fd, &a.sa, len) != 0) {
    if (errno != EINPROGRESS) return errno;
    pollfd p{fd, POLLOUT, 0};
    const int n = ::poll(&p, 1, static_cast<int>(timeout.count()));
    if (n == 0) return ETIMEDOUT;
    if (n < 0) return errno;
    int err = 0;
    socklen_t el = sizeof err;
    ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
    if (err != 0) return err;
  }
  ::fcntl(fd, F_SETFL, flags);
  timeval tv{static_cast<time_t>(timeout.count() / 1000), static_cast<suseconds_t>((timeout.count() % 1000) * 1000)};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  return 0;
}

// Reads up to the first line end (or kMaxGreeting octets) with `read_some`, which returns the
// number of octets read or <= 0 on end / error / timeout.
template <class Read>
std::string read_line(Read read_some) {
  std::string line;
  char buf[128];
  while (line.size() < kMaxGreeting) {
    const int n = read_some(buf, static_cast<int>(std::min<std::size_t>(sizeof buf, kMaxGreeting - line.size())));
    if (n <= 0) break;
    line.append(buf, static_cast<std::size_t>(n));
    if (line.find('\n') != std::string::npos) break;
  }
  const auto eol = line.find_first_of("\r\n");
  if (eol != std::string::npos) line.resize(eol);
  // Only printable ASCII goes into the report.
  for (auto& c : line) {
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e) c = '?';
  }
  return line;
}

}  // namespace

CertInfo inspect_certificate(const std::filesystem::path& cert_file, const std::filesystem::path& key_file,
                             bool generated, const std::string& host) {
  CertInfo c;
  c.cert_file = cert_file.string();
  c.key_file = key_file.string();
  c.generated = generated;
  std::error_code ec;
  c.exists = std::filesystem::exists(cert_file, ec);
  if (generated && !c.exists) return c;
  auto names = tls::check_cert_files(tls::CertFiles{cert_file, key_file});
  if (!names) {
    c.load_error = names.error().message;
    return c;
  }
  c.names = std::move(names).value();
  FILE* f = std::fopen(cert_file.c_str(), "r");
  if (!f) {
    c.load_error = cert_file.string() + ": " + std::strerror(errno);
    return c;
  }
  X509* x = PEM_read_X509(f, nullptr, nullptr, nullptr);
  std::fclose(f);
  if (!x) {
    ERR_clear_error();
    c.load_error = cert_file.string() + ": not a PEM certificate";
    return c;
  }
  std::unique_ptr<X509, decltype(&X509_free)> xc(x, X509_free);
  c.loaded = true;
  c.not_before = asn1_time(X509_get0_notBefore(x));
  c.not_after = asn1_time(X509_get0_notAfter(x));
  c.self_signed = X509_self_signed(x, 1) == 1;
  c.names_host = !host.empty() && X509_check_host(x, host.data(), host.size(), 0, nullptr) == 1;
  ERR_clear_error();
  return c;
}

ListenerProbe probe_listener(const config::Listener& l, std::chrono::milliseconds timeout) {
  ListenerProbe p;
  p.name = l.name;
  p.address = l.address;
  p.port = l.port;
  p.tls = l.tls;
  SockAddr a;
  socklen_t len = 0;
  if (!make_addr(l.address, l.port, true, a, len)) {
    p.bind_tried = true;
    p.bind_errno = EADDRNOTAVAIL;
    return p;
  }
  if (l.port != 0) {
    Fd s{::socket(a.sa.sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0)};
    if (s.fd >= 0) {
      const int err = connect_bounded(s.fd, a, len, timeout);
      if (err == 0) {
        p.connected = true;
        if (l.tls == "implicit") {  // RFC 8314 3: the greeting comes after the TLS handshake
          std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx(SSL_CTX_new(TLS_client_method()), SSL_CTX_free);
          std::unique_ptr<SSL, decltype(&SSL_free)> ssl(ctx ? SSL_new(ctx.get()) : nullptr, SSL_free);
          if (ssl && SSL_set_fd(ssl.get(), s.fd) == 1 && SSL_connect(ssl.get()) == 1) {
            p.greeting = read_line([&](char* b, int n) { return SSL_read(ssl.get(), b, n); });
            SSL_shutdown(ssl.get());
          }
          ERR_clear_error();
        } else {
          p.greeting = read_line([&](char* b, int n) { return static_cast<int>(::recv(s.fd, b, static_cast<std::size_t>(n), 0)); });
          if (p.greeting.rfind("220", 0) == 0) (void)!::send(s.fd, "QUIT\r\n", 6, MSG_NOSIGNAL);
        }
        return p;
      }
      p.connect_error = std::strerror(err);
    }
  }
  make_addr(l.address, l.port, false, a, len);
  p.bind_tried = true;
  Fd b{::socket(a.sa.sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0)};
  if (b.fd < 0) {
    p.bind_errno = errno;
    return p;
  }
  const int one = 1;
  ::setsockopt(b.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);  // as the server does
  if (a.sa.sa_family == AF_INET6) ::setsockopt(b.fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (::bind(b.fd, &a.sa, len) != 0) p.bind_errno = errno;
  return p;
}

SpoolProbe probe_spool(const std::filesystem::path& dir) {
  SpoolProbe p;
  p.dir = dir.string();
  std::error_code ec;
  p.exists = std::filesystem::is_directory(dir, ec);
  if (p.exists) {
    const auto tmp = std::filesystem::is_directory(dir / "tmp", ec) ? dir / "tmp" : dir;
    std::string name = (tmp / ".carrier-doctor-XXXXXX").string();
    const int fd = ::mkstemp(name.data());
    if (fd < 0) {
      p.write_error = "cannot create a file in " + tmp.string() + ": " + std::strerror(errno);
    } else {
      const bool wrote = ::write(fd, "x", 1) == 1;
      const int werr = errno;
      ::close(fd);
      if (::unlink(name.c_str()) != 0) {
        p.write_error = "cannot remove " + name + ": " + std::strerror(errno);
      } else if (!wrote) {
        p.write_error = "cannot write to " + name + ": " + std::strerror(werr);
      } else {
        p.writable = true;
      }
    }
  }
  struct statvfs st {};
  // The nearest existing directory tells which file system the spool is (or will be) on.
  std::filesystem::path at = dir;
  while (!at.empty() && !std::filesystem::exists(at, ec) && at.has_parent_path() && at.parent_path() != at) {
    at = at.parent_path();
  }
  if (at.empty()) at = ".";
  if (::statvfs(at.c_str(), &st) != 0) {
    p.statvfs_error = "statvfs " + at.string() + ": " + std::strerror(errno);
  } else {
    p.statvfs_ok = true;
    p.free_bytes = static_cast<std::uint64_t>(st.f_bavail) * st.f_frsize;
    p.total_bytes = static_cast<std::uint64_t>(st.f_blocks) * st.f_frsize;
  }
  return p;
}

}  // namespace carrier::doctor
