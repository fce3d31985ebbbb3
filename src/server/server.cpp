// carrier server: wiring. Builds the pure session configuration and recipient policy from the
// operator's configuration, opens the spool (recovering what a crash left), starts delivery,
// listens, and runs the I/O loop until SIGTERM/SIGINT. Holds no protocol logic.
#include "server/server.hpp"
#include "server/filters.hpp"
#include "server/local_router.hpp"
#include "server/pickup_import.hpp"
#include "spool/pickup.hpp"

#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <asio.hpp>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>

#include "auth/userdb.hpp"
#include "base/queue_id.hpp"
#include "base/sd_notify.hpp"
#include "admin/admin.hpp"
#include "metrics/http.hpp"
#include "metrics/metrics.hpp"
#include "net/smtp_server.hpp"
#include "queue/delivery.hpp"
#include "session/policy.hpp"
#include "session/server_session.hpp"
#include "spool/spool.hpp"
#include "transport/maildir/maildir.hpp"
#include "transport/smtp/smtp_transport.hpp"
#include "tls/tls.hpp"

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

// One session configuration per listener (TLS and submission differ), shared by the
// connections accepted there; a reload makes new ones for new connections.
std::vector<net::ListenerSpec> listener_specs(const config::Config& c,
                                             const std::shared_ptr<session::Gate>& gate) {
  std::vector<net::ListenerSpec> specs;
  for (const auto& l : c.listeners) {
    auto s = std::make_shared<session::Config>(session_config(c));
    s->starttls_available = l.tls == "starttls";
    s->submission = l.submission;
    s->auth_available = l.submission;
    s->auth_plaintext_loopback = c.auth_plaintext_on_loopback;
    s->received_auth_user = c.auth_received_user;
    s->sender_allowed = [](const session::AuthIdentity& who, const proto::Mailbox& sender) {
      return auth::sender_allowed(who.senders, sender);
    };
    s->gate = gate;
    specs.push_back({l.address, l.port, l.name, std::move(s), l.tls == "implicit"});
  }
  return specs;
}

net::ServerLimits server_limits(const config::Config& c) {
  net::ServerLimits l;
  l.max_connections = c.limits.max_connections;
  l.max_connections_per_ip = c.limits.max_connections_per_ip;
  l.command_timeout = c.limits.command_timeout;
  l.data_timeout = c.limits.data_timeout;
  return l;
}

std::vector<transport::SmtpRoute> relay_routes(const config::Config& c) {
  auto to_route = [](const config::Route& r) {
    transport::SmtpRoute x;
    x.domain = r.domain;
    x.host = r.host;
    x.port = r.port;
    x.mx = r.mx;
    x.rate = r.rate;
    x.tls = r.tls == "none"      ? session::TlsPolicy::None
            : r.tls == "encrypt" ? session::TlsPolicy::Encrypt
            : r.tls == "verify"  ? session::TlsPolicy::Verify
                                 : session::TlsPolicy::May;
    x.tls_name = r.tls_name;
    return x;
  };
  std::vector<transport::SmtpRoute> out;
  for (const auto& r : c.routes) out.push_back(to_route(r));
  if (c.smarthost) out.push_back(to_route(*c.smarthost));
  return out;
}

session::LocalPolicyData policy_data(const config::Config& c) {
  session::LocalPolicyData d;
  d.domains = c.local_domains;
  d.mailboxes = c.mailboxes;
  d.aliases = c.aliases;
  d.recipient_delimiter = c.recipient_delimiter;
  d.trusted_networks = c.trusted_networks;
  for (const auto& v : c.virtual_domains) {
    session::VirtualDomainData x;
    x.domain = v.domain;
    x.mailboxes = v.mailboxes;
    x.mailboxes.insert(x.mailboxes.end(), v.map.mailboxes.begin(), v.map.mailboxes.end());
    x.aliases = v.aliases;
    for (const auto& [k, t] : v.map.aliases) x.aliases[k] = t;
    x.catch_all = v.catch_all;
    d.virtual_domains.push_back(std::move(x));
  }
  return d;
}

// The recipient policy in use; replaced when a virtual domain's map file changes. Sessions
// ask it through RecipientChecker; each check sees one consistent policy.
class PolicyStore final : public session::RecipientChecker {
 public:
  explicit PolicyStore(std::shared_ptr<const session::LocalPolicy> p) : p_(std::move(p)) {}
  std::shared_ptr<const session::LocalPolicy> get() const {
    std::lock_guard lk(mu_);
    return p_;
  }
  void replace(std::shared_ptr<const session::LocalPolicy> p) {
    std::lock_guard lk(mu_);
    p_ = std::move(p);
  }
  session::RcptDecision check(const proto::Mailbox& rcpt,
                              const session::ClientInfo& client) const override {
    return get()->check(rcpt, client);
  }

 private:
  mutable std::mutex mu_;
  std::shared_ptr<const session::LocalPolicy> p_;
};

// Re-reads the map files of virtual domains whose file changed (or all, when force); returns
// true when something was reloaded. A file that fails to parse keeps its old contents.
bool reload_maps(config::Config& c, bool force) {
  bool changed = false;
  for (auto& v : c.virtual_domains) {
    if (v.map_file.empty()) continue;
    std::error_code ec;
    auto mt = std::filesystem::last_write_time(v.map_file, ec);
    const auto stamp = ec ? 0 : mt.time_since_epoch().count();
    if (!force && stamp == v.map_stamp) continue;
    v.map_stamp = stamp;
    std::vector<config::Diagnostic> diags;
    if (auto m = config::load_map(v.map_file, diags)) {
      v.map = std::move(*m);
      changed = true;
      spdlog::info("virtual {}: map {} loaded ({} mailbox(es), {} alias(es))", v.domain,
                   v.map_file.string(), v.map.mailboxes.size(), v.map.aliases.size());
    } else {
      for (const auto& d : diags)
        spdlog::error("virtual {}: map not reloaded, keeping the old one: {}", v.domain, d.str());
    }
  }
  return changed;
}

// Many idle connections each hold a descriptor: take the hard limit.
void raise_fd_limit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

// The password file in use; replaced on reload (SIGHUP). Thread-safe.
class UserStore {
 public:
  std::shared_ptr<const auth::UserDb> get() const {
    std::lock_guard lk(mu_);
    return db_;
  }
  void replace(std::shared_ptr<const auth::UserDb> db) {
    std::lock_guard lk(mu_);
    db_ = std::move(db);
  }

 private:
  mutable std::mutex mu_;
  std::shared_ptr<const auth::UserDb> db_;
};

// Loads the server certificates, making the self-signed pair first when none is configured.
Result<std::shared_ptr<tls::ServerTls>> load_server_tls(const config::Config& cfg, bool first) {
  const config::TlsFiles files = config::tls_files(cfg);
  std::vector<tls::CertFiles> certs;
  for (const auto& c : files.certs) certs.push_back(tls::CertFiles{c.cert_file, c.key_file});
  if (files.self_signed) {
    namespace fs = std::filesystem;
    std::error_code ec;
    const auto& c = certs.front();
    if (!fs::exists(c.cert_file, ec) || !fs::exists(c.key_file, ec)) {
      fs::create_directories(c.cert_file.parent_path(), ec);
      if (auto r = tls::make_self_signed(c, cfg.hostname); !r) return r.error();
      spdlog::info("tls: made a self-signed certificate for {} in {}", cfg.hostname,
                   c.cert_file.string());
    }
    if (first)
      spdlog::warn("tls: no [tls] cert_file configured: using the self-signed certificate {} "
                   "(fine for opportunistic TLS between MTAs; mail clients will not trust it)",
                   c.cert_file.string());
  }
  return tls::ServerTls::load(certs);
}

Result<std::shared_ptr<const auth::UserDb>> load_users(const config::Config& cfg) {
  if (cfg.auth_password_file.empty()) return std::shared_ptr<const auth::UserDb>();
  auto db = auth::UserDb::load(cfg.auth_password_file);
  if (!db) return db.error();
  return std::shared_ptr<const auth::UserDb>(std::make_shared<auth::UserDb>(std::move(db).value()));
}

// Gives the directory trees carrier writes to `uid:gid` (symlinks are not followed).
void chown_tree(const std::filesystem::path& root, uid_t uid, gid_t gid) {
  std::error_code ec;
  if (!std::filesystem::exists(root, ec)) return;
  ::lchown(root.c_str(), uid, gid);
  for (auto it = std::filesystem::recursive_directory_iterator(
           root, std::filesystem::directory_options::skip_permission_denied, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec))
    ::lchown(it->path().c_str(), uid, gid);
}

// Least privilege: switch from root to [server] user/group once everything that needs root
// (ports below 1024, keys readable only by root) is done. Returns an error text or "".
std::string drop_privileges(const config::Config& cfg, const std::vector<std::filesystem::path>& own) {
  if (cfg.user.empty()) {
    if (::geteuid() == 0 && !cfg.run_as_root)
      return "refusing to run as root: set [server] user = \"carrier\" (an unprivileged user; "
             "carrier binds its ports and reads its keys as root first, then switches), or "
             "run_as_root = true if root is really intended";
    if (::geteuid() == 0)
      spdlog::warn("running as root (run_as_root = true): set [server] user to run with least "
                   "privilege");
    return {};
  }
  if (::geteuid() != 0) return {};  // already unprivileged: nothing to switch
  const passwd* pw = ::getpwnam(cfg.user.c_str());
  if (!pw) return "no such user " + cfg.user;
  const uid_t uid = pw->pw_uid;
  gid_t gid = pw->pw_gid;
  if (!cfg.group.empty()) {
    const group* gr = ::getgrnam(cfg.group.c_str());
    if (!gr) return "no such group " + cfg.group;
    gid = gr->gr_gid;
  }
  for (const auto& p : own) chown_tree(p, uid, gid);
  if (::setgroups(0, nullptr) != 0 || ::setgid(gid) != 0 || ::setuid(uid) != 0)
    return std::string("cannot switch to ") + cfg.user + ": " + std::strerror(errno);
  if (::setuid(0) == 0) return "could switch back to root after dropping privileges";
  spdlog::info("running as {} (uid {}, gid {})", cfg.user, uid, gid);
  return {};
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

std::vector<config::Diagnostic> check_files(const config::Config& cfg) {
  std::vector<config::Diagnostic> out;
  const std::string file = cfg.source ? cfg.source->string() : std::string("(built-in)");
  const config::TlsFiles files = config::tls_files(cfg);
  if (config::tls_wanted(cfg) && !files.self_signed) {
    for (const auto& c : files.certs)
      if (auto r = tls::check_cert_files(tls::CertFiles{c.cert_file, c.key_file}); !r)
        out.push_back(config::Diagnostic{file, 0, 0, "[tls]: " + r.error().message});
  }
  if (!cfg.auth_password_file.empty()) {
    if (auto db = auth::UserDb::load(cfg.auth_password_file); !db)
      out.push_back(config::Diagnostic{file, 0, 0, "[auth] password_file: " + db.error().message});
  }
  return out;
}

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

  // TLS: server certificates (reloaded on SIGHUP) and the relay client's contexts.
  tls::TlsStore tls_store;
  if (config::tls_wanted(cfg)) {
    auto t = load_server_tls(cfg, true);
    if (!t) {
      spdlog::critical("tls: {}", t.error().message);
      return 1;
    }
    tls_store.replace(std::move(t).value());
  }
  auto client_tls = tls::ClientTls::create(cfg.relay_tls_ca_file);
  if (!client_tls) {
    spdlog::critical("relay: {}", client_tls.error().message);
    return 1;
  }
  // AUTH users (reloaded on SIGHUP).
  UserStore users;
  {
    auto db = load_users(cfg);
    if (!db) {
      spdlog::critical("auth: {}", db.error().message);
      return 1;
    }
    users.replace(std::move(db).value());
  }

  const session::Config scfg = session_config(cfg);
  config::Config live = cfg;  // what reloads change (map files)
  reload_maps(live, true);
  PolicyStore policy(std::make_shared<const session::LocalPolicy>(policy_data(live)));
  transport::MaildirTransport maildir(cfg.mail_dir, cfg.hostname);
  // With sync_mode = "filesystem" and the mailboxes on the spool's file system, deliveries
  // share the spool's syncfs rounds instead of two fsyncs each.
  std::function<int()> barrier;
  if (sopts.sync_mode == spool::SyncMode::Filesystem && spool.same_filesystem(cfg.mail_dir)) {
    barrier = [&spool] {
      auto r = spool.sync_barrier();
      return r ? 0 : (r.error().sys_errno ? r.error().sys_errno : EIO);
    };
    maildir.set_sync_barrier(barrier);
    spdlog::info("maildir deliveries share the spool's group commit (same file system)");
  }
  if (!cfg.local_delivery.maildir_owner.empty())
    if (const passwd* pw = ::getpwnam(cfg.local_delivery.maildir_owner.c_str()))
      maildir.set_owner(pw->pw_uid, pw->pw_gid);
  // Local recipients go to Maildir, LMTP or a pipe, per [local] / [[virtual]] domain.
  LocalRouter local(cfg, maildir, barrier);
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
    auto pol = policy.get();
    if (!sender.is_address_literal() && pol->is_local_domain(sender.domain)) {
      auto d = pol->check(sender, session::ClientInfo{});
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
  // The trace journal (carrier queue trace): spool/trace/, kept for trace_retention.
  queue::TraceLog trace(cfg.spool_dir / "trace", cfg.trace_retention);
  qopts.trace = &trace;
  queue::Delivery delivery(spool, local, qopts);

  // Relay: SMTP to the next MTA, by [[route]], smarthost or DNS MX.
  transport::SmtpOptions ropts;
  ropts.helo_name = cfg.hostname;
  ropts.port = cfg.relay_port;
  ropts.routes = relay_routes(cfg);
  ropts.dns.upstream = cfg.dns_upstream;
  ropts.dns.ipv4 = cfg.dns_ipv4;
  ropts.dns.ipv6 = cfg.dns_ipv6;
  ropts.dns.prefer_ipv6 = cfg.dns_prefer_ipv6;
  ropts.max_connections = cfg.relay_max_connections;
  ropts.max_per_destination = cfg.relay_max_per_destination;
  ropts.connect_timeout = cfg.connect_timeout;
  if (auto t = cfg.relay_command_timeout) {
    ropts.timeouts.greeting = ropts.timeouts.command = ropts.timeouts.mail = *t;
    ropts.timeouts.rcpt = ropts.timeouts.data_init = *t;
  }
  if (auto t = cfg.relay_data_timeout) ropts.timeouts.data_block = ropts.timeouts.data_end = *t;
  ropts.rate_per_destination = cfg.relay_rate_per_destination;
  ropts.self.names.push_back(cfg.hostname);
  ropts.tls = client_tls.value();
  for (const auto& l : cfg.listeners) ropts.self.endpoints.emplace_back(l.address, l.port);
  transport::SmtpTransport relay(ropts);
  if (auto r = relay.start(); !r) {
    spdlog::critical("relay: cannot start the DNS resolver: {}", r.error().message);
    return 1;
  }
  delivery.set_relay(&relay);

  // Defence checks (docs/defence.md): their own thread and resolver; rebuilt on reload.
  auto filter_rt = FilterRuntime::start(cfg);
  if (!filter_rt) {
    spdlog::critical("{}", filter_rt.error().message);
    return 1;
  }
  auto built = build_checks(cfg, *filter_rt.value());
  if (!built) {
    spdlog::critical("{}", built.error().message);
    return 1;
  }
  Checks checks = std::move(built).value();
  if (!checks.names.empty()) {
    std::string on;
    for (const auto& n : checks.names) on += (on.empty() ? "" : ", ") + n;
    spdlog::info("checks: {}", on);
  }

  asio::io_context io(1);
  net::ServerContext ctx;
  ctx.checks = checks.pipeline;
  ctx.check_client = checks.check_client;
  ctx.session = &scfg;
  ctx.recipients = &policy;
  ctx.spool = &spool;
  ctx.limits = server_limits(cfg);
  ctx.on_queued = [&delivery, &trace](const std::string& id, const std::string& info,
                                      std::unique_ptr<spool::Stored> loaded) {
    trace.append(id, info);
    delivery.submit(id, std::move(loaded));
  };
  ctx.tls = &tls_store;
  // Password checks (crypt(3), slow on purpose) run off the I/O thread.
  asio::thread_pool auth_pool(1);
  ctx.authenticate = [&users, &auth_pool](std::string user, std::string password,
                                          std::function<void(net::AuthCheck)> done) {
    asio::post(auth_pool, [&users, user = std::move(user), password = std::move(password),
                           done = std::move(done)]() mutable {
      using V = session::ServerSession::AuthVerdict;
      net::AuthCheck c;
      auto db = users.get();
      if (db) {
        auto r = db->authenticate(user, password);
        c.verdict = r.verdict == auth::AuthResult::Ok     ? V::Ok
                    : r.verdict == auth::AuthResult::Bad ? V::Bad
                                                         : V::TempFail;
        c.who = session::AuthIdentity{r.user, r.senders};
      }
      std::fill(password.begin(), password.end(), '\0');
      done(std::move(c));
    });
  };
  ctx.auth.failure_delay = cfg.auth_failure_delay;
  ctx.auth.max_failures = cfg.auth_max_failures;
  ctx.auth.failure_window = cfg.auth_failure_window;
  net::SmtpServer smtp(io, ctx);

  // The admin API (carrier queue ...): DATA_DIR/admin.sock, and [admin] listen with a token.
  std::function<std::string()> actx_reload;  // set below, once everything it touches exists
  admin::Context actx;
  actx.delivery = &delivery;
  actx.spool = &spool;
  actx.trace = &trace;
  actx.token = cfg.admin_token;
  actx.reload = [&actx_reload] { return actx_reload ? actx_reload() : std::string("not ready"); };
  admin::Server admin_srv(io, actx);
  if (auto r = admin_srv.listen_unix(cfg.data_dir / "admin.sock"); !r) {
    spdlog::critical("{}", r.error().message);
    return 1;
  }
  if (!cfg.admin_listen.empty()) {
    auto hp = config::parse_host_port(cfg.admin_listen);
    auto r = hp ? admin_srv.listen_tcp(hp->first, hp->second)
                : Result<std::string>(Error{"bad [admin] listen"});
    if (!r) {
      spdlog::critical("{}", r.error().message);
      return 1;
    }
    std::printf("carrier: admin API on %s\n", r.value().c_str());
  }

  const std::vector<net::ListenerSpec> specs = listener_specs(cfg, checks.gate);
  auto bound = smtp.listen(specs);
  if (!bound) {
    spdlog::critical("{}", bound.error().message);
    return 1;
  }
  // Listeners bound, keys and the password file read, admin socket made: root is no longer
  // needed (reloads then read certificates and the password file as that user).
  if (auto e = drop_privileges(cfg, {cfg.data_dir, cfg.spool_dir, cfg.mail_dir}); !e.empty()) {
    spdlog::critical("{}", e);
    return 1;
  }
  delivery.start();  // delivers what an earlier run left in the spool

  // What `carrier sendmail` wrote (also while carrier was not running).
  auto pickup = spool::Pickup::open(spool::PickupOptions{cfg.data_dir / "pickup"});
  if (!pickup) {
    spdlog::critical("pickup: {}", pickup.error().message);
    return 1;
  }
  PickupImport pickup_import(std::move(pickup).value(), spool, policy, delivery, &trace, cfg.hostname);
  pickup_import.start();

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
  for (std::size_t i = 0; i < cfg.listeners.size() && i < bound->size(); ++i) {
    if (!cfg.listeners[i].submission) continue;
    const std::string& b = (*bound)[i];
    std::printf("Submission (%s, AUTH after TLS) on %s:\n"
                "  swaks --server %s%s --auth-user USER --from USER --to someone@example.net\n",
                cfg.listeners[i].tls == "implicit" ? "implicit TLS" : "STARTTLS", b.c_str(),
                b.c_str(), cfg.listeners[i].tls == "implicit" ? " --tlsc" : " --tls");
    if (cfg.auth_password_file.empty())
      std::printf("  (no [auth] password_file is configured, so no one can log in yet; "
                  "make hashes with: carrier passwd USER)\n");
    break;
  }
  std::fflush(stdout);
  spdlog::info("carrier {} started: {} listener(s), spool {}, {} message(s) to recover",
               CARRIER_VERSION, bound->size(), cfg.spool_dir.string(), spool.list().size());

  // Metrics: what the modules count, plus values read at scrape time from here.
  {
    auto& reg = metrics::global();
    reg.gauge_callback("carrier_connections_current", "SMTP connections open now", [&smtp] {
      return std::vector<std::pair<metrics::Labels, double>>{{{}, double(smtp.stats().connections_current)}};
    });
    reg.counter_callback("carrier_connections_total", "SMTP connections accepted or refused, by result", [&smtp] {
      auto st = smtp.stats();
      return std::vector<std::pair<metrics::Labels, double>>{
          {{{"result", "accepted"}}, double(st.connections_total - st.connections_rejected)},
          {{{"result", "rejected_limit"}}, double(st.connections_rejected)}};
    });
    reg.counter_callback("carrier_messages_received_total", "Messages acknowledged with 250 (durable)", [&smtp] {
      return std::vector<std::pair<metrics::Labels, double>>{{{}, double(smtp.stats().messages_accepted)}};
    });
    reg.gauge_callback("carrier_queue_messages", "Messages in the queue by state", [&delivery] {
      std::map<std::string, double> n;
      for (const char* st : {"active", "deferred", "waiting", "held"}) n[st] = 0;
      for (const auto& q : delivery.snapshot()) n[q.state] += 1;
      std::vector<std::pair<metrics::Labels, double>> out;
      for (auto& [k, v] : n) out.push_back({{{"state", k}}, v});
      return out;
    });
    reg.gauge_callback("carrier_queue_oldest_age_seconds", "Age of the oldest message by state", [&delivery] {
      std::map<std::string, double> oldest{{"active", 0}, {"deferred", 0}, {"waiting", 0}, {"held", 0}};
      const double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
      for (const auto& q : delivery.snapshot()) {
        const double born = double(queue_id_time_ms(q.id)) / 1000.0;
        oldest[q.state] = std::max(oldest[q.state], born > 0 ? now - born : 0.0);
      }
      std::vector<std::pair<metrics::Labels, double>> out;
      for (auto& [k, v] : oldest) out.push_back({{{"state", k}}, v});
      return out;
    });
    reg.gauge_callback("carrier_spool_bytes", "Bytes of queued message files", [&cfg] {
      std::uintmax_t total = 0;
      std::error_code ec;
      for (const auto& e : fs::directory_iterator(cfg.spool_dir / "queue", ec))
        if (e.is_regular_file(ec)) total += e.file_size(ec);
      return std::vector<std::pair<metrics::Labels, double>>{{{}, double(total)}};
    });
  }
  metrics::HttpServer metrics_http;
  if (!cfg.metrics_listen.empty()) {
    auto hp = config::parse_host_port(cfg.metrics_listen);
    auto r = hp ? metrics_http.start(hp->first, hp->second)
                : Result<std::uint16_t>(Error{"bad [metrics] listen"});
    if (!r) {
      spdlog::critical("{}", r.error().message);
      return 1;
    }
    std::printf("carrier: metrics on %s:%u\n", hp->first.c_str(), static_cast<unsigned>(r.value()));
    std::fflush(stdout);
  }

  // The pid file lets `carrier reload` find this process.
  const fs::path pid_file = cfg.data_dir / "carrier.pid";
  {
    std::ofstream pf(pid_file, std::ios::trunc);
    pf << ::getpid() << "\n";
  }

  // Reload (SIGHUP, or `carrier reload` through the admin API): the configuration file is read
  // and validated in full first; one that does not validate is never applied (the errors go
  // to the log and back to `carrier reload`). A valid one replaces, without dropping any
  // session: the recipient policy (local and hosted domains, mailboxes, aliases, trusted
  // networks, map files), the certificates and the password file. Settings that need a
  // restart (listeners, directories, limits, relay and delivery settings) are named in the log.
  config::Config current = cfg;
  auto reload_all = [&]() -> std::string {
    sd_notify("RELOADING=1");
    spdlog::info("reload: reading {}", current.source ? current.source->string() : "(built-in configuration)");
    config::Config next = current;
    if (current.source) {
      std::vector<config::Diagnostic> diags;
      auto loaded = config::load_file(*current.source, diags);
      if (loaded) {
        next = std::move(*loaded);
        // What the command line fixed stays (--data-dir, --listen).
        next.data_dir = current.data_dir;
        next.spool_dir = current.spool_dir;
        next.mail_dir = current.mail_dir;
        if (current.listeners_from_command_line) {
          next.listeners = current.listeners;
          next.listeners_from_command_line = true;
        }
        diags = config::validate_runtime(next);
        auto more = check_files(next);
        diags.insert(diags.end(), more.begin(), more.end());
      }
      if (!diags.empty()) {
        std::string errs;
        for (const auto& d : diags) {
          spdlog::error("reload: {}", d.str());
          errs += (errs.empty() ? "" : "\n") + d.str();
        }
        spdlog::error("reload: configuration not valid; the running one stays in force");
        sd_notify("READY=1");
        return errs;
      }
    }
    auto next_checks = build_checks(next, *filter_rt.value());
    if (!next_checks) {
      spdlog::error("reload: {}; the running configuration stays", next_checks.error().message);
      sd_notify("READY=1");
      return next_checks.error().message;
    }
    // Listeners first: if a new one cannot be bound, nothing is applied.
    auto bound_now = smtp.reconfigure(listener_specs(next, next_checks.value().gate));
    if (!bound_now) {
      spdlog::error("reload: {}; the running configuration stays", bound_now.error().message);
      sd_notify("READY=1");
      return bound_now.error().message;
    }
    smtp.set_limits(server_limits(next));
    checks = std::move(next_checks).value();
    smtp.set_checks(checks.pipeline, checks.check_client);
    relay.set_routes(relay_routes(next));
    local.reconfigure(next);
    std::vector<std::string> restart;
    if (next.hostname != current.hostname) restart.push_back("[server] hostname (relay EHLO name)");
    if (next.dns_upstream != current.dns_upstream) restart.push_back("[dns]");
    if (next.delivery_threads != current.delivery_threads) restart.push_back("[server] delivery_threads");
    if (config::tls_wanted(next)) {
      if (auto t = load_server_tls(next, false)) {
        tls_store.replace(std::move(t).value());
        spdlog::info("reload: certificates loaded");
      } else {
        spdlog::error("reload: certificates not reloaded, keeping the current ones: {}", t.error().message);
      }
    }
    if (auto db = load_users(next)) {
      users.replace(std::move(db).value());
      if (!next.auth_password_file.empty())
        spdlog::info("reload: {} loaded ({} user(s))", next.auth_password_file.string(),
                     users.get() ? users.get()->size() : 0);
    } else {
      spdlog::error("reload: users not reloaded, keeping the current ones: {}", db.error().message);
    }
    live = next;
    reload_maps(live, true);
    policy.replace(std::make_shared<const session::LocalPolicy>(policy_data(live)));
    current = std::move(next);
    for (const auto& r : restart) spdlog::warn("reload: {} changed; it takes effect at the next restart", r);
    spdlog::info("reload: done");
    sd_notify("READY=1");
    return std::string();
  };
  actx_reload = reload_all;

  asio::signal_set hup(io, SIGHUP);
  std::function<void()> on_hup = [&] {
    hup.async_wait([&](const asio::error_code& e, int) {
      if (e) return;
      spdlog::info("SIGHUP: reloading");
      reload_all();
      on_hup();
    });
  };
  on_hup();

  // Map files of virtual domains are also picked up when they change (checked every 2 s).
  asio::steady_timer map_timer(io);
  std::function<void()> watch_maps = [&] {
    map_timer.expires_after(std::chrono::seconds(2));
    map_timer.async_wait([&](const asio::error_code& e) {
      if (e) return;
      if (reload_maps(live, false))
        policy.replace(std::make_shared<const session::LocalPolicy>(policy_data(live)));
      watch_maps();
    });
  };
  watch_maps();

  asio::signal_set signals(io, SIGTERM, SIGINT);
  signals.async_wait([&](const asio::error_code& e, int sig) {
    if (e) return;
    sd_notify("STOPPING=1");
    spdlog::info("signal {}: stopping (no new connections; transactions in progress may finish)",
                 sig);
    smtp.stop_accepting();
    // Give sessions in progress a short grace period; acknowledged mail is already durable,
    // and anything unacknowledged was never promised.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    auto t = std::make_shared<asio::steady_timer>(io);
    auto tick = std::make_shared<std::function<void()>>();
    // The closure holds itself only weakly; the pending wait holds it strongly, so it is freed
    // with the last wait (no cycle).
    *tick = [&, t, deadline, self = std::weak_ptr<std::function<void()>>(tick)] {
      if (smtp.stats().connections_current == 0 || std::chrono::steady_clock::now() >= deadline) {
        io.stop();
        return;
      }
      t->expires_after(std::chrono::milliseconds(50));
      t->async_wait([next = self.lock()](const asio::error_code&) {
        if (next) (*next)();
      });
    };
    (*tick)();
  });
  sd_notify("READY=1");
  io.run();
  // The checks post their answers to `io`: stop their threads while it still exists.
  if (checks.pipeline) checks.pipeline->shutdown();
  filter_rt.value().reset();
  // Stopping now: a second SIGTERM (a service manager repeating itself) must not cut the
  // orderly shutdown short. (Acknowledged mail is durable either way.)
  ::signal(SIGTERM, SIG_IGN);
  hup.cancel();
  metrics_http.stop();
  metrics::global().clear_callbacks();
  admin_srv.stop();
  map_timer.cancel();
  auth_pool.join();
  pickup_import.stop();
  relay.stop();  // deliveries waiting on the network (DNS, a slow peer) end deferred now
  delivery.stop();
  fs::remove(pid_file, ec);
  auto st = smtp.stats();
  spdlog::info("carrier stopped: {} connection(s), {} message(s) accepted", st.connections_total,
               st.messages_accepted);
  return 0;
}

}  // namespace carrier::server
