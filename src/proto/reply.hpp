// carrier proto: SMTP replies (RFC 5321 4.2) with enhanced status codes (RFC 2034, RFC 3463).
// Pure; no untrusted input (replies are built by carrier itself).
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace carrier::proto {

struct Reply {
  int code = 0;                    // 3 digits, e.g. 250
  std::string status;              // enhanced status code "2.1.0"; empty: none (greeting, EHLO)
  std::vector<std::string> lines;  // at least one line of text (may be empty text)

  Reply() = default;
  Reply(int c, std::string st, std::string text) : code(c), status(std::move(st)), lines{std::move(text)} {}
  Reply(int c, std::string st, std::vector<std::string> ls) : code(c), status(std::move(st)), lines(std::move(ls)) {}

  // "250-2.1.0 first\r\n250 2.1.0 last\r\n"; the enhanced code prefixes every line when set.
  std::string render() const;
  void append_to(std::string& out) const;
  bool positive() const { return code >= 200 && code < 400; }
  bool transient() const { return code >= 400 && code < 500; }
  bool permanent() const { return code >= 500; }
};

}  // namespace carrier::proto
