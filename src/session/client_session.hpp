// carrier session: the SMTP CLIENT state machine for one outgoing connection (relay), pure and
// driven by events like ServerSession: it never touches a socket, a file or a clock. The
// transport (src/net or the relay transport) connects, feeds the server's bytes to on_input(),
// sends out() and does what want() asks. Handles UNTRUSTED input (the server's replies): every
// malformed or unexpected reply ends the connection with a temporary failure; nothing throws.
//
// Implements RFC 5321 3.1-3.3, 3.8, 4.1.1, 4.1.4 (EHLO, then HELO when EHLO gets 5xx), 4.2,
// 4.5.2 (dot-stuffing), 4.5.3.2 (timeouts); RFC 2920 client PIPELINING; RFC 1870 SIZE;
// RFC 3030 CHUNKING/BDAT and BINARYMIME; RFC 3461 DSN parameters (RFC 6533 utf-8 ORCPT);
// RFC 6152 8BITMIME; RFC 6531 SMTPUTF8; RFC 3207 STARTTLS (modelled; the transport does TLS).
// With ClientConfig::lmtp: RFC 2033 LMTP (4.1 LHLO, 4.2 one reply per accepted recipient after
// the end of data).
//
// One connection, one or more messages (connection reuse). The transport's loop:
//
//   ClientSession s(cfg);                  // after connect(); the session awaits the greeting
//   loop:
//     send s.out() and clear it            // after EVERY call below, before looking at want()
//     switch (s.want()):
//       Reply:       read bytes (deadline s.timeout()) → s.on_input(bytes);
//                    peer closed / read error → s.on_closed(); deadline passed → s.on_timeout()
//       StartTls:    TLS handshake on the socket → s.on_tls_started() / s.on_tls_failed(why)
//       Message:     take s.outcomes(); next message: s.begin_message(env, rcpts, size)
//                    (it takes at most cfg.max_rcpts_per_transaction recipients and returns
//                    how many; the rest go in a later begin_message, content streamed again);
//                    no more: s.quit()
//       SendContent: read the next piece of the spooled content (any size, the transport picks
//                    it; deadline s.timeout() for writing it) → s.content_chunk(piece, is_last).
//                    The session appends the wire form to out(): dot-stuffed for DATA (plus
//                    the final ".\r\n"), or "BDAT n[ LAST]\r\n" + piece for CHUNKING. The
//                    content is never held by the session. A spool read error →
//                    s.on_local_error(why).
//       Close:       take s.outcomes(); close the connection (out() may hold a final QUIT).
//
// begin_message() may also be called before the session is ready (while the greeting/EHLO
// are still under way); it is then started as soon as the server is ready.
//
// Results. Every recipient taken by begin_message() gets exactly one RcptOutcome (in
// outcomes()), at the latest when want() is Message or Close again. Failures before any
// transaction (greeting, EHLO/HELO, STARTTLS, TLS) also set connection_failed(): the server
// (even with a 5xx greeting) refused the connection as a whole — try the next MX, and treat the
// recipients of every message queued for this destination as not attempted here.
//
// LMTP (RFC 2033, ClientConfig::lmtp): "LHLO" instead of EHLO and no HELO fallback (any
// negative reply to LHLO is a connection failure, stage "LHLO"); no STARTTLS, no CHUNKING (the
// content always goes with DATA); after the final "." the server sends one reply per recipient
// accepted at RCPT, in RCPT order (RFC 2033 4.2), and each becomes that recipient's outcome
// (stage "DATA"). A connection lost (or a timeout) between those replies fails the recipients
// still without one temporarily. Everything else (PIPELINING, SIZE, 8BITMIME/SMTPUTF8 checks,
// dot-stuffing, timeouts) is as for SMTP.
//
// Recipients per transaction: the session never splits a message itself. begin_message()
// takes the first max_rcpts_per_transaction indexes and returns that count; the transport
// starts another transaction (same connection or a new one) for the rest.
#pragma once
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "proto/envelope.hpp"
#include "proto/reply.hpp"
#include "proto/reply_parser.hpp"

namespace carrier::session {

enum class TlsPolicy {
  None,     // never send STARTTLS
  May,      // STARTTLS when offered; refused (4xx/5xx) → go on in plain text (RFC 3207 4)
  Encrypt,  // TLS or nothing: not offered / refused / handshake failed → temporary failure
  Verify,   // as Encrypt, and the transport checks the certificate chain and host name
};

// RFC 5321 4.5.3.2 timeouts (what timeout() returns while waiting).
struct ClientTimeouts {
  std::chrono::seconds greeting{300};    // 4.5.3.2.1 initial 220
  std::chrono::seconds command{300};     // EHLO/HELO/STARTTLS/RSET/QUIT
  std::chrono::seconds mail{300};        // 4.5.3.2.2
  std::chrono::seconds rcpt{300};        // 4.5.3.2.3
  std::chrono::seconds data_init{120};   // 4.5.3.2.4: 354 to DATA
  std::chrono::seconds data_block{180};  // 4.5.3.2.5: sending each content piece; BDAT replies
  std::chrono::seconds data_end{600};    // 4.5.3.2.6: reply after "." / BDAT LAST
};

struct ClientConfig {
  std::string helo_name = "localhost";  // our name in EHLO/HELO (invalid → "localhost")
  TlsPolicy tls = TlsPolicy::May;
  bool use_pipelining = true;           // RFC 2920 when offered
  bool use_chunking = true;             // RFC 3030 BDAT when offered (BINARYMIME needs it)
  std::size_t max_rcpts_per_transaction = 100;  // RFC 5321 4.5.3.1.8 (servers take >= 100)
  std::size_t max_bdat_in_flight = 8;   // PIPELINING: BDAT chunks sent but not yet answered
  proto::ReplyLimits reply_limits;      // 4096 octets per line, 100 lines per reply
  ClientTimeouts timeouts;
  // RFC 2033 LMTP instead of SMTP (see the file comment); forces tls = None and no chunking.
  bool lmtp = false;
};

struct RcptOutcome {
  std::size_t index = 0;  // into Envelope::recipients
  enum Kind { Delivered, TempFail, PermFail } kind = TempFail;
  proto::Reply reply;     // the server's reply, or one carrier made up (generated)
  // "connect", "EHLO" ("LHLO" for LMTP), "STARTTLS", "RSET", "MAIL", "RCPT", "DATA", "BDAT"
  std::string stage;
  // Delivered to a server without DSN while NOTIFY=SUCCESS was asked: the caller owes the
  // sender a "relayed" DSN (RFC 3461 4.1 / 5.2.2).
  bool relayed_without_dsn = false;
  bool generated = false;  // reply made up by carrier (local decision / protocol error)
};

enum class ClientWant {
  Reply,        // read the server's bytes → on_input() (or on_closed() / on_timeout())
  StartTls,     // out() is flushed; do the TLS handshake → on_tls_started() / on_tls_failed()
  Message,      // idle between transactions: begin_message() or quit()
  SendContent,  // content_chunk() with the next piece of the message content
  Close,        // flush out() (may hold QUIT) and close the connection
};

class ClientSession {
 public:
  explicit ClientSession(ClientConfig cfg);

  // ---- Events from the transport
  void on_input(std::string_view bytes);  // bytes received from the server (any split)
  void on_closed();                       // connection closed / read or write error
  void on_timeout();                      // timeout() passed without the awaited reply
  void on_tls_started();                  // handshake done: EHLO again (RFC 3207 4.2)
  void on_tls_failed(std::string_view why);
  void on_local_error(std::string_view why);  // e.g. the spool file could not be read

  // ---- Actions of the transport
  // Starts a transaction for recipients[i] of env, for each i in rcpts (in that order),
  // content_size octets of content as stored (CRLF lines). Body type from env.params.body,
  // SMTPUTF8 from env.params.smtputf8 (or any non-ASCII address). Takes at most
  // max_rcpts_per_transaction of them and returns how many; 0 (nothing taken) when called
  // while a transaction is open or a message is already waiting, after quit/close, or when an
  // index is out of range. A message refused before sending (SIZE over the server's limit,
  // 8BITMIME/BINARYMIME/SMTPUTF8 not offered, a control character in an address) gets its
  // outcomes at once and want() stays Message.
  std::size_t begin_message(const proto::Envelope& env, std::span<const std::size_t> rcpts,
                            std::uint64_t content_size);
  // One piece of content, in order; last = true on the final piece (may be empty). Appends the
  // wire bytes to out(). Returns false (nothing appended) unless want() == SendContent.
  bool content_chunk(std::string_view bytes, bool last);
  // Ends the connection: QUIT (when the protocol state allows one) and want() == Close at once.
  // Recipients of an unfinished transaction fail temporarily.
  void quit();

  // ---- State for the transport
  ClientWant want() const { return want_; }
  std::chrono::seconds timeout() const;  // deadline for the current Reply / SendContent wait
  std::size_t replies_pending() const { return pending_.size(); }  // commands not yet answered
  std::string& out() { return out_; }    // bytes to send, in order; the transport clears it
  std::vector<RcptOutcome>& outcomes() { return outcomes_; }  // the transport takes them

  bool connection_failed() const { return conn_failed_; }
  const proto::Reply& failure_reply() const { return conn_reply_; }  // when connection_failed()
  const std::string& failure_stage() const { return conn_stage_; }   // "connect", "EHLO", ...

  bool ready() const { return state_ == State::Ready; }  // greeted, EHLO'd, TLS settled
  bool esmtp() const { return esmtp_; }                  // EHLO/LHLO accepted (else HELO)
  bool tls_active() const { return tls_; }
  const proto::ServerCaps& caps() const { return caps_; }
  const proto::Reply& greeting() const { return greeting_; }
  bool transaction_open() const { return tx_.active; }
  bool uses_bdat() const { return tx_.active && tx_.bdat; }
  std::size_t transactions() const { return transactions_; }  // begun on this connection
  const ClientConfig& config() const { return cfg_; }

 private:
  enum class State { Greeting, Ehlo, Helo, StartTls, TlsHandshake, Ready, Transaction, Closed };
  enum class Cmd {
    Greeting, Ehlo, Helo, StartTls, Rset, Mail, Rcpt, Data, DataEnd, Bdat, BdatLast, Quit,
  };
  struct Pending {
    Cmd cmd;
    std::size_t rcpt = 0;  // Rcpt, and DataEnd under LMTP: position in tx_.rcpts
  };
  struct TxRcpt {
    std::size_t index = 0;
    proto::Mailbox address;
    unsigned notify = 0;
    std::string orcpt_type, orcpt;
    proto::Mailbox original;
    bool sent = false;      // its RCPT command was sent
    bool accepted = false;  // 2xx to RCPT
    bool decided = false;   // has its RcptOutcome
  };
  struct Transaction {
    bool active = false;
    proto::Mailbox sender;
    proto::MailParams params;
    std::uint64_t size = 0;
    bool utf8 = false;           // SMTPUTF8 needed (RFC 6531 3.4)
    std::vector<TxRcpt> rcpts;
    std::size_t rcpt_total = 0;  // RCPT commands to send (recipients not refused beforehand)
    bool bdat = false;
    bool pipelined = false;
    bool rset_first = false;
    bool rset_sent = false;
    bool mail_sent = false;
    int mail_ok = -1;            // -1 unknown, 0 refused, 1 accepted
    std::size_t rcpt_sent = 0;
    std::size_t rcpt_replied = 0;
    std::size_t accepted = 0;
    bool data_sent = false;      // DATA command sent
    bool data_go = false;        // 354 received
    std::uint64_t chunks = 0;    // content pieces sent (BDAT commands / DATA pieces)
    std::size_t bdat_in_flight = 0;
    bool content_done = false;   // last piece sent
    bool content_failed = false; // a BDAT/DATA failure ended the content early
    bool final_seen = false;     // reply to "." / BDAT LAST received (LMTP: every one of them)
    std::size_t lmtp_left = 0;   // LMTP: per-recipient replies to "." still awaited
    bool dot_line_start = true;  // dot_stuff state
    char last2[2] = {'\r', '\n'};  // last two content octets sent (DATA: CRLF before ".")
    std::uint64_t content_sent = 0;
  };

  std::string_view stage_of(Cmd c) const;
  std::string hello_command() const;  // "EHLO name" / "LHLO name"
  std::string_view current_stage() const;
  bool pre_ready() const;
  void handle(proto::Reply r);
  void handle_tx(const Pending& p, const proto::Reply& r);
  void after_ehlo();
  void become_ready();
  bool refuse_before_sending();
  void start_transaction();
  void step_transaction();
  std::size_t next_unsent_rcpt() const;
  void finish_transaction();
  bool content_allowed() const;
  void update_want();
  std::string mail_command() const;
  std::string rcpt_command(const TxRcpt& t) const;
  void send(std::string_view line, Pending p);
  void decide(TxRcpt& t, RcptOutcome::Kind kind, const proto::Reply& r, std::string_view stage,
              bool gen);
  void settle_open(RcptOutcome::Kind kind, const proto::Reply& r, std::string_view stage,
                   bool gen);
  void connection_failure(const proto::Reply& r, std::string_view stage, bool send_quit,
                          bool gen);
  void abort_all(const proto::Reply& r, std::string_view stage, bool gen, bool send_quit);
  void protocol_error(std::string_view what);
  void close(bool send_quit);

  ClientConfig cfg_;
  State state_ = State::Greeting;
  ClientWant want_ = ClientWant::Reply;
  proto::ReplyParser parser_;
  std::deque<Pending> pending_;
  std::optional<Cmd> answering_;  // the command whose reply is being handled
  std::string out_;
  std::vector<RcptOutcome> outcomes_;
  proto::ServerCaps caps_;
  proto::Reply greeting_;
  bool esmtp_ = false;
  bool tls_ = false;
  bool conn_failed_ = false;
  proto::Reply conn_reply_;
  std::string conn_stage_;
  bool rset_needed_ = false;  // the previous transaction left state on the server
  bool message_waiting_ = false;  // begin_message() before ready: tx_ filled, not started
  Transaction tx_;
  std::size_t transactions_ = 0;
};

}  // namespace carrier::session
