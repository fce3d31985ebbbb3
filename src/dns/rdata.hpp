// carrier DNS: pure parsers for the record data libunbound returns (ub_result->data, one RR's
// RDATA each, names in uncompressed wire format): MX (RFC 1035 3.3.9, null MX RFC 7505 3),
// A (RFC 1035 3.4.1), AAAA (RFC 3596 2.2); and the check of a domain name before it is
// queried (RFC 1035 2.3.4 size limits, RFC 5321 2.3.5 host name syntax).
// Handles UNTRUSTED input (DNS answers, domains from mail envelopes): never throws, never
// reads out of bounds; anything malformed is a std::nullopt or an Error.
#pragma once
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "base/result.hpp"

namespace carrier::dns {

inline constexpr std::size_t kMaxNameOctets = 255;   // wire form incl. length octets (RFC 1035 2.3.4)
inline constexpr std::size_t kMaxLabelOctets = 63;   // RFC 1035 2.3.4
inline constexpr std::size_t kMaxNameText = 253;     // the same limit as text without the final dot

// MX RDATA = 16-bit preference (network order) + exchange name (uncompressed wire labels).
// Returns {preference, name}: name lower-cased without the trailing dot, or "." for the root
// (the exchange of a null MX, RFC 7505 3). nullopt when the data is malformed: shorter than 3
// octets, a label running past the end, a compression pointer or other non-plain label type,
// a name over 255 octets, octets after the name, or a label character outside the host name
// syntax (letters, digits, '-', and '_'), since such an exchange cannot be a mail host.
std::optional<std::pair<int, std::string>> parse_mx_rdata(std::string_view rdata);

// A RDATA (exactly 4 octets) -> "a.b.c.d"; nullopt for any other length.
std::optional<std::string> parse_a_rdata(std::string_view rdata);
// AAAA RDATA (exactly 16 octets) -> RFC 5952 text ("2001:db8::1"); nullopt for any other length.
std::optional<std::string> parse_aaaa_rdata(std::string_view rdata);

// TXT RDATA (RFC 1035 3.3.14): one or more <character-string>s (a length octet, then that many
// octets), returned concatenated without separators as RFC 7208 3.3 reads SPF records. The
// octets are passed through unchanged (they may be anything). nullopt when the RDATA is empty
// or a length octet runs past the end.
std::optional<std::string> parse_txt_rdata(std::string_view rdata);

// PTR RDATA (RFC 1035 3.3.12): one uncompressed name, lower-cased, no trailing dot. nullopt on
// the same malformations as parse_mx_rdata's exchange, and for the root name.
std::optional<std::string> parse_ptr_rdata(std::string_view rdata);

// The name to query for the PTR of an IP literal: "4.3.2.1.in-addr.arpa" for 1.2.3.4
// (RFC 1035 3.5), nibbles in reverse under ip6.arpa for IPv6 (RFC 3596 2.5). Error when `ip`
// is not a plain IPv4 or IPv6 literal (no brackets, no zone index).
Result<std::string> reverse_name(std::string_view ip);

// A domain to query, as given by a caller (mail domain, MX host): lower-cased, one trailing dot
// removed. Errors (no query must be made): empty or root only, an empty label, a label over 63
// octets, a name over 253 characters (255 octets on the wire), a character other than ASCII
// letters, digits, '-', '_' and the dots between labels (this also rejects address literals,
// non-ASCII U-labels -- the caller converts IDNs to A-labels first -- NUL and backslashes,
// which libunbound would read as escapes).
Result<std::string> normalize_domain(std::string_view name);

}  // namespace carrier::dns
