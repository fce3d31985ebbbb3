#include "base/rate.hpp"

namespace carrier {
std::optional<double> parse_rate(std::string_view t) {
  if (t.empty() || t == "0") return 0.0;
  auto slash = t.find('/');
  if (slash == std::string_view::npos || slash == 0 || slash + 2 != t.size()) return std::nullopt;
  double n = 0;
  for (char c : t.substr(0, slash)) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + (c - '0');
    if (n > 1e9) return std::nullopt;
  }
  switch (t[slash + 1]) {
    case 's': return n;
    case 'm': return n / 60.0;
    case 'h': return n / 3600.0;
    default: return std::nullopt;
  }
}
}  // namespace carrier
