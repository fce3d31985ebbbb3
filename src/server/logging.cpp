// carrier server: log output. One line per event on stderr, text or JSON (log_format).
// JSON lines: {"ts":"2026-11-23T17:50:00.123Z","level":"info","id":"QUEUEID","msg":"..."};
// "id" is present when the line is about a message (its text starts with the queue id).
#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <mutex>
#include <nlohmann/json.hpp>

#include "base/queue_id.hpp"
#include "server/server.hpp"

namespace carrier::server {
namespace {

std::string iso_time(spdlog::log_clock::time_point tp) {
  auto t = spdlog::log_clock::to_time_t(tp);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(tp.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
  return buf;
}

class JsonSink final : public spdlog::sinks::base_sink<std::mutex> {
 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    std::string_view text(msg.payload.data(), msg.payload.size());
    nlohmann::json j;
    j["ts"] = iso_time(msg.time);
    auto lv = spdlog::level::to_string_view(msg.level);
    j["level"] = std::string(lv.data(), lv.size());
    if (text.size() > kQueueIdLength && text[kQueueIdLength] == ':' &&
        is_valid_queue_id(text.substr(0, kQueueIdLength)))
      j["id"] = std::string(text.substr(0, kQueueIdLength));
    j["msg"] = std::string(text);
    std::string line = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    line += '\n';
    std::fwrite(line.data(), 1, line.size(), stderr);
  }
  void flush_() override { std::fflush(stderr); }
};

}  // namespace

void setup_logging(const config::Config& cfg) {
  std::shared_ptr<spdlog::logger> logger;
  if (cfg.log_format == "json") {
    logger = std::make_shared<spdlog::logger>("carrier", std::make_shared<JsonSink>());
  } else {
    logger = std::make_shared<spdlog::logger>(
        "carrier", std::make_shared<spdlog::sinks::stderr_sink_mt>());
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  }
  logger->set_level(spdlog::level::from_str(cfg.log_level));
  logger->flush_on(spdlog::level::trace);
  spdlog::set_default_logger(logger);
}

}  // namespace carrier::server
