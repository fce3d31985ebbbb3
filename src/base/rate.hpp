// carrier base: rates written as "10/s", "600/m", "3600/h" (configuration of rate limits).
#pragma once
#include <optional>
#include <string_view>

namespace carrier {
// Messages per second; "0" or "" → 0 (unlimited); nullopt when malformed.
std::optional<double> parse_rate(std::string_view text);
}  // namespace carrier
