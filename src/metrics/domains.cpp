// carrier metrics: delivery results by destination domain, the top N labelled (see
// domains.hpp). Domain names are UNTRUSTED (from envelopes): normalised and bounded here.
#include "metrics/domains.hpp"

#include <algorithm>
#include <set>

namespace carrier::metrics {

namespace {

constexpr std::size_t kMaxDomain = 253;  // RFC 1035 2.3.4 (text form, no final dot)
constexpr std::size_t kMaxTransportName = 32;
constexpr std::string_view kOther = "other";

std::string normalize(std::string_view d) {
  if (!d.empty() && d.back() == '.') d.remove_suffix(1);
  if (d.size() > kMaxDomain) d = d.substr(0, kMaxDomain);
  std::string s(d);
  for (char& c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  if (s.empty()) s = "none";
  return s;
}

}  // namespace

std::string_view to_string(Outcome o) {
  switch (o) {
    case Outcome::Delivered: return "delivered";
    case Outcome::Deferred: return "deferred";
    case Outcome::Bounced: return "bounced";
    case Outcome::Expired: return "expired";
  }
  return "other";
}

DomainCounters::DomainCounters(std::size_t top_n, std::size_t tracked)
    : top_n_(top_n), tracked_(std::max(tracked, top_n)) {}

std::string DomainCounters::transport_label_locked(std::string_view t) {
  for (const auto& x : transports_)
    if (x == t) return x;
  if (transports_.size() >= kMaxTransports || t.empty() || t.size() > kMaxTransportName)
    return std::string(kOther);
  transports_.emplace_back(t);
  return std::string(t);
}

void DomainCounters::add(std::string_view transport, Outcome o, std::string_view domain,
                         std::uint64_t n) {
  std::string d = normalize(domain);
  std::lock_guard lk(mu_);
  // Space-Saving: a domain not counted yet takes the place of the least counted one and
  // inherits its count (an over-estimate by at most that count).
  if (auto it = counts_.find(d); it != counts_.end()) {
    it->second += n;
  } else if (counts_.size() < tracked_) {
    counts_.emplace(d, n);
  } else {
    auto min = std::min_element(counts_.begin(), counts_.end(),
                                [](const auto& a, const auto& b) { return a.second < b.second; });
    const std::uint64_t base = min->second;
    counts_.erase(min);
    counts_.emplace(d, base + n);
  }
  Key key{transport_label_locked(transport), o};
  auto l = labelled_.find(d);
  // While fewer than N domains have a label, a new one gets its own at once (exact from its
  // first message); once all N are taken, the ranking at the next scrape decides.
  if (l == labelled_.end() && labelled_.size() < top_n_ && d != kOther)
    l = labelled_.try_emplace(d).first;
  if (l != labelled_.end()) l->second[key] += n;
  else other_[key] += n;
}

void DomainCounters::rerank_locked() {
  std::vector<std::pair<std::uint64_t, const std::string*>> ranked;
  ranked.reserve(counts_.size());
  for (const auto& [d, c] : counts_)
    if (d != kOther) ranked.emplace_back(c, &d);  // a domain named "other" is never labelled
  const std::size_t n = std::min(top_n_, ranked.size());
  // Highest count first; on a tie the domain labelled already stays (no flapping), then name.
  std::partial_sort(ranked.begin(), ranked.begin() + static_cast<std::ptrdiff_t>(n), ranked.end(),
                    [&](const auto& a, const auto& b) {
                      if (a.first != b.first) return a.first > b.first;
                      const bool la = labelled_.count(*a.second) > 0;
                      const bool lb = labelled_.count(*b.second) > 0;
                      if (la != lb) return la;
                      return *a.second < *b.second;
                    });
  std::set<std::string> top;
  for (std::size_t i = 0; i < n; ++i) top.insert(*ranked[i].second);
  for (auto it = labelled_.begin(); it != labelled_.end();) {
    if (top.count(it->first)) {
      ++it;
      continue;
    }
    for (const auto& [k, v] : it->second) other_[k] += v;  // "other" only grows
    it = labelled_.erase(it);
  }
  for (const auto& d : top) labelled_.try_emplace(d);  // counts from now on
}

std::vector<std::pair<Labels, double>> DomainCounters::collect() {
  std::lock_guard lk(mu_);
  rerank_locked();
  std::vector<std::pair<Labels, double>> out;
  auto emit = [&](const Key& k, const std::string& domain, std::uint64_t v) {
    out.push_back({Labels{{"transport", k.first},
                          {"outcome", std::string(to_string(k.second))},
                          {"domain", domain}},
                   static_cast<double>(v)});
  };
  for (const auto& [d, m] : labelled_)
    for (const auto& [k, v] : m) emit(k, d, v);
  for (const auto& [k, v] : other_) emit(k, std::string(kOther), v);
  return out;
}

std::vector<std::string> DomainCounters::labelled() const {
  std::lock_guard lk(mu_);
  std::vector<std::string> out;
  for (const auto& [d, m] : labelled_) out.push_back(d);
  return out;
}

DomainCounters& deliveries() {
  static DomainCounters* d = [] {
    static DomainCounters counters;
    global().counter_source(
        "carrier_deliveries_total",
        "Recipient delivery results by transport, outcome (delivered, deferred, bounced, "
        "expired) and destination domain (the 20 busiest domains by count, the rest as "
        "\"other\")",
        [] { return counters.collect(); });
    return &counters;
  }();
  return *d;
}

}  // namespace carrier::metrics
