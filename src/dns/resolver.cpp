// carrier DNS: the Resolver -- libunbound (asynchronous, in its own thread) driven from an Asio
// io_context: the context's result descriptor (ub_fd) is watched with a stream_descriptor
// async_wait(wait_read) and drained with ub_process; every query has its own deadline
// (steady_timer + ub_cancel). MX and address lookups follow RFC 5321 5.1 and RFC 7505; the
// rules themselves are pure (answer.cpp) and the RDATA parsers too (rdata.cpp).
// Handles UNTRUSTED input: domains from mail envelopes (checked before any query) and DNS
// answers (parsed by rdata.cpp).
#include "dns/resolver.hpp"

#include <unbound.h>

#include <asio/io_context.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <atomic>
#include <optional>
#include <random>
#include <unordered_map>
#include <utility>

#include "dns/answer.hpp"
#include "dns/rdata.hpp"

namespace carrier::dns {

namespace {

constexpr int kTypeA = 1;
constexpr int kTypePtr = 12;
constexpr int kTypeMx = 15;
constexpr int kTypeTxt = 16;
constexpr int kTypeAaaa = 28;
constexpr int kClassIn = 1;
// More records than a 64 KiB DNS message can carry for any of the types we ask for (the
// smallest MX RR is 18 octets): an explicit bound that real answers never reach.
constexpr int kMaxRecords = 4096;

Answer temp_fail(std::string why) {
  Answer a;
  a.kind = Answer::Kind::TempFail;
  a.error = std::move(why);
  return a;
}

Answer to_answer(int err, const ub_result* r) {
  if (err != 0 || r == nullptr) return temp_fail(std::string("resolver error: ") + ub_strerror(err));
  if (r->bogus) {
    return temp_fail(std::string("DNSSEC validation failed") +
                     (r->why_bogus ? std::string(": ") + r->why_bogus : std::string()));
  }
  Answer a;
  a.kind = classify_rcode(r->rcode, r->havedata != 0);
  if (a.kind == Answer::Kind::TempFail) {
    a.error = rcode_name(r->rcode) + (r->was_ratelimited ? " (rate limited)" : "");
  } else if (a.kind == Answer::Kind::Data) {
    for (int i = 0; i < kMaxRecords && r->data[i] != nullptr; ++i) {
      if (r->len[i] >= 0) a.rdata.emplace_back(r->data[i], static_cast<std::size_t>(r->len[i]));
    }
  }
  return a;
}

}  // namespace

struct Resolver::Impl : std::enable_shared_from_this<Impl> {
  Impl(asio::io_context& io_, ResolverOptions o) : io(io_), opts(std::move(o)) {
    rng.seed(opts.shuffle_seed != 0 ? opts.shuffle_seed
                                    : (std::uint64_t{std::random_device{}()} << 32) ^ std::random_device{}());
  }
  ~Impl() { shutdown(); }

  // One DNS query handed to libunbound.
  struct Query {
    Impl* impl = nullptr;
    std::uint64_t key = 0;
    int async_id = 0;
    std::function<void(Answer)> done;  // empty once finished by its deadline (cancel pending)
    asio::steady_timer timer;
  };
  // One resolve_addresses, or the address part of one MX host.
  struct AddrJob {
    std::string host;
    std::optional<Answer> a, aaaa;
    int waiting = 0;
    bool external = false;                    // a caller's resolve_addresses: posted, counted
    std::function<void(AddrResult)> done;
  };
  struct MxJob {
    MxResult result;
    std::size_t waiting = 0;  // hosts whose addresses are still being looked up
    std::function<void(MxResult)> cb;
  };

  asio::io_context& io;
  ResolverOptions opts;
  ub_ctx* ctx = nullptr;
  std::optional<asio::posix::stream_descriptor> fd;
  bool armed = false;          // a live async_wait on fd
  std::uint64_t arm_gen = 0;   // waits of older generations were cancelled: ignore them
  bool shut = false;
  std::mt19937_64 rng;
  std::atomic<std::uint64_t> n_lookups{0}, n_failures{0}, n_queries{0};

  std::unordered_map<std::uint64_t, std::unique_ptr<Query>> queries;
  std::uint64_t next_key = 1;
  std::vector<std::pair<std::uint64_t, Answer>> arrived;  // filled by on_ub_answer in ub_process
  std::unordered_map<std::uint64_t, AddrJob> addr_jobs;
  std::unordered_map<std::uint64_t, MxJob> mx_jobs;
  // TXT / PTR lookups (one query each): how to answer the caller with an Answer.
  std::unordered_map<std::uint64_t, std::function<void(Answer)>> single_jobs;
  std::uint64_t next_job = 1;

  // libunbound's callback: runs inside ub_process (called only by on_readable, on the I/O
  // thread). Only records the answer; dispatch() acts on it once libunbound has returned.
  static void on_ub_answer(void* mydata, int err, ub_result* result) {
    auto* q = static_cast<Query*>(mydata);
    Answer a = to_answer(err, result);
    if (result) ub_resolve_free(result);
    q->impl->arrived.emplace_back(q->key, std::move(a));
  }

  Result<void> init() {
    if (ctx) return Error{"dns: resolver already initialised"};
    if (!opts.ipv4 && !opts.ipv6) return Error{"dns: ipv4 and ipv6 are both disabled"};
    if (opts.query_timeout.count() <= 0) return Error{"dns: query_timeout must be positive"};
    ub_ctx* c = ub_ctx_create();
    if (!c) return Error{"dns: cannot create the libunbound context"};
    auto fail = [c](std::string what, int rc) {
      ub_ctx_delete(c);
      return Error{"dns: " + what + ": " + ub_strerror(rc)};
    };
    // The upstream may be on 127.0.0.1 (tests, a local caching resolver).
    if (int rc = ub_ctx_set_option(c, "do-not-query-localhost:", "no")) return fail("do-not-query-localhost", rc);
    for (const auto& z : opts.transparent_zones) {
      auto name = normalize_domain(z);
      if (!name) {
        ub_ctx_delete(c);
        return Error{"dns: transparent zone \"" + z + "\": " + name.error().message};
      }
      const std::string value = *name + ". transparent";
      if (int rc = ub_ctx_set_option(c, "local-zone:", value.c_str())) return fail("local-zone " + z, rc);
    }
    if (!opts.upstream.empty()) {
      if (int rc = ub_ctx_set_fwd(c, opts.upstream.c_str())) return fail("upstream \"" + opts.upstream + "\"", rc);
    } else {
      if (int rc = ub_ctx_resolvconf(c, nullptr)) return fail("/etc/resolv.conf", rc);
    }
    if (int rc = ub_ctx_async(c, 1)) return fail("async thread mode", rc);
    fd.emplace(io);
    std::error_code ec;
    fd->assign(ub_fd(c), ec);
    if (ec) {
      fd.reset();
      ub_ctx_delete(c);
      return Error{"dns: cannot watch the libunbound descriptor: " + ec.message()};
    }
    ctx = c;
    return {};
  }

  void shutdown() {
    if (shut) return;
    shut = true;
    if (fd) {
      ++arm_gen;
      armed = false;
      fd->release();  // libunbound owns the descriptor; release() also cancels the wait
      fd.reset();
    }
    if (ctx) {
      ub_ctx_delete(ctx);  // stops its thread; pending queries are dropped without callbacks
      ctx = nullptr;
    }
    queries.clear();  // their timers' handlers see operation_aborted
    arrived.clear();
    for (auto& [id, job] : mx_jobs) {
      MxResult r;
      r.status = Status::TempFail;
      r.error = "resolver shut down";
      deliver(std::move(job.cb), std::move(r));
    }
    for (auto& [id, job] : addr_jobs) {
      if (!job.external) continue;
      AddrResult r;
      r.status = Status::TempFail;
      r.error = "resolver shut down";
      deliver(std::move(job.done), std::move(r));
    }
    mx_jobs.clear();
    addr_jobs.clear();
    auto singles = std::move(single_jobs);
    single_jobs.clear();
    for (auto& [id, finish] : singles) {
      if (finish) finish(temp_fail("resolver shut down"));
    }
  }

  // A caller's callback: always posted, never run inside resolver code.
  template <class R>
  void deliver(std::function<void(R)> cb, R r) {
    if (r.status == Status::TempFail) ++n_failures;
    if (!cb) return;
    asio::post(io, [cb = std::move(cb), r = std::move(r)]() mutable { cb(std::move(r)); });
  }

  // --- the descriptor watch -------------------------------------------------------------
  void arm() {
    if (armed || !fd) return;
    armed = true;
    const std::uint64_t gen = ++arm_gen;
    fd->async_wait(asio::posix::stream_descriptor::wait_read,
                   [w = weak_from_this(), gen](const std::error_code& ec) {
                     auto self = w.lock();
                     if (!self || gen != self->arm_gen) return;  // resolver gone, or a cancelled wait
                     self->armed = false;
                     // Any other error: leave it; each query's deadline fails it.
                     if (!ec) self->on_readable();
                   });
  }
  void disarm() {
    if (!armed) return;
    armed = false;
    ++arm_gen;
    std::error_code ec;
    fd->cancel(ec);
  }
  void on_readable() {
    // Reads every answer waiting in libunbound's pipe (non-blocking) and calls on_ub_answer
    // for each. A non-zero return is a broken pipe to its thread: the deadlines handle it.
    (void)ub_process(ctx);
    dispatch();
    if (!queries.empty()) arm();
  }
  void dispatch() {
    auto batch = std::move(arrived);
    arrived.clear();
    for (auto& [key, ans] : batch) {
      auto it = queries.find(key);
      if (it == queries.end()) continue;
      auto done = std::move(it->second->done);
      queries.erase(it);
      if (done) done(std::move(ans));  // may start further queries
    }
    if (queries.empty()) disarm();
  }

  // --- queries ------------------------------------------------------------------------
  void query(const std::string& name, int type, std::function<void(Answer)> done) {
    ++n_queries;
    const std::uint64_t key = next_key++;
    auto owned = std::unique_ptr<Query>(new Query{this, key, 0, std::move(done), asio::steady_timer(io)});
    Query* q = owned.get();
    queries.emplace(key, std::move(owned));
    const int rc = ub_resolve_async(ctx, name.c_str(), type, kClassIn, q, &Impl::on_ub_answer, &q->async_id);
    if (rc != 0) {
      arrived.emplace_back(key, temp_fail(std::string("resolver error: ") + ub_strerror(rc)));
      asio::post(io, [w = weak_from_this()] {
        if (auto self = w.lock()) self->dispatch();
      });
      return;
    }
    q->timer.expires_after(opts.query_timeout);
    q->timer.async_wait([w = weak_from_this(), key](const std::error_code& ec) {
      if (ec) return;
      if (auto self = w.lock()) self->on_timeout(key);
    });
    arm();
  }
  void on_timeout(std::uint64_t key) {
    auto it = queries.find(key);
    if (it == queries.end() || !it->second->done) return;
    auto done = std::move(it->second->done);
    it->second->done = nullptr;
    // A successful cancel means libunbound will never call back for it. Otherwise the answer is
    // already on its way through the pipe and dispatch() drops it on arrival.
    if (ub_cancel(ctx, it->second->async_id) == 0) {
      queries.erase(it);
      if (queries.empty()) disarm();
    }
    done(temp_fail("no answer within " + std::to_string(opts.query_timeout.count()) + " ms"));
  }

  // --- address lookups ----------------------------------------------------------------
  void lookup_addresses(const std::string& host, bool external, std::function<void(AddrResult)> done) {
    const std::uint64_t id = next_job++;
    AddrJob& job = addr_jobs[id];
    job.host = host;
    job.external = external;
    job.done = std::move(done);
    job.waiting = (opts.ipv4 ? 1 : 0) + (opts.ipv6 ? 1 : 0);
    if (opts.ipv4) {
      query(host, kTypeA, [this, id](Answer a) { on_address_answer(id, false, std::move(a)); });
    }
    if (opts.ipv6) {
      query(host, kTypeAaaa, [this, id](Answer a) { on_address_answer(id, true, std::move(a)); });
    }
  }
  void on_address_answer(std::uint64_t id, bool v6, Answer a) {
    auto it = addr_jobs.find(id);
    if (it == addr_jobs.end()) return;
    AddrJob& job = it->second;
    (v6 ? job.aaaa : job.a) = std::move(a);
    if (--job.waiting > 0) return;
    AddrResult r = combine_addresses(job.host, job.a ? &*job.a : nullptr, job.aaaa ? &*job.aaaa : nullptr,
                                     opts.prefer_ipv6);
    auto done = std::move(job.done);
    const bool external = job.external;
    addr_jobs.erase(it);
    if (external) {
      deliver(std::move(done), std::move(r));
    } else if (done) {
      done(std::move(r));
    }
  }

  void start_addresses(std::string host, std::function<void(AddrResult)> cb) {
    auto name = normalize_domain(host);
    if (!name) {
      AddrResult r;
      r.status = Status::NotFound;
      r.error = name.error().message;
      deliver(std::move(cb), std::move(r));
      return;
    }
    if (!ctx) {
      AddrResult r;
      r.status = Status::TempFail;
      r.error = "resolver not initialised";
      deliver(std::move(cb), std::move(r));
      return;
    }
    lookup_addresses(*name, true, std::move(cb));
  }

  // --- TXT and PTR lookups: one query, the answer turned into R by make(name, answer) --------
  template <class R, class Make>
  void start_single(Result<std::string> name, int type, std::function<void(R)> cb, Make make) {
    if (!name || !ctx) {
      R r;
      r.status = name ? Status::TempFail : Status::NotFound;
      r.error = name ? "resolver not initialised" : name.error().message;
      deliver(std::move(cb), std::move(r));
      return;
    }
    const std::uint64_t id = next_job++;
    single_jobs[id] = [this, cb = std::move(cb), make, n = *name](Answer a) mutable {
      deliver(std::move(cb), make(n, a));
    };
    query(*name, type, [this, id](Answer a) {
      auto it = single_jobs.find(id);
      if (it == single_jobs.end()) return;
      auto finish = std::move(it->second);
      single_jobs.erase(it);
      finish(std::move(a));
    });
  }
  void start_txt(std::string name, std::function<void(TxtResult)> cb) {
    start_single<TxtResult>(normalize_domain(name), kTypeTxt, std::move(cb),
                            [](const std::string& n, const Answer& a) { return make_txt_result(n, a); });
  }
  void start_ptr(std::string ip, std::function<void(PtrResult)> cb) {
    start_single<PtrResult>(reverse_name(ip), kTypePtr, std::move(cb),
                            [](const std::string& n, const Answer& a) { return make_ptr_result(n, a); });
  }

  // --- MX lookups ---------------------------------------------------------------------
  void start_mx(std::string domain, std::function<void(MxResult)> cb) {
    auto name = normalize_domain(domain);
    if (!name || !ctx) {
      MxResult r;
      r.status = name ? Status::TempFail : Status::NotFound;
      r.error = name ? "resolver not initialised" : name.error().message;
      deliver(std::move(cb), std::move(r));
      return;
    }
    const std::uint64_t id = next_job++;
    mx_jobs[id].cb = std::move(cb);
    query(*name, kTypeMx, [this, id, d = *name](Answer a) { on_mx_answer(id, d, std::move(a)); });
  }
  void on_mx_answer(std::uint64_t id, const std::string& domain, Answer a) {
    auto it = mx_jobs.find(id);
    if (it == mx_jobs.end()) return;
    MxResult& r = it->second.result;
    switch (a.kind) {
      case Answer::Kind::NxDomain:
        r.status = Status::NotFound;
        r.error = domain + " does not exist (NXDOMAIN)";
        return complete_mx(id);
      case Answer::Kind::TempFail:
        r.status = Status::TempFail;
        r.error = "MX lookup of " + domain + " failed: " + a.error;
        return complete_mx(id);
      case Answer::Kind::NoData:  // RFC 5321 5.1: no MX, the domain itself is the host
        r.implicit = true;
        r.hosts.push_back(Host{domain, 0, {}, Status::Ok, {}});
        break;
      case Answer::Kind::Data: {
        MxPlan plan = plan_mx(a.rdata, rng);
        if (plan.status != Status::Ok) {
          r.status = plan.status;
          r.error = domain + ": " + plan.error;
          return complete_mx(id);
        }
        for (auto& [pref, host] : plan.hosts) r.hosts.push_back(Host{std::move(host), pref, {}, Status::Ok, {}});
        break;
      }
    }
    it->second.waiting = r.hosts.size();
    // Copy the names first: the callbacks below never run synchronously, but keep no reference
    // into r.hosts across calls that insert into the maps anyway.
    std::vector<std::string> names;
    for (const auto& h : r.hosts) names.push_back(h.name);
    for (std::size_t i = 0; i < names.size(); ++i) {
      lookup_addresses(names[i], false, [this, id, i](AddrResult ar) { on_host_addresses(id, i, std::move(ar)); });
    }
  }
  void on_host_addresses(std::uint64_t id, std::size_t index, AddrResult ar) {
    auto it = mx_jobs.find(id);
    if (it == mx_jobs.end()) return;
    Host& h = it->second.result.hosts[index];
    h.addresses = std::move(ar.addresses);
    h.status = ar.status;
    h.error = std::move(ar.error);
    if (--it->second.waiting > 0) return;
    finish_mx(it->second.result);
    complete_mx(id);
  }
  void complete_mx(std::uint64_t id) {
    auto it = mx_jobs.find(id);
    if (it == mx_jobs.end()) return;
    MxJob job = std::move(it->second);
    mx_jobs.erase(it);
    deliver(std::move(job.cb), std::move(job.result));
  }
};

Resolver::Resolver(asio::io_context& io, ResolverOptions opts)
    : impl_(std::make_shared<Impl>(io, std::move(opts))) {}

Resolver::~Resolver() { impl_->shutdown(); }

Result<void> Resolver::init() { return impl_->init(); }

void Resolver::resolve_mx(std::string domain, std::function<void(MxResult)> cb) {
  ++impl_->n_lookups;
  asio::post(impl_->io, [w = std::weak_ptr<Impl>(impl_), d = std::move(domain), cb = std::move(cb)]() mutable {
    if (auto self = w.lock()) return self->start_mx(std::move(d), std::move(cb));
    MxResult r;  // the Resolver was destroyed before the lookup started
    r.status = Status::TempFail;
    r.error = "resolver shut down";
    if (cb) cb(std::move(r));
  });
}

void Resolver::resolve_addresses(std::string host, std::function<void(AddrResult)> cb) {
  ++impl_->n_lookups;
  asio::post(impl_->io, [w = std::weak_ptr<Impl>(impl_), h = std::move(host), cb = std::move(cb)]() mutable {
    if (auto self = w.lock()) return self->start_addresses(std::move(h), std::move(cb));
    AddrResult r;
    r.status = Status::TempFail;
    r.error = "resolver shut down";
    if (cb) cb(std::move(r));
  });
}

void Resolver::resolve_txt(std::string name, std::function<void(TxtResult)> cb) {
  ++impl_->n_lookups;
  asio::post(impl_->io, [w = std::weak_ptr<Impl>(impl_), n = std::move(name), cb = std::move(cb)]() mutable {
    if (auto self = w.lock()) return self->start_txt(std::move(n), std::move(cb));
    TxtResult r;
    r.status = Status::TempFail;
    r.error = "resolver shut down";
    if (cb) cb(std::move(r));
  });
}

void Resolver::resolve_ptr(std::string ip, std::function<void(PtrResult)> cb) {
  ++impl_->n_lookups;
  asio::post(impl_->io, [w = std::weak_ptr<Impl>(impl_), ip = std::move(ip), cb = std::move(cb)]() mutable {
    if (auto self = w.lock()) return self->start_ptr(std::move(ip), std::move(cb));
    PtrResult r;
    r.status = Status::TempFail;
    r.error = "resolver shut down";
    if (cb) cb(std::move(r));
  });
}

Resolver::Stats Resolver::stats() const {
  return Stats{impl_->n_lookups.load(), impl_->n_failures.load(), impl_->n_queries.load()};
}

}  // namespace carrier::dns
