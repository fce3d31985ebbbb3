// carrier proto: the DATA byte stream (RFC 5321 4.1.1.4, 4.5.2) — dot-unstuffing and the end
// of data. Parses UNTRUSTED input.
//
// SMTP smuggling (2023): the ONLY end of DATA is <CRLF>.<CRLF> (a "." line at the very start
// of the data counts, since the DATA command's CRLF precedes it). A bare LF or a bare CR never
// ends a line for this purpose, so <LF>.<LF>, <CR>.<CR>, <LF>.<CR><LF>, <CR><LF>.<LF> and so on
// never end the message. What happens to bare LF/CR inside the content is the BareNewline
// policy:
//   Reject    — the message is read to its real end and then rejected (554 5.5.2) as a whole;
//               nothing of it is queued, and nothing after a fake end is ever a command.
//   Normalize — a bare LF becomes CRLF in the stored content; a bare CR is kept as is.
//               Both still never end DATA.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>

namespace carrier::proto {

enum class BareNewline { Reject, Normalize };

class DotDecoder {
 public:
  explicit DotDecoder(BareNewline policy = BareNewline::Reject) : policy_(policy) {}

  struct Step {
    std::size_t consumed = 0;  // input bytes used
    bool done = false;         // <CRLF>.<CRLF> seen; input after `consumed` is the next command
  };
  // Decodes as much of `in` as possible and APPENDS the unstuffed content to `out` (CRLF line
  // endings kept; the final CRLF before "." belongs to the content; the ".\r\n" does not).
  // Stops right after the terminating "\r\n.\r\n" so pipelined commands stay in the input.
  // After done, feed() must not be called again until reset().
  Step feed(std::string_view in, std::string& out);
  void reset();

  bool saw_bare_newline() const { return bare_newline_; }  // a bare CR or LF was in the data
  bool done() const { return done_; }

 private:
  BareNewline policy_;
  int state_ = 1;  // implementation-defined; 1 = at start of a line
  bool bare_newline_ = false;
  bool done_ = false;
};

// Scans message content (CRLF lines, as produced by DotDecoder or BDAT) for what the server
// checks in the header section (RFC 5322 2.2): the number of Received: fields (mail loop
// detection, RFC 5321 6.3) and whether any header byte is 8-bit. Streaming; bounded memory
// (keeps at most the first 16 bytes of a line).
class HeaderScanner {
 public:
  void feed(std::string_view content);
  bool in_body() const { return in_body_; }   // the empty line ending the header was seen
  int received_count() const { return received_; }
  bool header_has_8bit() const { return eight_bit_; }
  // RFC 5322 3.6.1 / 3.6.4: whether the header section has a Date: / Message-ID: field.
  bool has_date() const { return has_date_; }
  bool has_message_id() const { return has_message_id_; }
  // When in_body(): offset (from the first byte fed) of the empty line that ended the header
  // section — where header fields can be appended (RFC 6409 8).
  std::uint64_t header_end() const { return header_end_; }
  void reset() { *this = HeaderScanner(); }

 private:
  std::string line_start_;  // first bytes of the current line, up to 16
  bool at_line_start_ = true;
  bool in_body_ = false;
  int received_ = 0;
  bool eight_bit_ = false;
  bool prev_cr_ = false;
  bool has_date_ = false;
  bool has_message_id_ = false;
  std::uint64_t fed_ = 0;         // bytes fed before the current call
  std::uint64_t line_begin_ = 0;  // offset of the current line's first byte
  std::uint64_t header_end_ = 0;
};

// Dot-stuffs content for sending with DATA (RFC 5321 4.5.2): a line starting with "." gets
// another "." in front. `at_line_start` carries state across calls (start with true).
void dot_stuff(std::string_view content, std::string& out, bool& at_line_start);

}  // namespace carrier::proto
