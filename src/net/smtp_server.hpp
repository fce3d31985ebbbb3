// carrier net: SMTP listeners and connections on Asio. Only moves bytes: lines and content go
// to the pure session (src/session), message bytes to the spool (src/spool). Enforces the
// limits that belong to I/O: connections in total and per client IP, a deadline on every read
// and write (RFC 5321 4.5.3.2), bounded buffers (a command line over the limit is skipped to
// its end, never buffered whole). Handles UNTRUSTED input (raw bytes from the network).
#pragma once
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "filter/filter.hpp"
#include "session/server_session.hpp"
#include "spool/spool.hpp"
#include "tls/tls.hpp"

namespace asio {
class io_context;
}

namespace carrier::net {

struct ServerLimits {
  int max_connections = 1000;
  int max_connections_per_ip = 100;
  std::chrono::seconds command_timeout{300};  // each read and write (RFC 5321 4.5.3.2.7)
  std::chrono::seconds data_timeout{600};     // a whole DATA transfer or BDAT chunk
  std::chrono::seconds connect_check_timeout{10};  // check_client, before the greeting
};

struct ListenerSpec {
  std::string address;  // IP literal
  std::uint16_t port = 0;
  std::string name = "smtp";
  // This listener's session settings (default: ctx.session). Connections keep the one they
  // started with; reconfigure() gives new connections a new one.
  std::shared_ptr<const session::Config> session;
  bool implicit_tls = false;                 // RFC 8314: TLS from the first byte (port 465)
};

// The verdict of a credential check (AUTH, RFC 4954).
struct AuthCheck {
  session::ServerSession::AuthVerdict verdict = session::ServerSession::AuthVerdict::Bad;
  session::AuthIdentity who;
};

struct AuthLimits {
  std::chrono::milliseconds failure_delay{2000};  // before a 535
  int max_failures = 5;                           // per client IP within failure_window
  std::chrono::seconds failure_window{900};
};

struct ServerContext {
  const session::Config* session = nullptr;
  const session::RecipientChecker* recipients = nullptr;
  spool::Spool* spool = nullptr;
  ServerLimits limits;
  // Server certificates (STARTTLS, implicit TLS); null: no TLS.
  const tls::TlsStore* tls = nullptr;
  // Checks credentials off the I/O thread (password hashing is slow on purpose) and calls
  // done from any thread. Unset: every AUTH fails temporarily.
  std::function<void(std::string user, std::string password, std::function<void(AuthCheck)> done)>
      authenticate;
  AuthLimits auth;
  // Connect checks (DNSBL) before the greeting; `done` from any thread. A check that has not
  // answered within limits.connect_check_timeout counts as no verdict. Unset: none.
  std::function<void(const session::ClientInfo&, std::function<void(filter::ConnectVerdict)>)>
      check_client;
  // Message checks after the content was received, before commit (SPF/DKIM/DMARC, milters).
  // Null or empty: none. Header edits are applied by rewriting the spool tmp file; a Hold
  // verdict records "held" in the message's state file before the 250.
  std::shared_ptr<filter::Pipeline> checks;
  // Called on the I/O thread after a message was committed and acknowledged.
  // info: "received from HELO [IP] with PROTO from=<...> nrcpt=N size=N tls=(...) auth=USER".
  // loaded: the message as the spool would load it (null when it was held), so that the
  // queue need not read back what was just written.
  std::function<void(const std::string& queue_id, const std::string& info,
                     std::unique_ptr<spool::Stored> loaded)>
      on_queued;
};

struct Stats {
  std::uint64_t connections_total = 0;
  std::uint64_t connections_rejected = 0;
  std::uint64_t messages_accepted = 0;
  std::uint64_t tls_handshakes = 0;
  std::uint64_t tls_failures = 0;
  std::uint64_t auth_failures = 0;
  int connections_current = 0;
};

class SmtpServer {
 public:
  SmtpServer(asio::io_context& io, ServerContext ctx);
  ~SmtpServer();
  // Binds and listens; returns the bound endpoints ("127.0.0.1:2525") or an error.
  Result<std::vector<std::string>> listen(const std::vector<ListenerSpec>& specs);
  // Reload (on the I/O thread): listeners in `specs` that exist already (same address, port
  // and name; port 0 matches the one bound before) keep their socket and take the new
  // settings for new connections; the others are opened; listeners not in `specs` stop
  // accepting. Sessions in progress are never touched. Returns the endpoints now bound, in
  // the order of `specs`, or an error (then nothing changed).
  Result<std::vector<std::string>> reconfigure(const std::vector<ListenerSpec>& specs);
  void set_limits(const ServerLimits& l);
  // Reload (on the I/O thread): the checks for new messages and new connections.
  void set_checks(std::shared_ptr<filter::Pipeline> checks,
                  std::function<void(const session::ClientInfo&,
                                     std::function<void(filter::ConnectVerdict)>)> check_client);
  // Stops accepting; connections in progress go on.
  void stop_accepting();
  Stats stats() const;

  struct Impl;  // public so the connection code in the .cpp can name it

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace carrier::net
