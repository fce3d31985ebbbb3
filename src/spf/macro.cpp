// carrier SPF: macro-strings (RFC 7208 7): syntax and expansion. Pure; handles UNTRUSTED
// input (records from DNS, envelope addresses): bounded, never throws.
#include <arpa/inet.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>

#include "spf/spf.hpp"

namespace carrier::spf {

namespace {

constexpr std::size_t kMaxDigits = 3;          // transformer digits (our bound: "%{d999}")
constexpr std::size_t kMaxExpansion = 8192;    // our bound on one expanded macro-string

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }
bool is_delim(char c) {
  return c == '.' || c == '-' || c == '+' || c == ',' || c == '/' || c == '_' || c == '=';
}
bool is_literal(char c) {  // macro-literal = %x21-24 / %x26-7E
  const auto u = static_cast<unsigned char>(c);
  return (u >= 0x21 && u <= 0x24) || (u >= 0x26 && u <= 0x7e);
}

// One "%{...}" starting at s[i] == '%', s[i+1] == '{'. On success: letter, digits (0: none),
// reverse, delimiters, and the index after '}'.
struct Expand {
  char letter = 0;
  std::size_t digits = 0;
  bool has_digits = false;
  bool reverse = false;
  std::string delims;
  std::size_t end = 0;
};

std::optional<Expand> parse_expand(std::string_view s, std::size_t i, bool explanation) {
  Expand e;
  std::size_t j = i + 2;
  if (j >= s.size()) return std::nullopt;
  e.letter = s[j++];
  const char l = lower(e.letter);
  const bool ok = l == 's' || l == 'l' || l == 'o' || l == 'd' || l == 'i' || l == 'p' ||
                  l == 'h' || l == 'v' || (explanation && (l == 'c' || l == 'r' || l == 't'));
  if (!ok) return std::nullopt;
  std::size_t nd = 0;
  while (j < s.size() && s[j] >= '0' && s[j] <= '9') {
    if (++nd > kMaxDigits) return std::nullopt;
    e.digits = e.digits * 10 + static_cast<std::size_t>(s[j] - '0');
    ++j;
  }
  if (nd > 0) {
    e.has_digits = true;
    if (e.digits == 0) return std::nullopt;  // RFC 7208 7.1: the digit MUST be nonzero
  }
  if (j < s.size() && lower(s[j]) == 'r') {
    e.reverse = true;
    ++j;
  }
  while (j < s.size() && is_delim(s[j])) e.delims += s[j++];
  if (j >= s.size() || s[j] != '}') return std::nullopt;
  e.end = j + 1;
  return e;
}

// Walks a macro-string; calls lit(char) for literal bytes and mac(Expand) / esc(text) for
// macros. False on a syntax error. *last_macro: the last token was a macro-expand.
template <typename Lit, typename Mac>
bool scan(std::string_view s, bool explanation, bool* last_macro, Lit lit, Mac mac) {
  bool last = false;
  for (std::size_t i = 0; i < s.size();) {
    const char c = s[i];
    if (c == '%') {
      if (i + 1 >= s.size()) return false;
      const char n = s[i + 1];
      if (n == '%' || n == '_' || n == '-') {
        if (!lit(n == '%' ? std::string_view("%") : n == '_' ? std::string_view(" ") : std::string_view("%20")))
          return false;
        i += 2;
        last = true;
        continue;
      }
      if (n != '{') return false;
      auto e = parse_expand(s, i, explanation);
      if (!e) return false;
      if (!mac(*e)) return false;
      i = e->end;
      last = true;
      continue;
    }
    if (!is_literal(c)) return false;
    if (!lit(std::string_view(&s[i], 1))) return false;
    ++i;
    last = false;
  }
  if (last_macro) *last_macro = last;
  return true;
}

std::string url_escape(std::string_view v) {  // RFC 3986 2.3 unreserved kept
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (char c : v) {
    const auto u = static_cast<unsigned char>(c);
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '.' || c == '_' || c == '~') {
      out += c;
    } else {
      out += '%';
      out += hex[u >> 4];
      out += hex[u & 15];
    }
  }
  return out;
}

std::string value_of(char letter, const MacroVars& v) {
  switch (lower(letter)) {
    case 's': return v.sender;
    case 'l': return v.local;
    case 'o': return v.sender_domain;
    case 'd': return v.domain;
    case 'h': return v.helo;
    case 'p': return "unknown";
    case 'v': return v.ipv6 ? "ip6" : "in-addr";
    case 'r': return v.receiver;
    case 't': return std::to_string(v.timestamp);
    case 'c': {
      char buf[INET6_ADDRSTRLEN] = {};
      if (!::inet_ntop(v.ipv6 ? AF_INET6 : AF_INET, v.bytes, buf, sizeof buf)) return v.ip;
      return buf;
    }
    case 'i': {
      std::string out;
      if (!v.ipv6) {
        for (int k = 0; k < 4; ++k) {
          if (k) out += '.';
          out += std::to_string(static_cast<unsigned>(v.bytes[k]));
        }
        return out;
      }
      static const char* hex = "0123456789abcdef";
      for (int k = 0; k < 16; ++k) {
        if (k) out += '.';
        out += hex[v.bytes[k] >> 4];
        out += '.';
        out += hex[v.bytes[k] & 15];
      }
      return out;
    }
  }
  return {};
}

// RFC 7208 7.3: split on the delimiters, reverse, keep the rightmost N, join with ".".
std::string transform(const std::string& value, const Expand& e) {
  const std::string delims = e.delims.empty() ? std::string(".") : e.delims;
  std::vector<std::string_view> parts;
  std::string_view rest(value);
  while (true) {
    const auto p = rest.find_first_of(delims);
    parts.push_back(rest.substr(0, p));
    if (p == std::string_view::npos) break;
    rest.remove_prefix(p + 1);
  }
  if (e.reverse) std::reverse(parts.begin(), parts.end());
  std::size_t from = 0;
  if (e.has_digits && e.digits < parts.size()) from = parts.size() - e.digits;
  std::string out;
  for (std::size_t k = from; k < parts.size(); ++k) {
    if (k > from) out += '.';
    out += parts[k];
  }
  return out;
}

}  // namespace

bool valid_macro_string(std::string_view s, bool explanation) {
  return scan(s, explanation, nullptr, [](std::string_view) { return true; },
              [](const Expand&) { return true; });
}

// Internal: macro-string syntax plus whether it ends in a macro-expand (for domain-end).
bool macro_string_ends_in_macro(std::string_view s, bool& valid) {
  bool last = false;
  valid = scan(s, false, &last, [](std::string_view) { return true; },
               [](const Expand&) { return true; });
  return last;
}

std::optional<std::string> expand(std::string_view s, const MacroVars& v, bool explanation) {
  std::string out;
  const bool ok = scan(
      s, explanation, nullptr,
      [&](std::string_view lit) {
        out.append(lit);
        return out.size() <= kMaxExpansion;
      },
      [&](const Expand& e) {
        std::string t = transform(value_of(e.letter, v), e);
        if (e.letter >= 'A' && e.letter <= 'Z') t = url_escape(t);
        out += t;
        return out.size() <= kMaxExpansion;
      });
  if (!ok) return std::nullopt;
  return out;
}

std::optional<MacroVars> macro_vars(const Request& r) {
  MacroVars v;
  if (r.ip.empty() || r.ip.size() >= INET6_ADDRSTRLEN || r.ip.find('\0') != std::string::npos)
    return std::nullopt;
  unsigned char b[16] = {};
  if (::inet_pton(AF_INET, r.ip.c_str(), b) == 1) {
    std::memcpy(v.bytes, b, 4);
  } else if (::inet_pton(AF_INET6, r.ip.c_str(), b) == 1) {
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (std::memcmp(b, mapped, 12) == 0) {  // IPv4-mapped: treated as IPv4 (RFC 7208 5)
      std::memcpy(v.bytes, b + 12, 4);
    } else {
      v.ipv6 = true;
      std::memcpy(v.bytes, b, 16);
    }
  } else {
    return std::nullopt;
  }
  v.ip = r.ip;
  v.sender = r.sender;
  const auto at = r.sender.rfind('@');
  v.local = at == std::string::npos ? std::string("postmaster") : r.sender.substr(0, at);
  v.sender_domain = at == std::string::npos ? r.sender : r.sender.substr(at + 1);
  v.domain = r.domain;
  v.helo = r.helo;
  return v;
}

}  // namespace carrier::spf
