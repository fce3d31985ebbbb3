// carrier session: the SMTP server state machine. See server_session.hpp.
// Implements RFC 5321 3.1-3.3, 4.1.1, 4.1.4 (command order), 4.2 (replies), 4.5.3.1 (limits),
// 4.5.3.2 (timeouts, via on_timeout), RFC 2920 (PIPELINING: replies are produced in order,
// the I/O layer flushes them), RFC 1870 SIZE, RFC 6152 8BITMIME, RFC 3030 CHUNKING/BINARYMIME,
// RFC 6531 SMTPUTF8, RFC 3461 DSN parameters, RFC 2034/3463 enhanced status codes.
// Handles UNTRUSTED input: every path ends in a reply; nothing throws.
#include "session/server_session.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "base/ascii.hpp"

#include "proto/headers.hpp"
#include "proto/sasl.hpp"
#include "session/command_table.hpp"

namespace carrier::session {

using proto::Reply;
using proto::Verb;

ServerSession::ServerSession(const Config& cfg, const RecipientChecker& rcpts, ClientInfo client)
    : cfg_(cfg), rcpts_(rcpts), client_(std::move(client)) {
  env_.client_ip = client_.ip;
  env_.client_rdns = client_.rdns;
}

std::size_t ServerSession::line_limit() const {
  // A SASL response line may be longer than a command (RFC 4954 4: 12288 octets).
  if (auth_stage_ != AuthStage::None) return cfg_.limits.max_auth_line;
  return cfg_.limits.max_command_line;
}

bool ServerSession::auth_offered() const {
  // RFC 4954 4 and RFC 8314 / Postfix smtpd_tls_auth_only: passwords only under TLS (or to a
  // loopback client when the operator allows it for testing).
  return cfg_.auth_available && esmtp_ &&
         (client_.tls || (cfg_.auth_plaintext_loopback && client_.loopback));
}

// RFC 3848 / RFC 6531 7.2: the "with" keyword of Received:.
std::string ServerSession::protocol_name() const {
  if (!esmtp_) return "SMTP";
  std::string p = env_.params.smtputf8 ? "UTF8SMTP" : "ESMTP";
  if (client_.tls) p += 'S';
  if (!client_.auth_user.empty()) p += 'A';
  return p;
}

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
  e.auth = auth_offered();
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
  if (auth_stage_ != AuthStage::None) {  // an over-long SASL response ends the exchange
    auth_stage_ = AuthStage::None;
    auth_req_ = {};
  }
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
  if (auth_stage_ != AuthStage::None) {
    auth_line(line);
    return;
  }
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
      if (!cfg_.starttls_available && !client_.tls) {
        error_reply(502, "5.5.1", "Error: STARTTLS not available");
        break;
      }
      if (client_.tls) {  // RFC 3207 4.2: not advertised (and not allowed) once TLS is up
        error_reply(503, "5.5.1", "Error: TLS already active");
        break;
      }
      if (!trim(cmd.arg).empty()) {  // RFC 3207 4: no parameters
        error_reply(501, "5.5.4", "Syntax: STARTTLS");
        break;
      }
      reply(220, "2.0.0", "Ready to start TLS");
      want_ = Want::StartTls;
      break;
    case Verb::Auth: cmd_auth(cmd); break;
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
  env_.protocol = protocol_name();
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
  if (auth_offered() && client_.auth_user.empty()) lines.push_back("AUTH PLAIN LOGIN");
  lines.push_back("HELP");
  reply(Reply(250, "", std::move(lines)));
}

void ServerSession::cmd_mail(const proto::Command& c) {
  if (cfg_.submission && client_.auth_user.empty()) {
    // RFC 6409 4.3 / RFC 4954 6: the submission service requires authentication.
    error_reply(530, "5.7.0", "Authentication required");
    return;
  }
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
  if (!client_.auth_user.empty() && cfg_.sender_allowed && !cfg_.sender_allowed(identity_, m.sender)) {
    // RFC 6409 6.1: an MSA checks that the submitter may use this sender address.
    reply(553, "5.7.1",
          "<" + m.sender.str() + ">: Sender address rejected: not owned by user " +
              proto::sanitize_header_value(client_.auth_user));
    events_.push_back({Event::Rejected, fmt::format("from=<{}> not owned by user {}",
                                                    m.sender.str(), client_.auth_user)});
    count_error();
    return;
  }
  if (cfg_.gate) {
    if (auto no = cfg_.gate->on_mail(client_, m.sender, m.params)) {
      reply(*no);
      events_.push_back({Event::Rejected, fmt::format("from=<{}> reply={} {} {}", m.sender.str(),
                                                      no->code, no->status,
                                                      no->lines.empty() ? "" : no->lines.front())});
      if (no->code == 421) {  // RFC 5321 3.8: the server closes after a 421
        state_ = State::Closed;
        want_ = Want::Close;
      }
      return;
    }
  }
  env_.sender = std::move(m.sender);
  env_.params = std::move(m.params);
  env_.protocol = protocol_name();
  env_.auth_user = client_.auth_user;
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
  if (client_.connect_refusal.code != 0 && client_.auth_user.empty()) {
    // A connect check (DNSBL) refused this client; given at RCPT so the log names the
    // sender and recipient (Postfix's smtpd_delay_reject).
    reply(client_.connect_refusal);
    events_.push_back({Event::Rejected,
                       fmt::format("from=<{}> to=<{}> reply={} {} client refused at connect",
                                   env_.sender.str(), rc.rcpt.str(), client_.connect_refusal.code,
                                   client_.connect_refusal.status)});
    return;
  }
  RcptDecision d = rcpts_.check(rc.rcpt, client_);
  if (!d.accept) {
    reply(d.reply);
    events_.push_back({Event::Rejected, fmt::format("from=<{}> to=<{}> reply={} {}", env_.sender.str(),
                                                    rc.rcpt.str(), d.reply.code, d.reply.status)});
    count_error();
    return;
  }
  if (cfg_.gate) {
    if (auto no = cfg_.gate->on_rcpt(client_, env_, rc.rcpt)) {
      reply(*no);
      events_.push_back({Event::Rejected, fmt::format("from=<{}> to=<{}> reply={} {} {}",
                                                      env_.sender.str(), rc.rcpt.str(), no->code,
                                                      no->status,
                                                      no->lines.empty() ? "" : no->lines.front())});
      return;
    }
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
  if (cfg_.gate) cfg_.gate->on_accepted(client_, env_);
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

void ServerSession::on_refused(const proto::Reply& r, std::string_view why) {
  if (want_ != Want::Commit) return;
  reply(r);
  events_.push_back({Event::Rejected, fmt::format("from=<{}> reply={} {} {}", env_.sender.str(),
                                                  r.code, r.status, why)});
  opened_ = false;
  reset_transaction();
  want_ = Want::Line;
}

void ServerSession::set_connect_verdict(proto::Reply refusal, std::vector<std::string> tags) {
  client_.connect_refusal = std::move(refusal);
  client_.connect_tags = std::move(tags);
}

void ServerSession::on_tls_started(std::string info) {
  // RFC 3207 4.2: all state is discarded (an AUTH before it too); the client must EHLO again.
  client_.tls = true;
  client_.tls_info = std::move(info);
  client_.auth_user.clear();
  identity_ = {};
  auth_stage_ = AuthStage::None;
  reset_transaction();
  state_ = State::Start;
  esmtp_ = false;
  env_.helo.clear();
  want_ = Want::Line;
  events_.push_back({Event::Tls, client_.tls_info});
}

// ---- AUTH (RFC 4954; mechanisms PLAIN, RFC 4616, and LOGIN) ------------------------------

namespace {
constexpr std::string_view kLoginUser = "VXNlcm5hbWU6";      // base64("Username:")
constexpr std::string_view kLoginPassword = "UGFzc3dvcmQ6";  // base64("Password:")
}  // namespace

void ServerSession::cmd_auth(const proto::Command& c) {
  if (!auth_offered()) {
    if (cfg_.auth_available && esmtp_ && !client_.tls) {
      // RFC 4954 6: 538 when the mechanism needs an encrypted connection.
      error_reply(538, "5.7.11", "Encryption required for requested authentication mechanism");
    } else if (cfg_.auth_available && !esmtp_) {
      error_reply(503, "5.5.1", "Error: send EHLO first");
    } else {  // not advertised on this listener (RFC 5321 4.2.4)
      error_reply(502, "5.5.1", "Error: authentication not enabled");
    }
    return;
  }
  if (!client_.auth_user.empty()) {  // RFC 4954 4: only one successful AUTH per session
    error_reply(503, "5.5.1", "Error: already authenticated");
    return;
  }
  std::string_view arg = trim(c.arg);
  std::string_view mech = arg.substr(0, arg.find(' '));
  std::string_view initial;
  if (mech.size() < arg.size()) initial = trim(arg.substr(mech.size()));
  if (mech.empty()) {
    error_reply(501, "5.5.4", "Syntax: AUTH mechanism [initial-response]");
    return;
  }
  auth_req_ = {};
  if (ascii_iequals(mech, "PLAIN")) {
    auth_req_.mechanism = "PLAIN";
    auth_stage_ = AuthStage::PlainResponse;
    if (initial.empty()) {
      reply(334, "", "");  // RFC 4954 4: empty challenge, "334 "
      return;
    }
    auth_line(initial);
    return;
  }
  if (ascii_iequals(mech, "LOGIN")) {
    auth_req_.mechanism = "LOGIN";
    auth_stage_ = AuthStage::LoginUser;
    if (initial.empty()) {
      reply(334, "", kLoginUser);
      return;
    }
    auth_line(initial);
    return;
  }
  error_reply(504, "5.5.4", "Unrecognized authentication type");
}

void ServerSession::auth_line(std::string_view line) {
  auto fail = [&](int code, std::string_view status, std::string_view text) {
    auth_stage_ = AuthStage::None;
    auth_req_ = {};
    error_reply(code, status, text);
  };
  if (line == "*") {  // RFC 4954 4: the client cancels the exchange
    fail(501, "5.0.0", "Authentication cancelled");
    return;
  }
  // RFC 4954 4: "=" is an empty initial response.
  std::optional<std::string> decoded =
      line == "=" ? std::optional<std::string>(std::string()) : proto::base64_decode(line);
  if (!decoded) {
    fail(501, "5.5.2", "Cannot decode response");
    return;
  }
  switch (auth_stage_) {
    case AuthStage::PlainResponse: {
      auto p = proto::parse_sasl_plain(*decoded);
      std::fill(decoded->begin(), decoded->end(), '\0');
      if (!p) {
        fail(501, "5.5.2", "Invalid PLAIN response (RFC 4616)");
        return;
      }
      // Acting for another identity (authzid) is not supported.
      if (!p->authzid.empty() && p->authzid != p->authcid) {
        std::fill(p->password.begin(), p->password.end(), '\0');
        fail(535, "5.7.8", "Authentication credentials invalid");
        return;
      }
      auth_req_.user = std::move(p->authcid);
      auth_req_.password = std::move(p->password);
      break;
    }
    case AuthStage::LoginUser:
      if (decoded->empty() || decoded->size() > 255) {
        fail(501, "5.5.2", "Invalid user name");
        return;
      }
      auth_req_.user = std::move(*decoded);
      auth_stage_ = AuthStage::LoginPassword;
      reply(334, "", kLoginPassword);
      return;
    case AuthStage::LoginPassword:
      auth_req_.password = std::move(*decoded);
      break;
    case AuthStage::None:
    case AuthStage::Checking: return;
  }
  auth_stage_ = AuthStage::Checking;
  want_ = Want::Authenticate;
}

void ServerSession::on_auth_result(AuthVerdict v, AuthIdentity who) {
  if (want_ != Want::Authenticate) return;
  std::fill(auth_req_.password.begin(), auth_req_.password.end(), '\0');
  const std::string mech = auth_req_.mechanism;
  auth_req_ = {};
  auth_stage_ = AuthStage::None;
  want_ = Want::Line;
  switch (v) {
    case AuthVerdict::Ok:
      client_.auth_user = who.user;
      identity_ = std::move(who);
      env_.protocol = protocol_name();
      reply(235, "2.7.0", "Authentication successful");
      events_.push_back({Event::Auth, fmt::format("sasl_method={} sasl_username={}", mech,
                                                  client_.auth_user)});
      break;
    case AuthVerdict::Bad:
      events_.push_back({Event::Rejected, fmt::format("authentication failed (sasl_method={})", mech)});
      error_reply(535, "5.7.8", "Authentication credentials invalid");
      break;
    case AuthVerdict::TempFail:
      events_.push_back({Event::Rejected, fmt::format("authentication unavailable (sasl_method={})", mech)});
      reply(454, "4.7.0", "Temporary authentication failure");
      break;
    case AuthVerdict::Throttled:
      reply(421, "4.7.0",
            cfg_.hostname + " Error: too many failed authentications, closing connection");
      events_.push_back({Event::Rejected, "too many failed authentications"});
      opened_ = false;
      state_ = State::Closed;
      want_ = Want::Close;
      break;
  }
}

std::string ServerSession::received_header(std::string_view queue_id,
                                           std::chrono::system_clock::time_point now) const {
  proto::ReceivedInfo info;
  info.helo = env_.helo;
  info.client_rdns = client_.rdns;
  info.client_ip = client_.ip;
  info.by_host = cfg_.hostname;
  info.protocol = env_.protocol.empty() ? "SMTP" : env_.protocol;
  info.tls_comment = client_.tls_info;
  if (cfg_.received_auth_user) info.auth_user = client_.auth_user;
  info.queue_id.assign(queue_id);
  if (env_.recipients.size() == 1) info.for_rcpt = env_.recipients.front().original.str();
  info.when = now;
  return proto::received_header(info);
}

}  // namespace carrier::session
