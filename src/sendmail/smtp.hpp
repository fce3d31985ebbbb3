// carrier sendmail -bs: a minimal SMTP server session (RFC 5321) on standard input and output
// for programs that submit that way: HELO/EHLO, MAIL, RCPT, DATA, RSET, NOOP, QUIT (and VRFY,
// HELP; everything else 500/502). EHLO offers 8BITMIME, SMTPUTF8, SIZE, ENHANCEDSTATUSCODES
// (no PIPELINING, no CHUNKING, no DSN, no AUTH: the caller is a local program). Commands and data
// lines may end in CRLF or LF (local input). The caller stores each finished message (in the
// pickup directory) and reports back with stored(). Pure: bytes in, replies out.
// Parses UNTRUSTED input with bounds (command line length, message size, recipients).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "proto/address.hpp"
#include "sendmail/message.hpp"

namespace carrier::sendmail {

struct SmtpOptions {
  std::string hostname;                          // in the greeting and EHLO reply
  std::uint64_t max_size = 50ull * 1024 * 1024;  // SIZE and the DATA limit
  std::size_t max_recipients = 1000;
  std::size_t max_line = 2048;                   // command line (RFC 5321 4.5.3.1.4: 512 at least)
  // Header processing of each message (From:/Date:/Message-ID: when missing; Bcc is kept,
  // as for any SMTP submission). from_address/date_field/message_id_field are filled per
  // message by the caller through message_options().
  BuildOptions build;
};

class SmtpSubmit {
 public:
  explicit SmtpSubmit(SmtpOptions opts);

  std::string greeting() const;  // "220 HOST ESMTP carrier (sendmail -bs)\r\n"

  struct Step {
    std::size_t consumed = 0;
    std::string reply;           // to send now (may be empty: more input needed)
    bool quit = false;           // QUIT answered: close
    bool message_ready = false;  // end of DATA: store message(), then call stored()
  };
  // Processes input up to the next event. Call again with the rest (in.substr(consumed)).
  Step feed(std::string_view in);

  // The finished message (valid when Step::message_ready).
  const proto::Mailbox& sender() const { return sender_; }
  const std::vector<proto::Mailbox>& recipients() const { return rcpts_; }
  const std::string& content() const { return content_; }
  // The outcome of storing it: "250 2.0.0 Ok: queued as ID" or 451 with the reason. Resets the
  // transaction either way.
  std::string stored(bool ok, std::string_view id_or_error);

  // Per-message header options (the caller sets the Date:/Message-ID: texts before DATA ends;
  // from_address defaults to the MAIL FROM address).
  BuildOptions& message_options() { return opts_.build; }

 private:
  std::string command(std::string_view line);
  void reset();
  SmtpOptions opts_;
  enum class Phase { Command, Data } phase_ = Phase::Command;
  std::string line_;
  bool line_too_long_ = false;
  bool have_mail_ = false;
  proto::Mailbox sender_;
  bool smtputf8_ = false;
  std::vector<proto::Mailbox> rcpts_;
  std::string content_;
  std::unique_ptr<MessageBuilder> builder_;
  bool too_big_ = false;
};

}  // namespace carrier::sendmail
