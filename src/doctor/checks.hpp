// carrier doctor: the checks as pure functions over data already looked up or probed (DNS
// answers, certificate facts, socket and file system probes) -> one Check each, with a one-line
// fix when it failed. RFC 5321 5.1 (MX, implicit MX), RFC 7505 (null MX), RFC 1912 2.1 and
// RFC 8601 2.7.3 (forward-confirmed reverse DNS), RFC 7208 (SPF, see spf.hpp), RFC 6125 (the
// probe uses X509_check_host).
// No I/O here; the data may come from the network (DNS answers): bounded, never throws.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "doctor/spf.hpp"
#include "dns/types.hpp"

namespace carrier::doctor {

struct Check {
  bool ok = false;
  std::string what;    // "MX good.test"
  std::string detail;  // "10 mx.good.test is this host"
  std::string fix;     // one line, only when !ok
};
// "✓ what: detail" or "✗ what: detail\n    fix: fix" (no trailing newline).
std::string format(const Check& c);

// The host name's A/AAAA records exist.
Check check_host_addresses(const std::string& host, const dns::AddrResult& a);
// Forward-confirmed reverse DNS for one of the host's addresses: its PTR names the host (the
// host's A/AAAA already contain the address, so the forward half holds).
Check check_reverse(const std::string& host, const std::string& ip, const dns::PtrResult& p);

// The domain's MX points here: a host named `host`, or one with an address among host_addrs.
// Null MX, NXDOMAIN, no MX (implicit MX: ok only when that is this host), lookup failures.
Check check_mx(const std::string& domain, const std::string& host,
               const std::vector<std::string>& host_addrs, const dns::MxResult& mx);

// SPF of `domain` for each of this host's addresses ({ip, result}); ok only when all pass.
// No address at all: not ok.
Check check_spf(const std::string& domain, const std::string& host,
                const std::vector<std::pair<std::string, SpfResult>>& results);

// What the certificate probe found out about one certificate file.
struct CertInfo {
  std::string cert_file, key_file;
  bool generated = false;   // the self-signed pair in data_dir/tls (no [tls] cert_file)
  bool exists = true;       // the file is there (a generated pair may not be made yet)
  bool loaded = false;      // readable, valid PEM, key matches (tls::check_cert_files)
  std::string load_error;
  bool self_signed = false; // issuer == subject, signed by its own key
  std::int64_t not_before = 0, not_after = 0;  // Unix time
  bool names_host = false;  // X509_check_host(host) matched
  std::vector<std::string> names;  // subjectAltName DNS / CN, for the message
};
inline constexpr std::chrono::seconds kCertWarnBefore{14 * 24 * 3600};
// Load + key, validity window (not yet valid, expired, expires within `warn`), self-signed,
// and (when check_name) that it names `host`. One Check per aspect (fewer when it did not load).
std::vector<Check> check_certificate(const CertInfo& c, const std::string& host, std::int64_t now,
                                     bool check_name, std::chrono::seconds warn = kCertWarnBefore);

// What the listener probe saw.
struct ListenerProbe {
  std::string name, address, tls;  // as configured
  std::uint16_t port = 0;
  bool connected = false;   // something accepts connections there
  std::string greeting;     // its first line (empty: none within the timeout)
  std::string connect_error;
  bool bind_tried = false;
  int bind_errno = 0;       // 0: could bind
};
Check check_listener(const ListenerProbe& p);

struct SpoolProbe {
  std::string dir;
  bool exists = false;
  bool writable = false;
  std::string write_error;  // when !writable
  bool statvfs_ok = false;
  std::string statvfs_error;
  std::uint64_t free_bytes = 0, total_bytes = 0;  // for unprivileged users (f_bavail)
};
inline constexpr std::uint64_t kMinFreeBytes = 1ull << 30;  // 1 GiB
inline constexpr int kMinFreePercent = 5;
// "spool writable" and "disk space": ok when free >= 1 GiB or >= 5 % of the file system.
std::vector<Check> check_spool(const SpoolProbe& p);

// "1.5 GiB", "300 MiB", "12 KiB", "17 B".
std::string human_bytes(std::uint64_t n);

}  // namespace carrier::doctor
