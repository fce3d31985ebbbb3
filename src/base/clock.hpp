// carrier base: an injectable clock, so schedulers and timeouts are testable without sleeping.
#pragma once
#include <chrono>

namespace carrier {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual std::chrono::system_clock::time_point now() const = 0;
};

class SystemClock final : public Clock {
 public:
  std::chrono::system_clock::time_point now() const override;
  static const SystemClock& instance();
};

// A clock that moves only when told (tests).
class ManualClock final : public Clock {
 public:
  explicit ManualClock(std::chrono::system_clock::time_point t = {}) : t_(t) {}
  std::chrono::system_clock::time_point now() const override { return t_; }
  void advance(std::chrono::system_clock::duration d) { t_ += d; }
  void set(std::chrono::system_clock::time_point t) { t_ = t; }

 private:
  std::chrono::system_clock::time_point t_;
};

}  // namespace carrier
