#include "base/clock.hpp"

namespace carrier {
std::chrono::system_clock::time_point SystemClock::now() const {
  return std::chrono::system_clock::now();
}
const SystemClock& SystemClock::instance() {
  static const SystemClock c;
  return c;
}
}  // namespace carrier
