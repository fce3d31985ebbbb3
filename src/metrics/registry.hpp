// carrier metrics: a registry of counters, gauges and histograms, exposed in the Prometheus
// text format 0.0.4 (HELP/TYPE lines, label value escaping, histogram _bucket/_sum/_count).
// The hot path is lock-free: a caller holds a reference to a Counter/Gauge/Histogram and
// updates relaxed atomics; only registration, the first use of a label combination and the
// scrape take a mutex. Label names are fixed per family; the number of label combinations per
// family is bounded (kMaxSeries; more fold into one series whose values are all "other"), and
// label values are cut to kMaxLabelValue bytes and made valid UTF-8 on output.
// Metric and label names are code constants: an invalid one is a programming error
// (std::invalid_argument at registration). No untrusted input, except label values, which may
// carry bytes from mail envelopes (domains): they are escaped and sanitised, never trusted.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace carrier::metrics {

constexpr std::size_t kMaxSeries = 200;       // label combinations per family
constexpr std::size_t kMaxLabelValue = 256;   // bytes of one label value

class Counter {
 public:
  void inc(std::uint64_t n = 1) noexcept { v_.fetch_add(n, std::memory_order_relaxed); }
  std::uint64_t value() const noexcept { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> v_{0};
};

class Gauge {
 public:
  void set(std::int64_t v) noexcept { v_.store(v, std::memory_order_relaxed); }
  void add(std::int64_t d) noexcept { v_.fetch_add(d, std::memory_order_relaxed); }
  void inc() noexcept { add(1); }
  void dec() noexcept { add(-1); }
  std::int64_t value() const noexcept { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::int64_t> v_{0};
};

// Fixed upper bounds (strictly increasing, finite); one more bucket, +Inf, is implied.
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void observe(double v) noexcept;  // NaN is ignored
  struct Snapshot {
    std::vector<std::uint64_t> cumulative;  // per bound, then +Inf (== count)
    double sum = 0;
    std::uint64_t count = 0;
  };
  Snapshot snapshot() const;
  const std::vector<double>& bounds() const { return bounds_; }

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> counts_;  // bounds_.size() + 1
  std::atomic<double> sum_{0};
};

// A metric family with fixed label names; with(values) gives the child for one combination
// (created on first use, then the same object for ever: cache the reference on hot paths).
template <class M>
class Family {
 public:
  Family(std::vector<std::string> labels, std::function<std::unique_ptr<M>()> make)
      : labels_(std::move(labels)), make_(std::move(make)) {}
  // values.size() must equal the number of label names (else the overflow series is used).
  M& with(const std::vector<std::string>& values);
  const std::vector<std::string>& labels() const { return labels_; }
  // Every child, in label-value order.
  template <class Fn>
  void for_each(Fn&& fn) const {
    std::lock_guard lk(mu_);
    for (const auto& [k, m] : children_) fn(k, *m);
  }

 private:
  std::vector<std::string> labels_;
  std::function<std::unique_ptr<M>()> make_;
  mutable std::mutex mu_;
  std::map<std::vector<std::string>, std::unique_ptr<M>> children_;
};

// One sample of a labelled callback gauge.
struct Sample {
  std::vector<std::string> values;  // one per label name
  double value = 0;
};

// Builds exposition text. Used by the registry and by collectors that write whole families.
class TextWriter {
 public:
  explicit TextWriter(std::string& out) : out_(out) {}
  void header(std::string_view name, std::string_view help, std::string_view type);
  void sample(std::string_view name, const std::vector<std::string>& labels,
              const std::vector<std::string>& values, double v,
              std::string_view extra_label = {}, std::string_view extra_value = {});
  void sample(std::string_view name, const std::vector<std::string>& labels,
              const std::vector<std::string>& values, std::uint64_t v);
  void sample(std::string_view name, const std::vector<std::string>& labels,
              const std::vector<std::string>& values, std::int64_t v);
  void histogram(std::string_view name, const std::vector<std::string>& labels,
                 const std::vector<std::string>& values, const Histogram& h);

 private:
  void labels(const std::vector<std::string>& labels, const std::vector<std::string>& values,
              std::string_view extra_label, std::string_view extra_value);
  std::string& out_;
};

// Text format helpers (exposed for tests).
std::string escape_label_value(std::string_view v);  // \ " LF escaped; invalid UTF-8 -> U+FFFD
std::string escape_help(std::string_view v);          // \ LF escaped
std::string format_value(double v);                   // shortest round-trip; +Inf -Inf NaN
bool valid_metric_name(std::string_view name);        // [a-zA-Z_:][a-zA-Z0-9_:]*
bool valid_label_name(std::string_view name);         // [a-zA-Z_][a-zA-Z0-9_]*, not __*

class Registry;

// Unregisters a callback (or collector) when destroyed: the callback is never called after
// the handle is gone (a scrape in progress is waited for).
class CallbackHandle {
 public:
  CallbackHandle() = default;
  CallbackHandle(Registry* r, std::uint64_t id) : r_(r), id_(id) {}
  CallbackHandle(CallbackHandle&& o) noexcept : r_(o.r_), id_(o.id_) { o.r_ = nullptr; }
  CallbackHandle& operator=(CallbackHandle&& o) noexcept;
  ~CallbackHandle() { reset(); }
  void reset();

 private:
  Registry* r_ = nullptr;
  std::uint64_t id_ = 0;
};

class Registry {
 public:
  Registry() = default;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // Registering a name again with the same type (and labels) returns the existing metric;
  // a different type throws std::invalid_argument.
  Counter& counter(std::string_view name, std::string_view help);
  Gauge& gauge(std::string_view name, std::string_view help);
  Histogram& histogram(std::string_view name, std::string_view help, std::vector<double> bounds);
  // `initial`: label combinations exported (as 0) before their first use.
  Family<Counter>& counter_family(std::string_view name, std::string_view help,
                                  std::vector<std::string> labels,
                                  const std::vector<std::vector<std::string>>& initial = {});
  Family<Gauge>& gauge_family(std::string_view name, std::string_view help,
                              std::vector<std::string> labels);

  // A gauge computed at scrape time (on the scraping thread: fn must be thread-safe).
  [[nodiscard]] CallbackHandle gauge_callback(std::string_view name, std::string_view help,
                                              std::function<double()> fn);
  [[nodiscard]] CallbackHandle gauge_callback(std::string_view name, std::string_view help,
                                              std::vector<std::string> labels,
                                              std::function<std::vector<Sample>()> fn);
  // Writes whole families itself (names: the families it writes, for duplicate checks).
  [[nodiscard]] CallbackHandle collector(std::vector<std::string> names,
                                         std::function<void(TextWriter&)> fn);

  // Everything, in registration order, in the text format 0.0.4.
  std::string expose() const;

 private:
  friend class CallbackHandle;
  struct Entry;
  Entry* find_locked(std::string_view name);
  Entry& add_locked(std::string_view name, std::string_view help, std::string_view type);
  void remove(std::uint64_t id);

  mutable std::mutex mu_;
  std::vector<std::unique_ptr<Entry>> entries_;
  std::uint64_t next_id_ = 1;
};

// The process-wide registry (what GET /metrics serves).
Registry& registry();

// ---- Family ---------------------------------------------------------------------------------

std::vector<std::string> fold_label_values(const std::vector<std::string>& values,
                                           std::size_t n_labels);

template <class M>
M& Family<M>::with(const std::vector<std::string>& values) {
  std::vector<std::string> key = fold_label_values(values, labels_.size());
  std::lock_guard lk(mu_);
  auto it = children_.find(key);
  if (it != children_.end()) return *it->second;
  if (children_.size() >= kMaxSeries) key.assign(labels_.size(), "other");
  auto& slot = children_[key];
  if (!slot) slot = make_();
  return *slot;
}

}  // namespace carrier::metrics
