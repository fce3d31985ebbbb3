// carrier session: the SMTP client state machine (see client_session.hpp for the transport's
// contract). RFC 5321 3.1-3.3, 3.8, 4.1.1, 4.1.4, 4.2, 4.5.2, 4.5.3.2; RFC 2920 3.1 (client
// pipelining: MAIL, RCPTs and DATA or the first BDAT in one group, replies matched in order);
// RFC 1870 4/6; RFC 3030 2-4; RFC 3461 4.1-4.4 and 5.2.2; RFC 6533 3 (utf-8 ORCPT);
// RFC 6152 3; RFC 6531 3.2; RFC 3207 4-5; RFC 2033 4.1-4.2 (LMTP mode). Handles UNTRUSTED
// input: the server's replies (via proto::ReplyParser); anything malformed or out of sequence ends the connection with a
// temporary failure for every recipient still without a result. Never throws.
#include "session/client_session.hpp"

#include <algorithm>

#include "proto/command.hpp"
#include "proto/data.hpp"

namespace carrier::session {

namespace {

using proto::Reply;

constexpr std::size_t kMaxEnvidXtext = 100;  // RFC 3461 4.4: ENVID value at most 100 chars
constexpr std::size_t kMaxOrcptValue = 500;  // RFC 3461 4.2: ORCPT value at most 500 chars
constexpr std::size_t kMaxReasonText = 200;  // transport-supplied reasons kept in a reply

bool has_control(const proto::Mailbox& m) {
  for (unsigned char c : m.local)
    if (c < 0x20 || c == 0x7F) return true;
  for (unsigned char c : m.domain)
    if (c < 0x20 || c == 0x7F) return true;
  return false;
}

// Text from the transport (an error string) made safe for a reply line: printable ASCII only.
std::string clean(std::string_view s) {
  std::string out;
  for (unsigned char c : s.substr(0, kMaxReasonText))
    out += (c >= 0x20 && c < 0x7F) ? static_cast<char>(c) : '?';
  return out;
}

Reply generated(int code, std::string status, std::string text) {
  return Reply(code, std::move(status), std::move(text));
}

// RFC 6533 3: utf-8-addr-xtext = 1*(QCHAR / EmbeddedUnicodeChar); QCHAR is printable ASCII
// without "+", "=" and "\"; everything else is "\x{HEX}". nullopt for invalid UTF-8.
std::optional<std::string> utf8_addr_xtext(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  while (!s.empty()) {
    char32_t cp = 0;
    const std::size_t n = proto::utf8_sequence(s, &cp);
    if (n == 0) return std::nullopt;
    s.remove_prefix(n);
    if (cp >= 0x21 && cp <= 0x7E && cp != '+' && cp != '=' && cp != '\\') {
      out += static_cast<char>(cp);
      continue;
    }
    std::string hex;
    for (char32_t v = cp; v != 0 || hex.size() < 2; v >>= 4) hex.insert(hex.begin(), kHex[v & 15]);
    out += "\\x{" + hex + "}";
  }
  return out;
}

std::string notify_value(unsigned bits) {
  if (bits & proto::kNotifyNever) return "NEVER";
  std::string v;
  auto add = [&v](const char* w) {
    if (!v.empty()) v += ',';
    v += w;
  };
  if (bits & proto::kNotifySuccess) add("SUCCESS");
  if (bits & proto::kNotifyFailure) add("FAILURE");
  if (bits & proto::kNotifyDelay) add("DELAY");
  return v;
}

bool positive(const Reply& r) { return r.code >= 200 && r.code < 300; }
bool negative(const Reply& r) { return r.code >= 400 && r.code < 600; }
RcptOutcome::Kind failure_kind(const Reply& r) {
  return r.code >= 500 ? RcptOutcome::PermFail : RcptOutcome::TempFail;
}

}  // namespace

ClientSession::ClientSession(ClientConfig cfg) : cfg_(std::move(cfg)), parser_(cfg_.reply_limits) {
  if (!proto::is_valid_domain(cfg_.helo_name, false)) cfg_.helo_name = "localhost";
  if (cfg_.max_rcpts_per_transaction == 0) cfg_.max_rcpts_per_transaction = 1;
  if (cfg_.max_bdat_in_flight == 0) cfg_.max_bdat_in_flight = 1;
  if (cfg_.lmtp) {
    // RFC 2033: LMTP here is to a local mailbox server; no TLS, and the content goes with DATA
    // so that the per-recipient replies of 4.2 follow the final ".".
    cfg_.tls = TlsPolicy::None;
    cfg_.use_chunking = false;
  }
  pending_.push_back({Cmd::Greeting});
}

// ------------------------------------------------------------------------------ helpers

std::string ClientSession::hello_command() const {
  return (cfg_.lmtp ? "LHLO " : "EHLO ") + cfg_.helo_name;  // RFC 2033 4.1 / RFC 5321 4.1.1.1
}

std::string_view ClientSession::stage_of(Cmd c) const {
  switch (c) {
    case Cmd::Greeting: return "connect";
    case Cmd::Ehlo:
    case Cmd::Helo: return cfg_.lmtp ? "LHLO" : "EHLO";
    case Cmd::StartTls: return "STARTTLS";
    case Cmd::Rset: return "RSET";
    case Cmd::Mail: return "MAIL";
    case Cmd::Rcpt: return "RCPT";
    case Cmd::Data:
    case Cmd::DataEnd: return "DATA";
    case Cmd::Bdat:
    case Cmd::BdatLast: return "BDAT";
    case Cmd::Quit: return "QUIT";
  }
  return "";
}

std::string_view ClientSession::current_stage() const {
  switch (state_) {
    case State::Greeting: return "connect";
    case State::Ehlo:
    case State::Helo: return cfg_.lmtp ? "LHLO" : "EHLO";
    case State::StartTls:
    case State::TlsHandshake: return "STARTTLS";
    case State::Transaction:
      if (answering_) return stage_of(*answering_);
      if (!pending_.empty()) return stage_of(pending_.front().cmd);
      if (!tx_.mail_sent) return "MAIL";
      return tx_.bdat ? "BDAT" : "DATA";
    case State::Ready:
    case State::Closed: break;
  }
  return "MAIL";
}

bool ClientSession::pre_ready() const {
  return state_ == State::Greeting || state_ == State::Ehlo || state_ == State::Helo ||
         state_ == State::StartTls || state_ == State::TlsHandshake;
}

void ClientSession::send(std::string_view line, Pending p) {
  out_ += line;
  out_ += "\r\n";
  pending_.push_back(p);
}

void ClientSession::decide(TxRcpt& t, RcptOutcome::Kind kind, const Reply& r,
                           std::string_view stage, bool gen) {
  if (t.decided) return;
  t.decided = true;
  RcptOutcome o;
  o.index = t.index;
  o.kind = kind;
  o.reply = r;
  o.stage.assign(stage);
  o.generated = gen;
  // RFC 3461 5.2.2: relayed to a server without DSN, SUCCESS asked → a "relayed" DSN is owed.
  // LMTP is final delivery (the mailbox server), never a relay.
  o.relayed_without_dsn = kind == RcptOutcome::Delivered && !cfg_.lmtp && !caps_.dsn &&
                          (t.notify & proto::kNotifySuccess) != 0 &&
                          (t.notify & proto::kNotifyNever) == 0;
  outcomes_.push_back(std::move(o));
}

// Gives every recipient of the transaction still without a result this one.
void ClientSession::settle_open(RcptOutcome::Kind kind, const Reply& r, std::string_view stage,
                                bool gen) {
  if (!tx_.active) return;
  for (auto& t : tx_.rcpts) decide(t, kind, r, stage, gen);
}

void ClientSession::close(bool send_quit) {
  if (send_quit) out_ += "QUIT\r\n";
  pending_.clear();
  tx_ = Transaction();
  message_waiting_ = false;
  state_ = State::Closed;
  want_ = ClientWant::Close;
}

void ClientSession::connection_failure(const Reply& r, std::string_view stage, bool send_quit,
                                       bool gen) {
  conn_failed_ = true;
  conn_reply_ = r;
  conn_stage_.assign(stage);
  settle_open(RcptOutcome::TempFail, r, stage, gen);
  close(send_quit);
}

void ClientSession::abort_all(const Reply& r, std::string_view stage, bool gen, bool send_quit) {
  if (pre_ready()) {
    connection_failure(r, stage, send_quit, gen);
    return;
  }
  settle_open(RcptOutcome::TempFail, r, stage, gen);
  close(send_quit);
}

void ClientSession::protocol_error(std::string_view what) {
  // RFC 3463 X.5.0: other or undefined protocol status. The server's state is unknown: no QUIT.
  abort_all(generated(451, "4.5.0", "protocol error: " + std::string(what)), current_stage(), true,
            false);
}

// ------------------------------------------------------------------------------ events

void ClientSession::on_input(std::string_view bytes) {
  if (state_ == State::Closed) return;
  if (state_ == State::TlsHandshake) {
    // RFC 3207 5 / STARTTLS response injection: nothing may arrive in plain text after 220.
    protocol_error("data received in plain text after the STARTTLS reply");
    return;
  }
  while (!bytes.empty() && state_ != State::Closed) {
    const auto step = parser_.feed(bytes);
    bytes.remove_prefix(step.consumed);
    if (step.status == proto::ReplyParser::Status::Error) {
      protocol_error("malformed reply: " + parser_.error());
      return;
    }
    if (step.status != proto::ReplyParser::Status::Ready) break;
    handle(parser_.take());
    if (state_ == State::TlsHandshake && (!bytes.empty() || !parser_.idle())) {
      protocol_error("data received in plain text after the STARTTLS reply");
      return;
    }
  }
  update_want();
}

void ClientSession::on_closed() {
  if (state_ == State::Closed) return;
  abort_all(generated(451, "4.4.2", "connection lost"), current_stage(), true, false);
}

void ClientSession::on_timeout() {
  if (state_ == State::Closed) return;
  // RFC 5321 4.5.3.2: a timeout is a temporary failure; the connection is given up.
  abort_all(generated(451, "4.4.2", "timeout waiting for the server"), current_stage(), true,
            false);
}

void ClientSession::on_tls_started() {
  if (state_ != State::TlsHandshake) return;
  // RFC 3207 4.2: forget everything learned before TLS and say EHLO again.
  tls_ = true;
  caps_ = proto::ServerCaps();
  esmtp_ = false;
  parser_.reset();
  state_ = State::Ehlo;
  send(hello_command(), {Cmd::Ehlo});
  update_want();
}

void ClientSession::on_tls_failed(std::string_view why) {
  if (state_ != State::TlsHandshake) return;
  // RFC 3463 X.7.5: cryptographic failure. The TLS state is unknown: no QUIT.
  connection_failure(generated(451, "4.7.5", "TLS handshake failed: " + clean(why)), "STARTTLS",
                     false, true);
}

void ClientSession::on_local_error(std::string_view why) {
  if (state_ == State::Closed) return;
  // Content may be half sent: only closing the connection keeps a partial message from being
  // delivered (RFC 5321 4.1.1.4: no "." / no BDAT LAST was sent).
  const Reply r = generated(451, "4.3.0", "local error: " + clean(why));
  settle_open(RcptOutcome::TempFail, r, current_stage(), true);
  close(false);
}

// ------------------------------------------------------------------------------ replies

void ClientSession::handle(Reply r) {
  if (pending_.empty()) {
    // Nothing asked: only 421 (RFC 5321 3.8, service shutting down) has a meaning here.
    if (r.code == 421)
      abort_all(r, current_stage(), false, false);
    else
      protocol_error("unexpected reply " + std::to_string(r.code) + " (no command pending)");
    return;
  }
  const Pending p = pending_.front();
  pending_.pop_front();
  if (r.code == 421 && p.cmd != Cmd::Quit) {
    // RFC 5321 3.8: the server is closing the channel; everything still open fails for now.
    abort_all(r, stage_of(p.cmd), false, false);
    return;
  }
  switch (p.cmd) {
    case Cmd::Greeting:
      greeting_ = r;
      if (r.code == 220) {
        state_ = State::Ehlo;
        send(hello_command(), {Cmd::Ehlo});
      } else if (negative(r)) {
        // RFC 5321 3.1 / 4.3.2: 554 (or a 4xx) greeting: QUIT, then try another MX.
        connection_failure(r, "connect", true, false);
      } else {
        protocol_error("greeting " + std::to_string(r.code) + " is not 220");
      }
      return;
    case Cmd::Ehlo:
      if (positive(r)) {
        caps_ = proto::parse_ehlo(r);
        esmtp_ = true;
        after_ehlo();
      } else if (r.code >= 500 && !cfg_.lmtp) {
        // RFC 5321 4.1.4 / 3.2: EHLO not understood → HELO, no extensions. (LMTP has no
        // HELO: a refused LHLO fails the connection, RFC 2033 4.1.)
        state_ = State::Helo;
        send("HELO " + cfg_.helo_name, {Cmd::Helo});
      } else if (negative(r)) {
        connection_failure(r, stage_of(Cmd::Ehlo), true, false);
      } else {
        protocol_error("unexpected reply " + std::to_string(r.code) + " to " +
                       std::string(stage_of(Cmd::Ehlo)));
      }
      return;
    case Cmd::Helo:
      if (positive(r)) {
        caps_ = proto::ServerCaps();
        esmtp_ = false;
        after_ehlo();
      } else if (negative(r)) {
        connection_failure(r, "EHLO", true, false);
      } else {
        protocol_error("unexpected reply " + std::to_string(r.code) + " to HELO");
      }
      return;
    case Cmd::StartTls:
      if (r.code == 220) {
        state_ = State::TlsHandshake;  // RFC 3207 4: start the handshake now
      } else if (negative(r)) {
        // RFC 3207 4: the client decides. Encrypt: give up; May: go on in plain text.
        if (cfg_.tls == TlsPolicy::Encrypt || cfg_.tls == TlsPolicy::Verify)
          connection_failure(r, "STARTTLS", true, false);
        else
          become_ready();
      } else {
        protocol_error("unexpected reply " + std::to_string(r.code) + " to STARTTLS");
      }
      return;
    case Cmd::Quit: return;
    default: break;
  }
  if (state_ != State::Transaction) {
    protocol_error("reply out of sequence");
    return;
  }
  answering_ = p.cmd;  // protocol errors in handle_tx() are about this command
  handle_tx(p, r);
  answering_.reset();
  if (state_ == State::Transaction && pending_.empty()) step_transaction();
}

void ClientSession::after_ehlo() {
  if (!tls_ && cfg_.tls != TlsPolicy::None && caps_.starttls) {
    state_ = State::StartTls;
    send("STARTTLS", {Cmd::StartTls});
    return;
  }
  if (!tls_ && (cfg_.tls == TlsPolicy::Encrypt || cfg_.tls == TlsPolicy::Verify)) {
    // RFC 3463 X.7.10 (RFC 5248): encryption needed.
    connection_failure(generated(451, "4.7.10", "TLS required but not offered by the server"),
                       "STARTTLS", true, true);
    return;
  }
  become_ready();
}

void ClientSession::become_ready() {
  state_ = State::Ready;
  if (message_waiting_) {
    message_waiting_ = false;
    if (!refuse_before_sending()) start_transaction();
  }
}

void ClientSession::handle_tx(const Pending& p, const Reply& r) {
  const bool pos = positive(r);
  const bool neg = negative(r);
  switch (p.cmd) {
    case Cmd::Rset:
      if (neg) {
        // The server cannot clear the previous transaction: no use going on here.
        abort_all(r, "RSET", false, true);
      } else if (!pos) {
        protocol_error("unexpected reply " + std::to_string(r.code) + " to RSET");
      }
      return;
    case Cmd::Mail:
      if (pos) {
        tx_.mail_ok = 1;
      } else if (neg) {
        tx_.mail_ok = 0;  // RFC 5321 3.3: no transaction; every recipient gets this reply
        settle_open(failure_kind(r), r, "MAIL", false);
      } else {
        protocol_error("unexpected reply " + std::to_string(r.code) + " to MAIL");
      }
      return;
    case Cmd::Rcpt: {
      ++tx_.rcpt_replied;
      if (tx_.mail_ok == 0) return;  // RFC 2920 3.1: pipelined RCPTs after a refused MAIL
      TxRcpt& t = tx_.rcpts[p.rcpt];
      if (pos) {
        t.accepted = true;
        ++tx_.accepted;
      } else if (neg) {
        decide(t, failure_kind(r), r, "RCPT", false);
      } else {
        protocol_error("unexpected reply " + std::to_string(r.code) + " to RCPT");
      }
      return;
    }
    case Cmd::Data:
      if (tx_.mail_ok != 1 || tx_.accepted == 0) {
        // RFC 2920 3.1: DATA was pipelined but no recipient was accepted; the server must
        // refuse it (503/554), which means nothing. A 354 would start an empty message
        // nobody can stop cleanly: drop the connection (every result is already known).
        if (r.code == 354) protocol_error("354 to DATA without an accepted recipient");
        return;
      }
      if (r.code == 354) {
        tx_.data_go = true;
      } else if (neg) {
        tx_.content_failed = true;
        settle_open(failure_kind(r), r, "DATA", false);
      } else {
        protocol_error("unexpected reply " + std::to_string(r.code) + " to DATA");
      }
      return;
    case Cmd::DataEnd:
      if (cfg_.lmtp) {
        // RFC 2033 4.2: one reply per recipient accepted at RCPT, in RCPT order; each is that
        // recipient's own result.
        TxRcpt& t = tx_.rcpts[p.rcpt];
        if (tx_.lmtp_left > 0 && --tx_.lmtp_left == 0) tx_.final_seen = true;
        if (pos) {
          decide(t, RcptOutcome::Delivered, r, "DATA", false);
        } else if (neg) {
          decide(t, failure_kind(r), r, "DATA", false);
        } else {
          protocol_error("unexpected reply " + std::to_string(r.code) + " after the message");
        }
        return;
      }
      tx_.final_seen = true;
      if (pos) {
        settle_open(RcptOutcome::Delivered, r, "DATA", false);
      } else if (neg) {
        settle_open(failure_kind(r), r, "DATA", false);
      } else {
        protocol_error("unexpected reply " + std::to_string(r.code) + " after the message");
      }
      return;
    case Cmd::Bdat:
    case Cmd::BdatLast: {
      if (tx_.bdat_in_flight > 0) --tx_.bdat_in_flight;
      const bool last = p.cmd == Cmd::BdatLast;
      if (last) tx_.final_seen = true;
      // Pipelined chunks after a refused MAIL / no recipient / a failed chunk: 503 or 554
      // expected, discarded by the server (RFC 3030 2, 4.2); the replies mean nothing.
      if (tx_.mail_ok != 1 || tx_.accepted == 0 || tx_.content_failed) return;
      if (pos) {
        if (last) {
          settle_open(RcptOutcome::Delivered, r, "BDAT", false);
        }
      } else if (neg) {
        // RFC 3030 2: a failed chunk fails the transaction; no more chunks; RSET before reuse.
        tx_.content_failed = true;
        settle_open(failure_kind(r), r, "BDAT", false);
      } else {
        protocol_error("unexpected reply " + std::to_string(r.code) + " to BDAT");
      }
      return;
    }
    default: protocol_error("reply out of sequence"); return;
  }
}

// ------------------------------------------------------------------------------ transactions

std::size_t ClientSession::begin_message(const proto::Envelope& env,
                                         std::span<const std::size_t> rcpts,
                                         std::uint64_t content_size) {
  if (state_ == State::Closed || state_ == State::Transaction || tx_.active) return 0;
  if (rcpts.empty()) return 0;
  const std::size_t n = std::min(rcpts.size(), cfg_.max_rcpts_per_transaction);
  for (std::size_t i = 0; i < n; ++i)
    if (rcpts[i] >= env.recipients.size()) return 0;

  tx_ = Transaction();
  tx_.active = true;
  tx_.sender = env.sender;
  tx_.params = env.params;
  tx_.size = content_size;
  tx_.utf8 = env.params.smtputf8 || env.sender.needs_utf8();
  tx_.rcpts.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    const auto& er = env.recipients[rcpts[i]];
    TxRcpt t;
    t.index = rcpts[i];
    t.address = er.address;
    t.original = er.original;
    t.notify = er.notify;
    t.orcpt_type = er.orcpt_type;
    t.orcpt = er.orcpt;
    tx_.rcpts.push_back(std::move(t));
  }
  ++transactions_;
  if (state_ == State::Ready) {
    if (!refuse_before_sending()) start_transaction();
  } else {
    message_waiting_ = true;  // started when the server is ready
  }
  update_want();
  return n;
}

bool ClientSession::refuse_before_sending() {
  if (has_control(tx_.sender)) {
    settle_open(RcptOutcome::PermFail,
                generated(550, "5.1.7", "sender address holds control characters"), "MAIL", true);
  }
  // RFC 6531 3.2: an internationalized envelope needs SMTPUTF8 downstream (no downgrade).
  if (tx_.utf8 && !caps_.smtputf8) {
    settle_open(
        RcptOutcome::PermFail,
        generated(553, "5.6.7", "message needs SMTPUTF8, which the remote server does not offer"),
        "MAIL", true);
  }
  // RFC 6152 3 / RFC 3030 3: no conversion here; an 8-bit or binary body needs the extension.
  if (tx_.params.body == proto::Body::EightBitMime && !caps_.eightbitmime) {
    settle_open(
        RcptOutcome::PermFail,
        generated(554, "5.6.3", "8-bit message, and the remote server does not offer 8BITMIME"),
        "MAIL", true);
  }
  if (tx_.params.body == proto::Body::BinaryMime &&
      !(caps_.binarymime && caps_.chunking && cfg_.use_chunking)) {
    settle_open(
        RcptOutcome::PermFail,
        generated(554, "5.6.3", "binary message, and the remote server does not offer BINARYMIME"),
        "MAIL", true);
  }
  // RFC 1870 6: do not send a message the server announced it will not take.
  if (caps_.size && tx_.size > *caps_.size) {
    settle_open(RcptOutcome::PermFail, generated(552, "5.3.4", "message size exceeds remote limit"),
                "MAIL", true);
  }
  for (auto& t : tx_.rcpts) {
    if (has_control(t.address)) {
      decide(t, RcptOutcome::PermFail,
             generated(553, "5.1.3", "recipient address holds control characters"), "RCPT", true);
    } else if (t.address.needs_utf8() && !caps_.smtputf8) {
      decide(t, RcptOutcome::PermFail,
             generated(553, "5.6.7",
                       "recipient address needs SMTPUTF8, which the remote server does not offer"),
             "RCPT", true);
    } else if (t.address.needs_utf8()) {
      tx_.utf8 = true;
    }
  }
  for (const auto& t : tx_.rcpts) {
    if (!t.decided) {
      ++tx_.rcpt_total;
    }
  }
  if (tx_.rcpt_total > 0) return false;
  tx_ = Transaction();  // everything decided; nothing was sent
  return true;
}

std::string ClientSession::mail_command() const {
  std::string c = "MAIL FROM:<" + tx_.sender.str() + ">";
  if (caps_.size_offered) c += " SIZE=" + std::to_string(tx_.size);         // RFC 1870 6
  if (tx_.params.body == proto::Body::EightBitMime) c += " BODY=8BITMIME";  // RFC 6152 3
  if (tx_.params.body == proto::Body::BinaryMime) c += " BODY=BINARYMIME";  // RFC 3030 3
  if (tx_.utf8) c += " SMTPUTF8";                                           // RFC 6531 3.4
  if (caps_.dsn) {                                                          // RFC 3461 4.3, 4.4
    if (tx_.params.ret == proto::Ret::Full) c += " RET=FULL";
    if (tx_.params.ret == proto::Ret::Hdrs) c += " RET=HDRS";
    if (!tx_.params.envid.empty()) {
      const std::string e = proto::xtext_encode(tx_.params.envid);
      if (e.size() <= kMaxEnvidXtext) c += " ENVID=" + e;
    }
  }
  return c;
}

std::string ClientSession::rcpt_command(const TxRcpt& t) const {
  std::string c = "RCPT TO:<" + t.address.str() + ">";
  if (!caps_.dsn) return c;
  if (t.notify != 0) c += " NOTIFY=" + notify_value(t.notify);  // RFC 3461 4.1
  // RFC 3461 4.2, 5.2.1: ORCPT as received; else the address the recipient was given as.
  std::string type = t.orcpt_type;
  std::string addr = t.orcpt;
  if (addr.empty() && !t.original.empty()) {
    addr = t.original.str();
    type = t.original.needs_utf8() ? "utf-8" : "rfc822";
  }
  if (addr.empty()) return c;
  if (type.empty()) type = "rfc822";
  std::optional<std::string> value;
  if (type == "utf-8")
    value = utf8_addr_xtext(addr);  // RFC 6533 3 (valid with or without SMTPUTF8)
  else
    value = proto::xtext_encode(addr);
  if (value && type.size() + 1 + value->size() <= kMaxOrcptValue)
    c += " ORCPT=" + type + ";" + *value;
  return c;
}

void ClientSession::start_transaction() {
  state_ = State::Transaction;
  tx_.pipelined = cfg_.use_pipelining && caps_.pipelining;
  tx_.bdat = cfg_.use_chunking && caps_.chunking;
  tx_.rset_first = rset_needed_;
  rset_needed_ = false;
  if (!tx_.pipelined) {
    step_transaction();
    return;
  }
  // RFC 2920 3.1: RSET, MAIL, every RCPT and DATA go as one group; with BDAT the first chunk
  // follows the group without waiting (RFC 3030 4.2).
  if (tx_.rset_first) {
    tx_.rset_sent = true;
    send("RSET", {Cmd::Rset});
  }
  tx_.mail_sent = true;
  send(mail_command(), {Cmd::Mail});
  for (std::size_t i = 0; i < tx_.rcpts.size(); ++i) {
    if (tx_.rcpts[i].decided) continue;
    tx_.rcpts[i].sent = true;
    ++tx_.rcpt_sent;
    send(rcpt_command(tx_.rcpts[i]), {Cmd::Rcpt, i});
  }
  if (!tx_.bdat) {
    tx_.data_sent = true;
    send("DATA", {Cmd::Data});
  }
}

// Next step when no reply is awaited (always the case without PIPELINING).
void ClientSession::step_transaction() {
  if (tx_.rset_first && !tx_.rset_sent) {
    tx_.rset_sent = true;
    send("RSET", {Cmd::Rset});
    return;
  }
  if (!tx_.mail_sent) {
    tx_.mail_sent = true;
    send(mail_command(), {Cmd::Mail});
    return;
  }
  if (tx_.mail_ok != 1) {
    finish_transaction();
    return;
  }
  if (tx_.rcpt_sent < tx_.rcpt_total) {
    const std::size_t i = next_unsent_rcpt();
    tx_.rcpts[i].sent = true;
    ++tx_.rcpt_sent;
    send(rcpt_command(tx_.rcpts[i]), {Cmd::Rcpt, i});
    return;
  }
  if (tx_.accepted == 0 || tx_.content_failed) {
    finish_transaction();  // RFC 5321 3.3: no accepted recipient → no DATA; RSET before reuse
    return;
  }
  if (!tx_.bdat && !tx_.data_sent) {
    tx_.data_sent = true;
    send("DATA", {Cmd::Data});
    return;
  }
  if (!tx_.content_done) return;  // SendContent
  if (tx_.final_seen) finish_transaction();
}

std::size_t ClientSession::next_unsent_rcpt() const {
  // Recipients refused before sending are decided and never sent; the others go in order.
  for (std::size_t i = 0; i < tx_.rcpts.size(); ++i)
    if (!tx_.rcpts[i].sent && !tx_.rcpts[i].decided) return i;
  return 0;
}

void ClientSession::finish_transaction() {
  // Every recipient has its result by now; a missing one would be a bug here, and still gets a
  // temporary failure rather than none.
  settle_open(RcptOutcome::TempFail, generated(451, "4.3.0", "transaction ended without a result"),
              current_stage(), true);
  // RFC 5321 4.1.1.4: the reply to the end of data ends the transaction; before it (no
  // recipient, DATA refused, connection reused mid-way) the server may hold state: RSET
  // (4.1.1.5) before the next MAIL. RFC 3030 2: after a failed BDAT the state is
  // indeterminate, RSET too. No MAIL accepted: no transaction, nothing to reset.
  rset_needed_ = tx_.mail_ok == 1 && (!tx_.final_seen || tx_.content_failed);
  tx_ = Transaction();
  state_ = State::Ready;
}

bool ClientSession::content_allowed() const {
  if (state_ != State::Transaction || tx_.content_done || tx_.content_failed) return false;
  if (tx_.mail_ok == 0 || !tx_.mail_sent) return false;
  const bool rcpts_known = tx_.rcpt_sent == tx_.rcpt_total && tx_.rcpt_replied == tx_.rcpt_sent;
  if (rcpts_known && tx_.accepted == 0) return false;
  if (!tx_.bdat) return tx_.data_go;
  if (tx_.pipelined) {
    if (tx_.chunks == 0) return tx_.rcpt_sent == tx_.rcpt_total;
    return rcpts_known && tx_.mail_ok == 1 && tx_.bdat_in_flight < cfg_.max_bdat_in_flight;
  }
  return pending_.empty() && rcpts_known && tx_.mail_ok == 1;
}

void ClientSession::update_want() {
  switch (state_) {
    case State::Closed: want_ = ClientWant::Close; return;
    case State::TlsHandshake: want_ = ClientWant::StartTls; return;
    case State::Ready: want_ = ClientWant::Message; return;
    case State::Transaction:
      want_ = content_allowed() ? ClientWant::SendContent : ClientWant::Reply;
      return;
    default: want_ = ClientWant::Reply; return;
  }
}

bool ClientSession::content_chunk(std::string_view bytes, bool last) {
  if (want_ != ClientWant::SendContent) return false;
  if (!tx_.bdat) {
    // RFC 5321 4.5.2: dot-stuffing; 4.1.1.4: the content ends with CRLF, then ".".
    proto::dot_stuff(bytes, out_, tx_.dot_line_start);
    if (bytes.size() >= 2) {
      tx_.last2[0] = bytes[bytes.size() - 2];
      tx_.last2[1] = bytes.back();
    } else if (bytes.size() == 1) {
      tx_.last2[0] = tx_.last2[1];
      tx_.last2[1] = bytes.front();
    }
    tx_.content_sent += bytes.size();
    ++tx_.chunks;
    if (last) {
      if (tx_.last2[0] != '\r' || tx_.last2[1] != '\n') out_ += "\r\n";
      out_ += ".\r\n";
      tx_.content_done = true;
      if (cfg_.lmtp) {
        // RFC 2033 4.2: a reply for each recipient accepted at RCPT (all RCPT replies are in:
        // 354 came after them), in the order of the RCPT commands.
        for (std::size_t i = 0; i < tx_.rcpts.size(); ++i) {
          if (!tx_.rcpts[i].accepted) continue;
          pending_.push_back({Cmd::DataEnd, i});
          ++tx_.lmtp_left;
        }
      } else {
        pending_.push_back({Cmd::DataEnd});
      }
    }
  } else {
    if (bytes.empty() && !last) return true;  // BDAT 0 without LAST says nothing
    // RFC 3030 2: "BDAT" SP chunk-size [SP "LAST"] CRLF, then exactly chunk-size octets.
    out_ += "BDAT " + std::to_string(bytes.size());
    out_ += last ? " LAST\r\n" : "\r\n";
    out_ += bytes;
    tx_.content_sent += bytes.size();
    ++tx_.chunks;
    ++tx_.bdat_in_flight;
    tx_.content_done = last;
    pending_.push_back({last ? Cmd::BdatLast : Cmd::Bdat});
  }
  update_want();
  return true;
}

void ClientSession::quit() {
  if (state_ == State::Closed) return;
  // QUIT is a command only where the server reads commands: not before the greeting, not
  // during the TLS handshake and not inside DATA content (it would become message text).
  const bool in_data =
      state_ == State::Transaction && !tx_.bdat && tx_.data_go && !tx_.content_done;
  const bool can_quit = state_ != State::Greeting && state_ != State::TlsHandshake && !in_data;
  settle_open(RcptOutcome::TempFail, generated(451, "4.3.0", "delivery abandoned by carrier"),
              current_stage(), true);
  close(can_quit);
}

std::chrono::seconds ClientSession::timeout() const {
  const auto& t = cfg_.timeouts;
  if (want_ == ClientWant::SendContent) return t.data_block;
  if (pending_.empty()) return t.command;
  switch (pending_.front().cmd) {
    case Cmd::Greeting: return t.greeting;
    case Cmd::Mail: return t.mail;
    case Cmd::Rcpt: return t.rcpt;
    case Cmd::Data: return t.data_init;
    case Cmd::Bdat: return t.data_block;
    case Cmd::DataEnd:
    case Cmd::BdatLast: return t.data_end;
    default: return t.command;
  }
}

}  // namespace carrier::session
