// carrier metrics: registry and Prometheus text exposition. See metrics.hpp.
#include "metrics/metrics.hpp"

#include <cmath>
#include <cstdio>

namespace carrier::metrics {

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), buckets_(new std::atomic<std::uint64_t>[bounds_.size() + 1]) {
  for (std::size_t i = 0; i <= bounds_.size(); ++i) buckets_[i] = 0;
}

void Histogram::observe(double v) {
  if (std::isnan(v)) return;
  std::size_t i = 0;
  while (i < bounds_.size() && v > bounds_[i]) ++i;
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  if (v > 0 && std::isfinite(v))
    sum_micro_.fetch_add(static_cast<std::uint64_t>(v * 1e6), std::memory_order_relaxed);
}

Histogram::Snapshot Histogram::snapshot() const {
  Snapshot s;
  s.bounds = bounds_;
  std::uint64_t acc = 0;
  for (std::size_t i = 0; i <= bounds_.size(); ++i) {
    acc += buckets_[i].load(std::memory_order_relaxed);
    s.cumulative.push_back(acc);
  }
  s.count = acc;
  s.sum = static_cast<double>(sum_micro_.load(std::memory_order_relaxed)) / 1e6;
  return s;
}

CounterFamily::CounterFamily(std::vector<std::string> label_names, std::size_t max_series)
    : names_(std::move(label_names)), max_series_(max_series) {}

Counter& CounterFamily::with(const std::vector<std::string>& values) {
  std::lock_guard lk(mu_);
  auto it = series_.find(values);
  if (it != series_.end()) return *it->second;
  std::vector<std::string> key = values;
  if (series_.size() >= max_series_) key.assign(names_.size(), "other");
  auto& slot = series_[key];
  if (!slot) slot = std::make_unique<Counter>();
  return *slot;
}

std::vector<std::pair<std::vector<std::string>, std::uint64_t>> CounterFamily::snapshot() const {
  std::lock_guard lk(mu_);
  std::vector<std::pair<std::vector<std::string>, std::uint64_t>> out;
  for (const auto& [k, c] : series_) out.emplace_back(k, c->value());
  return out;
}

Counter& Registry::counter(const std::string& name, const std::string& help) {
  std::lock_guard lk(mu_);
  Family& f = families_[name];
  if (!f.counter) {
    f.help = help;
    f.type = "counter";
    f.counter = std::make_unique<Counter>();
  }
  return *f.counter;
}

CounterFamily& Registry::counter_family(const std::string& name, const std::string& help,
                                        std::vector<std::string> label_names,
                                        std::size_t max_series) {
  std::lock_guard lk(mu_);
  Family& f = families_[name];
  if (!f.labeled) {
    f.help = help;
    f.type = "counter";
    f.labeled = std::make_unique<CounterFamily>(std::move(label_names), max_series);
  }
  return *f.labeled;
}

Histogram& Registry::histogram(const std::string& name, const std::string& help,
                               std::vector<double> bounds) {
  std::lock_guard lk(mu_);
  Family& f = families_[name];
  if (!f.histogram) {
    f.help = help;
    f.type = "histogram";
    f.histogram = std::make_unique<Histogram>(std::move(bounds));
  }
  return *f.histogram;
}

void Registry::gauge_callback(const std::string& name, const std::string& help, Sampler fn) {
  std::lock_guard lk(mu_);
  Family& f = families_[name];
  f.help = help;
  f.type = "gauge";
  f.sampler = std::move(fn);
}

void Registry::counter_callback(const std::string& name, const std::string& help, Sampler fn) {
  std::lock_guard lk(mu_);
  Family& f = families_[name];
  f.help = help;
  f.type = "counter";
  f.sampler = std::move(fn);
}

void Registry::counter_source(const std::string& name, const std::string& help, Sampler fn) {
  std::lock_guard lk(mu_);
  Family& f = families_[name];
  f.help = help;
  f.type = "counter";
  f.sampler = std::move(fn);
  f.source = true;
}

void Registry::clear_callbacks() {
  std::lock_guard lk(mu_);
  for (auto it = families_.begin(); it != families_.end();)
    it = it->second.sampler && !it->second.source ? families_.erase(it) : std::next(it);
}

namespace {
// Length of the valid UTF-8 sequence at v[i], or 0 when there is none (overlong forms,
// surrogates and code points above U+10FFFF are invalid: RFC 3629 3 and 4).
std::size_t utf8_length(const std::string& v, std::size_t i) {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(v[k]); };
  const unsigned char c = b(i);
  if (c < 0x80) return 1;
  std::size_t n;
  std::uint32_t cp;
  if (c >= 0xC2 && c <= 0xDF) n = 2, cp = c & 0x1F;
  else if (c >= 0xE0 && c <= 0xEF) n = 3, cp = c & 0x0F;
  else if (c >= 0xF0 && c <= 0xF4) n = 4, cp = c & 0x07;
  else return 0;
  if (i + n > v.size()) return 0;
  for (std::size_t k = 1; k < n; ++k) {
    if ((b(i + k) & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b(i + k) & 0x3F);
  }
  if (n == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) return 0;
  if (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) return 0;
  return n;
}
}  // namespace

std::string escape_label(const std::string& v) {
  std::string r;
  r.reserve(v.size());
  for (std::size_t i = 0; i < v.size();) {
    const char c = v[i];
    const std::size_t n = utf8_length(v, i);
    if (n == 0) r += "\xEF\xBF\xBD";  // U+FFFD for a byte that is not valid UTF-8
    else if (c == '\\') r += "\\\\";
    else if (c == '"') r += "\\\"";
    else if (c == '\n') r += "\\n";
    else r.append(v, i, n);
    i += n ? n : 1;
  }
  return r;
}

std::string escape_help(const std::string& v) {
  std::string r;
  for (char c : v) {
    if (c == '\\') r += "\\\\";
    else if (c == '\n') r += "\\n";
    else r += c;
  }
  return r;
}

namespace {
std::string number(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.12g", v);
  return buf;
}
std::string labels_text(const Labels& l) {
  if (l.empty()) return {};
  std::string r = "{";
  for (std::size_t i = 0; i < l.size(); ++i) {
    if (i) r += ',';
    r += l[i].first + "=\"" + escape_label(l[i].second) + "\"";
  }
  return r + "}";
}
}  // namespace

std::string Registry::render() const {
  std::lock_guard lk(mu_);
  std::string out;
  for (const auto& [name, f] : families_) {
    out += "# HELP " + name + " " + escape_help(f.help) + "\n";
    out += "# TYPE " + name + " " + f.type + "\n";
    if (f.counter) out += name + " " + std::to_string(f.counter->value()) + "\n";
    if (f.labeled) {
      for (const auto& [vals, v] : f.labeled->snapshot()) {
        Labels l;
        for (std::size_t i = 0; i < vals.size() && i < f.labeled->label_names().size(); ++i)
          l.emplace_back(f.labeled->label_names()[i], vals[i]);
        out += name + labels_text(l) + " " + std::to_string(v) + "\n";
      }
    }
    if (f.histogram) {
      auto s = f.histogram->snapshot();
      for (std::size_t i = 0; i < s.bounds.size(); ++i)
        out += name + "_bucket{le=\"" + number(s.bounds[i]) + "\"} " + std::to_string(s.cumulative[i]) + "\n";
      out += name + "_bucket{le=\"+Inf\"} " + std::to_string(s.cumulative.back()) + "\n";
      out += name + "_sum " + number(s.sum) + "\n";
      out += name + "_count " + std::to_string(s.count) + "\n";
    }
    if (f.sampler)
      for (const auto& [l, v] : f.sampler()) out += name + labels_text(l) + " " + number(v) + "\n";
  }
  return out;
}

Registry& global() {
  static Registry r;
  return r;
}

}  // namespace carrier::metrics
