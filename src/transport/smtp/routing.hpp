// carrier transport/smtp: where relayed mail goes — pure rules. RFC 5321 5.1 (MX order, the
// implicit MX, dropping ourselves and every less preferred MX), RFC 7505 (null MX) is decided
// by the resolver. Configured routes override DNS. No I/O.
#pragma once
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/rate.hpp"
#include "dns/types.hpp"
#include "session/client_session.hpp"

namespace carrier::transport {

struct SmtpRoute {
  std::string domain;      // "example.com", "*.example.com" or "*"
  std::string host;        // host name or IP literal
  std::uint16_t port = 0;  // 0: the transport's default port
  bool mx = true;          // look up the MX of host (false: "[host]", connect directly)
  session::TlsPolicy tls = session::TlsPolicy::May;
  std::string tls_name;    // Verify: the name the certificate must match (default: the host)
  double rate = 0;         // messages per second to this next hop; 0: the transport's default
};

// Paces messages to one destination at `per_second` (0: unlimited): each message is given the
// next free slot, interval = 1 / per_second apart. Returns how long the caller must wait
// before sending; the slot is reserved. Pure: the caller passes the time.
class RatePacer {
 public:
  explicit RatePacer(double per_second = 0) : per_second_(per_second) {}
  std::chrono::nanoseconds reserve(std::chrono::steady_clock::time_point now);

 private:
  double per_second_;
  std::chrono::steady_clock::time_point next_{};
};

// First matching route: exact domain, then "*.parent" for subdomains, then "*" — in the order
// configured (first match wins). nullptr: use the domain's own MX.
const SmtpRoute* match_route(const std::vector<SmtpRoute>& routes, std::string_view domain);

// One place to connect to.
struct Target {
  std::string host;  // name (for logs, DSN Remote-MTA)
  std::string ip;
  std::uint16_t port = 25;
};

struct SelfIdentity {
  std::vector<std::string> names;                                // our host names, lower case
  std::vector<std::pair<std::string, std::uint16_t>> endpoints;  // our listeners (ip, port)
};

// RFC 5321 5.1: when this host is one of the MX hosts, only hosts with a strictly lower
// preference value than ours may be used. Returns the targets in order; loops = true when we
// are the best MX (nothing left: mail for the domain would come back to us).
std::vector<Target> plan_targets(const dns::MxResult& mx, std::uint16_t port,
                                 const SelfIdentity& self, bool& loops);

}  // namespace carrier::transport
