// carrier server: the local delivery router. See local_router.hpp.
#include "server/local_router.hpp"

#include <pwd.h>

#include "proto/address.hpp"
#include "transport/lmtp/lmtp_transport.hpp"
#include "transport/maildir/maildir.hpp"
#include "transport/pipe/pipe_transport.hpp"

namespace carrier::server {

namespace {

// The address a mailbox is known by downstream (LMTP RCPT TO, pipe {recipient}): virtual
// mailboxes are "name@domain" already; [local] ones take the first local domain.
proto::Mailbox mailbox_address(const proto::EnvelopeRecipient& r, const std::string& local_domain) {
  proto::Mailbox m;
  const auto at = r.mailbox.rfind('@');
  if (at != std::string::npos) {
    m.local = r.mailbox.substr(0, at);
    m.domain = r.mailbox.substr(at + 1);
  } else {
    m.local = r.mailbox;
    m.domain = local_domain;
  }
  return m;
}

}  // namespace

LocalRouter::LocalRouter(const config::Config& cfg, transport::Transport& maildir,
                         std::function<int()> sync_barrier)
    : maildir_(maildir), barrier_(std::move(sync_barrier)), table_(build(cfg)) {}

LocalRouter::~LocalRouter() = default;

void LocalRouter::reconfigure(const config::Config& cfg) {
  auto t = build(cfg);
  std::lock_guard lk(mu_);
  table_ = std::move(t);
}

std::shared_ptr<const LocalRouter::Table> LocalRouter::build(const config::Config& cfg) const {
  auto table = std::make_shared<Table>();
  const std::string first_local = cfg.local_domains.empty() ? cfg.hostname : cfg.local_domains.front();
  auto make = [&](const config::DeliveryMethod& d, const std::filesystem::path* vdir) -> Target {
    if (d.method == "lmtp") {
      transport::LmtpOptions o;
      o.endpoint = d.lmtp;
      o.lhlo_name = cfg.hostname;
      o.rcpt_address = [first_local](const proto::EnvelopeRecipient& r) {
        return mailbox_address(r, first_local);
      };
      table->owned.push_back(std::make_unique<transport::LmtpTransport>(std::move(o)));
      return Target{table->owned.back().get(), false};
    }
    if (d.method == "pipe") {
      transport::PipeOptions o;
      o.argv = d.pipe_command;
      o.timeout = d.pipe_timeout;
      o.hostname = cfg.hostname;
      o.recipient_delimiter = cfg.recipient_delimiter;
      table->owned.push_back(std::make_unique<transport::PipeTransport>(std::move(o)));
      return Target{table->owned.back().get(), false};
    }
    if (!vdir) return Target{&maildir_, false};
    auto m = std::make_unique<transport::MaildirTransport>(*vdir, cfg.hostname);
    if (barrier_) m->set_sync_barrier(barrier_);
    if (!d.maildir_owner.empty())
      if (const passwd* pw = ::getpwnam(d.maildir_owner.c_str())) m->set_owner(pw->pw_uid, pw->pw_gid);
    table->owned.push_back(std::move(m));
    return Target{table->owned.back().get(), true};
  };
  table->local = make(cfg.local_delivery, nullptr);
  for (const auto& v : cfg.virtual_domains) {
    const std::filesystem::path dir = cfg.mail_dir / v.domain;
    table->virtuals.emplace(v.domain, make(v.delivery, &dir));
  }
  return table;
}

LocalRouter::Target LocalRouter::Table::target_for(const proto::EnvelopeRecipient& r) const {
  const auto at = r.mailbox.rfind('@');
  if (at == std::string::npos) return local;
  auto it = virtuals.find(std::string_view(r.mailbox).substr(at + 1));
  return it == virtuals.end() ? Target{} : it->second;
}

std::vector<transport::Result> LocalRouter::deliver(const transport::Request& req) {
  using Status = spool::RecipientResult::Status;
  std::shared_ptr<const Table> table;
  {
    std::lock_guard lk(mu_);
    table = table_;  // kept alive until this delivery is done, whatever a reload does
  }
  std::vector<transport::Result> out;
  const auto& rcpts = req.message->envelope.recipients;
  // Group by target (transport + whether the domain is stripped): usually one group.
  std::map<std::pair<transport::Transport*, bool>, std::vector<std::size_t>> groups;
  for (std::size_t i : req.recipients) {
    if (i >= rcpts.size()) continue;
    if (!rcpts[i].mailbox.empty() && rcpts[i].mailbox.front() == '!') {
      // Refused by the policy when imported from the pickup directory: "!CODE X.Y.Z text".
      const std::string& why = rcpts[i].mailbox;
      const auto sp = why.find(' ');
      out.push_back(transport::Result{i, Status::Failed,
                                      sp == std::string::npos ? "5.1.1 recipient refused"
                                                              : why.substr(sp + 1)});
      continue;
    }
    Target t = table->target_for(rcpts[i]);
    if (!t.transport) {
      // The domain is no longer hosted here (configuration changed while it was queued).
      out.push_back(transport::Result{i, Status::Deferred,
                                      "4.3.5 no local delivery configured for " + rcpts[i].mailbox});
      continue;
    }
    groups[{t.transport, t.strip_domain}].push_back(i);
  }
  for (auto& [key, idxs] : groups) {
    transport::Request sub{req.message, idxs};
    spool::Stored copy;
    if (key.second) {  // virtual Maildir: the transport's directory is already the domain's
      copy = *req.message;
      for (std::size_t i : idxs) {
        auto& mb = copy.envelope.recipients[i].mailbox;
        mb = mb.substr(0, mb.rfind('@'));
      }
      sub.message = &copy;
    }
    for (auto& r : key.first->deliver(sub)) out.push_back(std::move(r));
  }
  return out;
}

}  // namespace carrier::server
