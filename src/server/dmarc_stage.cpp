// carrier server: the "dmarc" message check (see dmarc_stage.hpp).
#include "server/dmarc_stage.hpp"

#include <spdlog/spdlog.h>

#include <random>

#include "base/ascii.hpp"

#include "dkim/canon.hpp"
#include "dmarc/dmarc.hpp"
#include "dns/resolver.hpp"
#include "server/dkim_stages.hpp"
#include "server/filters.hpp"

namespace carrier::server {

namespace {

bool is_from(std::string_view name) { return ascii_iequals(name, "from"); }

int pct_sample() {
  thread_local std::mt19937 rng{std::random_device{}()};
  return static_cast<int>(rng() % 100);
}

class DmarcStage final : public filter::Stage {
 public:
  DmarcStage(const config::Config& cfg, FilterRuntime& rt, dmarc::PublicSuffixList psl)
      : cfg_(std::make_shared<const config::Config>(cfg)),
        rt_(rt),
        psl_(std::make_shared<const dmarc::PublicSuffixList>(std::move(psl))) {
    action_ = cfg.dmarc_action == "enforce" ? Act::Enforce
              : cfg.dmarc_action == "none"  ? Act::None
                                            : Act::Tag;
  }
  const char* name() const override { return "dmarc"; }
  Kind kind() const override { return Kind::Auth; }

  void run(filter::Context& ctx, std::function<void()> done) override {
    const auto& m = ctx.msg;
    if (!m.client.auth_user.empty() || !m.envelope.auth_user.empty() ||
        trusted_client(*cfg_, m.client.ip)) {
      ctx.notes.push_back("dmarc=skipped");
      return done();
    }
    // RFC 7489 6.6.1: exactly one From: field with one domain.
    std::size_t froms = 0;
    std::string from;
    for (const auto& f : dkim::parse_header_fields(ctx.head))
      if (is_from(f.name) && froms++ == 0) from = from_domain(f.value);
    if (froms != 1 || from.empty()) {
      conclude(ctx, from, "permerror",
               froms == 0 ? "no From: field" : froms > 1 ? "several From: fields" : "no From: domain",
               dmarc::Policy::None);
      return done();
    }
    auto run = std::make_shared<Run>();
    run->in.from_domain = from;
    for (const auto& n : ctx.notes)
      if (n.rfind("spf=", 0) == 0) run->in.spf_result = n.substr(4);
    run->in.spf_domain = m.envelope.sender.empty() ? m.envelope.helo : m.envelope.sender.domain;
    for (const auto& a : ctx.auth)
      if (a.method == "dkim" && a.result == "pass")
        if (auto d = a.prop("header.d"); !d.empty()) run->in.dkim_pass.push_back(d);
    run->ctx = &ctx;
    run->done = std::move(done);
    lookup(rt_, psl_, action_, run, from, false);
  }

 private:
  enum class Act { None, Tag, Enforce };
  struct Run {
    filter::Context* ctx = nullptr;
    std::function<void()> done;
    dmarc::Input in;
  };

  // _dmarc.<domain>; at_org: the second lookup (organizational domain). Static: a reload may
  // drop the stage while a lookup is out, so the callback holds what it needs (the runtime
  // lives until shutdown).
  static void lookup(FilterRuntime& rt, std::shared_ptr<const dmarc::PublicSuffixList> psl,
                     Act action, std::shared_ptr<Run> run, const std::string& domain,
                     bool at_org) {
    rt.resolver().resolve_txt("_dmarc." + domain, [&rt, run, domain, at_org, psl,
                                                   action](dns::TxtResult r) {
      filter::Context& ctx = *run->ctx;
      const std::string& from = run->in.from_domain;
      if (r.status == dns::Status::TempFail) {
        conclude(ctx, from, "temperror", "_dmarc." + domain + ": " + r.error, dmarc::Policy::None,
                 action);
        return run->done();
      }
      bool several = false;
      std::optional<dmarc::Record> rec;
      if (r.status == dns::Status::Ok) rec = dmarc::pick_record(r.records, &several);
      if (!rec) {
        const std::string org = psl->organizational_domain(from);
        if (!at_org && org != from && !org.empty())
          return lookup(rt, psl, action, run, org, true);
        conclude(ctx, from, "none",
                 several ? "several DMARC records at _dmarc." + domain : "no DMARC record",
                 dmarc::Policy::None, action);
        return run->done();
      }
      auto o = dmarc::evaluate(run->in, *rec, domain, *psl, pct_sample());
      conclude(ctx, from, o.result, o.reason, o.policy, action);
      run->done();
    });
  }

  void conclude(filter::Context& ctx, const std::string& from, const std::string& result,
                const std::string& reason, dmarc::Policy policy) const {
    conclude(ctx, from, result, reason, policy, action_);
  }

  static void conclude(filter::Context& ctx, const std::string& from, const std::string& result,
                       const std::string& reason, dmarc::Policy policy, Act action) {
    if (action != Act::None) {
      filter::AuthResult ar;
      ar.method = "dmarc";
      ar.result = result;
      if (!from.empty()) ar.props.emplace_back("header.from", from);
      ctx.auth.push_back(std::move(ar));
    }
    std::string note = "dmarc=" + result;
    if (result == "fail") note += std::string("(p=") + dmarc::policy_name(policy) + ")";
    ctx.notes.push_back(note);
    spdlog::info("{}: dmarc={} header.from={} ({})", ctx.msg.queue_id, result, from, reason);
    if (action != Act::Enforce || result != "fail") return;
    if (policy == dmarc::Policy::Reject) {
      ctx.verdict.action = filter::Action::Reject;
      ctx.verdict.reply = proto::Reply(550, "5.7.1",
                                       "Email rejected per DMARC policy for " + from);
      ctx.verdict.reason = "dmarc=fail p=reject header.from=" + from;
      ctx.verdict.stage = "dmarc";
    } else if (policy == dmarc::Policy::Quarantine) {
      ctx.verdict.action = filter::Action::Hold;
      ctx.verdict.reason = "dmarc=fail p=quarantine header.from=" + from;
      ctx.verdict.stage = "dmarc";
    }
  }

  std::shared_ptr<const config::Config> cfg_;
  FilterRuntime& rt_;
  std::shared_ptr<const dmarc::PublicSuffixList> psl_;
  Act action_ = Act::Tag;
};

}  // namespace

Result<std::shared_ptr<filter::Stage>> make_dmarc_stage(const config::Config& cfg, FilterRuntime& rt) {
  if (!cfg.dmarc_enabled) return std::shared_ptr<filter::Stage>();
  auto psl = dmarc::PublicSuffixList::load(cfg.dmarc_public_suffix_list);
  if (!psl) return Error{"[dmarc] public_suffix_list: " + psl.error().message, psl.error().sys_errno};
  return std::shared_ptr<filter::Stage>(std::make_shared<DmarcStage>(cfg, rt, std::move(*psl)));
}

}  // namespace carrier::server
