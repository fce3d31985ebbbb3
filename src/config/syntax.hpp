// carrier config (internal): pure syntax checks for configuration values — domain names
// (RFC 1035 2.3.1, RFC 1123 2.1, RFC 3696 2), mailbox names, user@domain addresses (RFC 5321
// 4.1.2 dot-string), IP literals and CIDR networks (inet_pton). Handles UNTRUSTED text (operator
// files and command-line flags): every function only returns a value or a reason, never throws.
#pragma once
#include <optional>
#include <string>
#include <string_view>

namespace carrier::config::syntax {

// nullopt: the value is fine; otherwise a short reason ("label longer than 63 characters").
using Problem = std::optional<std::string>;

std::string to_lower(std::string_view s);

// A DNS host name: dot-separated labels of letters, digits and '-', no label starting or
// ending with '-', labels 1..63 characters, at most 253 characters in all, last label not all
// digits (so an IP address is not mistaken for a domain). No trailing dot. Case-insensitive.
Problem check_domain(std::string_view d);

// A local mailbox or alias name (already lower-cased): 1..64 characters of a-z 0-9 . _ -,
// not starting with '.'.
Problem check_mailbox_name(std::string_view n);

// user@domain: the local part is an RFC 5321 dot-string (atext and single dots, 1..64
// characters), the domain passes check_domain.
Problem check_address(std::string_view a);

// "a.b.c.d/n" (n 0..32) or "ipv6/n" (n 0..128), with no host bits set after the prefix.
Problem check_cidr(std::string_view c);

// The canonical text form of an IPv4 or IPv6 literal (inet_ntop of inet_pton), or nullopt.
std::optional<std::string> canonical_ip(std::string_view ip);

}  // namespace carrier::config::syntax
