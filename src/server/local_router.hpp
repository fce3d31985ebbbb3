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

 private:
  struct Target {
    transport::Transport* transport = nullptr;
    bool strip_domain = false;  // Maildir of a virtual domain: mailbox "name@d" → "name"
  };
  Target target_for(const proto::EnvelopeRecipient& r) const;

  Target local_;
  std::map<std::string, Target, std::less<>> virtual_;  // domain → target
  std::vector<std::unique_ptr<transport::Transport>> owned_;
};

}  // namespace carrier::server
