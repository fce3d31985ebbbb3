// carrier server: wiring. Builds the pure session configuration and recipient policy from the
// operator's configuration, opens the spool (recovering what a crash left), starts delivery,
// listens, and runs the I/O loop until SIGTERM/SIGINT. Holds no protocol logic.
#include "server/server.hpp"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <asio.hpp>
#include <cstdio>
#include <filesystem>

#include "net/smtp_server.hpp"
#include "queue/delivery.hpp"
#include "session/policy.hpp"
#include "session/server_session.hpp"
#include "spool/spool.hpp"
#include "transport/maildir/maildir.hpp"
#include "transport/smtp/smtp_transport.hpp"

namespace carrier::server {
namespace {

session::Config session_config(const config::Config& c) {
  session::Config s;
  s.hostname = c.hostname;
  s.postmaster_domain = c.local_domains.empty() ? c.hostname : c.local_domains.front();
  s.limits.max_command_line = c.limits.max_command_line;
  s.limits.max_message_size = c.limits.max_message_size;
  s.limits.max_recipients = c.limits.max_recipients;
  s.limits.max_errors = c.limits.max_errors;
  s.limits.max_received_headers = c.limits.max_received_headers;
  s.bare_newline =
      c.bare_newline == "normalize" ? proto::BareNewline::Normalize : proto::BareNewline::Reject;
  return s;
}

session::LocalPolicyData policy_data(const config::Config& c) {
  session::LocalPolicyData d;
  d.domains = c.local_domains;
  d.mailboxes = c.mailboxes;
  d.aliases = c.aliases;
  d.recipient_delimiter = c.recipient_delimiter;
  d.trusted_networks = c.trusted_networks;
  return d;
}

// Many idle connections each hold a descriptor: take the hard limit.
void raise_fd_limit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

std::string join(const std::vector<std::string>& v, const char* sep) {
  std::string r;
  for (const auto& x : v) {
    if (!r.empty()) r += sep;
    r += x;
  }
  return r;
}

}  // namespace

int serve(const config::Config& cfg) {
  ::signal(SIGPIPE, SIG_IGN);
  raise_fd_limit();
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(cfg.mail_dir, ec);
  if (ec) {
    spdlog::critical("cannot create mail directory {}: {}", cfg.mail_dir.string(), ec.message());
    return 1;
  }
  spool::Options sopts;
  sopts.dir = cfg.spool_dir;
  sopts.sync_mode = cfg.sync_mode == "filesystem" ? spool::SyncMode::Filesystem : spool::SyncMode::File;
  auto sp = spool::Spool::open(sopts);
  if (!sp) {
    spdlog::critical("cannot open spool {}: {}", cfg.spool_dir.string(), sp.error().message);
    return 1;
  }
  spool::Spool& spool = **sp;

  const session::Config scfg = session_config(cfg);
  const session::LocalPolicy policy(policy_data(cfg));
  transport::MaildirTransport maildir(cfg.mail_dir, cfg.hostname);
  // With sync_mode = "filesystem" and the mailboxes on the spool's file system, deliveries
  // share the spool's syncfs rounds instead of two fsyncs each.
  if (sopts.sync_mode == spool::SyncMode::Filesystem && spool.same_filesystem(cfg.mail_dir)) {
    maildir.set_sync_barrier([&spool] {
      auto r = spool.sync_barrier();
      return r ? 0 : (r.error().sys_errno ? r.error().sys_errno : EIO);
    });
    spdlog::info("maildir deliveries share the spool's group commit (same file system)");
  }
  queue::Options qopts;
  qopts.threads = cfg.delivery_threads;
  qopts.retry_initial = cfg.retry_initial;
  qopts.retry_max = cfg.retry_max;
  qopts.hostname = cfg.hostname;
  qopts.max_lifetime = cfg.max_queue_lifetime;
  qopts.delay_warning = cfg.delay_warning;
  qopts.max_bounces_per_minute = cfg.max_bounces_per_minute;
  // Sender notices: a sender in a local domain gets it in its mailbox (aliases expanded; an
  // unknown local name gets nothing), any other sender through the relay.
  qopts.classify = [&policy](const proto::Mailbox& sender) {
    std::vector<proto::EnvelopeRecipient> to;
    if (!sender.is_address_literal() && policy.is_local_domain(sender.domain)) {
      auto d = policy.check(sender, session::ClientInfo{});
      if (d.accept) to = std::move(d.recipients);
      return to;
    }
    proto::EnvelopeRecipient r;
    r.address = sender;
    r.original = sender;
    r.route = proto::RcptRoute::Relay;
    to.push_back(std::move(r));
    return to;
  };
  queue::Delivery delivery(spool, maildir, qopts);

  // Relay: SMTP to the next MTA, by [[route]], smarthost or DNS MX.
  transport::SmtpOptions ropts;
  ropts.helo_name = cfg.hostname;
  ropts.port = cfg.relay_port;
  auto to_route = [](const config::Route& r) {
    transport::SmtpRoute x;
    x.domain = r.domain;
    x.host = r.host;
    x.port = r.port;
    x.mx = r.mx;
    x.rate = r.rate;
    x.tls = r.tls == "none"      ? session::TlsPolicy::None
            : r.tls == "encrypt" ? session::TlsPolicy::Encrypt
                                 : session::TlsPolicy::May;
    return x;
  };
  for (const auto& r : cfg.routes) ropts.routes.push_back(to_route(r));
  if (cfg.smarthost) ropts.routes.push_back(to_route(*cfg.smarthost));
  ropts.dns.upstream = cfg.dns_upstream;
  ropts.dns.ipv4 = cfg.dns_ipv4;
  ropts.dns.ipv6 = cfg.dns_ipv6;
  ropts.dns.prefer_ipv6 = cfg.dns_prefer_ipv6;
  ropts.max_connections = cfg.relay_max_connections;
  ropts.max_per_destination = cfg.relay_max_per_destination;
  ropts.connect_timeout = cfg.connect_timeout;
  ropts.rate_per_destination = cfg.relay_rate_per_destination;
  ropts.self.names.push_back(cfg.hostname);
  for (const auto& l : cfg.listeners) ropts.self.endpoints.emplace_back(l.address, l.port);
  transport::SmtpTransport relay(ropts);
  if (auto r = relay.start(); !r) {
    spdlog::critical("relay: cannot start the DNS resolver: {}", r.error().message);
    return 1;
  }
  delivery.set_relay(&relay);

  asio::io_context io(1);
  net::ServerContext ctx;
  ctx.session = &scfg;
  ctx.recipients = &policy;
  ctx.spool = &spool;
  ctx.limits.max_connections = cfg.limits.max_connections;
  ctx.limits.max_connections_per_ip = cfg.limits.max_connections_per_ip;
  ctx.limits.command_timeout = cfg.limits.command_timeout;
  ctx.limits.data_timeout = cfg.limits.data_timeout;
  ctx.on_queued = [&delivery](const std::string& id) { delivery.submit(id); };
  net::SmtpServer smtp(io, ctx);

  std::vector<net::ListenerSpec> specs;
  for (const auto& l : cfg.listeners) specs.push_back({l.address, l.port, l.name});
  auto bound = smtp.listen(specs);
  if (!bound) {
    spdlog::critical("{}", bound.error().message);
    return 1;
  }
  delivery.start();  // delivers what an earlier run left in the spool

  for (std::size_t i = 0; i < bound->size(); ++i)
    std::printf("carrier: listening on %s (%s)\n", (*bound)[i].c_str(), specs[i].name.c_str());
  const std::string first = bound->front();
  const std::string port = first.substr(first.rfind(':') + 1);
  const std::string host = first.substr(0, first.rfind(':'));
  const std::string connect_host =
      host == "0.0.0.0" ? "127.0.0.1" : (host == "[::]" ? "[::1]" : host);
  const fs::path mail_abs = fs::absolute(cfg.mail_dir).lexically_normal();
  const std::string demo_domain = cfg.local_domains.empty() ? "localhost" : cfg.local_domains.front();
  const std::string demo_box = cfg.mailboxes.empty() ? "postmaster" : cfg.mailboxes.back();
  std::printf(
      "carrier %s ready as %s; local domains: %s; mailboxes: %s\n"
      "  spool:     %s\n"
      "  mailboxes: %s/<name>/new/\n"
      "Send a test message:\n"
      "  swaks --server %s:%s --from you@example.com --to %s@%s\n"
      "or\n"
      "  python3 -c \"import smtplib; smtplib.SMTP('%s', %s).sendmail('you@example.com', "
      "['%s@%s'], 'Subject: hello\\r\\n\\r\\nHi from carrier\\r\\n')\"\n"
      "It will appear in %s/%s/new/\n",
      CARRIER_VERSION, cfg.hostname.c_str(), join(cfg.local_domains, ", ").c_str(),
      join(cfg.mailboxes, ", ").c_str(), fs::absolute(cfg.spool_dir).lexically_normal().c_str(),
      mail_abs.c_str(), connect_host.c_str(), port.c_str(), demo_box.c_str(),
      demo_domain.c_str(), connect_host.c_str(), port.c_str(), demo_box.c_str(),
      demo_domain.c_str(), mail_abs.c_str(), demo_box.c_str());
  std::fflush(stdout);
  spdlog::info("carrier {} started: {} listener(s), spool {}, {} message(s) to recover",
               CARRIER_VERSION, bound->size(), cfg.spool_dir.string(), spool.list().size());

  asio::signal_set signals(io, SIGTERM, SIGINT);
  signals.async_wait([&](const asio::error_code& e, int sig) {
    if (e) return;
    spdlog::info("signal {}: stopping (no new connections; transactions in progress may finish)",
                 sig);
    smtp.stop_accepting();
    // Give sessions in progress a short grace period; acknowledged mail is already durable,
    // and anything unacknowledged was never promised.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    auto t = std::make_shared<asio::steady_timer>(io);
    auto tick = std::make_shared<std::function<void()>>();
    *tick = [&, t, deadline, tick] {
      if (smtp.stats().connections_current == 0 || std::chrono::steady_clock::now() >= deadline) {
        io.stop();
        return;
      }
      t->expires_after(std::chrono::milliseconds(50));
      t->async_wait([tick](const asio::error_code&) { (*tick)(); });
    };
    (*tick)();
  });
  io.run();
  delivery.stop();
  auto st = smtp.stats();
  spdlog::info("carrier stopped: {} connection(s), {} message(s) accepted", st.connections_total,
               st.messages_accepted);
  return 0;
}

}  // namespace carrier::server
