// carrier transport/lmtp: final delivery to a mailbox server (Dovecot's LMTP) over LMTP,
// RFC 2033, on a unix socket ("unix:/run/dovecot/lmtp") or TCP ("127.0.0.1:24", "[::1]:24";
// IP literals only, no DNS). The dialogue is the pure session::ClientSession in LMTP mode (LHLO,
// PIPELINING when offered, one reply per accepted recipient after DATA, RFC 2033 4.2); this
// file only moves bytes, with blocking I/O on the calling delivery worker thread and poll()
// with the session's deadline on every wait. Return-Path:/Delivered-To: are NOT added: the LMTP
// server adds them. No TLS, no AUTH. Handles UNTRUSTED input (the server's replies) only
// through ClientSession.
//
// One connection per deliver() call; all its recipients in one transaction, or several on the
// same connection when there are more than ClientConfig::max_rcpts_per_transaction (100).
// Results: 2xx delivered, 4xx deferred, 5xx failed, each recipient on its own; a connect
// failure, timeout or protocol error defers every recipient without a reply yet (4.4.1/4.4.2).
#pragma once
#include <chrono>
#include <functional>
#include <string>
#include <string_view>

#include "base/result.hpp"
#include "proto/envelope.hpp"
#include "transport/transport.hpp"

namespace carrier::transport {

struct LmtpOptions {
  std::string endpoint;   // "unix:/run/dovecot/lmtp" or "127.0.0.1:24" / "[::1]:24"
  std::string lhlo_name;  // our host name
  std::chrono::seconds connect_timeout{30}, command_timeout{300}, data_timeout{600};
  // The address sent in RCPT TO for a recipient (default: its `address`).
  std::function<proto::Mailbox(const proto::EnvelopeRecipient&)> rcpt_address;
  // Recipients per LMTP transaction (several transactions share the connection). 1 by
  // default: Dovecot writes Delivered-To: only into single-recipient deliveries, and Sieve
  // and duplicate detection need it.
  std::size_t max_rcpts_per_transaction = 1;
};

class LmtpTransport final : public Transport {
 public:
  explicit LmtpTransport(LmtpOptions opts);

  const char* name() const override { return "lmtp"; }
  // Blocks for at most about connect_timeout + the session's timeouts per exchange. Never
  // throws; exactly one Result per requested recipient.
  std::vector<Result> deliver(const Request& req) override;

  // Whether an endpoint string has one of the forms above (for configuration checks).
  static carrier::Result<void> check_endpoint(std::string_view endpoint);

 private:
  LmtpOptions opts_;
};

}  // namespace carrier::transport
