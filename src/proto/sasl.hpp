// carrier proto: the byte-level parts of SMTP AUTH (RFC 4954): strict base64 of RFC 4648 4
// for the SASL exchange (RFC 4954 4) and the PLAIN mechanism message of RFC 4616 2.
// Pure (no I/O). Parses UNTRUSTED input from the network: every limit is explicit and every
// failure is a nullopt, never an exception.
#pragma once
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace carrier::proto {

// Longest base64 text base64_decode accepts (a SASL response line is far shorter).
inline constexpr std::size_t kBase64MaxInput = 16 * 1024;

// Strict RFC 4648 4 decoding: standard alphabet only, padding required (length % 4 == 0),
// "=" only as the last one or two characters, no whitespace, the unused trailing bits of the
// last group must be zero (RFC 4648 3.5), so every accepted text is the canonical encoding of
// its result. Empty input decodes to the empty string. nullopt on any error or when the input
// is longer than kBase64MaxInput.
std::optional<std::string> base64_decode(std::string_view in);

// RFC 4648 4 encoding with padding.
std::string base64_encode(std::string_view in);

// Longest authzid / authcid / passwd accepted (RFC 4616 2: "up to 255 octets").
inline constexpr std::size_t kSaslPlainMaxField = 255;

struct SaslPlain {
  std::string authzid;   // may be empty (no authorization identity requested)
  std::string authcid;   // non-empty, valid UTF-8
  std::string password;  // non-empty; bytes as sent (no UTF-8 check, no SASLprep)
};

// RFC 4616 2: message = [authzid] UTF8NUL authcid UTF8NUL passwd, exactly two NULs.
// authcid and passwd must be non-empty; each field at most kSaslPlainMaxField octets;
// authzid and authcid must be valid UTF-8 (RFC 3629). The password is not checked for UTF-8
// (clients in the field send legacy 8-bit passwords; it is only ever compared as bytes).
std::optional<SaslPlain> parse_sasl_plain(std::string_view decoded);

}  // namespace carrier::proto
