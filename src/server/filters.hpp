// carrier server: builds the defence checks from the configuration and owns what they run on.
//   - FilterRuntime (process lifetime): an io_context thread for the checks' network I/O (DNS
//     lookups, milter connections) and a dns::Resolver configured from [dns] like the relay's.
//   - Checks (rebuilt on reload): the message check Pipeline (spf → dkim → dmarc →
//     Authentication-Results → milters), the MAIL/RCPT Gate (disk reserve, rate limits) and
//     the connect check (DNSBL).
// Sessions keep the Gate of the configuration they started with; a message in the checks
// keeps the Pipeline it started with (shared_ptr).
#pragma once
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "base/result.hpp"
#include "config/config.hpp"
#include "filter/filter.hpp"
#include "session/server_session.hpp"

namespace asio {
class io_context;
}
namespace carrier::dns {
class Resolver;
}

namespace carrier::server {

class FilterRuntime {
 public:
  // Starts the thread and the resolver ([dns] upstream, ipv4/ipv6).
  static Result<std::unique_ptr<FilterRuntime>> start(const config::Config& cfg);
  ~FilterRuntime();  // stops the thread; the resolver is destroyed on it
  asio::io_context& io();
  dns::Resolver& resolver();

 private:
  FilterRuntime() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// MAIL/RCPT policy of one configuration: the disk reserve and every feature's gate, in order.
class ServerGate final : public session::Gate {
 public:
  ServerGate(std::filesystem::path spool_dir, std::uint64_t min_free_space);
  void add(std::shared_ptr<session::Gate> g) { parts_.push_back(std::move(g)); }
  std::optional<proto::Reply> on_mail(const session::ClientInfo& client, const proto::Mailbox& sender,
                                      const proto::MailParams& params) override;
  std::optional<proto::Reply> on_rcpt(const session::ClientInfo& client, const proto::Envelope& env,
                                      const proto::Mailbox& rcpt) override;
  void on_accepted(const session::ClientInfo& client, const proto::Envelope& env) override;
  // Free bytes on the spool's file system (statvfs, cached for 250 ms); nullopt: unknown.
  std::optional<std::uint64_t> free_space();

 private:
  std::filesystem::path dir_;
  std::uint64_t reserve_;
  std::vector<std::shared_ptr<session::Gate>> parts_;
  std::mutex mu_;
  std::chrono::steady_clock::time_point checked_{};
  std::optional<std::uint64_t> free_;
};

struct Checks {
  std::shared_ptr<filter::Pipeline> pipeline;   // null: no message checks configured
  std::shared_ptr<ServerGate> gate;             // always (the disk reserve)
  // Empty: no connect checks.
  std::function<void(const session::ClientInfo&, std::function<void(filter::ConnectVerdict)>)>
      check_client;
  std::vector<std::string> names;               // what is on, for the startup log
};

// Builds the checks of `cfg`. Errors (e.g. a DKIM key that does not load) are reported
// as text; check-config catches them first.
Result<Checks> build_checks(const config::Config& cfg, FilterRuntime& rt);

// True when `ip` is in [relay] trusted_networks (the auth checks skip those clients).
bool trusted_client(const config::Config& cfg, const std::string& ip);

}  // namespace carrier::server
