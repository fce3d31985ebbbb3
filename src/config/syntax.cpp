// carrier config: pure syntax checks and parsers for configuration values — host:port
// listener addresses, durations, sizes, domain names (RFC 1035 2.3.1, RFC 1123 2.1, RFC 3696
// 2), mailbox names, user@domain (RFC 5321 4.1.2), CIDR networks. Handles UNTRUSTED text:
// bounded lengths, overflow-checked arithmetic, no exceptions.
#include "config/syntax.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>

#include "config/config.hpp"

namespace carrier::config {

namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

// Leading decimal digits of s as an unsigned value; fails on no digits or overflow past max.
std::optional<std::uint64_t> parse_digits(std::string_view s, std::size_t& used,
                                          std::uint64_t max) {
  used = 0;
  std::uint64_t v = 0;
  while (used < s.size() && is_digit(s[used])) {
    std::uint64_t d = static_cast<std::uint64_t>(s[used] - '0');
    if (v > (max - d) / 10) return std::nullopt;
    v = v * 10 + d;
    ++used;
  }
  if (used == 0) return std::nullopt;
  return v;
}

// inet_pton needs a NUL-terminated string; literals longer than this are never valid.
constexpr std::size_t kMaxIpText = 64;

bool pton(int family, std::string_view text, void* out) {
  if (text.empty() || text.size() >= kMaxIpText) return false;
  char buf[kMaxIpText];
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  return inet_pton(family, buf, out) == 1;
}

}  // namespace

std::optional<std::pair<std::string, std::uint16_t>> parse_host_port(std::string_view text,
                                                                     std::string& why) {
  why.clear();
  if (text.empty()) {
    why = "empty address; expected \"IPv4:port\" or \"[IPv6]:port\"";
    return std::nullopt;
  }
  std::string_view host;
  std::string_view rest;  // ":port" or whatever follows the host
  bool v6 = false;
  if (text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos) {
      why = "missing ']' after the IPv6 address";
      return std::nullopt;
    }
    host = text.substr(1, close - 1);
    rest = text.substr(close + 1);
    v6 = true;
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      why = "missing port; expected \"IPv4:port\" or \"[IPv6]:port\"";
      return std::nullopt;
    }
    host = text.substr(0, colon);
    rest = text.substr(colon);
    if (host.find(':') != std::string_view::npos) {
      why = "an IPv6 address must be written in brackets, e.g. \"[::1]:2525\"";
      return std::nullopt;
    }
  }
  if (rest.empty()) {
    why = "missing port; expected \"IPv4:port\" or \"[IPv6]:port\"";
    return std::nullopt;
  }
  if (rest.front() != ':') {
    why = "unexpected text after ']'; expected \":port\"";
    return std::nullopt;
  }
  std::string_view port_text = rest.substr(1);
  if (port_text.empty()) {
    why = "missing port number after ':'";
    return std::nullopt;
  }
  std::size_t used = 0;
  auto port = parse_digits(port_text, used, 65535);
  if (!port || used != port_text.size() || used > 5) {
    why = "port must be a number from 0 to 65535";
    return std::nullopt;
  }
  unsigned char buf[sizeof(in6_addr)];
  if (v6) {
    if (!pton(AF_INET6, host, buf)) {
      why = "'" + std::string(host) + "' is not an IPv6 address";
      return std::nullopt;
    }
  } else if (!pton(AF_INET, host, buf)) {
    why = "'" + std::string(host) +
          "' is not an IPv4 address (host names are not allowed; IPv6 goes in brackets)";
    return std::nullopt;
  }
  return std::pair<std::string, std::uint16_t>{std::string(host),
                                               static_cast<std::uint16_t>(*port)};
}

std::optional<std::pair<std::string, std::uint16_t>> parse_host_port(std::string_view text) {
  std::string why;
  return parse_host_port(text, why);
}

namespace {
// Largest number accepted before the unit is applied (durations: 2^40 days is still < 2^63
// seconds), and the largest size in bytes after the suffix is applied (1 TiB).
constexpr std::uint64_t kMaxUnitCount = std::uint64_t{1} << 40;
}  // namespace

std::optional<std::chrono::seconds> parse_duration(std::string_view text) {
  std::size_t used = 0;
  auto n = parse_digits(text, used, kMaxUnitCount);
  if (!n || used + 1 != text.size()) return std::nullopt;
  std::uint64_t mult = 0;
  switch (text.back()) {
    case 's': mult = 1; break;
    case 'm': mult = 60; break;
    case 'h': mult = 3600; break;
    case 'd': mult = 86400; break;
    default: return std::nullopt;
  }
  return std::chrono::seconds(static_cast<std::int64_t>(*n * mult));
}

std::optional<std::uint64_t> parse_size(std::string_view text) {
  std::size_t used = 0;
  auto n = parse_digits(text, used, kMaxUnitCount);
  if (!n || used + 1 != text.size()) return std::nullopt;
  int shift = 0;
  switch (text.back()) {
    case 'K': case 'k': shift = 10; break;
    case 'M': case 'm': shift = 20; break;
    case 'G': case 'g': shift = 30; break;
    default: return std::nullopt;
  }
  if (*n > (kMaxUnitCount >> shift)) return std::nullopt;  // result stays <= 2^40 bytes
  return *n << shift;
}

namespace syntax {

std::string to_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

Problem check_domain(std::string_view d) {
  if (d.empty()) return "empty domain name";
  if (d.size() > 253) return "longer than 253 characters";
  if (d.back() == '.') return "must not end with '.'";
  std::size_t start = 0;
  std::string_view last;
  while (true) {
    auto dot = d.find('.', start);
    std::string_view label = d.substr(start, dot == std::string_view::npos ? d.npos : dot - start);
    if (label.empty()) return "empty label (two dots in a row or a leading dot)";
    if (label.size() > 63) return "label '" + std::string(label) + "' is longer than 63 characters";
    for (char c : label)
      if (!is_alpha(c) && !is_digit(c) && c != '-')
        return "label '" + std::string(label) + "' contains a character other than letters, digits and '-'";
    if (label.front() == '-' || label.back() == '-')
      return "label '" + std::string(label) + "' starts or ends with '-'";
    last = label;
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  bool all_digits = true;
  for (char c : last) all_digits = all_digits && is_digit(c);
  if (all_digits) return "the last label is all digits (an IP address is not a domain name)";
  return std::nullopt;
}

Problem check_mailbox_name(std::string_view n) {
  if (n.empty()) return "empty name";
  if (n.size() > 64) return "longer than 64 characters";
  if (n.front() == '.') return "must not start with '.'";
  for (char c : n)
    if (!(c >= 'a' && c <= 'z') && !is_digit(c) && c != '.' && c != '_' && c != '-')
      return "may contain only lower-case letters, digits, '.', '_' and '-'";
  return std::nullopt;
}

namespace {
// RFC 5322 3.2.3 atext (used by RFC 5321 4.1.2 Atom).
bool is_atext(char c) {
  if (is_alpha(c) || is_digit(c)) return true;
  return std::strchr("!#$%&'*+-/=?^_`{|}~", c) != nullptr && c != '\0';
}
}  // namespace

Problem check_address(std::string_view a) {
  auto at = a.rfind('@');
  if (at == std::string_view::npos) return "missing '@'";
  std::string_view local = a.substr(0, at);
  std::string_view domain = a.substr(at + 1);
  if (local.empty()) return "empty local part before '@'";
  if (local.size() > 64) return "local part longer than 64 characters (RFC 5321 4.5.3.1.1)";
  if (local.front() == '.' || local.back() == '.' || local.find("..") != std::string_view::npos)
    return "local part has a leading, trailing or doubled '.'";
  for (char c : local)
    if (c != '.' && !is_atext(c))
      return "local part contains '" + std::string(1, c) + "' (only RFC 5321 dot-string allowed)";
  if (auto p = check_domain(domain)) return "domain '" + std::string(domain) + "': " + *p;
  return std::nullopt;
}

Problem check_cidr(std::string_view c) {
  auto slash = c.find('/');
  if (slash == std::string_view::npos)
    return "missing '/prefix'; expected a CIDR like \"192.168.1.0/24\" or \"fd00::/8\"";
  std::string_view ip = c.substr(0, slash);
  std::string_view prefix_text = c.substr(slash + 1);
  unsigned char bytes[16] = {};
  std::size_t nbytes = 0;
  if (pton(AF_INET, ip, bytes)) {
    nbytes = 4;
  } else if (pton(AF_INET6, ip, bytes)) {
    nbytes = 16;
  } else {
    return "'" + std::string(ip) + "' is not an IPv4 or IPv6 address";
  }
  std::size_t used = 0;
  auto prefix = parse_digits(prefix_text, used, 1000);
  if (!prefix || used != prefix_text.size() || used > 3)
    return "prefix length '" + std::string(prefix_text) + "' is not a number";
  if (*prefix > nbytes * 8)
    return "prefix length " + std::to_string(*prefix) + " is larger than " +
           std::to_string(nbytes * 8);
  for (std::size_t bit = *prefix; bit < nbytes * 8; ++bit) {
    if (bytes[bit / 8] & (0x80u >> (bit % 8)))
      return "address has bits set after the /" + std::to_string(*prefix) +
             " prefix (write the network address)";
  }
  return std::nullopt;
}

std::optional<std::string> canonical_ip(std::string_view ip) {
  unsigned char bytes[16];
  char out[INET6_ADDRSTRLEN];
  if (pton(AF_INET, ip, bytes)) {
    if (!inet_ntop(AF_INET, bytes, out, sizeof out)) return std::nullopt;
    return std::string(out);
  }
  if (pton(AF_INET6, ip, bytes)) {
    if (!inet_ntop(AF_INET6, bytes, out, sizeof out)) return std::nullopt;
    return std::string(out);
  }
  return std::nullopt;
}

}  // namespace syntax
}  // namespace carrier::config
