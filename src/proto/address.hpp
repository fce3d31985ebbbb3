// carrier proto: mailboxes and reverse/forward paths of RFC 5321 4.1.2, with the UTF-8
// extensions of RFC 6531 3.3. Parses UNTRUSTED input from the network.
//
// Accepted: "<>" (null reverse-path, MAIL only), "<local@domain>", "<@a,@b:local@domain>"
// (source route: accepted and ignored, RFC 5321 4.1.2 and Appendix C), quoted local parts
// ("<\"a b\"@domain>"), address literals ("<x@[192.0.2.1]>", "<x@[IPv6:2001:db8::1]>").
// Rejected: missing angle brackets, empty local part or domain, bare "@" forms, control
// characters, NUL, 8-bit bytes unless utf8 is allowed (SMTPUTF8), invalid UTF-8, a local part
// over 64 octets, a domain over 255, a path over 256 (RFC 5321 4.5.3.1).
#pragma once
#include <optional>
#include <string>
#include <string_view>

namespace carrier::proto {

struct Mailbox {
  std::string local;   // as written, quotes kept if it was quoted (e.g. "\"a b\"")
  std::string domain;  // as written; address literals keep their brackets "[192.0.2.1]"

  bool empty() const { return local.empty() && domain.empty(); }
  std::string str() const { return empty() ? std::string() : local + "@" + domain; }
  // Local part with quoting removed (e.g. "\"a\\\"b\"" -> "a\"b"); used for lookups.
  std::string unquoted_local() const;
  bool is_quoted() const { return !local.empty() && local.front() == '"'; }
  bool is_address_literal() const { return !domain.empty() && domain.front() == '['; }
  // True when local part or domain holds bytes >= 0x80 (needs SMTPUTF8 to be sent on).
  bool needs_utf8() const;
  bool operator==(const Mailbox&) const = default;
};

// Domain compare / lookup form: ASCII lower case, trailing dot removed. Non-ASCII (U-label)
// bytes are kept as they are.
std::string normalize_domain(std::string_view d);

struct PathParse {
  Mailbox mailbox;        // empty for "<>"
  bool had_source_route = false;
  std::size_t consumed = 0;  // bytes of the input taken by the path, including "<" and ">"
};

enum class PathError {
  None,
  Syntax,        // not a path at all
  TooLong,       // over the RFC 5321 4.5.3.1 limits
  Utf8NotAllowed,  // 8-bit without SMTPUTF8
  BadUtf8,       // invalid UTF-8 sequence
  NullNotAllowed,  // "<>" where a mailbox is required
};

// Parses a path at the start of s (after "MAIL FROM:" / "RCPT TO:" and optional spaces).
// allow_null: "<>" accepted (reverse-path). allow_utf8: SMTPUTF8 was given on MAIL.
std::optional<PathParse> parse_path(std::string_view s, bool allow_null, bool allow_utf8,
                                    PathError* err = nullptr);

// Parses a bare mailbox "local@domain" (no angle brackets), same rules (config, aliases, tests).
std::optional<Mailbox> parse_mailbox(std::string_view s, bool allow_utf8, PathError* err = nullptr);

// RFC 5321 4.1.2 Domain, or an address literal in brackets. allow_utf8: U-labels allowed.
bool is_valid_domain(std::string_view d, bool allow_utf8);
// Whole string is valid UTF-8 (no overlongs, no surrogates).
bool is_valid_utf8(std::string_view s);
// Length of the well-formed UTF-8 sequence at the start of s (1 for an ASCII byte), or 0 when
// s is empty or starts with a malformed one (overlong, surrogate, above U+10FFFF, truncated,
// stray continuation byte). cp, when given, receives the code point.
std::size_t utf8_sequence(std::string_view s, char32_t* cp = nullptr);

}  // namespace carrier::proto
