// carrier server: the local delivery router. Every recipient the policy made Local is handed
// to the transport its domain is configured for ([local] delivery, or the [[virtual]] domain's):
// Maildir, LMTP (RFC 2033, e.g. Dovecot) or a pipe to a command. Virtual mailboxes are named
// "name@domain"; Maildir keeps them in mail_dir/DOMAIN/NAME/, LMTP gets RCPT TO:<name@domain>.
// No protocol logic here: it groups recipients, calls transports, merges their results.
// A mailbox "!CODE X.Y.Z text" is a recipient the policy refused after the message was
// accepted (carrier sendmail): it fails with that reply, so the sender gets a DSN.
#pragma once
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "transport/transport.hpp"

namespace carrier::server {

class LocalRouter final : public transport::Transport {
 public:
  // maildir: the [local] Maildir transport (shared with the rest of the server). Makes the
  // other transports the configuration asks for. sync_barrier (may be empty) is given to every
  // Maildir transport it makes.
  LocalRouter(const config::Config& cfg, transport::Transport& maildir,
              std::function<int()> sync_barrier);
  ~LocalRouter() override;
  const char* name() const override { return "local"; }
  std::vector<transport::Result> deliver(const transport::Request& req) override;
  // Reload: new transports for the new configuration; deliveries in progress finish with the
  // ones they started with. Thread-safe.
  void reconfigure(const config::Config& cfg);

 private:
  struct Target {
    transport::Transport* transport = nullptr;
    bool strip_domain = false;  // Maildir of a virtual domain: mailbox "name@d" → "name"
  };
  struct Table {
    Target local;
    std::map<std::string, Target, std::less<>> virtuals;  // domain → target
    std::vector<std::unique_ptr<transport::Transport>> owned;
    Target target_for(const proto::EnvelopeRecipient& r) const;
  };
  std::shared_ptr<const Table> build(const config::Config& cfg) const;

  transport::Transport& maildir_;
  std::function<int()> barrier_;
  mutable std::mutex mu_;
  std::shared_ptr<const Table> table_;
};

}  // namespace carrier::server
