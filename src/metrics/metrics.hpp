// carrier metrics: counters, gauges and histograms for Prometheus (text exposition format
// 0.0.4), cheap on the hot path (atomics; a label set is looked up once and kept by the
// caller, or found under a short lock). Label cardinality is bounded: a family with a
// "domain"-like label keeps at most max_series series and folds the rest into "other".
// Gauges and counters that live elsewhere (queue sizes, connection counts) are read by
// callbacks at scrape time. No I/O here (the HTTP endpoint is metrics/http.hpp).
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace carrier::metrics {

using Labels = std::vector<std::pair<std::string, std::string>>;

class Counter {
 public:
  void inc(std::uint64_t n = 1) { v_.fetch_add(n, std::memory_order_relaxed); }
  std::uint64_t value() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> v_{0};
};

class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void observe(double v);
  struct Snapshot {
    std::vector<double> bounds;
    std::vector<std::uint64_t> cumulative;  // per bound, then +Inf
    double sum = 0;
    std::uint64_t count = 0;
  };
  Snapshot snapshot() const;

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> buckets_;  // bounds_.size() + 1
  std::atomic<std::uint64_t> count_{0};
  std::atomic<std::uint64_t> sum_micro_{0};  // sum in millionths
};

// A family of counters with the same label names; series made on first use.
class CounterFamily {
 public:
  CounterFamily(std::vector<std::string> label_names, std::size_t max_series);
  // The counter for these label values (in label-name order). Past max_series distinct
  // series, new ones share the series whose values are all "other".
  Counter& with(const std::vector<std::string>& values);
  std::vector<std::pair<std::vector<std::string>, std::uint64_t>> snapshot() const;
  const std::vector<std::string>& label_names() const { return names_; }

 private:
  std::vector<std::string> names_;
  std::size_t max_series_;
  mutable std::mutex mu_;
  std::map<std::vector<std::string>, std::unique_ptr<Counter>> series_;
};

class Registry {
 public:
  Counter& counter(const std::string& name, const std::string& help);
  CounterFamily& counter_family(const std::string& name, const std::string& help,
                                std::vector<std::string> label_names, std::size_t max_series = 64);
  Histogram& histogram(const std::string& name, const std::string& help, std::vector<double> bounds);
  // A value read at scrape time: one sample per returned (labels, value).
  using Sampler = std::function<std::vector<std::pair<Labels, double>>()>;
  void gauge_callback(const std::string& name, const std::string& help, Sampler fn);
  void counter_callback(const std::string& name, const std::string& help, Sampler fn);
  // A counter family kept by a module for the life of the process and read at scrape time
  // (e.g. metrics/domains.hpp); clear_callbacks() leaves it.
  void counter_source(const std::string& name, const std::string& help, Sampler fn);
  // Removes every callback (their owners are going away); counter sources stay.
  void clear_callbacks();

  // The Prometheus text exposition (format 0.0.4), families sorted by name.
  std::string render() const;

 private:
  struct Family {
    std::string help, type;
    std::unique_ptr<Counter> counter;
    std::unique_ptr<CounterFamily> labeled;
    std::unique_ptr<Histogram> histogram;
    Sampler sampler;
    bool source = false;  // counter_source(): not removed by clear_callbacks()
  };
  mutable std::mutex mu_;
  std::map<std::string, Family> families_;
};

// The process-wide registry every module reports into.
Registry& global();

// Label value escaping of the text format: backslash, double quote and newline; bytes that are
// not valid UTF-8 (RFC 3629) become U+FFFD, so a scrape is always valid text.
std::string escape_label(const std::string& v);
// HELP text escaping of the text format: backslash and newline.
std::string escape_help(const std::string& v);

}  // namespace carrier::metrics
