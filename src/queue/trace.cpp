// carrier queue: the message trace journal. See trace.hpp.
#include "queue/trace.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <ctime>
#include <fstream>

namespace carrier::queue {
namespace fs = std::filesystem;

namespace {
std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}
std::string day_name(std::int64_t day) {  // days since the epoch → "YYYYMMDD"
  std::time_t t = static_cast<std::time_t>(day) * 86400;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[16];
  std::strftime(buf, sizeof buf, "%Y%m%d", &tm);
  return buf;
}
}  // namespace

TraceLog::TraceLog(fs::path dir, std::chrono::seconds retention)
    : dir_(std::move(dir)), retention_(retention) {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  prune();
}

TraceLog::~TraceLog() {
  if (fd_ >= 0) ::close(fd_);
}

void TraceLog::open_for(std::int64_t day) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = ::open((dir_ / day_name(day)).c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  day_ = day;
}

void TraceLog::append(std::string_view id, std::string_view event) {
  const std::string_view one[] = {event};
  append_all(id, one);
}

void TraceLog::append_all(std::string_view id, std::span<const std::string_view> events) {
  if (events.empty()) return;
  const std::int64_t ms = now_ms();
  const std::string prefix = std::to_string(ms) + ' ' + std::string(id) + ' ';
  std::string lines;
  for (auto event : events) {
    lines += prefix;
    for (char c : event) lines += (c == '\r' || c == '\n') ? ' ' : c;
    lines += '\n';
  }
  bool new_day = false;
  {
    std::lock_guard lk(mu_);
    const std::int64_t day = ms / 86400000;
    if (day != day_) {
      open_for(day);
      new_day = true;
    }
    if (fd_ >= 0) {
      // One write for all the lines (O_APPEND: they stay together in the file).
      ssize_t w = ::write(fd_, lines.data(), lines.size());
      (void)w;  // best effort: the trace is for people, never a reason to fail a delivery
    }
  }
  if (new_day) prune();
}

std::vector<TraceLog::Event> TraceLog::read(std::string_view id, std::size_t max_events) const {
  std::vector<Event> out;
  std::vector<fs::path> files;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir_, ec))
    if (e.is_regular_file()) files.push_back(e.path());
  std::sort(files.begin(), files.end());  // YYYYMMDD: oldest first
  const std::string key = " " + std::string(id) + " ";
  for (const auto& f : files) {
    std::ifstream in(f);
    std::string line;
    while (std::getline(in, line)) {
      auto sp = line.find(key);
      if (sp == std::string::npos || line.find(' ') != sp) continue;
      Event ev;
      try {
        ev.unix_ms = std::stoll(line.substr(0, sp));
      } catch (...) {
        continue;
      }
      ev.text = line.substr(sp + key.size());
      out.push_back(std::move(ev));
      if (out.size() >= max_events) return out;
    }
  }
  return out;
}

void TraceLog::prune() {
  const std::int64_t today = now_ms() / 86400000;
  const std::int64_t keep_days = retention_.count() / 86400 + 1;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir_, ec)) {
    const std::string n = e.path().filename().string();
    if (n.size() != 8) continue;
    std::tm tm{};
    if (!strptime(n.c_str(), "%Y%m%d", &tm)) continue;
    const std::int64_t day = static_cast<std::int64_t>(timegm(&tm)) / 86400;
    if (today - day > keep_days) fs::remove(e.path(), ec);
  }
}

}  // namespace carrier::queue
