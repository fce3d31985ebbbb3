// Shared fixture of the queue unit tests: a temporary spool, a scriptable fake transport, log
// capture, and a helper that puts a message into the spool (received at the fixture's manual
// clock time, so message ages are controlled by the tests).
#pragma once
#include <gtest/gtest.h>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>
#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include "base/clock.hpp"
#include "queue/delivery.hpp"
#include "spool/spool.hpp"
#include "transport/transport.hpp"

namespace carrier_queue_test {

using namespace carrier;
using namespace std::chrono_literals;
namespace fs = std::filesystem;
using Status = spool::RecipientResult::Status;
using TResult = carrier::transport::Result;


class TempDir {
 public:
  TempDir() {
    std::string t = (fs::temp_directory_path() / "carrier-queue-XXXXXX").string();
    if (!::mkdtemp(t.data())) throw std::runtime_error("mkdtemp");
    path_ = t;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

inline std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A transport whose answers come from a function of (request, call number); it records every
// request and the highest number of simultaneous calls for one message.
class FakeTransport : public transport::Transport {
 public:
  using Fn = std::function<std::vector<TResult>(const transport::Request&, int call)>;
  FakeTransport(const char* name, Fn fn) : name_(name), fn_(std::move(fn)) {}
  const char* name() const override { return name_; }
  std::vector<TResult> deliver(const transport::Request& req) override {
    int n;
    std::string id = req.message->id;
    {
      std::lock_guard lk(mu_);
      n = calls_++;
      requests_.emplace_back(id, req.recipients);
      max_concurrent_ = std::max(max_concurrent_, ++in_flight_[id]);
    }
    auto r = fn_(req, n);
    std::lock_guard lk(mu_);
    --in_flight_[id];
    return r;
  }
  int calls() const {
    std::lock_guard lk(mu_);
    return calls_;
  }
  std::vector<std::pair<std::string, std::vector<std::size_t>>> requests() const {
    std::lock_guard lk(mu_);
    return requests_;
  }
  int max_concurrent() const {
    std::lock_guard lk(mu_);
    return max_concurrent_;
  }

 private:
  const char* name_;
  Fn fn_;
  mutable std::mutex mu_;
  int calls_ = 0;
  std::vector<std::pair<std::string, std::vector<std::size_t>>> requests_;
  std::map<std::string, int> in_flight_;
  int max_concurrent_ = 0;
};

inline std::vector<TResult> all(const transport::Request& req, Status s, const std::string& detail) {
  std::vector<TResult> out;
  for (auto i : req.recipients) out.push_back({i, s, detail});
  return out;
}

inline FakeTransport::Fn always(Status s, std::string detail) {
  return [s, detail](const transport::Request& req, int) { return all(req, s, detail); };
}

inline proto::EnvelopeRecipient rcpt(std::string local, std::string domain,
                              proto::RcptRoute route = proto::RcptRoute::Local) {
  proto::EnvelopeRecipient r;
  r.address = {local, domain};
  r.route = route;
  if (route == proto::RcptRoute::Local) r.mailbox = local;
  return r;
}

// Captures the default logger's lines (pattern "%v") for the duration of a test.
class Logs {
 public:
  Logs() : sink_(std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(1000)) {
    old_ = spdlog::default_logger();
    auto lg = std::make_shared<spdlog::logger>("test", sink_);
    lg->set_pattern("%v");
    lg->set_level(spdlog::level::trace);
    spdlog::set_default_logger(lg);
  }
  ~Logs() { spdlog::set_default_logger(old_); }
  std::vector<std::string> lines() const {
    auto v = sink_->last_formatted();
    for (auto& l : v)
      while (!l.empty() && (l.back() == '\n' || l.back() == '\r')) l.pop_back();
    return v;
  }
  int count(const std::string& needle) const {
    int n = 0;
    for (const auto& l : lines())
      if (l.find(needle) != std::string::npos) ++n;
    return n;
  }
  std::string dump() const {
    std::string s;
    for (const auto& l : lines()) s += l + "\n";
    return s;
  }

 private:
  std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> sink_;
  std::shared_ptr<spdlog::logger> old_;
};

class DeliveryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    spool::Options o;
    o.dir = dir_.path() / "spool";
    auto r = spool::Spool::open(o);
    ASSERT_TRUE(r.ok()) << r.error().message;
    spool_ = std::move(r.value());
  }

  // A message from alice@example.org, received now by clock_.
  std::string put(std::vector<proto::EnvelopeRecipient> rcpts,
                  std::string_view body = "Subject: t\r\n\r\nhi\r\n") {
    proto::Envelope env;
    env.sender = {"alice", "example.org"};
    env.recipients = std::move(rcpts);
    return put_env(std::move(env), body);
  }

  // Any envelope; received_at_ms is set to clock_ now.
  std::string put_env(proto::Envelope env, std::string_view body = "Subject: t\r\n\r\nhi\r\n") {
    env.received_at_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             clock_.now().time_since_epoch())
                             .count();
    auto w = spool_->begin(env);
    EXPECT_TRUE(w.ok());
    EXPECT_TRUE(w->write(body).ok());
    std::promise<carrier::Result<std::string>> p;
    spool_->commit(std::move(w.value()), [&](carrier::Result<std::string> r) { p.set_value(r); });
    auto id = p.get_future().get();
    EXPECT_TRUE(id.ok());
    return id.ok() ? id.value() : std::string();
  }

  // The messages in the spool with the null sender (notices), oldest first.
  std::vector<std::string> notices() const {
    std::vector<std::string> out;
    for (const auto& id : spool_->list()) {
      auto m = spool_->load(id);
      if (m.ok() && m->envelope.sender.empty()) out.push_back(id);
    }
    return out;
  }

  // The stored content of a spool message ("" when it cannot be loaded).
  std::string content(const std::string& id) const {
    auto m = spool_->load(id);
    if (!m.ok()) return {};
    return read_file(m->path).substr(static_cast<std::size_t>(m->content_offset));
  }

  bool in_spool(const std::string& id) const {
    auto l = spool_->list();
    return std::find(l.begin(), l.end(), id) != l.end();
  }

  TempDir dir_;
  std::unique_ptr<spool::Spool> spool_;
  Logs logs_;
  // Messages are received at this time (2027-01-15); tests that need ages advance it.
  ManualClock clock_{std::chrono::system_clock::time_point(1'800'000'000s)};
};


}  // namespace carrier_queue_test
