// carrier proto: parsing SMTP replies received from a server (the client side of RFC 5321 4.2,
// 4.2.1 multi-line replies, 4.5.3.1.5 reply line length), with RFC 2034 / RFC 3463 enhanced
// status codes, and the EHLO keyword list (RFC 5321 4.1.1.1, 2.2.2). Parses UNTRUSTED input
// (whatever a remote server sends); never throws: a malformed reply is a clear error value.
//
// What is accepted (liberal where real servers need it, strict where it matters):
//   reply-line = code ( "-" / SP ) text LE      (continuation / last line)
//              | code LE                        (last line without text)
//   code       = 3 digits, first one 2..5 (1yz does not exist in SMTP)
//   LE         = CRLF or a bare LF (the CR, if any, is not part of the text)
// Every line of one reply carries the same code, else the reply is a protocol error. A line is
// at most ReplyLimits::max_line octets including its line end (RFC 5321 4.5.3.1.5 says 512;
// real servers send longer ones), a reply at most ReplyLimits::max_lines lines. Text octets are
// kept byte for byte (8-bit and controls included, NUL refused): sanitize before logging.
//
// Enhanced status codes (RFC 2034 4, RFC 3463 2): when the first line's text starts with
// class "." subject "." detail (class 2/4/5 equal to the reply's first digit, subject and
// detail 1-3 digits) followed by SP or the end of the line, it becomes Reply::status and is
// removed (with one following SP) from every line that starts with that same status code.
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proto/reply.hpp"

namespace carrier::proto {

struct ReplyLimits {
  std::size_t max_line = 4096;  // octets per reply line, line end included
  std::size_t max_lines = 100;  // lines per reply
};

// Streaming parser: feed() raw bytes as they arrive; it stops right after each complete reply
// (so the caller can act on it before the next one is parsed, e.g. after STARTTLS's 220).
// Memory is bounded by max_line * max_lines.
class ReplyParser {
 public:
  enum class Status {
    NeedMore,  // every byte given was taken; no complete reply yet
    Ready,     // a complete reply ends at `consumed`: take() it, then feed the rest
    Error,     // protocol error (see error()); sticky until reset()
  };
  struct Step {
    std::size_t consumed = 0;
    Status status = Status::NeedMore;
  };

  explicit ReplyParser(ReplyLimits limits = {}) : limits_(limits) {}

  // Takes bytes from `in` up to the end of the next complete reply. After Ready, take() must be
  // called before feeding again (else the finished reply is dropped). After Error, nothing more
  // is taken until reset().
  Step feed(std::string_view in);
  // The reply finished by the last Ready step (moved out).
  Reply take();
  bool failed() const { return failed_; }
  const std::string& error() const { return error_; }
  // True when no part of a reply is buffered (between replies).
  bool idle() const { return !failed_ && partial_.empty() && lines_.empty(); }
  void reset();
  const ReplyLimits& limits() const { return limits_; }

 private:
  bool line(std::string_view raw);  // one line without LE; false on error (error_ set)
  void fail(std::string msg);
  void finish();

  ReplyLimits limits_;
  std::string partial_;  // bytes of the current, unfinished line
  int code_ = 0;         // code of the reply being assembled (0: none yet)
  std::vector<std::string> lines_;
  Reply done_;
  bool ready_ = false;
  bool failed_ = false;
  std::string error_;
};

// Parses a whole buffer holding zero or more complete replies (tests, tools). error is set,
// and parsing stops, at the first malformed reply; rest counts bytes of an unfinished reply.
struct ParsedReplies {
  std::vector<Reply> replies;
  std::optional<std::string> error;
  std::size_t rest = 0;
};
ParsedReplies parse_replies(std::string_view in, ReplyLimits limits = {});

// The extensions a server announced in its EHLO reply (RFC 5321 4.1.1.1: lines after the first
// are "ehlo-keyword [SP ehlo-param ...]", keywords case-insensitive).
struct ServerCaps {
  bool pipelining = false;           // RFC 2920
  bool eightbitmime = false;         // RFC 6152
  bool smtputf8 = false;             // RFC 6531
  bool chunking = false;             // RFC 3030
  bool binarymime = false;           // RFC 3030
  bool dsn = false;                  // RFC 3461
  bool starttls = false;             // RFC 3207
  bool enhancedstatuscodes = false;  // RFC 2034
  bool size_offered = false;         // RFC 1870: SIZE keyword present (SIZE= may be sent)
  std::optional<std::uint64_t> size; // RFC 1870 4: announced maximum; none for "SIZE" alone,
                                     // "SIZE 0" or an unparsable/oversized number
  std::vector<std::string> auth;     // RFC 4954: SASL mechanisms, upper case, at most 32
  std::string greeting_name;         // first word of the first line (the server's name)
};

constexpr std::size_t kMaxAuthMechanisms = 32;
constexpr std::size_t kMaxAuthMechanismLength = 20;  // RFC 4422 3.1: 1-20 characters

ServerCaps parse_ehlo(const Reply& r);

}  // namespace carrier::proto
