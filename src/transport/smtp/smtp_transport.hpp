// carrier transport/smtp: relays messages to the next MTA over SMTP (RFC 5321). The route comes
// from configuration ([[route]], smarthost) or DNS MX (RFC 5321 5.1, with A/AAAA fallback and
// null MX, RFC 7505). Hosts are tried in order until one takes the transaction; only
// connection-level failures (unreachable, greeting or EHLO refused) move on to the next host.
// The SMTP dialogue is the pure session::ClientSession; this file only moves bytes, with a
// deadline on every wait (RFC 5321 4.5.3.2). Handles UNTRUSTED input (the peers' replies) only
// through ClientSession and the resolver.
//
// It runs its own I/O thread; deliver() is called on a delivery worker thread and waits for the
// outcome; deliver_async() (what the queue uses) returns at once and reports on the I/O
// thread, so a next hop that stalls holds no delivery thread. Limits: max_connections in
// total, max_per_destination per next hop (a delivery waits, first come first served, for a
// free slot as long as attempts on that next hop keep ending with an answer, else up to
// connect_timeout; a freed slot is handed over at once).
#pragma once
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "base/result.hpp"
#include "dns/resolver.hpp"
#include "session/client_session.hpp"
#include "tls/tls.hpp"
#include "transport/smtp/routing.hpp"
#include "transport/transport.hpp"

namespace carrier::transport {

struct SmtpOptions {
  std::string helo_name = "localhost";
  std::uint16_t port = 25;          // for MX deliveries and routes without a port
  std::vector<SmtpRoute> routes;    // first match wins; a smarthost is a final "*" route
  dns::ResolverOptions dns;
  int max_connections = 100;
  int max_per_destination = 10;
  std::chrono::seconds connect_timeout{30};
  double rate_per_destination = 0;  // messages per second per next hop (0: unlimited)
  session::ClientTimeouts timeouts;
  SelfIdentity self;                // MX loop detection (RFC 5321 5.1)
  // TLS contexts for STARTTLS (RFC 3207); null: no TLS ("may" goes on in plain text,
  // "encrypt"/"verify" defer).
  std::shared_ptr<tls::ClientTls> tls;
};

class SmtpTransport final : public Transport {
 public:
  explicit SmtpTransport(SmtpOptions opts);
  ~SmtpTransport() override;
  SmtpTransport(const SmtpTransport&) = delete;
  SmtpTransport& operator=(const SmtpTransport&) = delete;

  carrier::Result<void> start();  // resolver and I/O thread
  // Reload: messages started from now on use these routes. Thread-safe.
  void set_routes(std::vector<SmtpRoute> routes);
  void stop();           // finishes nothing new; deliveries in progress end with TempFail

  const char* name() const override { return "smtp"; }
  std::vector<Result> deliver(const Request& req) override;
  // Returns at once; `done` runs on the transport's I/O thread when every recipient domain's
  // job has ended (or at stop(), with what is left deferred). No thread waits meanwhile.
  void deliver_async(const Request& req, Done done) override;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace carrier::transport
