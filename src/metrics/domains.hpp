// carrier metrics: recipient delivery results by transport, outcome and destination domain
// (carrier_deliveries_total) with bounded label cardinality: the top N domains BY COUNT get
// their own "domain" label, every other domain is folded into domain="other"; the transport
// and outcome labels are always kept exact.
// Domains are counted with the Space-Saving algorithm (Metwally, Agrawal, El Abbadi 2005) in
// at most `tracked` entries, so memory stays bounded however many domains mail goes to. While
// fewer than N domains have a label, a new domain gets one at its first result (so with up to
// N destinations every series is exact); after that the ranking, redone at each scrape, swaps
// domains in and out. Counters stay monotonic across re-rankings: a domain labelled by a
// re-ranking counts from that moment (a new series starts at 0); when it leaves, what it
// counted moves into "other" (which only grows) and its series disappears (a counter reset if
// it comes back, which Prometheus' rate() handles).
// Domain names come from mail envelopes (UNTRUSTED): lower-cased, cut to 253 bytes here, and
// escaped by the registry on output. Thread-safe (one mutex; delivery threads call add()).
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "metrics/metrics.hpp"

namespace carrier::metrics {

enum class Outcome { Delivered, Deferred, Bounced, Expired };
std::string_view to_string(Outcome o);

constexpr std::size_t kTopDomains = 20;       // domains with their own label
constexpr std::size_t kTrackedDomains = 512;  // domains counted to find the top ones
constexpr std::size_t kMaxTransports = 16;    // distinct transport labels; more are "other"

class DomainCounters {
 public:
  explicit DomainCounters(std::size_t top_n = kTopDomains, std::size_t tracked = kTrackedDomains);

  void add(std::string_view transport, Outcome o, std::string_view domain, std::uint64_t n = 1);

  // Re-ranks, then returns every series as (labels transport, outcome, domain; value), sorted.
  std::vector<std::pair<Labels, double>> collect();
  // The domains that have their own label now (after the last collect()).
  std::vector<std::string> labelled() const;

 private:
  using Key = std::pair<std::string, Outcome>;  // transport, outcome
  void rerank_locked();
  std::string transport_label_locked(std::string_view t);

  const std::size_t top_n_, tracked_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, std::uint64_t> counts_;  // Space-Saving estimates
  std::map<std::string, std::map<Key, std::uint64_t>> labelled_;
  std::map<Key, std::uint64_t> other_;
  std::vector<std::string> transports_;
};

// The process-wide instance behind carrier_deliveries_total (registered in global() on first
// use; never removed by clear_callbacks()).
DomainCounters& deliveries();

// One recipient's result of one delivery attempt (delivery threads).
inline void count_delivery(std::string_view transport, Outcome o, std::string_view domain) {
  deliveries().add(transport, o, domain);
}

}  // namespace carrier::metrics
