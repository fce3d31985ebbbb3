// carrier server: the "spf" message check (see spf_stage.hpp).
#include "server/spf_stage.hpp"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <spdlog/spdlog.h>

#include "dns/resolver.hpp"
#include "server/filters.hpp"
#include "spf/spf.hpp"

namespace carrier::server {

namespace {

spf::Rcode rcode(dns::Status s) {
  switch (s) {
    case dns::Status::Ok: return spf::Rcode::Ok;
    case dns::Status::NotFound: return spf::Rcode::NotFound;
    default: return spf::Rcode::TempFail;
  }
}

bool is_family(const std::string& a, bool v6) {
  unsigned char b[16];
  return ::inet_pton(v6 ? AF_INET6 : AF_INET, a.c_str(), b) == 1;
}

// One check: lives until its last callback ran; touched only on the runtime's I/O thread.
struct SpfRun : std::enable_shared_from_this<SpfRun> {
  SpfRun(FilterRuntime& r, spf::Request req) : rt(r), check(std::move(req)), timer(r.io()) {}
  FilterRuntime& rt;
  spf::Check check;
  asio::steady_timer timer;
  std::function<void(const spf::Result&)> done;
  bool finished = false;

  void start() {
    auto self = shared_from_this();
    timer.expires_after(kSpfCheckTimeout);
    timer.async_wait([self](const asio::error_code& ec) {
      if (ec || self->finished) return;
      self->check.abort("SPF check took longer than " + std::to_string(kSpfCheckTimeout.count()) + " s");
      self->finish();
    });
    step();
  }

  void finish() {
    if (finished) return;
    finished = true;
    timer.cancel();
    auto d = std::move(done);
    d(check.result());
  }

  void answer(const spf::Query& q, spf::Answer a) {
    if (finished) return;
    if (a.status == spf::Rcode::TempFail && a.error == "resolver shut down") {
      // Shutting down: the resolver is gone, ask it nothing more.
      check.abort(a.error);
      return finish();
    }
    check.answer(q, std::move(a));
    step();
  }

  void step() {
    if (finished) return;
    auto q = check.next();
    if (!q) return finish();
    auto self = shared_from_this();
    auto& res = rt.resolver();
    switch (q->type) {
      case spf::QType::Txt:
        res.resolve_txt(q->name, [self, q = *q](dns::TxtResult r) {
          self->answer(q, spf::Answer{rcode(r.status), std::move(r.records), std::move(r.error)});
        });
        break;
      case spf::QType::A:
      case spf::QType::Aaaa:
        res.resolve_addresses(q->name, [self, q = *q](dns::AddrResult r) {
          spf::Answer a{rcode(r.status), {}, std::move(r.error)};
          for (auto& x : r.addresses)
            if (is_family(x, q.type == spf::QType::Aaaa)) a.records.push_back(std::move(x));
          if (a.status == spf::Rcode::Ok && a.records.empty()) a.status = spf::Rcode::NotFound;
          self->answer(q, std::move(a));
        });
        break;
      case spf::QType::Mx:
        res.resolve_mx(q->name, [self, q = *q](dns::MxResult r) {
          spf::Answer a;
          if (r.status == dns::Status::NullMx) {
            a.status = spf::Rcode::Ok;
            a.records.push_back(".");  // one exchange without addresses
          } else if (r.implicit || r.hosts.empty()) {
            // No MX records: SPF uses no implicit MX (RFC 7208 5.4).
            a.status = r.status == dns::Status::TempFail && !r.implicit ? spf::Rcode::TempFail
                                                                         : spf::Rcode::NotFound;
            a.error = r.error;
          } else {
            a.status = spf::Rcode::Ok;
            for (auto& h : r.hosts) a.records.push_back(std::move(h.name));
          }
          self->answer(q, std::move(a));
        });
        break;
      case spf::QType::Ptr:
        res.resolve_ptr(q->name, [self, q = *q](dns::PtrResult r) {
          self->answer(q, spf::Answer{rcode(r.status), std::move(r.names), std::move(r.error)});
        });
        break;
    }
  }
};

class SpfStage final : public filter::Stage {
 public:
  SpfStage(const config::Config& cfg, FilterRuntime& rt)
      : cfg_(std::make_shared<const config::Config>(cfg)), rt_(rt) {
    action_ = cfg.spf_action == "reject"       ? Act::Reject
              : cfg.spf_action == "quarantine" ? Act::Quarantine
              : cfg.spf_action == "none"       ? Act::None
                                               : Act::Tag;
  }
  const char* name() const override { return "spf"; }
  Kind kind() const override { return Kind::Auth; }

  void run(filter::Context& ctx, std::function<void()> done) override {
    const auto& m = ctx.msg;
    // Our own users: authenticated submissions and trusted networks are not checked.
    if (!m.client.auth_user.empty() || !m.envelope.auth_user.empty() ||
        trusted_client(*cfg_, m.client.ip)) {
      ctx.notes.push_back("spf=skipped");
      return done();
    }
    const bool null_sender = m.envelope.sender.empty();
    const std::string helo = m.envelope.helo;
    spf::Request req = null_sender
                           ? spf::Request::helo_identity(m.client.ip, helo)
                           : spf::Request::mail_from(m.client.ip, m.envelope.sender.unquoted_local(),
                                                     m.envelope.sender.domain, helo);
    auto run = std::make_shared<SpfRun>(rt_, std::move(req));
    const Act action = action_;
    const std::string qid = m.queue_id;
    run->done = [&ctx, done = std::move(done), action, null_sender, qid](const spf::Result& r) {
      const std::string code(spf::to_string(r.code));
      const std::string prop = null_sender ? "smtp.helo" : "smtp.mailfrom";
      if (action != Act::None) {
        filter::strip_own_authentication_results(ctx.head, ctx.msg.local_hostname);
        filter::AuthResult ar;
        ar.method = "spf";
        ar.result = code;
        ar.props.emplace_back(prop, r.domain);
        ctx.auth.push_back(std::move(ar));
      }
      ctx.notes.push_back("spf=" + code);
      spdlog::info("{}: spf={} {}={} client=[{}]{}{}{}", qid, code, prop, r.domain, ctx.msg.client.ip,
                   r.matched.empty() ? "" : " matched=", r.matched,
                   r.reason.empty() ? std::string() : " (" + r.reason + ")");
      if (action == Act::Quarantine && r.code == spf::Code::Fail) {
        // Accepted, tagged, and held in the queue until an operator releases it.
        ctx.verdict.action = filter::Action::Hold;
        ctx.verdict.reason = "spf=fail " + prop + "=" + r.domain;
        ctx.verdict.stage = "spf";
      }
      if (action == Act::Reject) {
        if (r.code == spf::Code::Fail) {
          ctx.verdict.action = filter::Action::Reject;
          ctx.verdict.reply = proto::Reply(
              550, "5.7.23",
              "SPF validation failed: " + r.domain + " does not designate [" + ctx.msg.client.ip +
                  "] as a permitted sender");
          ctx.verdict.reason = "spf=fail " + prop + "=" + r.domain;
          ctx.verdict.stage = "spf";
        } else if (r.code == spf::Code::TempError) {
          ctx.verdict.action = filter::Action::TempFail;
          ctx.verdict.reply = proto::Reply(451, "4.7.24", "SPF validation error, try again later");
          ctx.verdict.reason = "spf=temperror " + prop + "=" + r.domain;
          ctx.verdict.stage = "spf";
        }
      }
      done();
    };
    asio::post(rt_.io(), [run] { run->start(); });
  }

 private:
  enum class Act { None, Tag, Quarantine, Reject };
  std::shared_ptr<const config::Config> cfg_;
  FilterRuntime& rt_;
  Act action_ = Act::Tag;
};

}  // namespace

std::shared_ptr<filter::Stage> make_spf_stage(const config::Config& cfg, FilterRuntime& rt) {
  return std::make_shared<SpfStage>(cfg, rt);
}

}  // namespace carrier::server
