// carrier server: the defence checks built from the configuration (see filters.hpp), and the
// disk-space reserve at MAIL (RFC 1870 6.1: 452 4.3.1 when the message would not fit).
#include "server/filters.hpp"
#include "base/thread_name.hpp"

#include <sys/statvfs.h>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <algorithm>
#include <future>
#include <mutex>
#include <unordered_map>
#include <spdlog/spdlog.h>

#include "dns/resolver.hpp"
#include "dnsbl/dnsbl.hpp"
#include "server/dkim_stages.hpp"  // [dkim]
#include "ratelimit/ratelimit.hpp"
#include "session/policy.hpp"
#include "server/spf_stage.hpp"  // [spf]
#include "server/milter_stage.hpp"  // [[milter]]
#include "server/dmarc_stage.hpp"  // [dmarc]

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
  im->thread = std::thread([im] {
    set_thread_name("checks");
    im->io.run();
  });
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

// ---- DNSBL ----------------------------------------------------------------------------------

namespace {

// The lookups of one client: every list in parallel on the checks' I/O thread; answered when
// the last one is in. A list that fails (timeout, SERVFAIL) counts as not listing the client.
class DnsblCheck : public std::enable_shared_from_this<DnsblCheck> {
 public:
  DnsblCheck(const config::Config& cfg, FilterRuntime& rt)
      : rt_(rt), threshold_(cfg.dnsbl_threshold), tag_(cfg.dnsbl_action == "tag") {
    for (const auto& l : cfg.dnsbl_lists) lists_.push_back({l.zone, l.weight, l.returns, l.message});
    for (const auto& n : cfg.trusted_networks)
      if (auto c = session::Cidr::parse(n)) trusted_.push_back(*c);
  }

  void check(const session::ClientInfo& ci, std::function<void(filter::ConnectVerdict)> done) {
    for (const auto& c : trusted_)
      if (c.contains(ci.ip)) return done({});
    {
      std::lock_guard lk(mu_);
      auto it = cache_.find(ci.ip);
      if (it != cache_.end() && std::chrono::steady_clock::now() < it->second.first)
        return done(it->second.second);
    }
    auto run = std::make_shared<Run>();
    run->ip = ci.ip;
    run->done = std::move(done);
    run->pending = lists_.size();
    auto self = shared_from_this();
    asio::post(rt_.io(), [self, run] {
      for (std::size_t i = 0; i < self->lists_.size(); ++i) self->lookup(run, i);
    });
  }

 private:
  struct Run {
    std::string ip;
    std::function<void(filter::ConnectVerdict)> done;
    std::size_t pending = 0;
    std::vector<dnsbl::Hit> hits;
  };

  void lookup(const std::shared_ptr<Run>& run, std::size_t i) {
    auto name = dnsbl::query_name(run->ip, lists_[i].zone);
    if (!name) return one_done(run);
    auto self = shared_from_this();
    rt_.resolver().resolve_addresses(*name, [self, run, i, n = *name](dns::AddrResult r) {
      if (r.status == dns::Status::TempFail)
        spdlog::warn("dnsbl: {} for [{}]: {} (counted as not listed)", self->lists_[i].zone, run->ip,
                     r.error);
      if (r.status != dns::Status::Ok || !dnsbl::listed(self->lists_[i], r.addresses))
        return self->one_done(run);
      dnsbl::Hit h;
      h.list = i;
      for (const auto& a : r.addresses)
        if (dnsbl::listed(self->lists_[i], {a})) h.answer = a;
      // The list's explanation (RFC 5782 2.1: a TXT record at the same name), for the reply.
      self->rt_.resolver().resolve_txt(n, [self, run, h](dns::TxtResult t) mutable {
        if (t.status == dns::Status::Ok && !t.records.empty()) h.text = t.records.front();
        run->hits.push_back(std::move(h));
        self->one_done(run);
      });
    });
  }

  void one_done(const std::shared_ptr<Run>& run) {
    if (--run->pending > 0) return;
    std::sort(run->hits.begin(), run->hits.end(),
              [](const auto& a, const auto& b) { return a.list < b.list; });
    auto v = dnsbl::judge(lists_, run->hits, threshold_);
    filter::ConnectVerdict out;
    if (v.over) {
      if (tag_) {
        out.tags.push_back(dnsbl::tag_text(lists_, v.hits) + "; score=" + fmt::format("{:g}", v.score));
      } else {
        const dnsbl::Hit* first = nullptr;
        for (const auto& h : v.hits)
          if (lists_[h.list].weight > 0) {
            first = &h;
            break;
          }
        if (first)
          out.refusal = proto::Reply(554, "5.7.1", dnsbl::reply_text(lists_[first->list], *first, run->ip));
      }
      spdlog::info("dnsbl: [{}] listed: {} (score {:g}, threshold {:g}): {}", run->ip,
                   dnsbl::tag_text(lists_, v.hits), v.score, threshold_, tag_ ? "tagged" : "refused at RCPT");
    } else if (!v.hits.empty()) {
      spdlog::info("dnsbl: [{}] listed: {} (score {:g} below threshold {:g})", run->ip,
                   dnsbl::tag_text(lists_, v.hits), v.score, threshold_);
    }
    {
      std::lock_guard lk(mu_);
      if (cache_.size() >= kMaxCache) cache_.clear();
      cache_[run->ip] = {std::chrono::steady_clock::now() + kCacheFor, out};
    }
    auto d = std::move(run->done);
    d(std::move(out));
  }

  static constexpr std::size_t kMaxCache = 10000;
  static constexpr std::chrono::seconds kCacheFor{300};
  FilterRuntime& rt_;
  std::vector<dnsbl::List> lists_;
  double threshold_;
  bool tag_;
  std::vector<session::Cidr> trusted_;
  std::mutex mu_;
  std::unordered_map<std::string, std::pair<std::chrono::steady_clock::time_point, filter::ConnectVerdict>> cache_;
};

// Domain name lists (RHSBL, RFC 5782 2.3): the HELO name and the MAIL FROM domain of each
// message, looked up after the data (the names are known only then), every query in parallel
// on the checks' resolver; a list that fails counts as not listing. Each list counts once
// however many of the names it lists. Authenticated and trusted clients are not looked up.
class RhsblStage final : public filter::Stage, public std::enable_shared_from_this<RhsblStage> {
 public:
  RhsblStage(const config::Config& cfg, FilterRuntime& rt)
      : cfg_(std::make_shared<const config::Config>(cfg)),
        rt_(rt),
        threshold_(cfg.dnsbl_threshold),
        tag_(cfg.dnsbl_action == "tag") {
    for (const auto& l : cfg.dnsbl_domain_lists) {
      lists_.push_back({l.zone, l.weight, l.returns, l.message});
      checks_.emplace_back(l.check_helo, l.check_sender);
    }
  }
  const char* name() const override { return "rhsbl"; }
  Kind kind() const override { return Kind::Auth; }

  void run(filter::Context& ctx, std::function<void()> done) override {
    const auto& m = ctx.msg;
    if (!m.client.auth_user.empty() || !m.envelope.auth_user.empty() ||
        trusted_client(*cfg_, m.client.ip))
      return done();
    auto run = std::make_shared<Run>();
    run->ctx = &ctx;
    run->done = std::move(done);
    for (std::size_t i = 0; i < lists_.size(); ++i) {
      auto add = [&](const std::string& name, const char* what) {
        if (auto q = dnsbl::domain_query_name(name, lists_[i].zone))
          run->queries.push_back({i, name, what, *q});
      };
      if (checks_[i].first) add(m.envelope.helo, "HELO name");
      if (checks_[i].second && !m.envelope.sender.empty()) add(m.envelope.sender.domain, "sender domain");
    }
    if (run->queries.empty()) return run->done();
    run->pending = run->queries.size();
    auto self = shared_from_this();
    asio::post(rt_.io(), [self, run] {
      for (std::size_t k = 0; k < run->queries.size(); ++k) self->lookup(run, k);
    });
  }

 private:
  struct Query {
    std::size_t list;
    std::string name;
    const char* what;
    std::string qname;
  };
  struct Run {
    filter::Context* ctx = nullptr;
    std::function<void()> done;
    std::vector<Query> queries;
    std::size_t pending = 0;  // touched on the runtime's I/O thread only
    std::vector<std::pair<dnsbl::Hit, std::size_t>> hits;  // hit, query index
  };

  void lookup(const std::shared_ptr<Run>& run, std::size_t k) {
    auto self = shared_from_this();
    const Query& q = run->queries[k];
    rt_.resolver().resolve_addresses(q.qname, [self, run, k](dns::AddrResult r) {
      const Query& q = run->queries[k];
      const dnsbl::List& list = self->lists_[q.list];
      if (r.status == dns::Status::TempFail)
        spdlog::warn("rhsbl: {} for {} {}: {} (counted as not listed)", list.zone, q.what, q.name,
                     r.error);
      if (r.status != dns::Status::Ok || !dnsbl::listed(list, r.addresses)) return self->one_done(run);
      dnsbl::Hit h;
      h.list = q.list;
      for (const auto& a : r.addresses)
        if (dnsbl::listed(list, {a})) h.answer = a;
      self->rt_.resolver().resolve_txt(q.qname, [self, run, h, k](dns::TxtResult t) mutable {
        if (t.status == dns::Status::Ok && !t.records.empty()) h.text = t.records.front();
        run->hits.emplace_back(std::move(h), k);
        self->one_done(run);
      });
    });
  }

  void one_done(const std::shared_ptr<Run>& run) {
    if (--run->pending > 0) return;
    filter::Context& ctx = *run->ctx;
    // One hit per list (the first by query order), lists in configuration order.
    std::sort(run->hits.begin(), run->hits.end(),
              [](const auto& a, const auto& b) { return a.second < b.second; });
    std::vector<dnsbl::Hit> hits;
    std::vector<std::size_t> query_of;
    for (const auto& [h, k] : run->hits) {
      if (std::any_of(hits.begin(), hits.end(), [&](const dnsbl::Hit& x) { return x.list == h.list; }))
        continue;
      hits.push_back(h);
      query_of.push_back(k);
    }
    auto v = dnsbl::judge(lists_, hits, threshold_);
    std::string names;
    for (std::size_t j = 0; j < hits.size(); ++j) {
      const Query& q = run->queries[query_of[j]];
      names += (names.empty() ? "" : ", ") + std::string(q.what) + " " + q.name + " in " + lists_[q.list].zone + "=" + hits[j].answer;
    }
    if (v.over) {
      ctx.notes.push_back("rhsbl=listed");
      if (tag_) {
        std::string t = names + "; score=" + fmt::format("{:g}", v.score);
        for (auto& c : t)
          if (c == '\r' || c == '\n') c = ' ';
        ctx.head.insert(0, "X-Carrier-DNSBL: " + t + "\r\n");
      } else {
        for (std::size_t j = 0; j < hits.size(); ++j) {
          const dnsbl::List& list = lists_[hits[j].list];
          if (list.weight <= 0) continue;
          const Query& q = run->queries[query_of[j]];
          dnsbl::List shown = list;
          if (shown.message.empty())
            shown.message = std::string("Service unavailable; ") + q.what + " $ip blocked using $zone" +
                            (hits[j].text.empty() ? "" : ": $text");
          ctx.verdict.action = filter::Action::Reject;
          ctx.verdict.reply = proto::Reply(554, "5.7.1", dnsbl::reply_text(shown, hits[j], q.name));
          ctx.verdict.reason = "rhsbl: " + names;
          ctx.verdict.stage = "rhsbl";
          break;
        }
      }
      spdlog::info("{}: rhsbl: listed: {} (score {:g}, threshold {:g}): {}", ctx.msg.queue_id, names,
                   v.score, threshold_, tag_ ? "tagged" : "refused");
    } else if (!hits.empty()) {
      spdlog::info("{}: rhsbl: listed: {} (score {:g} below threshold {:g})", ctx.msg.queue_id, names,
                   v.score, threshold_);
    }
    auto d = std::move(run->done);
    d();
  }

  std::shared_ptr<const config::Config> cfg_;
  FilterRuntime& rt_;
  std::vector<dnsbl::List> lists_;
  std::vector<std::pair<bool, bool>> checks_;  // helo, sender
  double threshold_;
  bool tag_;
};

// Tag mode: the connect checks' findings become a header field of each message.
class DnsblTagStage final : public filter::Stage {
 public:
  const char* name() const override { return "dnsbl"; }
  Kind kind() const override { return Kind::Auth; }
  void run(filter::Context& ctx, std::function<void()> done) override {
    for (const auto& t : ctx.msg.client.connect_tags) {
      std::string v;
      for (char c : t) v += (c == '\r' || c == '\n') ? ' ' : c;
      ctx.head.insert(0, "X-Carrier-DNSBL: " + v + "\r\n");
      ctx.notes.push_back("dnsbl=listed");
    }
    done();
  }
};

}  // namespace

// ---- building -------------------------------------------------------------------------------

bool trusted_client(const config::Config& cfg, const std::string& ip) {
  for (const auto& n : cfg.trusted_networks)
    if (auto c = session::Cidr::parse(n); c && c->contains(ip)) return true;
  return false;
}

Result<Checks> build_checks(const config::Config& cfg, FilterRuntime& rt) {
  Checks out;
  out.gate = std::make_shared<ServerGate>(cfg.spool_dir, cfg.limits.min_free_space);
  std::vector<std::shared_ptr<filter::Stage>> stages;

  // ---- [spf] (stage "spf", Auth) ------------------------------------------------------------
  if (cfg.spf_enabled) stages.push_back(make_spf_stage(cfg, rt));
  // ---- [dkim] verify (stage "dkim", Auth) ---------------------------------------------------
  std::shared_ptr<filter::Stage> dkim_sign;  // [dkim] signing: added last, after the milters
  {
    if (auto v = make_dkim_verify_stage(cfg, rt)) stages.push_back(std::move(v));
    auto sign = make_dkim_sign_stage(cfg);
    if (!sign) return sign.error();
    dkim_sign = std::move(*sign);
  }
  // ---- [dmarc] (stage "dmarc", Auth; uses the spf and dkim results) --------------------------
  {
    auto d = make_dmarc_stage(cfg, rt);
    if (!d) return d.error();
    if (*d) stages.push_back(std::move(*d));
  }
  // ---- [dnsbl] (connect check; RHSBL stage) -------------------------------------------------
  if (!cfg.dnsbl_lists.empty()) {
    auto check = std::make_shared<DnsblCheck>(cfg, rt);
    out.check_client = [check](const session::ClientInfo& ci,
                               std::function<void(filter::ConnectVerdict)> done) {
      check->check(ci, std::move(done));
    };
    if (cfg.dnsbl_action == "tag") stages.push_back(std::make_shared<DnsblTagStage>());
    else out.names.emplace_back("dnsbl (" + std::to_string(cfg.dnsbl_lists.size()) + " list(s))");
  }
  if (!cfg.dnsbl_domain_lists.empty()) stages.push_back(std::make_shared<RhsblStage>(cfg, rt));
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
  for (const auto& m : cfg.milters) stages.push_back(make_milter_stage(m, cfg, rt));
  if (dkim_sign) stages.push_back(std::move(dkim_sign));  // [dkim]: must stay the last stage

  if (!stages.empty()) {
    for (const auto& s : stages) out.names.emplace_back(s->name());
    filter::Pipeline::Options po;
    out.pipeline = std::make_shared<filter::Pipeline>(po, std::move(stages));
  }
  return out;
}

}  // namespace carrier::server
