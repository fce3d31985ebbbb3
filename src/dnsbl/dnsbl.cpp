// carrier dnsbl: query names, answer matching, scoring and reply text (RFC 5782). See dnsbl.hpp.
#include "dnsbl/dnsbl.hpp"

#include <arpa/inet.h>

#include <array>
#include <cstring>

namespace carrier::dnsbl {

namespace {

std::optional<std::uint32_t> parse_v4(std::string_view s) {
  if (s.size() > 15) return std::nullopt;
  std::string z(s);
  in_addr a{};
  if (::inet_pton(AF_INET, z.c_str(), &a) != 1) return std::nullopt;
  return ntohl(a.s_addr);
}

std::string sanitize(std::string_view s, std::size_t max) {
  std::string out;
  for (unsigned char c : s) {
    if (out.size() >= max) break;
    out += (c >= 0x20 && c < 0x7f) ? static_cast<char>(c) : ' ';
  }
  return out;
}

}  // namespace

std::optional<std::string> query_name(std::string_view ip, std::string_view zone) {
  if (auto v4 = parse_v4(ip)) {
    std::uint32_t a = *v4;
    return std::to_string(a & 0xff) + "." + std::to_string((a >> 8) & 0xff) + "." +
           std::to_string((a >> 16) & 0xff) + "." + std::to_string(a >> 24) + "." + std::string(zone);
  }
  if (ip.size() > 45) return std::nullopt;
  std::string z(ip);
  std::array<unsigned char, 16> b{};
  if (::inet_pton(AF_INET6, z.c_str(), b.data()) != 1) return std::nullopt;
  static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::memcmp(b.data(), mapped, 12) == 0)
    return std::to_string(b[15]) + "." + std::to_string(b[14]) + "." + std::to_string(b[13]) +
           "." + std::to_string(b[12]) + "." + std::string(zone);
  static const char* hex = "0123456789abcdef";
  std::string n;
  for (int i = 15; i >= 0; --i) {
    n += hex[b[i] & 0xf];
    n += '.';
    n += hex[b[i] >> 4];
    n += '.';
  }
  return n + std::string(zone);
}

std::optional<std::string> domain_query_name(std::string_view domain, std::string_view zone) {
  if (!domain.empty() && domain.back() == '.') domain.remove_suffix(1);
  if (domain.empty() || domain.size() + 1 + zone.size() > 253) return std::nullopt;
  std::string out;
  out.reserve(domain.size() + 1 + zone.size());
  std::size_t label = 0;
  bool all_digits = true;
  for (char c : domain) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
                    c == '.';
    if (!ok) return std::nullopt;
    if (c == '.') {
      if (label == 0) return std::nullopt;
      label = 0;
    } else {
      if (++label > 63) return std::nullopt;
      if (!(c >= '0' && c <= '9')) all_digits = false;
    }
    out += c;
  }
  if (label == 0 || all_digits) return std::nullopt;  // empty last label; an IPv4 literal
  out += '.';
  out += zone;
  return out;
}

bool valid_zone(std::string_view z) {
  if (z.empty() || z.size() > 200 || z.front() == '.' || z.back() == '.') return false;
  char prev = '.';
  for (char c : z) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.';
    if (!ok || (c == '.' && prev == '.')) return false;
    prev = c;
  }
  return true;
}

namespace {
bool in_net(std::uint32_t a, std::uint32_t net, int bits) {
  if (bits == 0) return true;
  std::uint32_t mask = bits >= 32 ? 0xffffffffu : ~((1u << (32 - bits)) - 1);
  return (a & mask) == (net & mask);
}
// "127.0.0.2" → (addr, 32); "127.0.0.0/24" → (addr, 24); must lie in 127.0.0.0/8.
std::optional<std::pair<std::uint32_t, int>> parse_return(std::string_view r) {
  int bits = 32;
  auto slash = r.find('/');
  std::string_view addr = r.substr(0, slash);
  if (slash != std::string_view::npos) {
    std::string_view b = r.substr(slash + 1);
    if (b.empty() || b.size() > 2) return std::nullopt;
    bits = 0;
    for (char c : b) {
      if (c < '0' || c > '9') return std::nullopt;
      bits = bits * 10 + (c - '0');
    }
    if (bits < 8 || bits > 32) return std::nullopt;
  }
  auto a = parse_v4(addr);
  if (!a || (*a >> 24) != 127) return std::nullopt;
  return std::make_pair(*a, bits);
}
}  // namespace

bool valid_return(std::string_view r) { return parse_return(r).has_value(); }

bool listed(const List& list, const std::vector<std::string>& answers) {
  for (const auto& s : answers) {
    auto a = parse_v4(s);
    if (!a || (*a >> 24) != 127) continue;  // RFC 5782 2.1: only 127.0.0.0/8 means listed
    if (list.returns.empty()) return true;
    for (const auto& r : list.returns)
      if (auto p = parse_return(r); p && in_net(*a, p->first, p->second)) return true;
  }
  return false;
}

Verdict judge(const std::vector<List>& lists, const std::vector<Hit>& hits, double threshold) {
  Verdict v;
  for (const auto& h : hits) {
    if (h.list >= lists.size()) continue;
    v.score += lists[h.list].weight;
    v.hits.push_back(h);
  }
  v.over = !v.hits.empty() && v.score >= threshold;
  return v;
}

std::string reply_text(const List& list, const Hit& hit, std::string_view ip) {
  const std::string text = sanitize(hit.text, 200);
  std::string out;
  if (list.message.empty()) {
    out = "Service unavailable; client [" + std::string(ip) + "] blocked using " + list.zone;
    if (!text.empty()) out += ": " + text;
  } else {
    const std::string& m = list.message;
    for (std::size_t i = 0; i < m.size();) {
      if (m.compare(i, 3, "$ip") == 0) {
        out += ip;
        i += 3;
      } else if (m.compare(i, 5, "$zone") == 0) {
        out += list.zone;
        i += 5;
      } else if (m.compare(i, 5, "$text") == 0) {
        out += text;
        i += 5;
      } else {
        out += m[i++];
      }
    }
  }
  return sanitize(out, 400);
}

std::string tag_text(const std::vector<List>& lists, const std::vector<Hit>& hits) {
  std::string out;
  for (const auto& h : hits) {
    if (h.list >= lists.size()) continue;
    if (!out.empty()) out += ", ";
    out += lists[h.list].zone + "=" + sanitize(h.answer, 40);
  }
  return out;
}

}  // namespace carrier::dnsbl
