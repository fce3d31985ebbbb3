// carrier session: the SMTP server state machine (RFC 5321 3, 4.1, 4.3.2, 4.5.3), pure and
// driven by events. It never touches a socket, a file or a clock: the I/O layer (src/net)
// reads lines and bytes, calls the on_*() handlers, sends out() and does what want() asks.
// Handles UNTRUSTED input; every error becomes a reply and the session goes on, until the
// error limit closes it (421 4.7.0).
//
// The commands, their allowed states and flags are one table (command_table()), which the
// unit tests iterate to prove every command is refused in every wrong state.
#pragma once
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "proto/command.hpp"
#include "proto/data.hpp"
#include "proto/envelope.hpp"
#include "proto/reply.hpp"

namespace carrier::session {

// Every input limit, explicit, with the defaults carrier documents (docs/configuration.md).
struct Limits {
  std::size_t max_command_line = 512;     // RFC 5321 4.5.3.1.4 (incl. CRLF); longer → 500 5.5.6
  std::size_t max_auth_line = 12288;      // AUTH responses (RFC 4954 4)
  std::uint64_t max_message_size = 50ull << 20;  // SIZE; over → 552 5.3.4
  std::size_t max_recipients = 1000;      // per message; over → 452 4.5.3 (RFC 5321 4.5.3.1.8)
  int max_errors = 20;                    // bad commands per session; then 421 4.7.0 and close
  int max_received_headers = 100;         // more → 554 5.4.6 mail loop (RFC 5321 6.3)
  int max_transactions = 1000;            // messages per connection
};

class Gate;

// Who authenticated (RFC 4954), as the credential check found it.
struct AuthIdentity {
  std::string user;
  std::vector<std::string> senders;  // sender patterns this user owns
};

struct Config {
  std::string hostname = "localhost";     // our name in the greeting and Received:
  std::string greeting_text = "carrier";  // "220 HOST ESMTP carrier"
  // Domain used for "RCPT TO:<Postmaster>" without a domain (RFC 5321 4.1.1.3); must be local.
  std::string postmaster_domain = "localhost";
  Limits limits;
  proto::BareNewline bare_newline = proto::BareNewline::Reject;
  bool pipelining = true, eightbitmime = true, smtputf8 = true, chunking = true, dsn = true;
  // TLS (RFC 3207): STARTTLS offered on plain connections of this listener.
  bool starttls_available = false;
  // Submission (RFC 6409): AUTH required before MAIL (530 5.7.0), missing Date:/Message-ID:
  // added. AUTH (RFC 4954) PLAIN and LOGIN are offered only over TLS (or, with
  // auth_plaintext_loopback, to loopback clients) and only when auth_available.
  bool submission = false;
  bool auth_available = false;
  bool auth_plaintext_loopback = false;
  bool received_auth_user = false;  // "(Authenticated sender: USER)" in Received:
  // Whether an authenticated identity may use this envelope sender (RFC 6409 6.1); unset:
  // any sender.
  std::function<bool(const AuthIdentity&, const proto::Mailbox&)> sender_allowed;
  // MAIL/RCPT policy (rate limits, disk reserve); null: none.
  std::shared_ptr<Gate> gate;
};


struct ClientInfo {
  std::string ip;    // textual address of the peer
  std::string rdns;  // reverse DNS name, may be empty
  std::uint16_t port = 0;
  bool tls = false;
  bool loopback = false;   // 127.0.0.0/8 or ::1
  std::string tls_info;    // "using TLSv1.3 with cipher ..." once TLS is up
  std::string auth_user;   // after a successful AUTH: may relay (RFC 6409 / RFC 4954 6)
  // Set by the connect checks (DNSBL, src/filter) before the greeting: a refusal given to every
  // RCPT of an unauthenticated client (code 0: none), and tags the message checks may turn
  // into header fields (e.g. "dnsbl.example: 127.0.0.2").
  proto::Reply connect_refusal;
  std::vector<std::string> connect_tags;
};

// Policy checks at MAIL and RCPT beyond the recipient tables (rate limits, disk space; see
// src/server). Shared by all sessions of a server and called on the I/O thread; a returned
// reply refuses the command with it (4xx or 5xx), nullopt lets it go on.
class Gate {
 public:
  virtual ~Gate() = default;
  virtual std::optional<proto::Reply> on_mail(const ClientInfo& client, const proto::Mailbox& sender,
                                              const proto::MailParams& params) = 0;
  // After the recipient tables accepted `rcpt` (which may expand to several recipients).
  virtual std::optional<proto::Reply> on_rcpt(const ClientInfo& client, const proto::Envelope& env,
                                              const proto::Mailbox& rcpt) = 0;
  // The message was committed (250 sent): for counting.
  virtual void on_accepted(const ClientInfo& client, const proto::Envelope& env) = 0;
};

// Decision about one RCPT TO address (RFC 5321 3.3, 4.5.1). Implemented from configuration
// (local domains, mailboxes, aliases, trusted networks) by RecipientPolicy in policy.hpp.
struct RcptDecision {
  bool accept = false;
  proto::Reply reply;  // the reply when rejected (550 5.1.1, 554 5.7.1, ...)
  std::vector<proto::EnvelopeRecipient> recipients;  // when accepted: one or more (aliases)
};

class RecipientChecker {
 public:
  virtual ~RecipientChecker() = default;
  virtual RcptDecision check(const proto::Mailbox& rcpt, const ClientInfo& client) const = 0;
};

// What the I/O layer must do next.
enum class Want {
  Line,         // read one command line (limit: line_limit()), then on_line()/on_line_too_long()
  OpenMessage,  // open a spool writer for envelope(); then on_message_opened(ok, ...)
  Data,         // read DATA bytes through data_decoder() until done; then on_data_end()
  Bdat,         // read exactly bdat_remaining() raw bytes; then on_bdat_chunk_end()
  Commit,       // make the message durable; then on_committed() / on_commit_failed()
  StartTls,     // out() holds the 220: flush it, DISCARD any input already buffered
                // (RFC 3207 4.2; STARTTLS command injection), handshake, on_tls_started()
  Authenticate, // check auth_request() credentials, then on_auth_result()
  Close,        // flush out() and close the connection
};

// What the message receiver saw while reading DATA/BDAT content; filled by the I/O layer from
// DotDecoder and HeaderScanner results (see MessageSink in the net layer).
struct ContentReport {
  std::uint64_t size = 0;         // content octets (after unstuffing)
  bool too_big = false;           // size exceeded max_message_size (rest discarded)
  bool bare_newline = false;      // DotDecoder::saw_bare_newline()
  int received_count = 0;         // HeaderScanner::received_count()
  bool header_8bit = false;       // HeaderScanner::header_has_8bit()
  bool write_failed = false;      // spool write error (disk full, ...)
  bool write_no_space = false;    //   ...of the ENOSPC/EDQUOT kind
};

class ServerSession {
 public:
  ServerSession(const Config& cfg, const RecipientChecker& rcpts, ClientInfo client);

  // Events
  void on_connect();                        // greeting (220)
  void on_line(std::string_view line);      // one command line, CRLF removed
  void on_line_too_long();                  // the line exceeded line_limit(): 500 5.5.6
  void on_timeout();                        // read deadline passed: 421 4.4.2, close
  void on_message_opened(bool ok, bool no_space);  // spool writer ready (or not)
  void on_data_end(const ContentReport& r);        // DATA content fully read (end seen)
  void on_bdat_chunk_end(const ContentReport& r);  // one BDAT chunk fully read
  void on_committed(std::string_view queue_id);    // message durable: 250 with queue id
  void on_commit_failed(bool no_space);            // 451 4.3.0 / 452 4.3.1
  // The message checks (SPF/DKIM/DMARC, milter; src/filter) refused the message: `r` is the
  // reply (4xx or 5xx); `why` goes to the log. Instead of on_committed()/on_commit_failed().
  void on_refused(const proto::Reply& r, std::string_view why);
  // The connect checks' result (ClientInfo::connect_refusal/connect_tags); before on_connect().
  void set_connect_verdict(proto::Reply refusal, std::vector<std::string> tags);
  // TLS is up (after STARTTLS, or before on_connect() for implicit TLS, RFC 8314); info is
  // the Received: comment ("using TLSv1.3 with cipher ...").
  void on_tls_started(std::string info = {});
  // Result of the credential check asked for by Want::Authenticate.
  enum class AuthVerdict { Ok, Bad, TempFail, Throttled };
  void on_auth_result(AuthVerdict v, AuthIdentity who = {});
  void on_closed();                                // peer closed the connection (log only)

  // Timestamps the open transaction (the session has no clock): Unix ms.
  void stamp(std::int64_t now_ms) { env_.received_at_ms = now_ms; }
  // The Received: header for the open transaction (RFC 5321 4.4), first line of the content.
  std::string received_header(std::string_view queue_id,
                              std::chrono::system_clock::time_point now) const;
  // True while a spool writer belongs to this transaction; when it turns false without a
  // commit, the I/O layer aborts (removes) the writer.
  bool message_open() const { return opened_; }

  // Credentials to check while want() == Authenticate (cleared by on_auth_result).
  struct AuthRequest {
    std::string mechanism, user, password;
  };
  const AuthRequest& auth_request() const { return auth_req_; }
  // Submission: the I/O layer adds Date:/Message-ID: to the header section when missing.
  bool add_missing_headers() const { return cfg_.submission && !client_.auth_user.empty(); }
  const ClientInfo& client() const { return client_; }

  // State for the I/O layer
  Want want() const { return want_; }
  std::size_t line_limit() const;          // bytes incl. CRLF for the next Line read
  std::uint64_t bdat_remaining() const { return bdat_remaining_; }
  bool bdat_last() const { return bdat_last_; }
  bool discarding() const { return discard_; }  // content is read but not stored
  const proto::Envelope& envelope() const { return env_; }
  const Config& config() const { return cfg_; }
  proto::BareNewline bare_newline_policy() const { return cfg_.bare_newline; }
  bool allows_pipelining_flush_delay() const { return cfg_.pipelining; }

  // Output: replies to send, in order. The I/O layer takes and clears it.
  std::string& out() { return out_; }
  // One log-worthy event per finished transaction or rejection (the I/O layer logs these).
  struct Event {
    enum Kind { Connect, Helo, Tls, Auth, Accepted, Rejected, Disconnect } kind;
    std::string text;
  };
  std::vector<Event>& events() { return events_; }

  enum class State { Start, Greeted, Mail, Rcpt, Data, Bdat, Closed };
  static constexpr int kStateCount = 7;
  State state() const { return state_; }
  int errors() const { return errors_; }
  int transactions() const { return transactions_; }

 private:
  void reply(int code, std::string_view status, std::string_view text);
  void reply(const proto::Reply& r);
  void error_reply(int code, std::string_view status, std::string_view text);  // counts errors
  void reset_transaction();
  void cmd_helo(const proto::Command& c, bool ehlo);
  void cmd_mail(const proto::Command& c);
  void cmd_rcpt(const proto::Command& c);
  void cmd_data(const proto::Command& c);
  void cmd_bdat(const proto::Command& c);
  void count_error();
  void cmd_auth(const proto::Command& c);
  void auth_line(std::string_view line);
  bool auth_offered() const;
  std::string protocol_name() const;
  void refuse_bdat(std::string_view arg, int code, std::string_view text);  // RFC 5321 4.5.3.2 note / Postfix hard_error_limit: too many → 421
  std::optional<proto::Reply> check_content(const ContentReport& r, bool bdat) const;
  proto::Extensions extensions() const;

  const Config& cfg_;
  const RecipientChecker& rcpts_;
  ClientInfo client_;
  State state_ = State::Start;
  Want want_ = Want::Line;
  proto::Envelope env_;
  std::string out_;
  std::vector<Event> events_;
  int errors_ = 0;
  int transactions_ = 0;
  bool esmtp_ = false;
  std::size_t rcpt_commands_ = 0;
  // BDAT
  std::uint64_t bdat_remaining_ = 0;
  bool bdat_last_ = false;
  bool bdat_failed_ = false;       // an earlier chunk failed: later chunks are discarded
  proto::Reply bdat_fail_reply_;
  bool discard_ = false;
  bool opened_ = false;            // a spool writer is open for this transaction
  bool in_bdat_ = false;           // the open transaction uses BDAT (else DATA)
  bool pending_discard_only_ = false;  // skipping the chunk of a BDAT refused with 503
  std::uint64_t content_size_ = 0;
  // AUTH (RFC 4954): the SASL exchange in progress.
  enum class AuthStage { None, PlainResponse, LoginUser, LoginPassword, Checking };
  AuthStage auth_stage_ = AuthStage::None;
  AuthRequest auth_req_;
  AuthIdentity identity_;
};

}  // namespace carrier::session
