// carrier server: the pickup importer. See pickup_import.hpp.
#include "server/pickup_import.hpp"

#include <spdlog/spdlog.h>

#include <future>

#include "proto/headers.hpp"

namespace carrier::server {

PickupImport::PickupImport(spool::Pickup pickup, spool::Spool& spool,
                           const session::RecipientChecker& rcpts, queue::Delivery& delivery,
                           queue::TraceLog* trace, std::string hostname)
    : pickup_(std::move(pickup)),
      spool_(spool),
      rcpts_(rcpts),
      delivery_(delivery),
      trace_(trace),
      hostname_(std::move(hostname)) {}

PickupImport::~PickupImport() { stop(); }

void PickupImport::start() {
  pickup_.clean_tmp(std::chrono::hours(1));
  thread_ = std::thread([this] { loop(); });
}

void PickupImport::stop() {
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void PickupImport::loop() {
  std::unique_lock lk(mu_);
  while (!stopping_) {
    lk.unlock();
    run_once();
    lk.lock();
    cv_.wait_for(lk, std::chrono::seconds(1), [&] { return stopping_; });
  }
}

int PickupImport::run_once() {
  int n = 0;
  for (const auto& name : pickup_.list()) {
    {
      std::lock_guard lk(mu_);
      if (stopping_) break;
    }
    if (import(name)) ++n;
  }
  return n;
}

bool PickupImport::import(const std::string& name) {
  auto m = pickup_.read(name);
  if (!m) {
    if (m.error().sys_errno != ENOENT)
      spdlog::error("pickup {}: {}", name, m.error().message);
    return false;
  }
  const auto now = std::chrono::system_clock::now();
  proto::Envelope env;
  env.sender = m->sender;
  env.protocol = "local";
  // RFC 6531 3.4: an address that needs UTF-8 makes it an SMTPUTF8 message.
  env.params.smtputf8 = m->sender.needs_utf8();
  for (const auto& r : m->recipients) env.params.smtputf8 = env.params.smtputf8 || r.needs_utf8();
  env.received_at_ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  // The local user is trusted as an authenticated one: it may send to any domain.
  session::ClientInfo local{"127.0.0.1", "localhost", 0, false, true, "",
                            "uid " + std::to_string(m->owner_uid)};
  for (const auto& r : m->recipients) {
    auto d = rcpts_.check(r, local);
    if (d.accept) {
      for (auto& er : d.recipients) {
        if (er.original.empty()) er.original = r;
        env.recipients.push_back(std::move(er));
      }
      continue;
    }
    // Refused (unknown local user): a Local recipient whose "mailbox" carries the reply; the
    // local router fails it with that text, and the sender gets the usual DSN.
    proto::EnvelopeRecipient er;
    er.address = r;
    er.original = r;
    er.route = proto::RcptRoute::Local;
    er.mailbox = "!" + std::to_string(d.reply.code) + " " + d.reply.status + " " +
                 (d.reply.lines.empty() ? std::string("refused") : d.reply.lines.front());
    env.recipients.push_back(std::move(er));
  }
  auto w = spool_.begin(env);
  if (!w) {
    spdlog::error("pickup {}: spool: {}; will try again", name, w.error().message);
    return false;
  }
  spool::Writer writer = std::move(w).value();
  const std::string id = writer.id();
  std::string received = "Received: by " + proto::sanitize_header_value(hostname_) +
                         " (carrier sendmail, uid " + std::to_string(m->owner_uid) + ")\r\n\tid " +
                         id + "; " + proto::rfc5322_date(now) + "\r\n";
  if (auto r = writer.write(received); !r) {
    spdlog::error("pickup {}: spool write: {}; will try again", name, r.error().message);
    writer.abort();
    return false;
  }
  if (auto r = writer.write(m->content); !r) {
    spdlog::error("pickup {}: spool write: {}; will try again", name, r.error().message);
    writer.abort();
    return false;
  }
  std::promise<Result<std::string>> done;
  auto fut = done.get_future();
  spool_.commit(std::move(writer), [&done](Result<std::string> r) { done.set_value(std::move(r)); });
  auto r = fut.get();
  if (!r) {
    spdlog::error("pickup {}: spool commit: {}; will try again", name, r.error().message);
    return false;
  }
  // Durable in the spool: only now the pickup file goes.
  if (auto rm = pickup_.remove(name); !rm)
    spdlog::error("pickup {}: cannot remove after import as {}: {}", name, id, rm.error().message);
  std::string rcpts;
  for (const auto& x : m->recipients) rcpts += (rcpts.empty() ? "<" : ",<") + x.str() + ">";
  spdlog::info("{}: from=<{}> to={} size={} nrcpt={} (sendmail, uid {})", id, m->sender.str(), rcpts,
               m->content.size(), m->recipients.size(), m->owner_uid);
  if (trace_)
    trace_->append(id, "received by carrier sendmail from uid " + std::to_string(m->owner_uid) +
                           " from=<" + m->sender.str() + "> nrcpt=" +
                           std::to_string(m->recipients.size()) +
                           " size=" + std::to_string(m->content.size()));
  delivery_.submit(r.value());
  return true;
}

}  // namespace carrier::server
