// carrier server: DKIM signing and verification stages (see dkim_stages.hpp).
//
// Signing rule (docs/defence.md "DKIM signing"):
//   - Signed: mail from authenticated clients (AUTH) and from [relay] trusted_networks.
//   - Key: the [[dkim.key]] whose domain is the From: domain or a parent of it (the longest
//     such domain); when none matches, the key for the envelope sender's domain (same rule).
//   - Refused with 451 4.7.5, never accepted unsigned:
//       * the From: domain is (or is below) a [dkim] sign_domains entry and no key matches it;
//       * the envelope sender's domain is (or is below) a sign_domains entry and no key was
//         found at all;
//       * a key was chosen and signing failed (header section over 256 KiB, the spool file
//         cannot be read, OpenSSL error).
//     A message without a From: field cannot be signed (DKIM always signs From): it is refused
//     with 550 5.6.0 when signing is required by sign_domains, and left unsigned otherwise.
//   - Otherwise (no key, no sign_domains match) the message goes out unsigned.
#include "server/dkim_stages.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <atomic>
#include <ctime>
#include <mutex>
#include <spdlog/spdlog.h>

#include "dkim/canon.hpp"
#include "dkim/signer.hpp"
#include "dkim/verifier.hpp"
#include "dns/resolver.hpp"
#include "server/filters.hpp"
#include "session/policy.hpp"

namespace carrier::server {

namespace {

std::string lower(std::string_view s) {
  std::string o(s);
  for (char& c : o)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return o;
}

bool same_name(std::string_view field_name, std::string_view lower_name) {
  while (!field_name.empty() && (field_name.back() == ' ' || field_name.back() == '\t')) field_name.remove_suffix(1);
  return lower(field_name) == lower_name;
}

// `d` is `parent` or below it.
bool at_or_below(std::string_view d, std::string_view parent) {
  return d == parent || (d.size() > parent.size() && d.ends_with(parent) && d[d.size() - parent.size() - 1] == '.');
}

class Trusted {
 public:
  explicit Trusted(const config::Config& cfg) {
    for (const auto& n : cfg.trusted_networks)
      if (auto c = session::Cidr::parse(n)) nets_.push_back(*c);
  }
  // Our own users: authenticated, or on a trusted network.
  bool own(const filter::Message& m) const {
    if (!m.envelope.auth_user.empty() || !m.client.auth_user.empty()) return true;
    for (const auto& c : nets_)
      if (c.contains(m.client.ip)) return true;
    return false;
  }

 private:
  std::vector<session::Cidr> nets_;
};

// Streams [from, to) of `file` into `sink` through a 64 KiB buffer.
template <class Sink>
bool stream_file(const std::filesystem::path& file, std::uint64_t from, std::uint64_t to, Sink&& sink) {
  int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  std::string buf(64 * 1024, '\0');
  bool ok = true;
  while (from < to) {
    const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), to - from));
    ssize_t n = ::pread(fd, buf.data(), want, static_cast<off_t>(from));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ok = false;
      break;
    }
    sink(std::string_view(buf.data(), static_cast<std::size_t>(n)));
    from += static_cast<std::uint64_t>(n);
  }
  ::close(fd);
  return ok;
}

// Where the body starts in the spool file: right after the header section read into msg.head
// (which ends with the empty line; no empty line: no body).
std::uint64_t body_offset(const filter::Message& m) {
  return m.content_offset + std::min<std::uint64_t>(m.head.size(), m.content_size);
}

// ---- signing --------------------------------------------------------------------------------

class DkimSignStage final : public filter::Stage {
 public:
  struct Key {
    std::string domain;
    dkim::Signer signer;
  };
  DkimSignStage(const config::Config& cfg, std::vector<Key> keys)
      : trusted_(cfg), keys_(std::move(keys)), required_(cfg.dkim_sign_domains) {}

  const char* name() const override { return "dkim-sign"; }
  Kind kind() const override { return Kind::Content; }

  void run(filter::Context& ctx, std::function<void()> done) override {
    if (trusted_.own(ctx.msg)) sign(ctx);
    done();
  }

 private:
  const Key* key_for(std::string_view domain) const {
    const Key* best = nullptr;
    if (domain.empty()) return nullptr;
    for (const auto& k : keys_)
      if (at_or_below(domain, k.domain) && (!best || k.domain.size() > best->domain.size())) best = &k;
    return best;
  }
  bool required(std::string_view domain) const {
    if (domain.empty()) return false;
    for (const auto& r : required_)
      if (at_or_below(domain, r)) return true;
    return false;
  }

  static void refuse(filter::Context& ctx, int code, const char* status, std::string why) {
    ctx.verdict.action = code >= 500 ? filter::Action::Reject : filter::Action::TempFail;
    ctx.verdict.reply = proto::Reply(code, status,
                                     code >= 500 ? "Error: message cannot be DKIM-signed: " + why
                                                 : "Error: cannot DKIM-sign the message, try again later");
    ctx.verdict.reason = "not signed: " + why;
    ctx.notes.push_back("dkim-sign=refused");
  }

  void sign(filter::Context& ctx) const {
    const auto& m = ctx.msg;
    std::size_t froms = 0;
    std::string from_dom;
    for (const auto& f : dkim::parse_header_fields(ctx.head))
      if (same_name(f.name, "from") && froms++ == 0) from_dom = from_domain(f.value);
    const std::string sender_dom = lower(m.envelope.sender.domain);

    const Key* key = key_for(from_dom);
    if (!key && required(from_dom))
      return refuse(ctx, 451, "4.7.5", "no [[dkim.key]] for the From: domain " + from_dom +
                                           " (listed in [dkim] sign_domains)");
    if (!key) key = key_for(sender_dom);
    if (!key && required(sender_dom))
      return refuse(ctx, 451, "4.7.5", "no [[dkim.key]] for the sender domain " + sender_dom +
                                           " (listed in [dkim] sign_domains)");
    if (froms == 0) {
      if (required(sender_dom)) return refuse(ctx, 550, "5.6.0", "the message has no From: field");
      ctx.notes.push_back("dkim-sign=none (no From:)");
      return;
    }
    if (!key) return;  // not ours to sign
    if (!m.head_complete)
      return refuse(ctx, 451, "4.7.5", "header section longer than " + std::to_string(filter::Message::kMaxHead) +
                                           " bytes");
    auto hasher = key->signer.body_hasher();
    if (!stream_file(m.file, body_offset(m), m.content_offset + m.content_size,
                     [&](std::string_view chunk) { hasher.update(chunk); }))
      return refuse(ctx, 451, "4.7.5", "cannot read the spool file " + m.file.string());
    auto field = key->signer.sign(ctx.head, hasher.finish(), static_cast<std::int64_t>(std::time(nullptr)));
    if (!field) return refuse(ctx, 451, "4.7.5", "signing with " + key->domain + " failed: " + field.error().message);
    ctx.head.insert(0, *field);
    ctx.notes.push_back("dkim-sign=" + key->signer.options().domain + "/" + key->signer.options().selector);
  }

  Trusted trusted_;
  std::vector<Key> keys_;
  std::vector<std::string> required_;
};

// ---- verification ---------------------------------------------------------------------------

class DkimVerifyStage final : public filter::Stage, public std::enable_shared_from_this<DkimVerifyStage> {
 public:
  DkimVerifyStage(const config::Config& cfg, FilterRuntime& rt) : trusted_(cfg), rt_(rt) {}
  const char* name() const override { return "dkim"; }
  Kind kind() const override { return Kind::Auth; }

  void run(filter::Context& ctx, std::function<void()> done) override {
    if (trusted_.own(ctx.msg)) return done();
    filter::strip_own_authentication_results(ctx.head, ctx.msg.local_hostname);
    const auto& m = ctx.msg;
    auto run = std::make_shared<Run>();
    run->ctx = &ctx;
    run->done = std::move(done);
    run->head = m.head;
    for (const auto& f : dkim::parse_header_fields(run->head)) {
      if (!same_name(f.name, "dkim-signature")) continue;
      if (run->sigs.size() >= kMaxDkimSignatures) {
        ++run->ignored;
        continue;
      }
      One o;
      o.field = f;
      o.result.method = "dkim";
      auto sig = dkim::parse_signature(f.value);
      if (sig) {
        o.sig = std::move(*sig);
        o.parsed = true;
        o.result.props = {{"header.d", o.sig.domain}, {"header.s", o.sig.selector},
                          {"header.b", o.sig.b64_signature.substr(0, 8)}};
      } else {
        o.result.result = "permerror";
        o.result.reason = sig.error().message;
        if (auto tags = dkim::parse_tag_list(f.value))  // name the signature where possible
          for (const auto& t : *tags)
            if ((t.name == "d" || t.name == "s") && t.value.size() <= 253)
              o.result.props.emplace_back(t.name == "d" ? "header.d" : "header.s", t.value);
      }
      run->sigs.push_back(std::move(o));
    }
    if (run->sigs.empty()) {
      ctx.auth.push_back({"dkim", "none", "", {}});
      ctx.notes.push_back("dkim=none");
      auto d = std::move(run->done);
      return d();
    }
    if (!m.head_complete) {
      for (auto& o : run->sigs)
        if (o.parsed) {
          o.result.result = "permerror";
          o.result.reason = "header section too long to verify";
          o.parsed = false;
        }
    }
    // The body hashes, one pass over the body for the canonicalizations in use.
    bool need[2] = {false, false};
    for (const auto& o : run->sigs)
      if (o.parsed) need[o.sig.body_canon == dkim::Canon::Relaxed] = true;
    if (need[0] || need[1]) {
      std::optional<dkim::BodyHasher> h[2];
      for (int i = 0; i < 2; ++i)
        if (need[i]) h[i].emplace(i ? dkim::Canon::Relaxed : dkim::Canon::Simple);
      const bool ok = stream_file(m.file, body_offset(m), m.content_offset + m.content_size, [&](std::string_view c) {
        for (auto& x : h)
          if (x) x->update(c);
      });
      for (int i = 0; i < 2; ++i)
        if (h[i]) {
          run->hash[i] = h[i]->finish();  // the length is final only after finish()
          run->length[i] = h[i]->canonical_length();
        }
      if (!ok)
        for (auto& o : run->sigs)
          if (o.parsed) {
            o.result.result = "temperror";
            o.result.reason = "cannot read the message";
            o.parsed = false;
          }
    }
    run->pending = run->sigs.size();
    auto self = shared_from_this();
    asio::post(rt_.io(), [self, run] {
      for (std::size_t i = 0; i < run->sigs.size(); ++i) self->lookup(run, i);
    });
  }

 private:
  struct One {
    dkim::HeaderField field;
    dkim::Signature sig;
    bool parsed = false;
    filter::AuthResult result;
  };
  struct Run {
    filter::Context* ctx = nullptr;
    std::function<void()> done;
    std::string head;  // the fields' views point here
    std::vector<One> sigs;
    std::size_t ignored = 0;
    std::array<unsigned char, 32> hash[2]{};
    std::uint64_t length[2]{};
    std::atomic<std::size_t> pending{0};
  };

  void lookup(const std::shared_ptr<Run>& run, std::size_t i) {
    One& o = run->sigs[i];
    if (!o.parsed) return one_done(run);
    auto self = shared_from_this();
    rt_.resolver().resolve_txt(o.sig.key_name(), [self, run, i](dns::TxtResult t) {
      One& o = run->sigs[i];
      if (t.status == dns::Status::TempFail) {
        o.result.result = "temperror";
        o.result.reason = "key lookup failed: " + t.error;
      } else if (t.status != dns::Status::Ok || t.records.empty()) {
        o.result.result = "permerror";
        o.result.reason = "no key record at " + o.sig.key_name();
      } else {
        // The first record that is a valid key (RFC 6376 6.1.2: several are not expected).
        std::string why;
        std::optional<dkim::PublicKey> key;
        for (const auto& r : t.records) {
          auto k = dkim::parse_key_record(r);
          if (k) {
            key = std::move(*k);
            break;
          }
          if (why.empty()) why = k.error().message;
        }
        if (!key) {
          o.result.result = "permerror";
          o.result.reason = why;
        } else {
          const int c = o.sig.body_canon == dkim::Canon::Relaxed;
          auto v = dkim::verify(o.sig, run->head, o.field, run->hash[c], run->length[c], *key,
                                static_cast<std::int64_t>(std::time(nullptr)));
          o.result.result = std::string(dkim::outcome_name(v.outcome));
          o.result.reason = v.reason;
        }
      }
      self->one_done(run);
    });
  }

  void one_done(const std::shared_ptr<Run>& run) {
    if (--run->pending > 0) return;
    auto& ctx = *run->ctx;
    std::string note = "dkim=";
    for (std::size_t i = 0; i < run->sigs.size(); ++i) {
      const auto& r = run->sigs[i].result;
      ctx.auth.push_back(r);
      note += (i ? "," : "") + r.result;
      if (auto d = r.prop("header.d"); !d.empty()) note += "(" + d + ")";
    }
    if (run->ignored) note += " (" + std::to_string(run->ignored) + " more signature(s) not checked)";
    ctx.notes.push_back(note);
    auto d = std::move(run->done);
    d();
  }

  Trusted trusted_;
  FilterRuntime& rt_;
};

}  // namespace

std::string from_domain(std::string_view v) {
  // Drop comments (nested, bounded) outside quoted strings; keep the rest.
  std::string s;
  int depth = 0;
  bool quoted = false;
  for (std::size_t i = 0; i < v.size(); ++i) {
    char c = v[i];
    if (c == '\\' && i + 1 < v.size() && (quoted || depth > 0)) {
      if (!depth) s.append(v.substr(i, 2));
      ++i;
      continue;
    }
    if (depth > 0) {
      if (c == '(' && depth < 32) ++depth;
      else if (c == ')') --depth;
      continue;
    }
    if (c == '"') quoted = !quoted;
    else if (c == '(' && !quoted) {
      depth = 1;
      continue;
    }
    s.push_back(c);
  }
  // The first mailbox: name-addr (<addr-spec>) or addr-spec, up to a ',' outside quotes.
  std::string_view addr;
  quoted = false;
  std::size_t end = s.size();
  std::size_t lt = std::string::npos;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && quoted) {
      ++i;
      continue;
    }
    if (s[i] == '"') quoted = !quoted;
    else if (!quoted && s[i] == '<' && lt == std::string::npos) lt = i;
    else if (!quoted && s[i] == ',' && lt == std::string::npos) {
      end = i;
      break;
    } else if (!quoted && s[i] == '>' && lt != std::string::npos) {
      end = i;
      break;
    }
  }
  addr = std::string_view(s).substr(lt == std::string::npos ? 0 : lt + 1,
                                    end - (lt == std::string::npos ? 0 : lt + 1));
  auto at = addr.rfind('@');
  if (at == std::string_view::npos) return "";
  std::string d;
  for (char c : addr.substr(at + 1))
    if (c != ' ' && c != '\t' && c != '\r' && c != '\n') d.push_back(c);
  d = lower(d);
  if (!dkim::domain_syntax_error(d).empty()) return "";
  return d;
}

Result<std::shared_ptr<filter::Stage>> make_dkim_sign_stage(const config::Config& cfg) {
  if (cfg.dkim_keys.empty() && cfg.dkim_sign_domains.empty()) return std::shared_ptr<filter::Stage>();
  std::vector<DkimSignStage::Key> keys;
  for (const auto& k : cfg.dkim_keys) {
    if (!k.key) return Error{"[[dkim.key]] " + k.selector + "._domainkey." + k.domain + ": the key is not loaded"};
    dkim::SignerOptions o;
    o.domain = k.domain;
    o.selector = k.selector;
    auto s = dkim::Signer::create(o, *k.key);
    if (!s) return Error{"[[dkim.key]] " + k.domain + " (" + k.key_file.string() + "): " + s.error().message};
    keys.push_back({k.domain, std::move(*s)});
  }
  return std::shared_ptr<filter::Stage>(std::make_shared<DkimSignStage>(cfg, std::move(keys)));
}

std::shared_ptr<filter::Stage> make_dkim_verify_stage(const config::Config& cfg, FilterRuntime& rt) {
  if (!cfg.dkim_verify) return nullptr;
  return std::make_shared<DkimVerifyStage>(cfg, rt);
}

}  // namespace carrier::server
