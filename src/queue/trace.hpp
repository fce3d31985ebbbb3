// carrier queue: the message trace journal. One line per event in the life of a message —
// received (client, TLS, AUTH, size), each delivery attempt per recipient (transport, remote
// host and reply, time taken, status), notices, removal — appended to a journal file per day
// under SPOOL/trace/ (text: "<unix_ms> <queue id> <event>"), kept for `retention` after the
// day ends. `carrier queue trace ID` reads it back. Each append (one event, or all the events
// of one delivery result) is one write(2) on an O_APPEND descriptor (no fsync: a trace is for
// people, the spool state is what must survive). Thread-safe. Event texts come from carrier's own code; CR/LF are replaced.
#pragma once
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <mutex>
#include <string>
#include <span>
#include <string_view>
#include <vector>

namespace carrier::queue {

class TraceLog {
 public:
  TraceLog(std::filesystem::path dir, std::chrono::seconds retention);
  ~TraceLog();
  TraceLog(const TraceLog&) = delete;
  TraceLog& operator=(const TraceLog&) = delete;

  void append(std::string_view id, std::string_view event);
  // Several events of `id` at once (one write; each its own line, same time).
  void append_all(std::string_view id, std::span<const std::string_view> events);
  struct Event {
    std::int64_t unix_ms = 0;
    std::string text;
  };
  // Every event of `id`, oldest first (at most max_events).
  std::vector<Event> read(std::string_view id, std::size_t max_events = 10000) const;
  // Removes journal files older than the retention (called on each new day, and at start).
  void prune();

 private:
  void open_for(std::int64_t day);
  std::filesystem::path dir_;
  std::chrono::seconds retention_;
  mutable std::mutex mu_;
  int fd_ = -1;
  std::int64_t day_ = -1;
};

}  // namespace carrier::queue
