// carrier metrics: delivery results by outcome, transport and destination domain with bounded
// label cardinality. Domains are counted with the Space-Saving algorithm (Metwally, Agrawal,
// El Abbadi 2005) in at most `tracked` entries; at each scrape the `top_n` domains by that
// count get their own label and every other domain is folded into domain="other".
// Counters stay monotonic across re-rankings: a domain's own series counts from the moment it
// entered the top N (a new series starts at 0), and when it leaves, what it counted moves into
// "other" (which only grows) and its series disappears (a counter reset if it comes back).
// Domain names come from mail envelopes (UNTRUSTED): lower-cased, cut to 253 bytes, escaped on
// output by the registry. Thread-safe (one mutex; delivery threads, not the SMTP I/O thread).
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "metrics/registry.hpp"

namespace carrier::metrics {

enum class Outcome { Delivered, Deferred, Bounced, Expired };
constexpr std::size_t kOutcomes = 4;

constexpr std::size_t kTopDomains = 20;       // domains with their own label
constexpr std::size_t kTrackedDomains = 512;  // domains counted to find the top ones
constexpr std::size_t kMaxTransports = 16;    // distinct transport labels; more fold to "other"

class DomainCounters {
 public:
  explicit DomainCounters(std::size_t top_n = kTopDomains, std::size_t tracked = kTrackedDomains);

  void add(Outcome o, std::string_view transport, std::string_view domain, std::uint64_t n = 1);

  struct Series {
    Outcome outcome;
    std::string transport, domain;
    std::uint64_t value;
  };
  // Re-ranks, then returns every series (labelled domains and "other"), sorted by outcome,
  // domain, transport.
  std::vector<Series> collect();
  // Writes carrier_messages_{delivered,deferred,bounced,expired}_total (collect() first).
  void write(TextWriter& w);
  static const std::vector<std::string>& family_names();

 private:
  using Key = std::pair<int, std::string>;  // outcome, transport
  void rerank_locked();
  std::string transport_label_locked(std::string_view t);

  const std::size_t top_n_, tracked_;
  std::mutex mu_;
  std::unordered_map<std::string, std::uint64_t> counts_;  // Space-Saving estimates
  std::map<std::string, std::map<Key, std::uint64_t>> labelled_;
  std::map<Key, std::uint64_t> other_;
  std::vector<std::string> transports_;
};

}  // namespace carrier::metrics
