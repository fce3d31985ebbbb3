// carrier server: the defence checks built from the configuration (see filters.hpp), and the
// disk-space reserve at MAIL (RFC 1870 6.1: 452 4.3.1 when the message would not fit).
#include "server/filters.hpp"

#include <sys/statvfs.h>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <future>
#include <spdlog/spdlog.h>

#include "dns/resolver.hpp"
#include "ratelimit/ratelimit.hpp"
#include "session/policy.hpp"

namespace carrier::server {

struct FilterRuntime::Impl {
  asio::io_context io{1};
  asio::executor_work_guard<asio::io_context::executor_type> guard{io.get_executor()};
  std::unique_ptr<dns::Resolver> resolver;
  std::thread thread;
};

Result<std::unique_ptr<FilterRuntime>> FilterRuntime::start(const config::Config& cfg) {
  std::unique_ptr<FilterRuntime> rt(new FilterRuntime());
  rt->impl_ = std::make_unique<Impl>();
  dns::ResolverOptions o;
  o.upstream = cfg.dns_upstream;
  o.ipv4 = cfg.dns_ipv4;
  o.ipv6 = cfg.dns_ipv6;
  o.prefer_ipv6 = cfg.dns_prefer_ipv6;
  o.query_timeout = std::chrono::milliseconds(5000);
  rt->impl_->resolver = std::make_unique<dns::Resolver>(rt->impl_->io, o);
  if (auto r = rt->impl_->resolver->init(); !r) return Error{"checks resolver: " + r.error().message, 0};
  auto* im = rt->impl_.get();
  im->thread = std::thread([im] { im->io.run(); });
  return rt;
}

FilterRuntime::~FilterRuntime() {
  if (!impl_) return;
  auto* im = impl_.get();
  if (im->thread.joinable()) {
    // The resolver must go away on its io_context's thread (dns/resolver.hpp).
    std::promise<void> gone;
    asio::post(im->io, [im, &gone] {
      im->resolver.reset();
      gone.set_value();
    });
    gone.get_future().wait();
    im->guard.reset();
    im->io.stop();
    im->thread.join();
  }
}

asio::io_context& FilterRuntime::io() { return impl_->io; }
dns::Resolver& FilterRuntime::resolver() { return *impl_->resolver; }

// ---- Gate -----------------------------------------------------------------------------------

ServerGate::ServerGate(std::filesystem::path spool_dir, std::uint64_t min_free_space)
    : dir_(std::move(spool_dir)), reserve_(min_free_space) {}

std::optional<std::uint64_t> ServerGate::free_space() {
  std::lock_guard lk(mu_);
  const auto now = std::chrono::steady_clock::now();
  if (checked_ != std::chrono::steady_clock::time_point{} &&
      now - checked_ < std::chrono::milliseconds(250))
    return free_;
  checked_ = now;
  struct statvfs st {};
  if (::statvfs(dir_.c_str(), &st) != 0) free_.reset();
  else free_ = static_cast<std::uint64_t>(st.f_bavail) * st.f_frsize;
  return free_;
}

std::optional<proto::Reply> ServerGate::on_mail(const session::ClientInfo& client,
                                                const proto::Mailbox& sender,
                                                const proto::MailParams& params) {
  const std::uint64_t want = reserve_ + params.size.value_or(0);
  if (want > 0) {
    if (auto f = free_space(); f && *f < want) {
      spdlog::warn("spool: {} bytes free, {} needed (min_free_space {} + SIZE {}): refusing MAIL "
                   "from [{}]", *f, want, reserve_, params.size.value_or(0), client.ip);
      return proto::Reply(452, "4.3.1", "Error: insufficient system storage");
    }
  }
  for (auto& g : parts_)
    if (auto r = g->on_mail(client, sender, params)) return r;
  return std::nullopt;
}

std::optional<proto::Reply> ServerGate::on_rcpt(const session::ClientInfo& client,
                                                const proto::Envelope& env,
                                                const proto::Mailbox& rcpt) {
  for (auto& g : parts_)
    if (auto r = g->on_rcpt(client, env, rcpt)) return r;
  return std::nullopt;
}

void ServerGate::on_accepted(const session::ClientInfo& client, const proto::Envelope& env) {
  for (auto& g : parts_) g->on_accepted(client, env);
}

// ---- building -------------------------------------------------------------------------------

bool trusted_client(const config::Config& cfg, const std::string& ip) {
  for (const auto& n : cfg.trusted_networks)
    if (auto c = session::Cidr::parse(n); c && c->contains(ip)) return true;
  return false;
}

Result<Checks> build_checks(const config::Config& cfg, FilterRuntime& rt) {
  (void)rt;
  Checks out;
  out.gate = std::make_shared<ServerGate>(cfg.spool_dir, cfg.limits.min_free_space);
  std::vector<std::shared_ptr<filter::Stage>> stages;

  // ---- [spf] (stage "spf", Auth) ------------------------------------------------------------
  // ---- [dkim] verify (stage "dkim", Auth) ---------------------------------------------------
  // ---- [dmarc] (stage "dmarc", Auth; uses the spf and dkim results) --------------------------
  // ---- [dnsbl] (connect check; RHSBL stage) -------------------------------------------------
  // ---- [rate_limit] (gate) ------------------------------------------------------------------
  if (!cfg.rate_rules.empty()) {
    std::vector<ratelimit::Rule> rules;
    for (const auto& r : cfg.rate_rules) {
      ratelimit::Rule x;
      x.key = r.key == "user"            ? ratelimit::Key::User
              : r.key == "sender_domain" ? ratelimit::Key::SenderDomain
                                         : ratelimit::Key::Ip;
      x.messages = r.messages;
      x.recipients = r.recipients;
      x.window = r.window;
      rules.push_back(x);
    }
    out.gate->add(std::make_shared<ratelimit::RateGate>(std::move(rules)));
    out.names.emplace_back("rate_limit (" + std::to_string(cfg.rate_rules.size()) + " rule(s))");
  }
  // ---- [[milter]] (stages, Content) ---------------------------------------------------------

  if (!stages.empty()) {
    for (const auto& s : stages) out.names.emplace_back(s->name());
    filter::Pipeline::Options po;
    out.pipeline = std::make_shared<filter::Pipeline>(po, std::move(stages));
  }
  return out;
}

}  // namespace carrier::server
