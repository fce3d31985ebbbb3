#include "base/queue_id.hpp"

#include <array>
#include <mutex>
#include <random>

#include "base/result.hpp"
#include <cstring>

namespace carrier {

Error sys_error(std::string what, int err) {
  return Error{what + ": " + std::strerror(err), err};
}

namespace {
constexpr char kAlphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
constexpr std::int64_t kEpochMs = 1704067200000;  // 2024-01-01T00:00:00Z
constexpr int kCounterBits = 18;
constexpr std::uint64_t kCounterMask = (1u << kCounterBits) - 1;

int decode(char c) {
  for (int i = 0; i < 32; ++i)
    if (kAlphabet[i] == c) return i;
  return -1;
}
}  // namespace

struct QueueIdGenerator::State {
  std::mutex mu;
  std::int64_t last_ms = 0;
  std::uint64_t counter = 0;
};

QueueIdGenerator::~QueueIdGenerator() = default;

QueueIdGenerator::QueueIdGenerator() : s_(std::make_unique<State>()) {
  std::random_device rd;
  s_->counter = rd() & kCounterMask;
}

std::string QueueIdGenerator::next() { return next_at(std::chrono::system_clock::now()); }

std::string QueueIdGenerator::next_at(std::chrono::system_clock::time_point now) {
  std::int64_t ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() -
      kEpochMs;
  if (ms < 0) ms = 0;
  std::uint64_t v;
  {
    std::lock_guard lk(s_->mu);
    if (ms < s_->last_ms) ms = s_->last_ms;  // clock stepped back: stay monotonic
    s_->last_ms = ms;
    s_->counter = (s_->counter + 1) & kCounterMask;
    v = (static_cast<std::uint64_t>(ms) << kCounterBits) | s_->counter;
  }
  std::string out(kQueueIdLength, '0');
  for (int i = static_cast<int>(kQueueIdLength) - 1; i >= 0; --i) {
    out[i] = kAlphabet[v & 31];
    v >>= 5;
  }
  return out;
}

bool is_valid_queue_id(std::string_view s) {
  if (s.size() != kQueueIdLength) return false;
  for (char c : s)
    if (decode(c) < 0) return false;
  return true;
}

std::int64_t queue_id_time_ms(std::string_view id) {
  std::uint64_t v = 0;
  for (char c : id) v = (v << 5) | static_cast<std::uint64_t>(decode(c));
  return static_cast<std::int64_t>(v >> kCounterBits) + kEpochMs;
}

}  // namespace carrier
