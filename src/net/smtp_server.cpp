// carrier net: SMTP listeners and connections. See smtp_server.hpp.
// RFC 5321 4.5.3.2 (timeouts: every read and write has a deadline), RFC 2920 (replies to a
// pipelined group are flushed once the group's input is used up). Handles UNTRUSTED bytes.
#include "net/smtp_server.hpp"

#include <spdlog/spdlog.h>

#include <openssl/ssl.h>

#include <asio.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/ssl.hpp>
#include <atomic>
#include <cstring>
#include <unordered_map>

#include "proto/data.hpp"
#include "metrics/metrics.hpp"
#include "proto/headers.hpp"

namespace carrier::net {

using asio::ip::tcp;
using Clock = std::chrono::steady_clock;
constexpr auto use_tuple = asio::experimental::as_tuple(asio::use_awaitable);

namespace {

// A byte buffer with a read position: unconsumed bytes are [begin, end). Grows only on demand
// and never past `max`; shrinks back when a large message is done, so idle connections stay
// small.
class Buffer {
 public:
  std::string_view view() const { return {data_.get() + begin_, end_ - begin_}; }
  std::size_t size() const { return end_ - begin_; }
  bool empty() const { return begin_ == end_; }
  void consume(std::size_t n) {
    begin_ += n;
    if (begin_ == end_) begin_ = end_ = 0;
  }
  void clear() { begin_ = end_ = 0; }
  // Room for at least `want` more bytes at the end.
  std::span<char> prepare(std::size_t want) {
    if (cap_ - end_ < want) {
      if (begin_ > 0) {  // compact
        std::memmove(data_.get(), data_.get() + begin_, end_ - begin_);
        end_ -= begin_;
        begin_ = 0;
      }
      if (cap_ - end_ < want) {
        std::size_t ncap = std::max(end_ + want, cap_ * 2);
        auto n = std::make_unique<char[]>(ncap);
        if (end_) std::memcpy(n.get(), data_.get(), end_);
        data_ = std::move(n);
        cap_ = ncap;
      }
    }
    return {data_.get() + end_, cap_ - end_};
  }
  void commit(std::size_t n) { end_ += n; }
  void shrink(std::size_t keep) {
    if (cap_ <= keep || size() > keep) return;
    auto n = std::make_unique<char[]>(keep);
    std::memcpy(n.get(), data_.get() + begin_, size());
    end_ = size();
    begin_ = 0;
    data_ = std::move(n);
    cap_ = keep;
  }

 private:
  std::unique_ptr<char[]> data_;
  std::size_t cap_ = 0, begin_ = 0, end_ = 0;
};

constexpr std::size_t kCommandReadSize = 1024;
constexpr std::size_t kDataReadSize = 64 * 1024;
constexpr std::size_t kIdleBufferKeep = 4096;
// Submission: content is held back until the header section is complete, so missing Date:
// and Message-ID: fields can be added (RFC 6409 8); a header section longer than this is
// passed on unchanged.
constexpr std::size_t kMaxHeldHeader = 256 * 1024;
constexpr std::size_t kMaxAuthFailureEntries = 10000;

struct NetMetrics {
  metrics::CounterFamily& tls = metrics::global().counter_family(
      "carrier_tls_handshakes_total", "Inbound TLS handshakes by result and TLS version",
      {"result", "version"}, 16);
  metrics::CounterFamily& auth = metrics::global().counter_family(
      "carrier_auth_total", "SMTP AUTH attempts by result (ok, bad, tempfail, throttled)",
      {"result"}, 8);
  metrics::Histogram& to_250 = metrics::global().histogram(
      "carrier_time_to_250_seconds",
      "From the start of DATA/BDAT to the 250 that says the message is durable",
      {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10});
};
NetMetrics& net_metrics() {
  static NetMetrics m;
  return m;
}

bool is_loopback(const std::string& ip) {
  asio::error_code ec;
  auto a = asio::ip::make_address(ip, ec);
  return !ec && a.is_loopback();
}

}  // namespace

struct SmtpServer::Impl : std::enable_shared_from_this<Impl> {
  Impl(asio::io_context& i, ServerContext c) : io(i), ctx(std::move(c)) {}
  asio::io_context& io;
  ServerContext ctx;
  struct Listener {
    std::unique_ptr<tcp::acceptor> acc;
    ListenerSpec spec;  // spec.session is replaced by reconfigure()
    std::string bound;  // "IP:port" as bound
  };
  std::vector<std::shared_ptr<Listener>> listeners;
  Result<std::shared_ptr<Listener>> open_listener(const ListenerSpec& s);
  std::unordered_map<std::string, int> per_ip;
  // Failed AUTHs per client address (RFC 4954 throttling): count since the first one.
  struct AuthFailures {
    int count = 0;
    std::chrono::steady_clock::time_point since;
  };
  std::unordered_map<std::string, AuthFailures> auth_failures;
  Stats stats;
  std::uint64_t next_conn = 0;

  asio::awaitable<void> accept_loop(std::shared_ptr<Listener> l);
  asio::awaitable<void> refuse(tcp::socket sock, std::string text);
};

namespace {

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(std::shared_ptr<SmtpServer::Impl> srv, tcp::socket sock, std::string ip,
             std::uint16_t port, std::uint64_t id, std::shared_ptr<const session::Config> scfg,
             bool implicit_tls)
      : srv_(std::move(srv)),
        sock_(std::move(sock)),
        timer_(sock_.get_executor()),
        ip_(ip),
        id_(id),
        implicit_tls_(implicit_tls),
        scfg_(std::move(scfg)),
        session_(*scfg_, *srv_->ctx.recipients,
                 session::ClientInfo{ip, "", port, false, is_loopback(ip), "", "", {}, {}}) {}

  static asio::awaitable<void> run(std::shared_ptr<Connection> self) { co_await self->main(); }
  static asio::awaitable<void> watch(std::shared_ptr<Connection> self) { co_await self->watchdog(); }

 private:
  asio::awaitable<void> main();
  asio::awaitable<void> watchdog();
  asio::awaitable<bool> read_more(std::chrono::seconds timeout, std::size_t want);
  asio::awaitable<bool> flush();
  asio::awaitable<void> read_command();
  asio::awaitable<void> read_data();
  asio::awaitable<void> read_bdat();
  asio::awaitable<void> commit();
  // Runs ctx.checks on the message in writer_; false when it was refused or discarded (the
  // session has its reply and writer_ is gone). `hold` is set for a quarantine verdict.
  asio::awaitable<bool> run_checks(bool& hold);
  asio::awaitable<void> check_client();
  asio::awaitable<bool> start_tls();
  asio::awaitable<void> authenticate();
  void open_message();
  void write_content(std::string_view bytes);
  // Submission: writes the held header section with Date:/Message-ID: added at `at` (the end
  // of the header section), or unchanged when at == npos.
  void release_held(std::size_t at);
  // Content of the message being received: counted, scanned, written to the spool; past the
  // size limit it is only counted (and the message will be refused).
  void store(std::string_view content, std::uint64_t max);
  void log_events();
  void lost(bool timeout);

  void set_deadline(std::chrono::seconds t) { set_deadline_at(Clock::now() + t); }
  void set_deadline_at(Clock::time_point t) {
    deadline_ = t;
    if (!watching_) return;
    // The watchdog sleeps until the earliest deadline; only wake it when this one is sooner.
    if (timer_.expiry() > deadline_) timer_.cancel();
  }

  std::shared_ptr<SmtpServer::Impl> srv_;
  tcp::socket sock_;
  asio::steady_timer timer_;
  std::string ip_;
  std::uint64_t id_;
  bool implicit_tls_ = false;
  std::shared_ptr<tls::ServerTls> tls_ctx_;  // the certificates this connection started with
  std::unique_ptr<asio::ssl::stream<tcp::socket&>> tls_;
  std::shared_ptr<const session::Config> scfg_;  // outlives session_, which refers to it
  session::ServerSession session_;
  Buffer in_;
  Clock::time_point deadline_ = Clock::time_point::max();
  Clock::time_point transfer_deadline_ = Clock::time_point::max();  // during DATA/BDAT
  bool timed_out_ = false;
  bool watching_ = false;
  bool done_ = false;
  bool skipping_long_line_ = false;
  std::optional<spool::Writer> writer_;
  // The message being received (cumulative over BDAT chunks).
  session::ContentReport report_;
  proto::HeaderScanner scanner_;
  bool holding_ = false;  // submission: header section held back (see release_held)
  Clock::time_point message_started_{};  // DATA/BDAT began (time-to-250 metric)
  std::string held_;
};

asio::awaitable<void> Connection::watchdog() {
  watching_ = true;
  while (!done_) {
    timer_.expires_at(deadline_);
    co_await timer_.async_wait(use_tuple);
    if (done_) break;
    if (Clock::now() >= deadline_) {
      timed_out_ = true;
      deadline_ = Clock::time_point::max();
      asio::error_code ignored;
      sock_.cancel(ignored);  // the pending read or write completes with operation_aborted
    }
  }
  watching_ = false;
}

asio::awaitable<bool> Connection::read_more(std::chrono::seconds timeout, std::size_t want) {
  auto space = in_.prepare(want);
  set_deadline(timeout);
  // A DATA/BDAT transfer as a whole must end by transfer_deadline_ (data_timeout), however
  // the client paces its bytes: one byte a second cannot hold a connection for ever.
  if (transfer_deadline_ < deadline_) set_deadline_at(transfer_deadline_);
  auto [ec, n] = tls_ ? co_await tls_->async_read_some(asio::buffer(space.data(), want), use_tuple)
                     : co_await sock_.async_read_some(asio::buffer(space.data(), want), use_tuple);
  deadline_ = Clock::time_point::max();
  if (ec) co_return false;
  in_.commit(n);
  co_return true;
}

asio::awaitable<bool> Connection::flush() {
  std::string& out = session_.out();
  if (out.empty()) co_return true;
  set_deadline(srv_->ctx.limits.command_timeout);
  auto [ec, n] = tls_ ? co_await asio::async_write(*tls_, asio::buffer(out), use_tuple)
                     : co_await asio::async_write(sock_, asio::buffer(out), use_tuple);
  deadline_ = Clock::time_point::max();
  out.clear();
  if (out.capacity() > kIdleBufferKeep) out.shrink_to_fit();
  co_return !ec;
}

void Connection::log_events() {
  auto& evs = session_.events();
  for (const auto& e : evs) {
    switch (e.kind) {
      case session::ServerSession::Event::Connect:
        spdlog::info("conn={} connect from [{}]", id_, ip_);
        break;
      case session::ServerSession::Event::Helo:
        spdlog::info("conn={} helo={}", id_, e.text);
        break;
      case session::ServerSession::Event::Tls:
        spdlog::info("conn={} tls: {}", id_, e.text);
        break;
      case session::ServerSession::Event::Auth:
        spdlog::info("conn={} auth: {} client=[{}]", id_, e.text, ip_);
        break;
      case session::ServerSession::Event::Accepted:
        spdlog::info("{} conn={} client=[{}]", e.text, id_, ip_);
        break;
      case session::ServerSession::Event::Rejected:
        spdlog::info("conn={} reject: {} client=[{}]", id_, e.text, ip_);
        break;
      case session::ServerSession::Event::Disconnect:
        spdlog::info("conn={} disconnect from [{}] ({}) messages={} errors={}", id_, ip_, e.text,
                     session_.transactions(), session_.errors());
        break;
    }
  }
  evs.clear();
}

void Connection::lost(bool timeout) {
  if (timeout) session_.on_timeout();
  else session_.on_closed();
}

asio::awaitable<void> Connection::read_command() {
  const std::size_t limit = session_.line_limit();
  for (;;) {
    std::string_view v = in_.view();
    const void* nl = v.empty() ? nullptr : std::memchr(v.data(), '\n', v.size());
    if (nl) {
      std::size_t pos = static_cast<const char*>(nl) - v.data();
      if (skipping_long_line_) {
        skipping_long_line_ = false;
        in_.consume(pos + 1);
        session_.on_line_too_long();
        co_return;
      }
      if (pos + 1 > limit) {
        in_.consume(pos + 1);
        session_.on_line_too_long();
        co_return;
      }
      std::string_view line = v.substr(0, pos);
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      session_.on_line(line);  // the session copies what it keeps
      in_.consume(pos + 1);
      co_return;
    }
    if (in_.size() >= limit) {  // no end of line within the limit: skip to the next LF
      skipping_long_line_ = true;
      in_.clear();
    }
    // Input used up: send the replies of this pipelined group before waiting (RFC 2920 3.2).
    if (!co_await flush()) {
      lost(false);
      co_return;
    }
    if (!co_await read_more(srv_->ctx.limits.command_timeout, kCommandReadSize)) {
      lost(timed_out_);
      co_return;
    }
  }
}

void Connection::open_message() {
  message_started_ = Clock::now();
  report_ = {};
  scanner_.reset();
  auto now = std::chrono::system_clock::now();
  session_.stamp(
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count());
  auto w = srv_->ctx.spool->begin(session_.envelope());
  if (!w) {
    spdlog::error("conn={} spool: {}", id_, w.error().message);
    session_.on_message_opened(false, w.error().no_space());
    return;
  }
  writer_.emplace(std::move(w).value());
  holding_ = session_.add_missing_headers();
  held_.clear();
  auto r = writer_->write(session_.received_header(writer_->id(), now));
  if (!r) {
    report_.write_failed = true;
    report_.write_no_space = r.error().no_space();
  }
  session_.on_message_opened(true, false);
}

void Connection::store(std::string_view content, std::uint64_t max) {
  report_.size += content.size();
  if (report_.size > max) report_.too_big = true;
  if (report_.too_big) return;
  if (!scanner_.in_body()) scanner_.feed(content);
  if (!writer_ || report_.write_failed) return;
  if (holding_) {
    held_.append(content);
    if (scanner_.in_body()) release_held(static_cast<std::size_t>(scanner_.header_end()));
    else if (held_.size() > kMaxHeldHeader) release_held(std::string::npos);
    return;
  }
  write_content(content);
}

void Connection::write_content(std::string_view bytes) {
  if (!writer_ || report_.write_failed) return;
  if (auto r = writer_->write(bytes); !r) {
    report_.write_failed = true;
    report_.write_no_space = r.error().no_space();
    spdlog::error("conn={} spool write: {}", id_, r.error().message);
  }
}

void Connection::release_held(std::size_t at) {
  holding_ = false;
  if (at != std::string::npos && at <= held_.size()) {
    // RFC 6409 8.2 (Message-ID) and 8.3 (Date), appended to the submitted header section.
    std::string added;
    const auto now = std::chrono::system_clock::now();
    if (!scanner_.has_date()) added += proto::date_header(now);
    if (!scanner_.has_message_id())
      added += proto::message_id_header(writer_ ? writer_->id() : "", session_.config().hostname, now);
    if (!added.empty()) {
      write_content(std::string_view(held_).substr(0, at));
      write_content(added);
      write_content(std::string_view(held_).substr(at));
      held_.clear();
      return;
    }
  }
  write_content(held_);
  held_.clear();
  held_.shrink_to_fit();
}

asio::awaitable<void> Connection::read_data() {
  proto::DotDecoder dec(session_.bare_newline_policy());
  const std::uint64_t max = session_.config().limits.max_message_size;
  std::string content;
  content.reserve(kDataReadSize + 1024);
  transfer_deadline_ = Clock::now() + srv_->ctx.limits.data_timeout;
  for (;;) {
    if (!in_.empty()) {
      content.clear();
      auto st = dec.feed(in_.view(), content);
      in_.consume(st.consumed);
      store(content, max);
      if (st.done) break;
    }
    if (!co_await read_more(srv_->ctx.limits.command_timeout, kDataReadSize)) {
      transfer_deadline_ = Clock::time_point::max();
      lost(timed_out_);
      co_return;
    }
  }
  transfer_deadline_ = Clock::time_point::max();
  // A header section with no body: the fields go at its end (the content ends with CRLF).
  if (holding_) release_held(held_.empty() || held_.back() != '\n' ? std::string::npos : held_.size());
  report_.bare_newline = dec.saw_bare_newline();
  report_.received_count = scanner_.received_count();
  report_.header_8bit = scanner_.header_has_8bit();
  session_.on_data_end(report_);
  in_.shrink(kIdleBufferKeep);
}

asio::awaitable<void> Connection::read_bdat() {
  std::uint64_t remaining = session_.bdat_remaining();
  const bool discard = session_.discarding();
  const std::uint64_t max = session_.config().limits.max_message_size;
  transfer_deadline_ = Clock::now() + srv_->ctx.limits.data_timeout;  // per chunk
  while (remaining > 0) {
    if (in_.empty()) {
      if (!co_await read_more(srv_->ctx.limits.command_timeout, kDataReadSize)) {
        transfer_deadline_ = Clock::time_point::max();
        lost(timed_out_);
        co_return;
      }
      continue;
    }
    std::size_t take = static_cast<std::size_t>(std::min<std::uint64_t>(remaining, in_.size()));
    std::string_view chunk = in_.view().substr(0, take);
    if (!discard) store(chunk, max);
    in_.consume(take);
    remaining -= take;
  }
  transfer_deadline_ = Clock::time_point::max();
  if (holding_ && session_.bdat_last())
    release_held(held_.empty() || held_.back() != '\n' ? std::string::npos : held_.size());
  report_.received_count = scanner_.received_count();
  report_.header_8bit = scanner_.header_has_8bit();
  session_.on_bdat_chunk_end(report_);
  in_.shrink(kIdleBufferKeep);
}

asio::awaitable<void> Connection::check_client() {
  auto ex = sock_.get_executor();
  auto* fn = &srv_->ctx.check_client;
  const session::ClientInfo* ci = &session_.client();
  // The answer may come after the timeout: the shared state decides who speaks first.
  struct Pending {
    std::atomic<bool> taken{false};
  };
  auto pending_owner = std::make_shared<Pending>();
  const auto* pending_ref = &pending_owner;
  asio::steady_timer guard(ex);
  guard.expires_after(srv_->ctx.limits.connect_check_timeout);
  auto* guard_ref = &guard;
  // (The initiation captures only pointers: g++ 12 mishandles non-trivial captures there.)
  std::optional<filter::ConnectVerdict> v =
      co_await asio::async_initiate<decltype(asio::use_awaitable),
                                    void(std::optional<filter::ConnectVerdict>)>(
          [fn, ex, ci, pending_ref, guard_ref](auto handler) {
            std::shared_ptr<Pending> pending = *pending_ref;
            auto& guard = *guard_ref;
            auto h = std::make_shared<decltype(handler)>(std::move(handler));
            guard.async_wait([h, pending](const asio::error_code&) {
              if (!pending->taken.exchange(true)) (*h)(std::nullopt);
            });
            (*fn)(*ci, [h, ex, pending](filter::ConnectVerdict cv) {
              asio::post(ex, [h, pending, cv = std::move(cv)]() mutable {
                if (!pending->taken.exchange(true)) (*h)(std::move(cv));
              });
            });
          },
          asio::use_awaitable);
  guard.cancel();
  if (!v) {
    spdlog::warn("conn={} connect checks for [{}] did not answer in time", id_, ip_);
    co_return;
  }
  if (v->refusal.code != 0 || !v->tags.empty())
    session_.set_connect_verdict(std::move(v->refusal), std::move(v->tags));
}

asio::awaitable<bool> Connection::run_checks(bool& hold) {
  hold = false;
  auto pipe = srv_->ctx.checks;
  if (!pipe || pipe->empty() || !writer_) co_return true;
  auto ctx = std::make_shared<filter::Context>();
  {
    auto& m = ctx->msg;
    if (auto r = writer_->flush(); !r) co_return true;  // commit reports the write error
    m.queue_id = writer_->id();
    m.envelope = session_.envelope();
    m.client = session_.client();
    m.local_hostname = session_.config().hostname;
    m.submission = session_.config().submission;
    m.file = writer_->path();
    m.content_offset = writer_->content_offset();
    m.content_size = writer_->content_size();
    if (!filter::read_head(m.file, m.content_offset, m.content_size, m.head, m.head_complete)) {
      spdlog::error("conn={} checks: cannot read {}", id_, m.file.string());
      co_return true;  // commit will fail the same way if the file is unusable
    }
  }
  auto ex = sock_.get_executor();
  auto* p = pipe.get();
  std::shared_ptr<filter::Context> done = co_await asio::async_initiate<
      decltype(asio::use_awaitable), void(std::shared_ptr<filter::Context>)>(
      [p, ex, ctx_ref = &ctx](auto handler) {  // pointers only (g++ 12, see check_client)
        auto h = std::make_shared<decltype(handler)>(std::move(handler));
        p->run(*ctx_ref, [h, ex](std::shared_ptr<filter::Context> c) {
          asio::post(ex, [h, c = std::move(c)]() mutable { (*h)(std::move(c)); });
        });
      },
      asio::use_awaitable);
  const auto& v = done->verdict;
  std::string notes;
  for (const auto& n : done->notes) notes += (notes.empty() ? "" : " ") + n;
  using A = filter::Action;
  if (v.action == A::Reject || v.action == A::TempFail || v.action == A::Discard) {
    writer_->abort();
    writer_.reset();
    if (v.action == A::Discard) {
      spdlog::info("conn={} {}: discarded by {}: {} {}", id_, done->msg.queue_id, v.stage,
                   v.reason, notes);
      session_.on_committed(done->msg.queue_id);
    } else {
      proto::Reply r = v.reply;
      if (r.code == 0)
        r = v.action == A::Reject ? proto::Reply(550, "5.7.1", "Error: message content rejected")
                                  : proto::Reply(451, "4.7.1", "Error: try again later");
      spdlog::info("conn={} {}: refused by {}: {} {} {}", id_, done->msg.queue_id,
                   v.stage.empty() ? "checks" : v.stage, r.code, v.reason, notes);
      session_.on_refused(r, v.stage + ": " + v.reason);
    }
    co_return false;
  }
  if (done->head != done->msg.head) {
    if (auto r = writer_->rewrite_head(done->msg.head.size(), done->head); !r) {
      spdlog::error("conn={} {}: cannot apply header changes: {}", id_, done->msg.queue_id,
                    r.error().message);
      writer_->abort();
      writer_.reset();
      session_.on_commit_failed(r.error().no_space());
      co_return false;
    }
    report_.size = writer_->content_size();
  }
  if (!notes.empty()) spdlog::info("conn={} {}: {}", id_, done->msg.queue_id, notes);
  if (v.action == A::Hold) {
    hold = true;
    spdlog::info("conn={} {}: held by {}: {}", id_, done->msg.queue_id, v.stage, v.reason);
  }
  co_return true;
}

asio::awaitable<void> Connection::commit() {
  bool hold = false;
  if (!co_await run_checks(hold)) co_return;
  auto ex = sock_.get_executor();
  auto* sp = srv_->ctx.spool;
  spool::Writer* w = &*writer_;
  // What the queue would read back from the spool (a held message is read back: its state
  // file says it is held).
  std::unique_ptr<spool::Stored> loaded;
  if (!hold && srv_->ctx.on_queued)
    loaded = std::make_unique<spool::Stored>(w->stored(session_.envelope()));
  // The spool completes on its own thread; hop back to this connection's executor. (The
  // initiation captures only pointers: g++ 12 mishandles move-only captures in co_await.)
  Result<std::string> r = co_await asio::async_initiate<decltype(asio::use_awaitable),
                                                         void(Result<std::string>)>(
      [sp, ex, w](auto handler) {
        auto h = std::make_shared<decltype(handler)>(std::move(handler));
        sp->commit(std::move(*w), [h, ex](Result<std::string> res) {
          asio::post(ex, [h, res = std::move(res)]() mutable { (*h)(std::move(res)); });
        });
      },
      asio::use_awaitable);
  writer_.reset();
  if (r && hold) {
    // Quarantine: the hold is on disk before the 250 (the queue reads it when it loads the
    // message); if it cannot be recorded, the message is refused rather than delivered.
    if (auto h = sp->record_event(r.value(), "held", true); !h) {
      spdlog::error("conn={} {}: cannot record the hold: {}", id_, r.value(), h.error().message);
      if (auto rm = sp->remove(r.value()); !rm)
        spdlog::error("conn={} {}: cannot remove: {}", id_, r.value(), rm.error().message);
      session_.on_commit_failed(h.error().no_space());
      co_return;
    }
  }
  if (r) {
    // For the trace journal: who sent it and how (before the session forgets the envelope).
    std::string info;
    if (srv_->ctx.on_queued) {
      const auto& env = session_.envelope();
      const auto& cl = session_.client();
      info = "received from " + (env.helo.empty() ? std::string("unknown") : env.helo) + " [" +
             cl.ip + "] with " + env.protocol + " from=<" + env.sender.str() + "> nrcpt=" +
             std::to_string(env.recipients.size()) + " size=" + std::to_string(report_.size);
      if (!cl.tls_info.empty()) info += " tls=(" + cl.tls_info + ")";
      if (!cl.auth_user.empty()) info += " auth=" + cl.auth_user;
    }
    session_.on_committed(r.value());
    ++srv_->stats.messages_accepted;
    net_metrics().to_250.observe(std::chrono::duration<double>(Clock::now() - message_started_).count());
    log_events();
    if (srv_->ctx.on_queued) srv_->ctx.on_queued(r.value(), info, std::move(loaded));
  } else {
    spdlog::error("conn={} spool commit: {}", id_, r.error().message);
    session_.on_commit_failed(r.error().no_space());
  }
}

asio::awaitable<bool> Connection::start_tls() {
  if (srv_->ctx.tls) tls_ctx_ = srv_->ctx.tls->get();
  if (!tls_ctx_) {
    spdlog::warn("conn={} TLS wanted but no certificate is loaded", id_);
    co_return false;
  }
  tls_ = std::make_unique<asio::ssl::stream<tcp::socket&>>(sock_, tls_ctx_->context());
  set_deadline(srv_->ctx.limits.command_timeout);
  auto [ec] = co_await tls_->async_handshake(asio::ssl::stream_base::server, use_tuple);
  deadline_ = Clock::time_point::max();
  if (ec) {
    ++srv_->stats.tls_failures;
    net_metrics().tls.with({"failed", ""}).inc();
    spdlog::info("conn={} TLS handshake failed from [{}]: {}", id_, ip_,
                 timed_out_ ? std::string("timeout") : tls::handshake_error(nullptr, ec.message()));
    co_return false;
  }
  ++srv_->stats.tls_handshakes;
  net_metrics().tls.with({"ok", SSL_get_version(tls_->native_handle())}).inc();
  session_.on_tls_started(tls::describe(tls_->native_handle()));
  co_return true;
}

asio::awaitable<void> Connection::authenticate() {
  using V = session::ServerSession::AuthVerdict;
  const auto& lim = srv_->ctx.auth;
  auto& table = srv_->auth_failures;
  const auto now = Clock::now();
  auto it = table.find(ip_);
  if (it != table.end() && now - it->second.since > lim.failure_window) {
    table.erase(it);
    it = table.end();
  }
  if (it != table.end() && it->second.count >= lim.max_failures) {
    net_metrics().auth.with({"throttled"}).inc();
    session_.on_auth_result(V::Throttled);
    co_return;
  }
  if (!srv_->ctx.authenticate) {
    session_.on_auth_result(V::TempFail);
    co_return;
  }
  auto ex = sock_.get_executor();
  auto* fn = &srv_->ctx.authenticate;
  const auto* req = &session_.auth_request();
  // The check runs elsewhere and may take a while; hop back to this connection's executor.
  AuthCheck res = co_await asio::async_initiate<decltype(asio::use_awaitable), void(AuthCheck)>(
      [fn, ex, req](auto handler) {
        auto h = std::make_shared<decltype(handler)>(std::move(handler));
        (*fn)(req->user, req->password, [h, ex](AuthCheck r) {
          asio::post(ex, [h, r = std::move(r)]() mutable { (*h)(std::move(r)); });
        });
      },
      asio::use_awaitable);
  if (res.verdict == V::Bad) {
    ++srv_->stats.auth_failures;
    if (table.size() >= kMaxAuthFailureEntries) {  // forget windows that are over
      for (auto i = table.begin(); i != table.end();)
        i = now - i->second.since > lim.failure_window ? table.erase(i) : std::next(i);
    }
    auto& f = table[ip_];
    if (f.count == 0) f.since = now;
    ++f.count;
    // A delay before 535 slows down password guessing (the connection's slot stays taken).
    asio::steady_timer t(sock_.get_executor());
    t.expires_after(lim.failure_delay);
    co_await t.async_wait(use_tuple);
  }
  net_metrics().auth.with({res.verdict == V::Ok ? "ok" : res.verdict == V::Bad ? "bad" : "tempfail"}).inc();
  session_.on_auth_result(res.verdict, std::move(res.who));
}

asio::awaitable<void> Connection::main() {
  asio::error_code ec;
  sock_.set_option(tcp::no_delay(true), ec);
  if (implicit_tls_ && !co_await start_tls()) {  // RFC 8314 3.3: TLS before the greeting
    done_ = true;
    sock_.close(ec);
    timer_.cancel();
    co_return;
  }
  if (srv_->ctx.check_client) co_await check_client();
  session_.on_connect();
  for (;;) {
    log_events();
    if (writer_ && !session_.message_open()) {
      writer_->abort();
      writer_.reset();
    }
    switch (session_.want()) {
      case session::Want::Line: co_await read_command(); break;
      case session::Want::OpenMessage: open_message(); break;
      case session::Want::Data:
        if (!co_await flush()) lost(false);  // the 354 must reach the client first
        else co_await read_data();
        break;
      case session::Want::Bdat: co_await read_bdat(); break;
      case session::Want::Commit: co_await commit(); break;
      case session::Want::StartTls:
        if (!co_await flush()) {  // the 220 goes out in clear first
          lost(false);
          break;
        }
        // RFC 3207 4.2 / STARTTLS command injection (CVE-2011-0411 class): anything the client
        // sent after STARTTLS, before the handshake, is thrown away, never executed.
        if (!in_.empty())
          spdlog::info("conn={} discarded {} byte(s) pipelined after STARTTLS from [{}]", id_,
                       in_.size(), ip_);
        in_.clear();
        if (!co_await start_tls()) {
          session_.on_closed();
          session_.out().clear();  // nothing more may be said in clear
        }
        break;
      case session::Want::Authenticate: co_await authenticate(); break;
      case session::Want::Close: {
        timed_out_ = false;
        co_await flush();
        if (tls_ && !timed_out_) {
          // RFC 8446 6.1: close_notify before the TCP connection closes (bounded: a client
          // that never answers it costs at most 2 s).
          set_deadline(std::chrono::seconds(2));
          co_await tls_->async_shutdown(use_tuple);
          deadline_ = Clock::time_point::max();
        }
        log_events();
        if (writer_) {
          writer_->abort();
          writer_.reset();
        }
        done_ = true;
        sock_.shutdown(tcp::socket::shutdown_both, ec);
        sock_.close(ec);
        timer_.cancel();
        tls_.reset();
        co_return;
      }
    }
  }
}

}  // namespace

SmtpServer::SmtpServer(asio::io_context& io, ServerContext ctx)
    : impl_(std::make_shared<Impl>(io, std::move(ctx))) {}

SmtpServer::~SmtpServer() { stop_accepting(); }

Stats SmtpServer::stats() const { return impl_->stats; }

void SmtpServer::stop_accepting() {
  for (auto& l : impl_->listeners) {
    asio::error_code ec;
    l->acc->close(ec);
  }
}

void SmtpServer::set_limits(const ServerLimits& l) { impl_->ctx.limits = l; }

void SmtpServer::set_checks(
    std::shared_ptr<filter::Pipeline> checks,
    std::function<void(const session::ClientInfo&, std::function<void(filter::ConnectVerdict)>)>
        check_client) {
  impl_->ctx.checks = std::move(checks);
  impl_->ctx.check_client = std::move(check_client);
}

asio::awaitable<void> SmtpServer::Impl::refuse(tcp::socket sock, std::string text) {
  // Best effort, bounded: the reply fits in the socket buffer; no read.
  asio::error_code ec;
  sock.non_blocking(true, ec);
  sock.write_some(asio::buffer(text), ec);
  sock.shutdown(tcp::socket::shutdown_both, ec);
  sock.close(ec);
  co_return;
}

asio::awaitable<void> SmtpServer::Impl::accept_loop(std::shared_ptr<Listener> l) {
  auto self = shared_from_this();
  tcp::acceptor& acc = *l->acc;
  const std::string name = l->spec.name;
  for (;;) {
    auto [ec, sock] = co_await acc.async_accept(use_tuple);
    if (ec == asio::error::operation_aborted || !acc.is_open()) co_return;
    if (ec) {
      // EMFILE/ENFILE: wait a moment instead of spinning.
      spdlog::warn("{}: accept: {}", name, ec.message());
      asio::steady_timer t(io, std::chrono::milliseconds(100));
      co_await t.async_wait(use_tuple);
      continue;
    }
    asio::error_code e2;
    auto ep = sock.remote_endpoint(e2);
    if (e2) continue;
    auto addr = ep.address();
    if (addr.is_v6() && addr.to_v6().is_v4_mapped())
      addr = asio::ip::make_address_v4(asio::ip::v4_mapped, addr.to_v6());
    std::string ip = addr.to_string();
    ++stats.connections_total;
    auto& n_ip = per_ip[ip];
    if (stats.connections_current >= ctx.limits.max_connections ||
        n_ip >= ctx.limits.max_connections_per_ip) {
      ++stats.connections_rejected;
      bool total = stats.connections_current >= ctx.limits.max_connections;
      if (n_ip == 0) per_ip.erase(ip);
      spdlog::warn("{}: refused [{}]: too many connections{}", name, ip,
                   total ? "" : " from this address");
      std::string text = "421 4.7.0 " + ctx.session->hostname + " Error: too many connections" +
                         (total ? "" : " from your address") + "\r\n";
      asio::co_spawn(io, refuse(std::move(sock), std::move(text)), asio::detached);
      continue;
    }
    ++n_ip;
    ++stats.connections_current;
    // The listener's settings now (a reload may have replaced them since the last accept).
    std::shared_ptr<const session::Config> scfg =
        l->spec.session ? l->spec.session
                        : std::shared_ptr<const session::Config>(self, ctx.session);
    auto conn = std::make_shared<Connection>(self, std::move(sock), ip, ep.port(), ++next_conn,
                                             std::move(scfg), l->spec.implicit_tls);
    auto finish = [self, ip](std::exception_ptr e) {
      if (e) {
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& ex) {
          spdlog::error("connection failed: {}", ex.what());
        }
      }
      --self->stats.connections_current;
      auto it = self->per_ip.find(ip);
      if (it != self->per_ip.end() && --it->second <= 0) self->per_ip.erase(it);
    };
    asio::co_spawn(io, Connection::watch(conn), asio::detached);
    asio::co_spawn(io, Connection::run(std::move(conn)), std::move(finish));
  }
}

Result<std::shared_ptr<SmtpServer::Impl::Listener>> SmtpServer::Impl::open_listener(
    const ListenerSpec& s) {
  asio::error_code ec;
  auto addr = asio::ip::make_address(s.address, ec);
  if (ec) return Error{"listener " + s.name + ": bad address '" + s.address + "'"};
  tcp::endpoint ep(addr, s.port);
  auto acc = std::make_unique<tcp::acceptor>(io);
  acc->open(ep.protocol(), ec);
  if (!ec) acc->set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec && addr.is_v6()) acc->set_option(asio::ip::v6_only(true), ec);
  if (!ec) acc->bind(ep, ec);
  if (!ec) acc->listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    std::string where = addr.is_v6() ? "[" + s.address + "]:" + std::to_string(s.port)
                                     : s.address + ":" + std::to_string(s.port);
    return Error{"cannot listen on " + where + ": " + ec.message(), ec.value()};
  }
  auto local = acc->local_endpoint();
  auto l = std::make_shared<Listener>();
  l->bound = (local.address().is_v6() ? "[" + local.address().to_string() + "]"
                                      : local.address().to_string()) +
             ":" + std::to_string(local.port());
  l->acc = std::move(acc);
  l->spec = s;
  return l;
}

Result<std::vector<std::string>> SmtpServer::listen(const std::vector<ListenerSpec>& specs) {
  std::vector<std::shared_ptr<Impl::Listener>> opened;
  for (const auto& s : specs) {
    auto l = impl_->open_listener(s);
    if (!l) return l.error();  // the ones opened so far close with `opened`
    opened.push_back(std::move(l).value());
  }
  std::vector<std::string> bound;
  for (auto& l : opened) {
    bound.push_back(l->bound);
    impl_->listeners.push_back(l);
    asio::co_spawn(impl_->io, impl_->accept_loop(l), asio::detached);
  }
  return bound;
}

Result<std::vector<std::string>> SmtpServer::reconfigure(const std::vector<ListenerSpec>& specs) {
  auto& cur = impl_->listeners;
  std::vector<std::shared_ptr<Impl::Listener>> keep(specs.size());
  std::vector<bool> used(cur.size(), false);
  for (std::size_t i = 0; i < specs.size(); ++i)
    for (std::size_t j = 0; j < cur.size(); ++j)
      if (!used[j] && cur[j]->spec.address == specs[i].address &&
          cur[j]->spec.port == specs[i].port && cur[j]->spec.name == specs[i].name) {
        keep[i] = cur[j];
        used[j] = true;
        break;
      }
  // Open what is new first: if one cannot be bound, nothing changes.
  std::vector<std::shared_ptr<Impl::Listener>> fresh(specs.size());
  for (std::size_t i = 0; i < specs.size(); ++i) {
    if (keep[i]) continue;
    auto l = impl_->open_listener(specs[i]);
    if (!l) return l.error();
    fresh[i] = std::move(l).value();
  }
  for (std::size_t j = 0; j < cur.size(); ++j)
    if (!used[j]) {
      asio::error_code ec;
      cur[j]->acc->close(ec);
      spdlog::info("{}: stopped listening on {}", cur[j]->spec.name, cur[j]->bound);
    }
  std::vector<std::shared_ptr<Impl::Listener>> next;
  std::vector<std::string> bound;
  for (std::size_t i = 0; i < specs.size(); ++i) {
    if (keep[i]) {
      keep[i]->spec.session = specs[i].session;
      keep[i]->spec.implicit_tls = specs[i].implicit_tls;
      next.push_back(keep[i]);
    } else {
      next.push_back(fresh[i]);
      asio::co_spawn(impl_->io, impl_->accept_loop(fresh[i]), asio::detached);
      spdlog::info("{}: listening on {}", specs[i].name, fresh[i]->bound);
    }
    bound.push_back(next.back()->bound);
  }
  cur = std::move(next);
  return bound;
}

}  // namespace carrier::net
