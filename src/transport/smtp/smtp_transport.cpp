// carrier transport/smtp: the relay transport's I/O. See smtp_transport.hpp.
#include "proto/address.hpp"
#include "transport/smtp/smtp_transport.hpp"
#include "base/thread_name.hpp"
#include "metrics/metrics.hpp"

// g++ 12 reports -Wmismatched-new-delete inside asio's awaitable frame allocator (its own
// operator new/delete pair) for coroutines with many locals: a known false positive.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <asio.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/ssl.hpp>
#include <atomic>
#include <deque>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <thread>

namespace carrier::transport {

using asio::ip::tcp;
using namespace asio::experimental::awaitable_operators;
using Status = spool::RecipientResult::Status;
constexpr auto use_tuple = asio::experimental::as_tuple(asio::use_awaitable);

namespace {


std::string reply_text(const proto::Reply& r) {
  std::string s = std::to_string(r.code);
  if (!r.status.empty()) s += " " + r.status;
  for (const auto& l : r.lines) {
    s += ' ';
    s += l;
  }
  return s;
}

// The words of a reply carrier made up itself ("timeout waiting for the server").
std::string generated_text(const proto::Reply& r) {
  std::string s;
  for (const auto& l : r.lines) s += (s.empty() ? "" : " ") + l;
  return s;
}

// The enhanced status code for a result detail: the reply's own, else one from its class.
std::string status_of(const proto::Reply& r, const char* fallback) {
  if (!r.status.empty()) return r.status;
  return fallback;
}

bool is_ip_literal(const std::string& s) {
  asio::error_code ec;
  asio::ip::make_address(s, ec);
  return !ec;
}

}  // namespace

struct SmtpTransport::Impl : std::enable_shared_from_this<Impl> {
  explicit Impl(SmtpOptions o) : opts(std::move(o)), resolver(io, opts.dns) {}
  SmtpOptions opts;
  asio::io_context io{1};
  dns::Resolver resolver;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::thread thread;
  // Connection slots (touched only on the I/O thread).
  int total = 0;
  std::map<std::string, int> per_dest;
  std::map<std::string, RatePacer> pacers;  // per next hop, when a rate is configured
  bool stopping = false;
  std::atomic<bool> stopped{false};  // the I/O thread has ended: deliver() stops waiting

  // Connection reuse: after its transactions a healthy connection waits here (per target and
  // TLS policy) for the next message to the same next hop, up to kIdle; then it says QUIT.
  struct Conn {
    Conn(tcp::socket so, session::ClientConfig cfg) : sock(std::move(so)), s(std::move(cfg)) {}
    tcp::socket sock;
    std::unique_ptr<asio::ssl::stream<tcp::socket&>> tls;  // after STARTTLS
    std::string tls_info;                                  // "using TLSv1.3 with cipher ..."
    session::ClientSession s;
    // Writes through TLS once it is up.
    template <class Token>
    auto async_write(std::string_view data, Token&& tok) {
      return tls ? asio::async_write(*tls, asio::buffer(data), std::forward<Token>(tok))
                 : asio::async_write(sock, asio::buffer(data), std::forward<Token>(tok));
    }
    void close() {
      asio::error_code ec;
      sock.close(ec);
    }
    std::uint64_t parked = 0;  // park generation: an idle timer only closes its own parking
  };
  static constexpr std::chrono::seconds kIdle{5};
  std::multimap<std::string, std::shared_ptr<Conn>> pool;
  std::uint64_t park_gen = 0;
  std::shared_ptr<Conn> take_pooled(const std::string& key);
  void park(const std::string& key, std::shared_ptr<Conn> c);
  asio::awaitable<void> idle_close(std::string key, std::shared_ptr<Conn> c, std::uint64_t gen);

  struct Job {
    const spool::Stored* msg;
    std::vector<std::size_t> rcpts;
    std::string domain;
    std::vector<Result> results;
  };

  // Runs one job on the I/O thread; calls finished() when job->results is complete.
  asio::awaitable<void> run_job(Job* job, std::function<void()> finished);

  // deliver_async(): one request (one job per recipient domain) until its last job ends.
  struct AsyncReq {
    std::vector<std::unique_ptr<Job>> jobs;
    std::vector<bool> job_done;
    std::size_t remaining = 0;
    std::vector<Result> results;
    Transport::Done done;
  };
  // Requests not yet completed, so that stop() can end them (any thread; with pending_mu).
  std::mutex pending_mu;
  std::set<std::shared_ptr<AsyncReq>> pending;
  bool closed = false;  // stop() has ended the pending requests: new ones end at once

  // Connection slots: a job that finds its next hop (or all connections) busy waits here, in
  // FIFO order per next hop, until a slot is handed to it (I/O thread only). It gives up (the
  // message is deferred) only when the next hop stops answering: no attempt on it ended with
  // an answer for connect_timeout. A next hop that is busy, not stuck (large messages, a slow
  // but working server), keeps every message in line however long the line is: carrier's own
  // concurrency limit is never a reason to defer.
  struct SlotWaiter {
    explicit SlotWaiter(asio::io_context& io) : timer(io) {}
    asio::steady_timer timer;
    bool granted = false;
  };
  std::map<std::string, std::deque<SlotWaiter*>> slot_waiters;
  // When an attempt on a next hop last ended with its answer (kept while it has connections
  // or waiters).
  std::map<std::string, std::chrono::steady_clock::time_point> answered;
  bool slot_fits(const std::string& key) const {
    auto it = per_dest.find(key);
    return total < opts.max_connections &&
           (it == per_dest.end() ? 0 : it->second) < opts.max_per_destination;
  }
  void grant_slots();
  asio::awaitable<dns::MxResult> lookup_mx(std::string name);
  asio::awaitable<dns::AddrResult> lookup_addresses(std::string name);
  asio::awaitable<bool> acquire(const std::string& key);
  void release(const std::string& key);
  // One connection attempt to one target. Returns true when the target took responsibility
  // (a transaction ran: every recipient has its outcome); false: try the next target, why says
  // what went wrong; tls_failed: the TLS handshake failed (under "may", the same target is
  // tried again without TLS, as Postfix does).
  asio::awaitable<bool> attempt(Job& job, const Target& t, session::TlsPolicy tls,
                                const std::string& tls_name, std::string& why, bool& tls_failed);
};

namespace {
// DNS lookups the relay makes, by type and result (ok, nullmx, notfound, tempfail).
void count_lookup(const char* type, dns::Status st) {
  static auto& f = metrics::global().counter_family(
      "carrier_dns_lookups_total", "DNS lookups by the relay, by type and result", {"type", "result"}, 16);
  const char* r = st == dns::Status::Ok ? "ok" : st == dns::Status::NullMx ? "nullmx"
                  : st == dns::Status::NotFound ? "notfound" : "tempfail";
  f.with({type, r}).inc();
}
}  // namespace

asio::awaitable<dns::MxResult> SmtpTransport::Impl::lookup_mx(std::string name) {
  auto* r = &resolver;
  auto* n = &name;
  co_return co_await asio::async_initiate<decltype(asio::use_awaitable), void(dns::MxResult)>(
      [r, n](auto handler) {
        auto h = std::make_shared<decltype(handler)>(std::move(handler));
        r->resolve_mx(*n, [h](dns::MxResult res) { (*h)(std::move(res)); });
      },
      asio::use_awaitable);
}

asio::awaitable<dns::AddrResult> SmtpTransport::Impl::lookup_addresses(std::string name) {
  auto* r = &resolver;
  auto* n = &name;
  co_return co_await asio::async_initiate<decltype(asio::use_awaitable), void(dns::AddrResult)>(
      [r, n](auto handler) {
        auto h = std::make_shared<decltype(handler)>(std::move(handler));
        r->resolve_addresses(*n, [h](dns::AddrResult res) { (*h)(std::move(res)); });
      },
      asio::use_awaitable);
}

asio::awaitable<bool> SmtpTransport::Impl::acquire(const std::string& key) {
  if (slot_fits(key) && slot_waiters.find(key) == slot_waiters.end()) {
    ++total;
    ++per_dest[key];
    co_return true;
  }
  if (stopping) co_return false;
  SlotWaiter w(io);
  slot_waiters[key].push_back(&w);
  for (;;) {
    w.timer.expires_after(opts.connect_timeout);
    co_await w.timer.async_wait(use_tuple);
    if (w.granted) co_return true;  // grant_slots() counted the slot for this job
    if (stopping) break;
    auto a = answered.find(key);
    if (a == answered.end() || std::chrono::steady_clock::now() - a->second >= opts.connect_timeout)
      break;  // nothing answered for connect_timeout: stuck, not busy
  }
  if (auto it = slot_waiters.find(key); it != slot_waiters.end()) {
    auto& q = it->second;
    q.erase(std::remove(q.begin(), q.end(), &w), q.end());
    if (q.empty()) slot_waiters.erase(it);
  }
  if (slot_waiters.find(key) == slot_waiters.end() && per_dest.find(key) == per_dest.end())
    answered.erase(key);  // nobody uses or waits for this next hop any more
  co_return false;
}

void SmtpTransport::Impl::release(const std::string& key) {
  --total;
  if (--per_dest[key] <= 0) {
    per_dest.erase(key);
    if (slot_waiters.find(key) == slot_waiters.end()) answered.erase(key);
  }
  grant_slots();
}

// Hands free slots to waiting jobs: per next hop in arrival order; across next hops (when the
// total is the limit) in key order. O(next hops with waiters) per release.
void SmtpTransport::Impl::grant_slots() {
  for (auto it = slot_waiters.begin(); it != slot_waiters.end() && total < opts.max_connections;) {
    auto& q = it->second;
    while (!q.empty() && slot_fits(it->first)) {
      SlotWaiter* w = q.front();
      q.pop_front();
      ++total;
      ++per_dest[it->first];
      w->granted = true;
      w->timer.cancel();
    }
    it = q.empty() ? slot_waiters.erase(it) : std::next(it);
  }
}

asio::awaitable<bool> SmtpTransport::Impl::attempt(Job& job, const Target& t,
                                                   session::TlsPolicy tls,
                                                   const std::string& tls_name, std::string& why,
                                                   bool& tls_failed) {
  const std::string where = t.host + "[" + t.ip + "]:" + std::to_string(t.port);
  const std::string pool_key = t.ip + "|" + std::to_string(t.port) + "|" +
                               std::to_string(static_cast<int>(tls));
  asio::error_code ec;
  asio::steady_timer timer(io);
  std::shared_ptr<Conn> conn = take_pooled(pool_key);
  if (!conn) {
    auto addr = asio::ip::make_address(t.ip, ec);
    if (ec) {
      why = "bad address " + t.ip;
      co_return false;
    }
    tcp::socket so(io);
    timer.expires_after(opts.connect_timeout);
    tcp::endpoint ep(addr, t.port);
    auto c = co_await (so.async_connect(ep, use_tuple) || timer.async_wait(use_tuple));
    if (c.index() == 1) {
      why = "connect to " + where + ": timed out";
      co_return false;
    }
    if (auto [cec] = std::get<0>(c); cec) {
      why = "connect to " + where + ": " + cec.message();
      co_return false;
    }
    so.set_option(tcp::no_delay(true), ec);
    session::ClientConfig cfg;
    cfg.helo_name = opts.helo_name;
    // Without TLS contexts "may" means plain text; "encrypt"/"verify" still ask and fail.
    cfg.tls = tls == session::TlsPolicy::May && !opts.tls ? session::TlsPolicy::None : tls;
    cfg.timeouts = opts.timeouts;
    conn = std::make_shared<Conn>(std::move(so), std::move(cfg));
  }
  tcp::socket& sock = conn->sock;
  session::ClientSession& s = conn->s;

  const spool::Stored& msg = *job.msg;
  int fd = ::open(msg.path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    why = "cannot open spool file: " + std::string(std::strerror(errno));
    co_return false;
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};

  std::vector<std::size_t> left = job.rcpts;  // recipients not yet in a transaction
  std::map<std::size_t, session::RcptOutcome> outcomes;
  std::uint64_t sent = 0;
  std::string inbuf(16 * 1024, '\0');
  std::string chunk;
  auto take_outcomes = [&] {
    for (auto& o : s.outcomes()) outcomes[o.index] = o;
    s.outcomes().clear();
  };
  auto start_next = [&] {
    if (left.empty()) return false;
    sent = 0;
    std::size_t n = s.begin_message(msg.envelope, left, msg.content_size);
    left.erase(left.begin(), left.begin() + static_cast<std::ptrdiff_t>(std::min(n, left.size())));
    return true;
  };
  // Results for every recipient of the job; those never reached stay temporary.
  auto finish_results = [&] {
    for (std::size_t idx : job.rcpts) {
      Result res;
      res.index = idx;
      auto it = outcomes.find(idx);
      if (it == outcomes.end()) {
        res.status = Status::Deferred;
        res.detail = "4.4.2 " + where + ": connection ended before this recipient was sent";
      } else {
        const auto& o = it->second;
        const std::string text = reply_text(o.reply);
        if (o.kind == session::RcptOutcome::Delivered) {
          res.status = Status::Delivered;
          res.detail = status_of(o.reply, "2.0.0") + " relayed to " + where +
                       (conn->tls_info.empty() ? "" : " (" + conn->tls_info + ")") + ": " + text;
          res.relayed = o.relayed_without_dsn;
        } else {
          res.status = o.kind == session::RcptOutcome::PermFail ? Status::Failed : Status::Deferred;
          const char* fb = res.status == Status::Failed ? "5.0.0" : "4.0.0";
          // A reply carrier made up (a timeout, a lost connection) is not the host's words.
          res.detail = o.generated
                           ? status_of(o.reply, fb) + " carrier: " + generated_text(o.reply) + " (host " +
                                 where + ", during " + o.stage + ")"
                           : status_of(o.reply, fb) + " host " + where + " said: " + text +
                                 " (in reply to " + o.stage + ")";
        }
      }
      job.results.push_back(std::move(res));
    }
  };
  start_next();

  for (;;) {
    if (!s.out().empty()) {
      timer.expires_after(s.timeout());
      auto w = co_await (conn->async_write(s.out(), use_tuple) || timer.async_wait(use_tuple));
      s.out().clear();
      if (w.index() == 1) {
        s.on_timeout();
        continue;
      }
      if (auto [wec, wn] = std::get<0>(w); wec) {
        s.on_closed();
        continue;
      }
    }
    switch (s.want()) {
      case session::ClientWant::Reply: {
        timer.expires_after(s.timeout());
        auto r = conn->tls ? co_await (conn->tls->async_read_some(asio::buffer(inbuf), use_tuple) ||
                                       timer.async_wait(use_tuple))
                           : co_await (sock.async_read_some(asio::buffer(inbuf), use_tuple) ||
                                       timer.async_wait(use_tuple));
        if (r.index() == 1) {
          s.on_timeout();
          break;
        }
        auto [rec, n] = std::get<0>(r);
        if (rec) s.on_closed();
        else s.on_input(std::string_view(inbuf.data(), n));
        break;
      }
      case session::ClientWant::StartTls: {
        if (!opts.tls) {
          s.on_tls_failed("TLS is not available");
          tls_failed = true;
          break;
        }
        // RFC 3207 4 / RFC 6125: under "verify" the chain must be valid and the certificate
        // must name the next hop (tls_name, else the host we looked up or were given).
        const bool verify = tls == session::TlsPolicy::Verify;
        conn->tls = std::make_unique<asio::ssl::stream<tcp::socket&>>(
            sock, verify ? opts.tls->verifying() : opts.tls->any());
        tls::prepare_client(conn->tls->native_handle(), tls_name.empty() ? t.host : tls_name,
                            verify);
        timer.expires_after(s.timeout());
        auto h = co_await (conn->tls->async_handshake(asio::ssl::stream_base::client, use_tuple) ||
                           timer.async_wait(use_tuple));
        std::string err;
        if (h.index() == 1) err = "timed out";
        else if (auto [hec] = std::get<0>(h); hec)
          err = tls::handshake_error(conn->tls->native_handle(), hec.message());
        if (!err.empty()) {
          tls_failed = true;
          spdlog::info("{}: TLS with {} failed: {}", job.msg->id, where, err);
          s.on_tls_failed(err);
          break;
        }
        conn->tls_info = tls::describe(conn->tls->native_handle());
        spdlog::debug("{}: TLS with {}: {}", job.msg->id, where, conn->tls_info);
        s.on_tls_started();
        break;
      }
      case session::ClientWant::SendContent: {
        const std::uint64_t want = std::min<std::uint64_t>(64 * 1024, msg.content_size - sent);
        chunk.resize(want);
        ssize_t got = want ? ::pread(fd, chunk.data(), want,
                                     static_cast<off_t>(msg.content_offset + sent))
                           : 0;
        if (got < 0 || static_cast<std::uint64_t>(got) != want) {
          s.on_local_error("spool read failed");
          break;
        }
        sent += want;
        s.content_chunk(std::string_view(chunk.data(), want), sent >= msg.content_size);
        break;
      }
      case session::ClientWant::Message:
        take_outcomes();
        if (start_next()) break;
        // Every recipient has its outcome and the connection is healthy: keep it for the next
        // message to this next hop instead of saying QUIT now.
        finish_results();
        park(pool_key, conn);
        co_return true;
      case session::ClientWant::Close: {
        take_outcomes();
        if (!s.out().empty()) {
          timer.expires_after(std::chrono::seconds(5));
          co_await (conn->async_write(s.out(), use_tuple) || timer.async_wait(use_tuple));
        }
        conn->close();
        if (s.connection_failed()) {  // refused before any transaction: try the next host
          why = where + " " + s.failure_stage() + ": " + reply_text(s.failure_reply());
          co_return false;
        }
        finish_results();
        co_return true;
      }
    }
  }
}

std::shared_ptr<SmtpTransport::Impl::Conn> SmtpTransport::Impl::take_pooled(const std::string& key) {
  while (true) {
    auto it = pool.find(key);
    if (it == pool.end()) return nullptr;
    auto c = std::move(it->second);
    pool.erase(it);
    c->parked = 0;
    // Still open, and the server has said nothing meanwhile (a 421 or EOF means: gone).
    char b;
    ssize_t n = ::recv(c->sock.native_handle(), &b, 1, MSG_PEEK | MSG_DONTWAIT);
    if (c->sock.is_open() && n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) &&
        c->s.want() == session::ClientWant::Message)
      return c;
    c->close();
  }
}

void SmtpTransport::Impl::park(const std::string& key, std::shared_ptr<Conn> c) {
  if (stopping || pool.count(key) >= static_cast<std::size_t>(opts.max_per_destination)) {
    c->s.quit();
    asio::error_code ec;
    if (!c->s.out().empty()) {
      if (c->tls) c->tls->write_some(asio::buffer(c->s.out()), ec);
      else c->sock.write_some(asio::buffer(c->s.out()), ec);
    }
    c->close();
    return;
  }
  c->parked = ++park_gen;
  pool.emplace(key, c);
  asio::co_spawn(io, idle_close(key, c, c->parked), asio::detached);
}

asio::awaitable<void> SmtpTransport::Impl::idle_close(std::string key, std::shared_ptr<Conn> c,
                                                      std::uint64_t gen) {
  asio::steady_timer t(io);
  t.expires_after(kIdle);
  co_await t.async_wait(use_tuple);
  if (c->parked != gen) co_return;  // taken (and maybe parked again) meanwhile
  for (auto it = pool.find(key); it != pool.end() && it->first == key; ++it)
    if (it->second == c) {
      pool.erase(it);
      break;
    }
  c->parked = 0;
  c->s.quit();
  if (!c->s.out().empty()) {
    t.expires_after(std::chrono::seconds(5));
    co_await (c->async_write(c->s.out(), use_tuple) || t.async_wait(use_tuple));
  }
  c->close();
}

asio::awaitable<void> SmtpTransport::Impl::run_job(Job* jp, std::function<void()> finished) {
  Job& job = *jp;
  auto fail_all = [&](Status st, const std::string& detail) {
    for (std::size_t idx : job.rcpts) job.results.push_back(Result{idx, st, detail});
  };
  try {
    // A copy: a reload may replace opts.routes while this job waits.
    std::optional<SmtpRoute> route_copy;
    if (const SmtpRoute* m = match_route(opts.routes, job.domain)) route_copy = *m;
    const SmtpRoute* route = route_copy ? &*route_copy : nullptr;
    const std::uint16_t port = route && route->port ? route->port : opts.port;
    const session::TlsPolicy tls = route ? route->tls : session::TlsPolicy::May;
    std::vector<Target> targets;
    const std::string key = route ? route->host : job.domain;
    if (route && !route->mx) {
      if (is_ip_literal(route->host)) {
        targets.push_back(Target{route->host, route->host, port});
      } else {
        dns::AddrResult a = co_await lookup_addresses(route->host);
        count_lookup("address", a.status);
        if (a.status != dns::Status::Ok) {
          // A configured next hop that does not resolve is the operator's to fix: keep the mail.
          fail_all(Status::Deferred, "4.4.3 next hop " + route->host + ": " + a.error);
          finished();
          co_return;
        }
        for (auto& ip : a.addresses) targets.push_back(Target{route->host, ip, port});
      }
    } else {
      const std::string name = route ? route->host : job.domain;
      dns::MxResult mx = co_await lookup_mx(name);
      count_lookup("mx", mx.status);
      switch (mx.status) {
        case dns::Status::NullMx:
          if (route) fail_all(Status::Deferred, "4.4.3 next hop " + name + " has a null MX");
          else fail_all(Status::Failed, "5.1.10 domain " + name +
                                            " does not accept mail (null MX, RFC 7505)");
          finished();
          co_return;
        case dns::Status::NotFound:
          if (route) fail_all(Status::Deferred, "4.4.3 next hop " + name + " not found: " + mx.error);
          else fail_all(Status::Failed, "5.1.2 host or domain name not found: " + name +
                                            (mx.error.empty() ? "" : " (" + mx.error + ")"));
          finished();
          co_return;
        case dns::Status::TempFail:
          fail_all(Status::Deferred, "4.4.3 DNS lookup for " + name + " failed: " + mx.error);
          finished();
          co_return;
        case dns::Status::Ok: break;
      }
      bool loops = false;
      targets = plan_targets(mx, port, opts.self, loops);
      if (loops) {
        fail_all(Status::Failed, "5.4.6 mail for " + name + " loops back to myself (MX)");
        finished();
        co_return;
      }
    }
    std::string why = "no address to connect to";
    bool taken = false;
    // Per-destination rate limit: wait for this message's slot.
    if (double rate = route && route->rate > 0 ? route->rate : opts.rate_per_destination; rate > 0) {
      auto it = pacers.try_emplace(key, rate).first;
      auto wait = it->second.reserve(std::chrono::steady_clock::now());
      if (wait.count() > 0) {
        asio::steady_timer pace(io);
        pace.expires_after(wait);
        co_await pace.async_wait(use_tuple);
      }
    }
    for (const auto& t : targets) {
      if (!co_await acquire(key)) {
        why = "4.4.5 too many connections to " + key;
        break;
      }
      bool ok = false;
      bool tls_failed = false;
      const std::string tls_name = route ? route->tls_name : std::string();
      try {
        ok = co_await attempt(job, t, tls, tls_name, why, tls_failed);
        if (!ok && tls_failed && tls == session::TlsPolicy::May) {
          // Opportunistic TLS failed: this host gets the message in plain text (RFC 3207 4;
          // Postfix does the same at security level "may").
          spdlog::info("{}: relay to {}: {}; trying {} again without TLS", job.msg->id,
                       job.domain, why, t.host);
          ok = co_await attempt(job, t, session::TlsPolicy::None, tls_name, why, tls_failed);
        }
      } catch (const std::exception& e) {
        why = std::string("connection to ") + t.host + " failed: " + e.what();
      }
      if (ok) answered[key] = std::chrono::steady_clock::now();
      release(key);
      if (ok) {
        taken = true;
        break;
      }
      spdlog::info("{}: relay to {}: {}; trying the next host", job.msg->id, job.domain, why);
    }
    if (!taken) fail_all(Status::Deferred, "4.4.1 " + why);
  } catch (const std::exception& e) {
    job.results.clear();
    fail_all(Status::Deferred, std::string("4.3.0 relay failed: ") + e.what());
  }
  finished();
}

SmtpTransport::SmtpTransport(SmtpOptions opts) : impl_(std::make_shared<Impl>(std::move(opts))) {}

SmtpTransport::~SmtpTransport() { stop(); }

carrier::Result<void> SmtpTransport::start() {
  if (auto r = impl_->resolver.init(); !r) return r;
  impl_->work.emplace(impl_->io.get_executor());
  impl_->thread = std::thread([im = impl_.get()] {
    set_thread_name("smtp-out");
    im->io.run();
  });
  return {};
}

void SmtpTransport::set_routes(std::vector<SmtpRoute> routes) {
  // opts.routes is read only on the I/O thread: change it there.
  auto im = impl_;
  asio::post(impl_->io, [im, r = std::move(routes)]() mutable { im->opts.routes = std::move(r); });
}

void SmtpTransport::stop() {
  if (!impl_->thread.joinable()) return;
  asio::post(impl_->io, [im = impl_.get()] { im->stopping = true; });
  impl_->work.reset();
  impl_->io.stop();
  impl_->thread.join();
  // Only now: no job code runs any more, so deliver() may stop waiting and drop its jobs, and
  // the asynchronous requests end with what they have (the rest deferred; the spool keeps it).
  impl_->stopped = true;
  std::set<std::shared_ptr<Impl::AsyncReq>> left;
  {
    std::lock_guard lk(impl_->pending_mu);
    impl_->closed = true;
    left.swap(impl_->pending);
  }
  for (const auto& ar : left) {
    for (std::size_t j = 0; j < ar->jobs.size(); ++j)
      if (!ar->job_done[j])
        for (auto i : ar->jobs[j]->rcpts)
          ar->results.push_back(Result{i, Status::Deferred, "4.3.0 smtp transport stopped"});
    auto done = std::move(ar->done);
    done(std::move(ar->results));
  }
}

void SmtpTransport::deliver_async(const Request& req, Done done) {
  auto ar = std::make_shared<Impl::AsyncReq>();
  auto not_running = [&] {
    for (auto i : req.recipients)
      ar->results.push_back(Result{i, Status::Deferred, "4.3.0 smtp transport not running"});
    done(std::move(ar->results));
  };
  if (!req.message || !impl_->thread.joinable()) return not_running();
  // One job per recipient domain; the jobs run concurrently on the I/O thread.
  std::map<std::string, std::vector<std::size_t>> by_domain;
  for (auto i : req.recipients) {
    if (i >= req.message->envelope.recipients.size()) {
      ar->results.push_back(Result{i, Status::Deferred, "4.3.0 smtp: no such recipient index"});
      continue;
    }
    by_domain[proto::normalize_domain(req.message->envelope.recipients[i].address.domain)].push_back(i);
  }
  if (by_domain.empty()) return done(std::move(ar->results));
  for (auto& [domain, idxs] : by_domain) {
    auto job = std::make_unique<Impl::Job>();
    job->msg = req.message;
    job->rcpts = std::move(idxs);
    job->domain = domain;
    ar->jobs.push_back(std::move(job));
  }
  ar->job_done.assign(ar->jobs.size(), false);
  ar->remaining = ar->jobs.size();
  {
    std::unique_lock lk(impl_->pending_mu);
    if (impl_->closed) {  // stop() has run: nothing will complete this request
      lk.unlock();
      for (const auto& j : ar->jobs)
        for (auto i : j->rcpts)
          ar->results.push_back(Result{i, Status::Deferred, "4.3.0 smtp transport not running"});
      return done(std::move(ar->results));
    }
    ar->done = std::move(done);
    impl_->pending.insert(ar);
  }
  asio::post(impl_->io, [im = impl_.get(), ar] {
    for (std::size_t j = 0; j < ar->jobs.size(); ++j) {
      // On the I/O thread: the last job to end completes the request.
      auto finished = [im, ar, j] {
        std::unique_lock lk(im->pending_mu);
        if (im->pending.count(ar) == 0) return;  // ended by stop() (not reached: see stop())
        ar->job_done[j] = true;
        for (auto& r : ar->jobs[j]->results) ar->results.push_back(std::move(r));
        if (--ar->remaining > 0) return;
        im->pending.erase(ar);
        lk.unlock();
        auto d = std::move(ar->done);
        d(std::move(ar->results));
      };
      asio::co_spawn(im->io, im->run_job(ar->jobs[j].get(), std::move(finished)), asio::detached);
    }
  });
}

std::vector<Result> SmtpTransport::deliver(const Request& req) {
  std::vector<Result> out;
  if (!req.message || !impl_->thread.joinable()) {
    for (auto i : req.recipients) out.push_back(Result{i, Status::Deferred, "4.3.0 smtp transport not running"});
    return out;
  }
  // One job per recipient domain; the jobs run concurrently on the I/O thread.
  std::map<std::string, std::vector<std::size_t>> by_domain;
  for (auto i : req.recipients) {
    if (i >= req.message->envelope.recipients.size()) {
      out.push_back(Result{i, Status::Deferred, "4.3.0 smtp: no such recipient index"});
      continue;
    }
    by_domain[proto::normalize_domain(req.message->envelope.recipients[i].address.domain)].push_back(i);
  }
  std::vector<std::unique_ptr<Impl::Job>> jobs;
  std::vector<std::promise<void>> promises(by_domain.size());
  std::vector<std::future<void>> futures;
  std::size_t k = 0;
  for (auto& [domain, idxs] : by_domain) {
    auto job = std::make_unique<Impl::Job>();
    job->msg = req.message;
    job->rcpts = idxs;
    job->domain = domain;
    futures.push_back(promises[k].get_future());
    asio::co_spawn(impl_->io,
                   impl_->run_job(job.get(), [p = &promises[k]] { p->set_value(); }),
                   asio::detached);
    jobs.push_back(std::move(job));
    ++k;
  }
  for (std::size_t j = 0; j < futures.size(); ++j) {
    // The I/O thread always completes a job (timeouts bound every wait); stop() abandons the
    // jobs in progress: their recipients are reported deferred at once (the spool keeps them).
    auto ready = [&] {
      const auto until = std::chrono::steady_clock::now() + std::chrono::hours(2);
      while (std::chrono::steady_clock::now() < until) {
        if (futures[j].wait_for(std::chrono::milliseconds(100)) == std::future_status::ready)
          return true;
        if (impl_->stopped.load()) return false;
      }
      return false;
    };
    if (!ready()) {
      for (auto i : jobs[j]->rcpts) out.push_back(Result{i, Status::Deferred, "4.3.0 smtp transport stopped"});
      continue;
    }
    for (auto& r : jobs[j]->results) out.push_back(std::move(r));
  }
  return out;
}

}  // namespace carrier::transport
