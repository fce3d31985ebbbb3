// carrier base: ASCII case handling for protocol keywords (SMTP verbs, parameters and EHLO
// keywords are case-insensitive ASCII, RFC 5321 2.4). Locale-independent.
#pragma once
#include <string_view>

namespace carrier {

constexpr char ascii_upper(char c) { return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 32) : c; }

constexpr bool ascii_iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (ascii_upper(a[i]) != ascii_upper(b[i])) return false;
  return true;
}

}  // namespace carrier
