// carrier sendmail: turning what a program writes to sendmail's standard input into a message
// ready for the spool. Pure and streaming (memory bounded by the header section limit).
//   - Lines may end in LF or CRLF; the result has CRLF (RFC 5322 2.3). A bare CR is kept.
//   - Without -i a line holding a single "." ends the input (Sendmail's rule; no unstuffing of
//     other lines). In SMTP DATA (-bs) the RFC 5321 4.5.2 rules apply instead: "." ends, and a
//     leading "." of any other line is removed.
//   - The header section (RFC 5322 2.2) is collected (bounded) and then processed: a leading
//     mbox "From " line is dropped; with -t the recipients are taken from To:/Cc:/Bcc: (or from
//     Resent-To:/Resent-Cc:/Resent-Bcc: when any Resent- recipient field exists, RFC 5322
//     3.6.6); Bcc: and Resent-Bcc: are removed (RFC 5322 3.6.3: blind copies must not show);
//     From: (RFC 5322 3.6.2), Date: (3.6.1) and Message-ID: (3.6.4) are added when missing.
//     A header section that ends without an empty line (a line that is no header field
//     starts the body) gets one.
// Handles UNTRUSTED input (the message); every failure is an error value with a message.
#pragma once
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace carrier::sendmail {

// LF or CRLF lines → CRLF lines, with the two dot rules.
class LineConverter {
 public:
  // dot_ends: a line "." ends the text. unstuff: a leading "." is removed (SMTP, RFC 5321 4.5.2).
  LineConverter(bool dot_ends, bool unstuff) : dot_ends_(dot_ends), unstuff_(unstuff) {}
  // Converts as much of `in` as belongs to the text, appending to `out`; returns the bytes
  // used (all of them unless the "." line was seen: then up to and including its line end).
  std::size_t feed(std::string_view in, std::string& out);
  bool ended() const { return ended_; }
  // At the end of input: held bytes are written out and a last line without a line end gets one.
  void finish(std::string& out);
  bool at_line_start() const { return state_ == kLineStart; }

 private:
  void put(char c, std::string& out);
  enum State { kLineStart, kDot, kDotCr, kInLine };
  bool dot_ends_, unstuff_;
  State state_ = kLineStart;
  char last_ = '\n';
  bool any_ = false;
  bool ended_ = false;
};

struct BuildOptions {
  bool ignore_dots = false;         // -i: a "." line does not end the input
  bool smtp_data = false;           // input is SMTP DATA (dot rules of RFC 5321 4.5.2)
  bool extract_recipients = false;  // -t
  bool remove_bcc = true;
  std::string from_address;         // for an added From: ("" → none added)
  std::string full_name;            // -F
  std::string date_field;           // complete "Date: ...\r\n" to add when missing ("" → none)
  std::string message_id_field;     // complete "Message-ID: <...>\r\n" to add when missing
  std::size_t max_header_bytes = 1024 * 1024;
  std::size_t max_recipients = 1000;
};

class MessageBuilder {
 public:
  explicit MessageBuilder(BuildOptions opts);
  // Consumes raw input and appends finished CRLF content to `out` (nothing until the header
  // section is complete). Returns the bytes used: fewer than given only once the input has
  // ended (a "." line). After an error, input is still consumed (and dropped) up to the end.
  std::size_t feed(std::string_view in, std::string& out);
  // End of input (EOF, or after ended()). Returns false on error.
  bool finish(std::string& out);

  bool ended() const { return conv_.ended(); }       // the "." line was seen
  bool header_done() const { return header_done_; }  // header processed; recipients known
  // -t: addr-specs from the recipient fields, in order (unqualified ones as written).
  const std::vector<std::string>& header_recipients() const { return recipients_; }
  bool failed() const { return !error_.empty(); }
  const std::string& error() const { return error_; }

 private:
  void header_line(std::string_view line, std::string& out);  // without its CRLF
  void end_header(std::string& out, bool blank_line_seen);
  BuildOptions opts_;
  LineConverter conv_;
  std::string converted_;   // CRLF text not yet split into header lines
  std::vector<std::string> header_;  // header lines (without CRLF)
  std::size_t header_bytes_ = 0;
  bool header_done_ = false;
  bool first_line_ = true;
  std::vector<std::string> recipients_;
  std::string error_;
};

// "From: Full Name <addr>\r\n" (RFC 5322 3.4 name-addr; the name quoted when it is not all
// atext words, RFC 2047 encoded-words when it has 8-bit characters), or "From: addr\r\n".
std::string from_field(std::string_view address, std::string_view full_name);

}  // namespace carrier::sendmail
