// carrier server: the "milter" message check (see milter_stage.hpp).
#include "server/milter_stage.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <asio/generic/stream_protocol.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/local/stream_protocol.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/write.hpp>
#include <spdlog/spdlog.h>

#include "filter/milter_proto.hpp"
#include "server/filters.hpp"

#ifndef CARRIER_VERSION
#define CARRIER_VERSION "?"
#endif

namespace carrier::server {

namespace {

namespace mp = filter::milter;

mp::MessageInfo message_info(const filter::Context& ctx) {
  const auto& m = ctx.msg;
  const auto& env = m.envelope;
  mp::MessageInfo i;
  const std::string& ip = m.client.ip;
  i.client_name = !m.client.rdns.empty() ? m.client.rdns : ip.empty() ? "localhost" : "[" + ip + "]";
  i.family = ip.empty() ? 'U' : ip.find(':') != std::string::npos ? '6' : '4';
  i.port = m.client.port;
  i.address = ip;
  i.helo = env.helo;
  i.sender = "<" + env.sender.str() + ">";
  if (env.params.size) i.mail_args.push_back("SIZE=" + std::to_string(*env.params.size));
  if (env.params.body_given)
    i.mail_args.push_back(env.params.body == proto::Body::EightBitMime ? "BODY=8BITMIME"
                          : env.params.body == proto::Body::BinaryMime ? "BODY=BINARYMIME"
                                                                       : "BODY=7BIT");
  if (env.params.smtputf8) i.mail_args.emplace_back("SMTPUTF8");
  for (const auto& r : env.recipients) {
    const auto& a = r.original.empty() ? r.address : r.original;
    std::string s = "<" + a.str() + ">";
    if (i.rcpts.empty() || i.rcpts.back() != s) i.rcpts.push_back(std::move(s));  // one per RCPT
  }
  i.head = ctx.head;
  const std::string rdns = m.client.rdns.empty() ? "unknown" : m.client.rdns;
  i.connect_macros = {{"j", m.local_hostname},
                      {"{daemon_name}", m.local_hostname},  // as Postfix: $myhostname
                      {"v", std::string("carrier ") + CARRIER_VERSION},
                      {"_", rdns + " [" + ip + "]"},
                      {"{client_addr}", ip},
                      {"{client_name}", rdns},
                      {"{client_ptr}", rdns},
                      {"{client_port}", std::to_string(m.client.port)}};
  if (m.client.tls) i.helo_macros = {{"{tls_version}", m.client.tls_info}};
  const std::string auth = !env.auth_user.empty() ? env.auth_user : m.client.auth_user;
  i.mail_macros = {{"i", m.queue_id}, {"{mail_addr}", env.sender.str()}};
  if (!auth.empty()) {
    i.mail_macros.emplace_back("{auth_type}", "PLAIN");
    i.mail_macros.emplace_back("{auth_authen}", auth);
  }
  i.data_macros = {{"i", m.queue_id}};
  i.eoh_macros = {{"i", m.queue_id}};
  i.eom_macros = {{"i", m.queue_id}};
  return i;
}

// One dialogue: lives until its last handler ran; touched only on the runtime's I/O thread
// (after start()).
struct MilterRun : std::enable_shared_from_this<MilterRun> {
  MilterRun(asio::io_context& io, const config::Config::Milter& cfg, filter::Context& c,
            std::function<void()> d)
      : conf(cfg), ctx(c), done(std::move(d)), client(message_info(c)), sock(io), timer(io) {}
  ~MilterRun() {
    if (fd >= 0) ::close(fd);
  }

  config::Config::Milter conf;
  filter::Context& ctx;
  std::function<void()> done;
  mp::Client client;
  asio::generic::stream_protocol::socket sock;
  asio::steady_timer timer;
  std::uint64_t gen = 0;
  bool timed_out = false;
  bool finished = false;
  std::string wbuf;
  std::array<char, 16384> rbuf{};
  int fd = -1;
  std::uint64_t body_at = 0, body_end = 0;
  std::string chunk;

  void arm() {
    const auto g = ++gen;
    timer.expires_after(conf.timeout);
    timer.async_wait([self = shared_from_this(), g](const asio::error_code& ec) {
      if (ec || g != self->gen || self->finished) return;
      self->timed_out = true;
      asio::error_code ig;
      self->sock.close(ig);
    });
  }

  void start() {
    const auto& m = ctx.msg;
    if (!m.head_complete) {
      client.on_closed("the header section is longer than " + std::to_string(filter::Message::kMaxHead) +
                       " bytes");
      return complete();
    }
    fd = ::open(m.file.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      client.on_closed("cannot open the spool file: " + std::string(std::strerror(errno)));
      return complete();
    }
    body_at = m.content_offset + m.head.size();
    body_end = m.content_offset + m.content_size;
    asio::generic::stream_protocol::endpoint ep;
    if (conf.port == 0) {
      ep = asio::local::stream_protocol::endpoint(conf.host);
    } else {
      asio::error_code ec;
      auto addr = asio::ip::make_address(conf.host, ec);
      ep = asio::ip::tcp::endpoint(addr, conf.port);
    }
    arm();
    sock.async_connect(ep, [self = shared_from_this()](const asio::error_code& ec) {
      if (ec) return self->io_failed(ec, "connect");
      self->pump();
    });
  }

  void io_failed(const asio::error_code& ec, const char* what) {
    if (finished) return;
    if (client.want() != mp::Client::Want::Done) {
      std::string why;
      if (timed_out) why = std::string("timed out after ") + std::to_string(conf.timeout.count()) + " s (" + what + ")";
      else if (ec == asio::error::eof) why = "the milter closed the connection";
      else why = std::string(what) + ": " + ec.message();
      client.on_closed(std::move(why));
    }
    complete();
  }

  void pump() {
    if (finished) return;
    if (!client.out().empty()) {
      wbuf = std::move(client.out());
      client.out().clear();
      arm();
      asio::async_write(sock, asio::buffer(wbuf), [self = shared_from_this()](const asio::error_code& ec, std::size_t) {
        if (ec) return self->io_failed(ec, "write");
        self->pump();
      });
      return;
    }
    switch (client.want()) {
      case mp::Client::Want::Done:
        return complete();
      case mp::Client::Want::Body: {
        const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(mp::kBodyChunk, body_end - body_at));
        if (n == 0) {
          client.body_end();
          return pump();
        }
        chunk.resize(n);
        std::size_t got = 0;
        while (got < n) {
          ssize_t r = ::pread(fd, chunk.data() + got, n - got, static_cast<off_t>(body_at + got));
          if (r < 0 && errno == EINTR) continue;
          if (r <= 0) {
            client.on_closed("cannot read the spool file");
            return complete();
          }
          got += static_cast<std::size_t>(r);
        }
        body_at += n;
        client.body(chunk);
        // Posted, not called: a milter that answers no body chunk must not make this recursion.
        asio::post(sock.get_executor(), [self = shared_from_this()] { self->pump(); });
        return;
      }
      case mp::Client::Want::Read:
        arm();
        sock.async_read_some(asio::buffer(rbuf), [self = shared_from_this()](const asio::error_code& ec, std::size_t n) {
          if (ec) return self->io_failed(ec, "waiting for a reply");
          self->client.on_input(std::string_view(self->rbuf.data(), n));
          self->pump();
        });
        return;
    }
  }

  void complete() {
    if (finished) return;
    finished = true;
    ++gen;
    timer.cancel();
    asio::error_code ig;
    sock.close(ig);
    apply();
    auto d = std::move(done);
    d();
  }

  void apply() {
    const std::string& qid = ctx.msg.queue_id;
    const std::string tag = "milter(" + conf.name + ")";
    auto& v = ctx.verdict;
    if (client.failed()) {
      if (conf.accept_on_failure) {
        spdlog::warn("{}: milter {}: {}; message accepted without it (on_failure = accept)", qid, conf.name,
                     client.error());
        ctx.notes.push_back(tag + "=failed");
        return;
      }
      spdlog::warn("{}: milter {}: {}; refused with 451 (on_failure = tempfail)", qid, conf.name, client.error());
      ctx.notes.push_back(tag + "=failed");
      v.action = filter::Action::TempFail;
      v.reply = proto::Reply(451, "4.7.1", "Error: content filter unavailable, try again later");
      v.reason = "milter " + conf.name + ": " + client.error();
      v.stage = "milter";
      return;
    }
    const auto& o = client.outcome();
    if (!o.ignored.empty()) {
      std::string names;
      for (const auto& x : o.ignored) names += (names.empty() ? "" : ", ") + x;
      spdlog::warn("{}: milter {} asked for {}: not supported by carrier, ignored", qid, conf.name, names);
    }
    switch (o.decision) {
      case mp::Decision::Reject:
      case mp::Decision::TempFail: {
        const bool rej = o.decision == mp::Decision::Reject;
        v.action = rej ? filter::Action::Reject : filter::Action::TempFail;
        v.reply = o.reply;
        std::string text;
        for (const auto& l : o.reply.lines) text += (text.empty() ? "" : " ") + l;
        v.reason = conf.name + " at " + o.at + ": " + (o.reply.status.empty() ? "" : o.reply.status + " ") + text;
        v.stage = "milter";
        ctx.notes.push_back(tag + (rej ? "=reject" : "=tempfail"));
        return;
      }
      case mp::Decision::Discard:
        v.action = filter::Action::Discard;
        v.reason = "milter " + conf.name + " at " + o.at;
        v.stage = "milter";
        ctx.notes.push_back(tag + "=discard");
        return;
      case mp::Decision::Accept:
        break;
    }
    if (!o.edits.empty()) mp::apply_header_edits(ctx.head, o.edits, o.header_leadspc);
    if (o.quarantine) {
      v.action = filter::Action::Hold;
      v.reason = "milter " + conf.name + " quarantine: " + *o.quarantine;
      v.stage = "milter";
      ctx.notes.push_back(tag + "=quarantine");
      return;
    }
    ctx.notes.push_back(tag + "=accept" +
                        (o.edits.empty() ? std::string() : "(" + std::to_string(o.edits.size()) + " header edits)"));
  }
};

class MilterStage final : public filter::Stage {
 public:
  MilterStage(const config::Config::Milter& m, FilterRuntime& rt) : conf_(m), rt_(rt) {}
  const char* name() const override { return "milter"; }
  Kind kind() const override { return Kind::Content; }
  void run(filter::Context& ctx, std::function<void()> done) override {
    auto run = std::make_shared<MilterRun>(rt_.io(), conf_, ctx, std::move(done));
    asio::post(rt_.io(), [run] { run->start(); });
  }

 private:
  config::Config::Milter conf_;
  FilterRuntime& rt_;
};

}  // namespace

std::shared_ptr<filter::Stage> make_milter_stage(const config::Config::Milter& m,
                                                 const config::Config& /*cfg*/, FilterRuntime& rt) {
  return std::make_shared<MilterStage>(m, rt);
}

}  // namespace carrier::server
