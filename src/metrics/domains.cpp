// carrier metrics: delivery results by destination domain, top N labelled (see domains.hpp).
// Domain names are UNTRUSTED (from envelopes): normalised and bounded here.
#include "metrics/domains.hpp"

#include <algorithm>
#include <set>

namespace carrier::metrics {

namespace {

constexpr std::size_t kMaxDomain = 253;  // RFC 1035 2.3.4 (text form without the final dot)
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

const char* outcome_name(int o) {
  switch (o) {
    case 0: return "carrier_messages_delivered_total";
    case 1: return "carrier_messages_deferred_total";
    case 2: return "carrier_messages_bounced_total";
    default: return "carrier_messages_expired_total";
  }
}

const char* outcome_help(int o) {
  switch (o) {
    case 0: return "Recipients delivered, by transport and destination domain (top domains, the rest as \"other\").";
    case 1: return "Recipient delivery attempts deferred (temporary failure), by transport and destination domain.";
    case 2: return "Recipients failed permanently (returned to the sender), by transport and destination domain.";
    default: return "Recipients that expired in the queue (max lifetime reached), by transport and destination domain.";
  }
}

}  // namespace

DomainCounters::DomainCounters(std::size_t top_n, std::size_t tracked)
    : top_n_(top_n), tracked_(std::max(tracked, top_n)) {}

const std::vector<std::string>& DomainCounters::family_names() {
  static const std::vector<std::string> names{outcome_name(0), outcome_name(1), outcome_name(2),
                                              outcome_name(3)};
  return names;
}

std::string DomainCounters::transport_label_locked(std::string_view t) {
  for (const auto& x : transports_)
    if (x == t) return x;
  if (transports_.size() >= kMaxTransports || t.empty() || t.size() > 32)
    return std::string(kOther);
  transports_.emplace_back(t);
  return std::string(t);
}

void DomainCounters::add(Outcome o, std::string_view transport, std::string_view domain,
                         std::uint64_t n) {
  std::string d = normalize(domain);
  std::lock_guard lk(mu_);
  // Space-Saving: a domain not counted yet takes the place of the least counted one and
  // inherits its count (an over-estimate by at most that count).
  auto it = counts_.find(d);
  if (it != counts_.end()) {
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
  Key key{static_cast<int>(o), transport_label_locked(transport)};
  auto l = labelled_.find(d);
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

std::vector<DomainCounters::Series> DomainCounters::collect() {
  std::lock_guard lk(mu_);
  rerank_locked();
  std::vector<Series> out;
  for (int o = 0; o < static_cast<int>(kOutcomes); ++o) {
    for (const auto& [d, m] : labelled_)
      for (const auto& [k, v] : m)
        if (k.first == o) out.push_back(Series{static_cast<Outcome>(o), k.second, d, v});
    for (const auto& [k, v] : other_)
      if (k.first == o) out.push_back(Series{static_cast<Outcome>(o), k.second, std::string(kOther), v});
  }
  return out;
}

void DomainCounters::write(TextWriter& w) {
  const auto series = collect();
  static const std::vector<std::string> labels{"transport", "domain"};
  for (int o = 0; o < static_cast<int>(kOutcomes); ++o) {
    w.header(outcome_name(o), outcome_help(o), "counter");
    for (const auto& s : series)
      if (static_cast<int>(s.outcome) == o)
        w.sample(outcome_name(o), labels, {s.transport, s.domain}, s.value);
  }
}

}  // namespace carrier::metrics
