// carrier metrics: the registry and the Prometheus text format 0.0.4 (exposition). See
// registry.hpp. Label values may hold bytes from mail envelopes (UNTRUSTED): they are escaped
// and made valid UTF-8 here, so a scrape is always well-formed.
#include "metrics/registry.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <stdexcept>

namespace carrier::metrics {

// ---- text format helpers --------------------------------------------------------------------

namespace {

// Length of the valid UTF-8 sequence at s[i], or 0 when it is not one (overlong forms,
// surrogates and code points above U+10FFFF are invalid: RFC 3629 3).
std::size_t utf8_sequence(std::string_view s, std::size_t i) {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  if (c < 0x80) return 1;
  std::size_t n;
  std::uint32_t cp;
  if (c >= 0xC2 && c <= 0xDF) n = 2, cp = c & 0x1F;
  else if (c >= 0xE0 && c <= 0xEF) n = 3, cp = c & 0x0F;
  else if (c >= 0xF0 && c <= 0xF4) n = 4, cp = c & 0x07;
  else return 0;
  if (i + n > s.size()) return 0;
  for (std::size_t k = 1; k < n; ++k) {
    if ((b(i + k) & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b(i + k) & 0x3F);
  }
  if (n == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) return 0;
  if (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) return 0;
  return n;
}

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

}  // namespace

std::string escape_label_value(std::string_view v) {
  std::string out;
  out.reserve(v.size() + 8);
  for (std::size_t i = 0; i < v.size();) {
    const char c = v[i];
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else if (static_cast<unsigned char>(c) >= 0x80) {
      std::size_t n = utf8_sequence(v, i);
      if (n == 0) {
        out += kReplacement;
        ++i;
      } else {
        out.append(v.substr(i, n));
        i += n;
      }
      continue;
    } else out += c;
    ++i;
  }
  return out;
}

std::string escape_help(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string format_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

bool valid_metric_name(std::string_view n) {
  if (n.empty()) return false;
  for (std::size_t i = 0; i < n.size(); ++i) {
    const char c = n[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
    if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

bool valid_label_name(std::string_view n) {
  if (n.empty() || n.substr(0, 2) == "__" || n == "le") return false;
  for (std::size_t i = 0; i < n.size(); ++i) {
    const char c = n[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

std::vector<std::string> fold_label_values(const std::vector<std::string>& values,
                                           std::size_t n_labels) {
  if (values.size() != n_labels) return std::vector<std::string>(n_labels, "other");
  std::vector<std::string> out = values;
  for (auto& v : out)
    if (v.size() > kMaxLabelValue) v.resize(kMaxLabelValue);  // a cut sequence shows as U+FFFD
  return out;
}

// ---- TextWriter ------------------------------------------------------------------------------

void TextWriter::header(std::string_view name, std::string_view help, std::string_view type) {
  out_ += "# HELP ";
  out_ += name;
  out_ += ' ';
  out_ += escape_help(help);
  out_ += "\n# TYPE ";
  out_ += name;
  out_ += ' ';
  out_ += type;
  out_ += '\n';
}

void TextWriter::labels(const std::vector<std::string>& labels,
                        const std::vector<std::string>& values, std::string_view extra_label,
                        std::string_view extra_value) {
  if (labels.empty() && extra_label.empty()) return;
  out_ += '{';
  bool first = true;
  for (std::size_t i = 0; i < labels.size(); ++i) {
    if (!first) out_ += ',';
    first = false;
    out_ += labels[i];
    out_ += "=\"";
    out_ += escape_label_value(i < values.size() ? std::string_view(values[i]) : "other");
    out_ += '"';
  }
  if (!extra_label.empty()) {
    if (!first) out_ += ',';
    out_ += extra_label;
    out_ += "=\"";
    out_ += escape_label_value(extra_value);
    out_ += '"';
  }
  out_ += '}';
}

void TextWriter::sample(std::string_view name, const std::vector<std::string>& ls,
                        const std::vector<std::string>& values, double v,
                        std::string_view extra_label, std::string_view extra_value) {
  out_ += name;
  labels(ls, values, extra_label, extra_value);
  out_ += ' ';
  out_ += format_value(v);
  out_ += '\n';
}

void TextWriter::sample(std::string_view name, const std::vector<std::string>& ls,
                        const std::vector<std::string>& values, std::uint64_t v) {
  out_ += name;
  labels(ls, values, {}, {});
  out_ += ' ';
  out_ += std::to_string(v);
  out_ += '\n';
}

void TextWriter::sample(std::string_view name, const std::vector<std::string>& ls,
                        const std::vector<std::string>& values, std::int64_t v) {
  out_ += name;
  labels(ls, values, {}, {});
  out_ += ' ';
  out_ += std::to_string(v);
  out_ += '\n';
}

void TextWriter::histogram(std::string_view name, const std::vector<std::string>& ls,
                           const std::vector<std::string>& values, const Histogram& h) {
  const auto snap = h.snapshot();
  const std::string bucket = std::string(name) + "_bucket";
  for (std::size_t i = 0; i < snap.cumulative.size(); ++i) {
    out_ += bucket;
    labels(ls, values, "le", i < h.bounds().size() ? format_value(h.bounds()[i]) : "+Inf");
    out_ += ' ';
    out_ += std::to_string(snap.cumulative[i]);
    out_ += '\n';
  }
  sample(std::string(name) + "_sum", ls, values, snap.sum);
  sample(std::string(name) + "_count", ls, values, snap.count);
}

// ---- Histogram ------------------------------------------------------------------------------

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)) {
  for (std::size_t i = 0; i < bounds_.size(); ++i)
    if (!std::isfinite(bounds_[i]) || (i > 0 && bounds_[i] <= bounds_[i - 1]))
      throw std::invalid_argument("metrics: histogram bounds must be finite and increasing");
  counts_ = std::make_unique<std::atomic<std::uint64_t>[]>(bounds_.size() + 1);
  for (std::size_t i = 0; i <= bounds_.size(); ++i) counts_[i].store(0);
}

void Histogram::observe(double v) noexcept {
  if (std::isnan(v)) return;
  // The first bucket whose upper bound is >= v ("le": less than or equal).
  auto i = static_cast<std::size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), v) -
                                    bounds_.begin());
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(v, std::memory_order_relaxed);
}

Histogram::Snapshot Histogram::snapshot() const {
  Snapshot s;
  s.cumulative.resize(bounds_.size() + 1);
  std::uint64_t acc = 0;
  for (std::size_t i = 0; i <= bounds_.size(); ++i) {
    acc += counts_[i].load(std::memory_order_relaxed);
    s.cumulative[i] = acc;
  }
  s.count = acc;  // +Inf and _count always agree
  s.sum = sum_.load(std::memory_order_relaxed);
  return s;
}

// ---- Registry -------------------------------------------------------------------------------

struct Registry::Entry {
  enum Kind { Counter_, Gauge_, Histogram_, CounterFamily, GaugeFamily, Callback, LabelledCallback,
              Collector } kind;
  std::uint64_t id = 0;
  std::string name, help;
  std::vector<std::string> names;  // collector: every family it writes
  std::vector<std::string> labels;
  std::unique_ptr<Counter> counter;
  std::unique_ptr<Gauge> gauge;
  std::unique_ptr<Histogram> hist;
  std::unique_ptr<Family<Counter>> cfam;
  std::unique_ptr<Family<Gauge>> gfam;
  std::function<double()> cb;
  std::function<std::vector<Sample>()> lcb;
  std::function<void(TextWriter&)> coll;
};

namespace {

void check_name(std::string_view name) {
  if (!valid_metric_name(name))
    throw std::invalid_argument("metrics: invalid metric name \"" + std::string(name) + "\"");
}

void check_labels(std::string_view name, const std::vector<std::string>& labels) {
  for (const auto& l : labels)
    if (!valid_label_name(l))
      throw std::invalid_argument("metrics: invalid label name \"" + l + "\" in " +
                                  std::string(name));
}

[[noreturn]] void clash(std::string_view name) {
  throw std::invalid_argument("metrics: \"" + std::string(name) +
                              "\" is already registered as something else");
}

}  // namespace

Registry::Entry* Registry::find_locked(std::string_view name) {
  for (auto& e : entries_) {
    if (e->name == name) return e.get();
    for (const auto& n : e->names)
      if (n == name) return e.get();
  }
  return nullptr;
}

Registry::Entry& Registry::add_locked(std::string_view name, std::string_view help,
                                      std::string_view) {
  auto e = std::make_unique<Entry>();
  e->id = next_id_++;
  e->name = std::string(name);
  e->help = std::string(help);
  entries_.push_back(std::move(e));
  return *entries_.back();
}

Counter& Registry::counter(std::string_view name, std::string_view help) {
  check_name(name);
  std::lock_guard lk(mu_);
  if (Entry* e = find_locked(name)) {
    if (e->kind != Entry::Counter_) clash(name);
    return *e->counter;
  }
  Entry& e = add_locked(name, help, "counter");
  e.kind = Entry::Counter_;
  e.counter = std::make_unique<Counter>();
  return *e.counter;
}

Gauge& Registry::gauge(std::string_view name, std::string_view help) {
  check_name(name);
  std::lock_guard lk(mu_);
  if (Entry* e = find_locked(name)) {
    if (e->kind != Entry::Gauge_) clash(name);
    return *e->gauge;
  }
  Entry& e = add_locked(name, help, "gauge");
  e.kind = Entry::Gauge_;
  e.gauge = std::make_unique<Gauge>();
  return *e.gauge;
}

Histogram& Registry::histogram(std::string_view name, std::string_view help,
                               std::vector<double> bounds) {
  check_name(name);
  auto h = std::make_unique<Histogram>(std::move(bounds));  // checks the bounds
  std::lock_guard lk(mu_);
  if (Entry* e = find_locked(name)) {
    if (e->kind != Entry::Histogram_ || e->hist->bounds() != h->bounds()) clash(name);
    return *e->hist;
  }
  Entry& e = add_locked(name, help, "histogram");
  e.kind = Entry::Histogram_;
  e.hist = std::move(h);
  return *e.hist;
}

Family<Counter>& Registry::counter_family(std::string_view name, std::string_view help,
                                          std::vector<std::string> labels,
                                          const std::vector<std::vector<std::string>>& initial) {
  check_name(name);
  check_labels(name, labels);
  Family<Counter>* f;
  {
    std::lock_guard lk(mu_);
    if (Entry* e = find_locked(name)) {
      if (e->kind != Entry::CounterFamily || e->labels != labels) clash(name);
      f = e->cfam.get();
    } else {
      Entry& e = add_locked(name, help, "counter");
      e.kind = Entry::CounterFamily;
      e.labels = labels;
      e.cfam = std::make_unique<Family<Counter>>(std::move(labels),
                                                 [] { return std::make_unique<Counter>(); });
      f = e.cfam.get();
    }
  }
  for (const auto& v : initial) f->with(v);
  return *f;
}

Family<Gauge>& Registry::gauge_family(std::string_view name, std::string_view help,
                                      std::vector<std::string> labels) {
  check_name(name);
  check_labels(name, labels);
  std::lock_guard lk(mu_);
  if (Entry* e = find_locked(name)) {
    if (e->kind != Entry::GaugeFamily || e->labels != labels) clash(name);
    return *e->gfam;
  }
  Entry& e = add_locked(name, help, "gauge");
  e.kind = Entry::GaugeFamily;
  e.labels = labels;
  e.gfam = std::make_unique<Family<Gauge>>(std::move(labels),
                                           [] { return std::make_unique<Gauge>(); });
  return *e.gfam;
}

CallbackHandle Registry::gauge_callback(std::string_view name, std::string_view help,
                                        std::function<double()> fn) {
  check_name(name);
  std::lock_guard lk(mu_);
  if (find_locked(name)) clash(name);
  Entry& e = add_locked(name, help, "gauge");
  e.kind = Entry::Callback;
  e.cb = std::move(fn);
  return CallbackHandle(this, e.id);
}

CallbackHandle Registry::gauge_callback(std::string_view name, std::string_view help,
                                        std::vector<std::string> labels,
                                        std::function<std::vector<Sample>()> fn) {
  check_name(name);
  check_labels(name, labels);
  std::lock_guard lk(mu_);
  if (find_locked(name)) clash(name);
  Entry& e = add_locked(name, help, "gauge");
  e.kind = Entry::LabelledCallback;
  e.labels = std::move(labels);
  e.lcb = std::move(fn);
  return CallbackHandle(this, e.id);
}

CallbackHandle Registry::collector(std::vector<std::string> names,
                                   std::function<void(TextWriter&)> fn) {
  for (const auto& n : names) check_name(n);
  std::lock_guard lk(mu_);
  for (const auto& n : names)
    if (find_locked(n)) clash(n);
  Entry& e = add_locked("", "", "");
  e.kind = Entry::Collector;
  e.names = std::move(names);
  e.coll = std::move(fn);
  return CallbackHandle(this, e.id);
}

void Registry::remove(std::uint64_t id) {
  std::lock_guard lk(mu_);  // waits for a scrape in progress
  entries_.erase(std::remove_if(entries_.begin(), entries_.end(),
                                [id](const auto& e) { return e->id == id; }),
                 entries_.end());
}

std::string Registry::expose() const {
  std::string out;
  TextWriter w(out);
  std::lock_guard lk(mu_);
  for (const auto& ep : entries_) {
    const Entry& e = *ep;
    switch (e.kind) {
      case Entry::Counter_:
        w.header(e.name, e.help, "counter");
        w.sample(e.name, {}, {}, e.counter->value());
        break;
      case Entry::Gauge_:
        w.header(e.name, e.help, "gauge");
        w.sample(e.name, {}, {}, e.gauge->value());
        break;
      case Entry::Histogram_:
        w.header(e.name, e.help, "histogram");
        w.histogram(e.name, {}, {}, *e.hist);
        break;
      case Entry::CounterFamily:
        w.header(e.name, e.help, "counter");
        e.cfam->for_each([&](const std::vector<std::string>& values, const Counter& c) {
          w.sample(e.name, e.labels, values, c.value());
        });
        break;
      case Entry::GaugeFamily:
        w.header(e.name, e.help, "gauge");
        e.gfam->for_each([&](const std::vector<std::string>& values, const Gauge& g) {
          w.sample(e.name, e.labels, values, g.value());
        });
        break;
      case Entry::Callback: {
        // A callback that throws leaves its gauge without a sample (never a broken scrape).
        double v;
        try {
          v = e.cb();
        } catch (...) {
          w.header(e.name, e.help, "gauge");
          break;
        }
        w.header(e.name, e.help, "gauge");
        w.sample(e.name, {}, {}, v);
        break;
      }
      case Entry::LabelledCallback: {
        std::vector<Sample> samples;
        try {
          samples = e.lcb();
        } catch (...) {
          samples.clear();
        }
        if (samples.size() > kMaxSeries) samples.resize(kMaxSeries);
        w.header(e.name, e.help, "gauge");
        for (const auto& s : samples)
          w.sample(e.name, e.labels, fold_label_values(s.values, e.labels.size()), s.value);
        break;
      }
      case Entry::Collector: {
        std::string part;
        TextWriter pw(part);
        try {
          e.coll(pw);
        } catch (...) {
          part.clear();
        }
        out += part;
        break;
      }
    }
  }
  return out;
}

// ---- CallbackHandle -------------------------------------------------------------------------

CallbackHandle& CallbackHandle::operator=(CallbackHandle&& o) noexcept {
  if (this != &o) {
    reset();
    r_ = o.r_;
    id_ = o.id_;
    o.r_ = nullptr;
  }
  return *this;
}

void CallbackHandle::reset() {
  if (r_) r_->remove(id_);
  r_ = nullptr;
}

Registry& registry() {
  static Registry r;
  return r;
}

}  // namespace carrier::metrics
