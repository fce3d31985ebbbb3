// carrier session: the SMTP server state machine. See server_session.hpp.
// Implements RFC 5321 3.1-3.3, 4.1.1, 4.1.4 (command order), 4.2 (replies), 4.5.3.1 (limits),
// 4.5.3.2 (timeouts, via on_timeout), RFC 2920 (PIPELINING: replies are produced in order,
// the I/O layer flushes them), RFC 1870 SIZE, RFC 6152 8BITMIME, RFC 3030 CHUNKING/BINARYMIME,
// RFC 6531 SMTPUTF8, RFC 3461 DSN parameters, RFC 2034/3463 enhanced status codes.
// Handles UNTRUSTED input: every path ends in a reply; nothing throws.
#include "session/server_session.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "proto/headers.hpp"
#include "session/command_table.hpp"

namespace carrier::session {

using proto::Reply;
using proto::Verb;

ServerSession::ServerSession(const Config& cfg, const RecipientChecker& rcpts, ClientInfo client)
    : cfg_(cfg), rcpts_(rcpts), client_(std::move(client)) {
  env_.client_ip = client_.ip;
  env_.client_rdns = client_.rdns;
}

std::size_t ServerSession::line_limit() const { return cfg_.limits.max_command_line; }

void ServerSession::reply(int code, std::string_view status, std::string_view text) {
  out_ += std::to_string(code);
  out_ += ' ';
  if (!status.empty()) {
    out_ += status;
    if (!text.empty()) out_ += ' ';
  }
  out_ += text;
  out_ += "\r\n";
}

void ServerSession::reply(const Reply& r) { r.append_to(out_); }

void ServerSession::error_reply(int code, std::string_view status, std::string_view text) {
  reply(code, status, text);
  count_error();
}

void ServerSession::reset_transaction() {
  env_.sender = {};
  env_.params = {};
  env_.recipients.clear();
  env_.received_at_ms = 0;
  rcpt_commands_ = 0;
  bdat_remaining_ = 0;
  bdat_last_ = false;
  bdat_failed_ = false;
  bdat_fail_reply_ = {};
  discard_ = false;
  opened_ = false;
  if (state_ != State::Start && state_ != State::Closed) state_ = State::Greeted;
}

proto::Extensions ServerSession::extensions() const {
  proto::Extensions e;
  if (!esmtp_) {  // HELO: no service extensions at all (RFC 5321 4.1.1.1)
    e.size = e.eightbitmime = e.smtputf8 = e.chunking = e.dsn = e.auth = false;
    return e;
  }
  e.size = true;
  e.max_size = cfg_.limits.max_message_size;
  e.eightbitmime = cfg_.eightbitmime;
  e.smtputf8 = cfg_.smtputf8;
  e.chunking = cfg_.chunking;
  e.dsn = cfg_.dsn;
  e.auth = false;
  return e;
}

void ServerSession::on_connect() {
  reply(220, "", cfg_.hostname + " ESMTP " + cfg_.greeting_text);
  events_.push_back({Event::Connect, ""});
}

void ServerSession::on_closed() {
  if (state_ != State::Closed) events_.push_back({Event::Disconnect, "lost connection"});
  state_ = State::Closed;
  want_ = Want::Close;
  opened_ = false;
}

void ServerSession::on_timeout() {
  reply(421, "4.4.2", cfg_.hostname + " Error: timeout exceeded, closing connection");
  events_.push_back({Event::Disconnect, "timeout"});
  opened_ = false;
  state_ = State::Closed;
  want_ = Want::Close;
}

void ServerSession::on_line_too_long() {
  // RFC 5321 4.5.3.1.4 (command line 512 octets) and 4.2.2 (500 line too long).
  error_reply(500, "5.5.6", "Error: line too long");
}

namespace {
std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}
}  // namespace

void ServerSession::on_line(std::string_view line) {
  if (want_ != Want::Line) return;  // the I/O layer never calls us out of turn
  const proto::Command cmd = proto::parse_command(line);
  if (cmd.verb == Verb::Unknown) {
    // RFC 5321 4.2.4: 500 for an unrecognised command.
    error_reply(500, "5.5.1", "Error: command not recognized");
    return;
  }
  const CommandSpec* spec = find_command(cmd.verb);
  if (!(spec->allowed & state_bit(state_))) {
    std::string_view text = spec->wrong_state_text;
    if (cmd.verb == Verb::Mail && state_ != State::Start) text = "Error: nested MAIL command";
    if (cmd.verb == Verb::Rcpt && state_ == State::Bdat) text = "Error: RCPT not allowed after BDAT";
    if (cmd.verb == Verb::Rcpt && state_ == State::Start) text = "Error: send HELO/EHLO first";
    if (cmd.verb == Verb::Data && state_ == State::Mail) text = "Error: need RCPT command";
    if (cmd.verb == Verb::Data && (state_ == State::Greeted || state_ == State::Start))
      text = "Error: need MAIL command";
    if (cmd.verb == Verb::Data && state_ == State::Bdat)
      text = "Error: DATA not allowed after BDAT (RFC 3030)";
    if (cmd.verb == Verb::Bdat && (state_ == State::Greeted || state_ == State::Start))
      text = "Error: need MAIL command";
    if (cmd.verb == Verb::Bdat) {
      refuse_bdat(cmd.arg, 503, text);
      return;
    }
    error_reply(503, "5.5.1", text);
    return;
  }
  switch (cmd.verb) {
    case Verb::Ehlo: cmd_helo(cmd, true); break;
    case Verb::Helo: cmd_helo(cmd, false); break;
    case Verb::Mail: cmd_mail(cmd); break;
    case Verb::Rcpt: cmd_rcpt(cmd); break;
    case Verb::Data: cmd_data(cmd); break;
    case Verb::Bdat: cmd_bdat(cmd); break;
    case Verb::Rset:
      if (!trim(cmd.arg).empty()) {
        error_reply(501, "5.5.4", "Syntax: RSET");
        break;
      }
      reset_transaction();
      reply(250, "2.0.0", "Ok");
      break;
    case Verb::Noop:  // RFC 5321 4.1.1.9: a parameter is allowed and ignored
      reply(250, "2.0.0", "Ok");
      break;
    case Verb::Quit:
      reply(221, "2.0.0", "Bye");
      events_.push_back({Event::Disconnect, "quit"});
      opened_ = false;
      state_ = State::Closed;
      want_ = Want::Close;
      break;
    case Verb::Vrfy:  // RFC 5321 3.5.3: 252 without disclosing whether the user exists
      if (trim(cmd.arg).empty()) {
        error_reply(501, "5.5.4", "Syntax: VRFY address");
        break;
      }
      reply(252, "2.5.0", "Cannot VRFY user, but will accept message and attempt delivery");
      break;
    case Verb::Expn:  // RFC 5321 3.5.2: may be disabled for security
      reply(502, "5.5.1", "Error: EXPN not available");
      break;
    case Verb::Help:
      reply(214, "2.0.0",
            "carrier: commands HELO EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP; see RFC 5321");
      break;
    case Verb::StartTls:
      if (!cfg_.starttls_available) {
        error_reply(502, "5.5.1", "Error: STARTTLS not available");
        break;
      }
      // (issue: TLS) — the I/O layer would take over here.
      error_reply(454, "4.7.0", "TLS not available due to temporary reason");
      break;
    case Verb::Auth:  // not advertised: not implemented on this listener (RFC 5321 4.2.4)
      error_reply(502, "5.5.1", "Error: authentication not enabled");
      break;
    case Verb::Unknown: break;
  }
}

void ServerSession::cmd_helo(const proto::Command& c, bool ehlo) {
  std::string_view arg = trim(c.arg);
  if (arg.empty() || !proto::valid_helo_arg(arg)) {
    error_reply(501, "5.5.4", ehlo ? "Syntax: EHLO hostname" : "Syntax: HELO hostname");
    return;
  }
  // RFC 5321 4.1.4: EHLO/HELO mid-transaction resets it, like RSET.
  state_ = State::Greeted;
  reset_transaction();
  esmtp_ = ehlo;
  env_.helo.assign(arg);
  env_.protocol = ehlo ? (client_.tls ? "ESMTPS" : "ESMTP") : "SMTP";
  events_.push_back({Event::Helo, env_.helo});
  if (!ehlo) {
    reply(250, "", cfg_.hostname);
    return;
  }
  std::vector<std::string> lines;
  lines.push_back(cfg_.hostname);
  if (cfg_.pipelining) lines.push_back("PIPELINING");
  lines.push_back("SIZE " + std::to_string(cfg_.limits.max_message_size));
  if (cfg_.eightbitmime) lines.push_back("8BITMIME");
  if (cfg_.smtputf8) lines.push_back("SMTPUTF8");
  lines.push_back("ENHANCEDSTATUSCODES");
  if (cfg_.chunking) {
    lines.push_back("CHUNKING");
    lines.push_back("BINARYMIME");
  }
  if (cfg_.dsn) lines.push_back("DSN");
  if (cfg_.starttls_available && !client_.tls) lines.push_back("STARTTLS");
  lines.push_back("HELP");
  reply(Reply(250, "", std::move(lines)));
}

void ServerSession::cmd_mail(const proto::Command& c) {
  if (transactions_ >= cfg_.limits.max_transactions) {
    reply(421, "4.7.0", cfg_.hostname + " Error: too many messages in one session, closing");
    events_.push_back({Event::Rejected, "too many transactions"});
    state_ = State::Closed;
    want_ = Want::Close;
    return;
  }
  auto r = proto::parse_mail(c.arg, extensions());
  if (auto* bad = std::get_if<Reply>(&r)) {
    reply(*bad);
    count_error();
    return;
  }
  auto& m = std::get<proto::MailFrom>(r);
  env_.sender = std::move(m.sender);
  env_.params = std::move(m.params);
  if (env_.params.smtputf8) env_.protocol = client_.tls ? "UTF8SMTPS" : "UTF8SMTP";
  else env_.protocol = esmtp_ ? (client_.tls ? "ESMTPS" : "ESMTP") : "SMTP";
  state_ = State::Mail;
  reply(250, "2.1.0", "Ok");
}

namespace {
// RFC 5321 4.1.1.3 / 4.5.1: "RCPT TO:<Postmaster>" without a domain must be accepted. Returns
// the argument with the path replaced by "<postmaster@DOMAIN>" when it is that form.
std::optional<std::string> postmaster_form(std::string_view arg, std::string_view domain) {
  if (arg.size() < 3) return std::nullopt;
  std::size_t i = 3;  // after "TO:"
  if (i < arg.size() && arg[i] == ' ') ++i;
  constexpr std::string_view pm = "<postmaster>";
  if (arg.size() - i < pm.size()) return std::nullopt;
  for (std::size_t k = 0; k < pm.size(); ++k) {
    char ch = arg[i + k];
    if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch - 'A' + 'a');
    if (ch != pm[k]) return std::nullopt;
  }
  std::string r(arg.substr(0, i));
  r += "<postmaster@";
  r += domain;
  r += '>';
  r += arg.substr(i + pm.size());
  return r;
}
}  // namespace

void ServerSession::cmd_rcpt(const proto::Command& c) {
  std::string_view arg = c.arg;
  std::optional<std::string> pm = postmaster_form(arg, cfg_.postmaster_domain);
  if (pm) arg = *pm;
  auto r = proto::parse_rcpt(arg, extensions(), env_.params.smtputf8);
  if (auto* bad = std::get_if<Reply>(&r)) {
    reply(*bad);
    count_error();
    return;
  }
  // RFC 5321 4.5.3.1.8 / 4.5.3.1.10: too many recipients is a temporary condition (452); it
  // is not counted as a client error.
  if (rcpt_commands_ >= cfg_.limits.max_recipients) {
    reply(452, "4.5.3", "Error: too many recipients");
    return;
  }
  auto& rc = std::get<proto::RcptTo>(r);
  RcptDecision d = rcpts_.check(rc.rcpt, client_);
  if (!d.accept) {
    reply(d.reply);
    events_.push_back({Event::Rejected, fmt::format("from=<{}> to=<{}> reply={} {}", env_.sender.str(),
                                                    rc.rcpt.str(), d.reply.code, d.reply.status)});
    count_error();
    return;
  }
  ++rcpt_commands_;
  for (auto& er : d.recipients) {
    er.notify = rc.params.notify;
    er.orcpt_type = rc.params.orcpt_type;
    er.orcpt = rc.params.orcpt;
    if (er.original.empty()) er.original = rc.rcpt;
    // The same final destination twice (duplicate RCPT, overlapping aliases) is kept once.
    bool dup = std::any_of(env_.recipients.begin(), env_.recipients.end(), [&](const auto& x) {
      if (x.route != er.route) return false;
      if (er.route == proto::RcptRoute::Local) return x.mailbox == er.mailbox;
      // RFC 5321 2.4: the domain is case-insensitive (and a trailing dot is the same FQDN);
      // the local part is compared exactly.
      return x.address.local == er.address.local &&
             proto::normalize_domain(x.address.domain) == proto::normalize_domain(er.address.domain);
    });
    if (!dup) env_.recipients.push_back(std::move(er));
  }
  state_ = State::Rcpt;
  reply(250, "2.1.5", "Ok");
}

void ServerSession::count_error() {
  ++errors_;
  if (errors_ >= cfg_.limits.max_errors && want_ != Want::Close) {
    reply(421, "4.7.0", cfg_.hostname + " Error: too many errors, closing connection");
    events_.push_back({Event::Rejected, "too many errors"});
    opened_ = false;
    want_ = Want::Close;
    state_ = State::Closed;
  }
}

void ServerSession::cmd_data(const proto::Command& c) {
  if (!trim(c.arg).empty()) {
    error_reply(501, "5.5.4", "Syntax: DATA");
    return;
  }
  if (env_.params.body == proto::Body::BinaryMime) {
    // RFC 3030 3: a BINARYMIME message can only be sent with BDAT.
    error_reply(503, "5.5.1", "Error: BODY=BINARYMIME requires BDAT");
    return;
  }
  in_bdat_ = false;
  want_ = Want::OpenMessage;
}

// A refused BDAT still announced a chunk whose bytes follow the command: RFC 3030 2 requires
// them to be read and discarded, or they would be taken for commands.
void ServerSession::refuse_bdat(std::string_view arg, int code, std::string_view text) {
  error_reply(code, "5.5.1", text);
  if (want_ == Want::Close) return;
  auto b = proto::parse_bdat(arg);
  auto* ok = std::get_if<proto::Bdat>(&b);
  if (!ok) {
    // Without a valid size the chunk cannot be skipped: the stream is out of sync. Close.
    reply(421, "4.7.0", cfg_.hostname + " Error: cannot recover from a bad BDAT command");
    events_.push_back({Event::Rejected, "bad BDAT"});
    opened_ = false;
    state_ = State::Closed;
    want_ = Want::Close;
    return;
  }
  bdat_remaining_ = ok->size;
  bdat_last_ = ok->last;
  discard_ = true;
  pending_discard_only_ = true;
  want_ = Want::Bdat;
}

void ServerSession::cmd_bdat(const proto::Command& c) {
  if (!cfg_.chunking) {  // CHUNKING not advertised: BDAT is not implemented here
    refuse_bdat(c.arg, 502, "Error: BDAT not available (CHUNKING is off)");
    return;
  }
  auto r = proto::parse_bdat(c.arg);
  if (auto* bad = std::get_if<Reply>(&r)) {
    // Without a valid size the chunk cannot be skipped: the stream is out of sync. Close.
    reply(*bad);
    reply(421, "4.7.0", cfg_.hostname + " Error: cannot recover from a bad BDAT command");
    events_.push_back({Event::Rejected, "bad BDAT"});
    opened_ = false;
    state_ = State::Closed;
    want_ = Want::Close;
    return;
  }
  auto b = std::get<proto::Bdat>(r);
  bdat_remaining_ = b.size;
  bdat_last_ = b.last;
  in_bdat_ = true;
  if (state_ == State::Rcpt) {
    state_ = State::Bdat;
    want_ = Want::OpenMessage;  // first chunk: open the spool writer first
    return;
  }
  discard_ = bdat_failed_ || !opened_;
  want_ = Want::Bdat;
}

void ServerSession::on_message_opened(bool ok, bool no_space) {
  if (want_ != Want::OpenMessage) return;
  if (ok) opened_ = true;
  if (!in_bdat_) {
    if (!ok) {
      // RFC 3463 4.3.1: mail system full; the client retries later.
      if (no_space) reply(452, "4.3.1", "Error: insufficient system storage");
      else reply(451, "4.3.0", "Error: local error in processing");
      events_.push_back({Event::Rejected, "spool unavailable"});
      reset_transaction();
      want_ = Want::Line;
      return;
    }
    state_ = State::Data;
    reply(354, "", "End data with <CR><LF>.<CR><LF>");
    want_ = Want::Data;
    return;
  }
  if (!ok) {
    bdat_failed_ = true;
    bdat_fail_reply_ = no_space ? Reply(452, "4.3.1", "Error: insufficient system storage")
                                : Reply(451, "4.3.0", "Error: local error in processing");
  }
  discard_ = !ok;
  want_ = Want::Bdat;
}

std::optional<Reply> ServerSession::check_content(const ContentReport& r, bool bdat) const {
  if (r.too_big)  // RFC 1870 6.2 / RFC 5321 4.5.3.1.10
    return Reply(552, "5.3.4", "Error: message exceeds fixed maximum message size");
  if (r.write_failed)
    return r.write_no_space ? Reply(452, "4.3.1", "Error: insufficient system storage")
                            : Reply(451, "4.3.0", "Error: local error in processing");
  if (!bdat && r.bare_newline && cfg_.bare_newline == proto::BareNewline::Reject)
    return Reply(554, "5.5.2",
                 "Error: bare <CR> or <LF> in message data; lines must end with <CR><LF> "
                 "(see RFC 5321 2.3.8)");
  if (r.received_count > cfg_.limits.max_received_headers)  // RFC 5321 6.3
    return Reply(554, "5.4.6", "Error: too many hops (mail forwarding loop)");
  return std::nullopt;
}

void ServerSession::on_data_end(const ContentReport& r) {
  if (want_ != Want::Data) return;
  if (auto bad = check_content(r, false)) {
    reply(*bad);
    events_.push_back({Event::Rejected, fmt::format("from=<{}> size={} reply={} {}", env_.sender.str(),
                                                    r.size, bad->code, bad->status)});
    reset_transaction();
    want_ = Want::Line;
    return;
  }
  content_size_ = r.size;
  want_ = Want::Commit;
}

void ServerSession::on_bdat_chunk_end(const ContentReport& r) {
  if (want_ != Want::Bdat) return;
  bdat_remaining_ = 0;
  if (pending_discard_only_) {
    // A BDAT refused in a wrong state: its 503 was sent already; the bytes were skipped.
    pending_discard_only_ = false;
    discard_ = false;
    bdat_remaining_ = 0;
    want_ = Want::Line;
    return;
  }
  if (!bdat_failed_) {
    if (auto bad = check_content(r, true)) {
      // Later chunks of this message are read and discarded, each answered with this reply,
      // until RSET or the LAST chunk (RFC 3030 2).
      bdat_failed_ = true;
      bdat_fail_reply_ = *bad;
      opened_ = false;  // the I/O layer drops the writer
    }
  }
  if (bdat_failed_) {
    reply(bdat_fail_reply_);
    if (bdat_last_) {
      events_.push_back({Event::Rejected, fmt::format("from=<{}> size={} reply={} {}", env_.sender.str(),
                                                      r.size, bdat_fail_reply_.code,
                                                      bdat_fail_reply_.status)});
      reset_transaction();
    }
    discard_ = bdat_failed_;
    want_ = Want::Line;
    return;
  }
  if (!bdat_last_) {
    reply(250, "2.0.0", fmt::format("Ok: {} octets received", r.size));
    want_ = Want::Line;
    return;
  }
  content_size_ = r.size;
  want_ = Want::Commit;
}

void ServerSession::on_committed(std::string_view queue_id) {
  if (want_ != Want::Commit) return;
  reply(250, "2.0.0", fmt::format("Ok: queued as {}", queue_id));
  std::string rcpts;
  for (const auto& x : env_.recipients) {
    if (!rcpts.empty()) rcpts += ',';
    rcpts += '<';
    rcpts += x.original.str();
    rcpts += '>';
  }
  events_.push_back({Event::Accepted, fmt::format("{}: from=<{}> to={} size={} nrcpt={}", queue_id,
                                                  env_.sender.str(), rcpts, content_size_,
                                                  env_.recipients.size())});
  ++transactions_;
  opened_ = false;
  reset_transaction();
  want_ = Want::Line;
}

void ServerSession::on_commit_failed(bool no_space) {
  if (want_ != Want::Commit) return;
  if (no_space) reply(452, "4.3.1", "Error: insufficient system storage");
  else reply(451, "4.3.0", "Error: local error in processing");
  events_.push_back({Event::Rejected, fmt::format("from=<{}> commit failed", env_.sender.str())});
  opened_ = false;
  reset_transaction();
  want_ = Want::Line;
}

void ServerSession::on_tls_started() {
  // (issue: TLS) RFC 3207 4.2: all state is discarded; the client must EHLO again.
  client_.tls = true;
  reset_transaction();
  state_ = State::Start;
  esmtp_ = false;
  want_ = Want::Line;
}

std::string ServerSession::received_header(std::string_view queue_id,
                                           std::chrono::system_clock::time_point now) const {
  proto::ReceivedInfo info;
  info.helo = env_.helo;
  info.client_rdns = client_.rdns;
  info.client_ip = client_.ip;
  info.by_host = cfg_.hostname;
  info.protocol = env_.protocol.empty() ? "SMTP" : env_.protocol;
  info.queue_id.assign(queue_id);
  if (env_.recipients.size() == 1) info.for_rcpt = env_.recipients.front().original.str();
  info.when = now;
  return proto::received_header(info);
}

}  // namespace carrier::session
