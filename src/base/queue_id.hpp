// carrier base: queue ids — short, unique, time-sortable names for messages.
// 12 characters of Crockford base32 (0-9, A-Z without I L O U): 42 bits of milliseconds since
// 2024-01-01 UTC, then 18 bits of a per-process counter that starts at a random value.
// Fixed width, so lexical order is time order (to the millisecond). Unique within a process;
// across processes the spool creates files with O_EXCL and renames without replacing, so a
// rare collision is retried, never overwrites.
#pragma once
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace carrier {

class QueueIdGenerator {
 public:
  QueueIdGenerator();
  ~QueueIdGenerator();
  QueueIdGenerator(const QueueIdGenerator&) = delete;
  QueueIdGenerator& operator=(const QueueIdGenerator&) = delete;
  std::string next();  // thread-safe
  std::string next_at(std::chrono::system_clock::time_point now);  // thread-safe

 private:
  struct State;
  std::unique_ptr<State> s_;
};

constexpr std::size_t kQueueIdLength = 12;
// True for exactly the strings next() can produce (used to vet file names found in the spool).
bool is_valid_queue_id(std::string_view s);
// Milliseconds since the Unix epoch encoded in a valid id.
std::int64_t queue_id_time_ms(std::string_view id);

}  // namespace carrier
