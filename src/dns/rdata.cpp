// carrier DNS: pure RDATA parsers and domain name checks (RFC 1035 2.3.4, 3.3.9, 3.3.12,
// 3.3.14, 3.4.1, 3.5; RFC 3596 2.2, 2.5; RFC 7505 3; RFC 5321 2.3.5). Handles UNTRUSTED input: every read is bounds
// checked, nothing throws.
#include "dns/rdata.hpp"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <cstdint>

namespace carrier::dns {

namespace {

bool host_char(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_';
}

char lower(unsigned char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : static_cast<char>(c); }

// Wire-format name at the start of `in` that must end exactly at its end.
std::optional<std::string> parse_wire_name(std::string_view in) {
  std::string out;
  std::size_t pos = 0;
  std::size_t octets = 0;
  for (;;) {
    if (pos >= in.size()) return std::nullopt;  // no terminating root label
    const auto len = static_cast<unsigned char>(in[pos]);
    if (len > kMaxLabelOctets) return std::nullopt;  // 0x40..0xFF: pointer or extended label type
    octets += 1 + len;
    if (octets > kMaxNameOctets) return std::nullopt;
    ++pos;
    if (len == 0) break;
    if (in.size() - pos < len) return std::nullopt;
    if (!out.empty()) out.push_back('.');
    for (std::size_t i = 0; i < len; ++i) {
      const auto c = static_cast<unsigned char>(in[pos + i]);
      if (!host_char(c)) return std::nullopt;
      out.push_back(lower(c));
    }
    pos += len;
  }
  if (pos != in.size()) return std::nullopt;  // trailing octets after the name
  if (out.empty()) out = ".";
  return out;
}

std::optional<std::string> ntop(int family, std::string_view rdata) {
  char buf[INET6_ADDRSTRLEN];
  if (!::inet_ntop(family, rdata.data(), buf, sizeof buf)) return std::nullopt;
  return std::string(buf);
}

}  // namespace

std::optional<std::pair<int, std::string>> parse_mx_rdata(std::string_view rdata) {
  if (rdata.size() < 3) return std::nullopt;
  const int pref = (static_cast<unsigned char>(rdata[0]) << 8) | static_cast<unsigned char>(rdata[1]);
  auto name = parse_wire_name(rdata.substr(2));
  if (!name) return std::nullopt;
  return std::pair<int, std::string>(pref, std::move(*name));
}

std::optional<std::string> parse_a_rdata(std::string_view rdata) {
  if (rdata.size() != 4) return std::nullopt;
  return ntop(AF_INET, rdata);
}

std::optional<std::string> parse_aaaa_rdata(std::string_view rdata) {
  if (rdata.size() != 16) return std::nullopt;
  return ntop(AF_INET6, rdata);
}

std::optional<std::string> parse_txt_rdata(std::string_view rdata) {
  if (rdata.empty()) return std::nullopt;
  std::string out;
  std::size_t pos = 0;
  while (pos < rdata.size()) {
    const auto len = static_cast<unsigned char>(rdata[pos++]);
    if (rdata.size() - pos < len) return std::nullopt;
    out.append(rdata.substr(pos, len));
    pos += len;
  }
  return out;
}

std::optional<std::string> parse_ptr_rdata(std::string_view rdata) {
  auto name = parse_wire_name(rdata);
  if (!name || *name == ".") return std::nullopt;
  return name;
}

Result<std::string> reverse_name(std::string_view ip) {
  // inet_pton needs a NUL-terminated string; anything longer than an IPv6 literal is not one.
  if (ip.empty() || ip.size() >= INET6_ADDRSTRLEN || ip.find('\0') != std::string_view::npos) return Error{"not an IP address: \"" + std::string(ip.substr(0, 64)) + "\""};
  const std::string text(ip);
  unsigned char bytes[16];
  static constexpr char kHex[] = "0123456789abcdef";
  if (::inet_pton(AF_INET, text.c_str(), bytes) == 1) {
    std::string out;
    for (int i = 3; i >= 0; --i) out += std::to_string(bytes[i]) + ".";
    return out + "in-addr.arpa";
  }
  if (::inet_pton(AF_INET6, text.c_str(), bytes) == 1) {
    std::string out;
    for (int i = 15; i >= 0; --i) {
      out.push_back(kHex[bytes[i] & 0x0f]);
      out.push_back('.');
      out.push_back(kHex[bytes[i] >> 4]);
      out.push_back('.');
    }
    return out + "ip6.arpa";
  }
  return Error{"not an IP address: \"" + text + "\""};
}

Result<std::string> normalize_domain(std::string_view name) {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  if (name.empty()) return Error{"empty domain name"};
  if (name.size() > kMaxNameText)
    return Error{"domain name longer than " + std::to_string(kMaxNameText) + " characters (RFC 1035 2.3.4)"};
  std::string out;
  out.reserve(name.size());
  std::size_t label = 0;
  for (std::size_t i = 0; i < name.size(); ++i) {
    const auto c = static_cast<unsigned char>(name[i]);
    if (c == '.') {
      if (label == 0) return Error{"domain name has an empty label"};
      label = 0;
      out.push_back('.');
      continue;
    }
    if (!host_char(c)) {
      return Error{"domain name has an invalid character at offset " + std::to_string(i) +
                   " (only letters, digits, '-' and '_' are allowed; IDNs must be A-labels)"};
    }
    if (++label > kMaxLabelOctets)
      return Error{"domain name has a label longer than 63 characters (RFC 1035 2.3.4)"};
    out.push_back(lower(c));
  }
  if (label == 0) return Error{"domain name has an empty label"};
  return out;
}

}  // namespace carrier::dns
