// carrier metrics tests: carrier_deliveries_total's bounded domain labels — the top N domains
// by count are labelled, the rest fold into "other", transport and outcome stay exact, counts
// are never lost, and every series stays monotonic when the ranking changes.
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <thread>
#include <vector>

#include "exposition.hpp"
#include "metrics/domains.hpp"

namespace carrier::metrics {
namespace {

using Key = std::tuple<std::string, std::string, std::string>;  // transport, outcome, domain

std::map<Key, double> as_map(const std::vector<std::pair<Labels, double>>& series) {
  std::map<Key, double> m;
  for (const auto& [labels, v] : series) {
    std::map<std::string, std::string> l(labels.begin(), labels.end());
    EXPECT_EQ(l.size(), 3u);
    auto [it, fresh] = m.emplace(Key{l["transport"], l["outcome"], l["domain"]}, v);
    EXPECT_TRUE(fresh) << "duplicate series " << l["domain"];
  }
  return m;
}

double total(const std::map<Key, double>& m) {
  double t = 0;
  for (const auto& [k, v] : m) t += v;
  return t;
}

TEST(DomainCounters, TopNByCountAreLabelledTheRestIsOther) {
  DomainCounters d(3, 64);
  // d0 gets 1 message, d1 2, ... d9 10: the top 3 are d9, d8, d7, whatever the order seen.
  for (int i = 0; i < 10; ++i)
    for (int k = 0; k <= i; ++k) d.add("smtp", Outcome::Delivered, "d" + std::to_string(i) + ".test");
  // The first three domains took the free labels at once; the scrape ranks by count.
  EXPECT_EQ(d.labelled(), (std::vector<std::string>{"d0.test", "d1.test", "d2.test"}));
  d.collect();
  EXPECT_EQ(d.labelled(), (std::vector<std::string>{"d7.test", "d8.test", "d9.test"}));
  d.add("smtp", Outcome::Delivered, "d9.test");
  d.add("smtp", Outcome::Bounced, "D8.TEST.");  // case and final dot do not make a new domain
  d.add("local", Outcome::Delivered, "d0.test");
  auto m = as_map(d.collect());
  EXPECT_EQ(m[Key("smtp", "delivered", "d9.test")], 1);
  EXPECT_EQ(m[Key("smtp", "bounced", "d8.test")], 1);
  EXPECT_EQ(m[Key("local", "delivered", "other")], 1);  // transport kept exact in "other"
  // d0-d2 (6, folded in when they lost their labels) and d3-d9 (49, before the ranking).
  EXPECT_EQ(m[Key("smtp", "delivered", "other")], 55);
  EXPECT_EQ(total(m), 58);
  for (const auto& [k, v] : m)
    EXPECT_TRUE(std::get<2>(k) == "other" || std::get<2>(k) == "d7.test" ||
                std::get<2>(k) == "d8.test" || std::get<2>(k) == "d9.test")
        << std::get<2>(k);
}

TEST(DomainCounters, ReRankingKeepsEveryCounterMonotonic) {
  DomainCounters d(2, 64);
  auto bump = [&](const std::string& dom, int n) {
    for (int i = 0; i < n; ++i) d.add("smtp", Outcome::Deferred, dom);
  };
  bump("a.test", 5);
  bump("b.test", 4);
  bump("c.test", 1);  // no free label left: counted in "other"
  auto first = as_map(d.collect());
  EXPECT_EQ(first[Key("smtp", "deferred", "a.test")], 5);  // labelled from its first result
  EXPECT_EQ(first[Key("smtp", "deferred", "other")], 1);
  EXPECT_EQ(d.labelled(), (std::vector<std::string>{"a.test", "b.test"}));
  bump("a.test", 2);
  bump("b.test", 3);
  bump("c.test", 10);  // c overtakes b
  auto second = as_map(d.collect());
  EXPECT_EQ(d.labelled(), (std::vector<std::string>{"a.test", "c.test"}));
  // b's 7 moved to "other"; c starts at 0 as a new series; nothing was lost.
  EXPECT_EQ(second.count(Key("smtp", "deferred", "b.test")), 0u);
  EXPECT_EQ(second[Key("smtp", "deferred", "c.test")], 0);
  EXPECT_EQ(second[Key("smtp", "deferred", "a.test")], 7);
  EXPECT_EQ(second[Key("smtp", "deferred", "other")], 18);
  EXPECT_EQ(total(second), 25);
  // "other" only ever grows.
  EXPECT_GE(second[Key("smtp", "deferred", "other")], first[Key("smtp", "deferred", "other")]);
  bump("c.test", 1);
  auto third = as_map(d.collect());
  EXPECT_EQ(third[Key("smtp", "deferred", "c.test")], 1);
  EXPECT_EQ(third[Key("smtp", "deferred", "other")], second[Key("smtp", "deferred", "other")]);
}

TEST(DomainCounters, MemoryIsBoundedWhateverTheNumberOfDomains) {
  DomainCounters d(5, 50);
  d.add("smtp", Outcome::Delivered, "big.test", 1000);
  d.collect();
  for (int i = 0; i < 20000; ++i) d.add("smtp", Outcome::Delivered, "x" + std::to_string(i) + ".test");
  d.add("smtp", Outcome::Delivered, "big.test");
  auto m = as_map(d.collect());
  EXPECT_LE(m.size(), 6u);  // 5 labelled + other, for one transport and outcome
  EXPECT_EQ(total(m), 21001);
  auto l = d.labelled();
  EXPECT_NE(std::find(l.begin(), l.end(), "big.test"), l.end());
  EXPECT_EQ(m[Key("smtp", "delivered", "big.test")], 1001);  // labelled from its first result
}

TEST(DomainCounters, TransportsAndHostileDomainsAreBounded) {
  DomainCounters d(3, 16);
  for (int i = 0; i < 40; ++i) d.add("t" + std::to_string(i), Outcome::Delivered, "a.test");
  d.add(std::string(100, 't'), Outcome::Delivered, "a.test");
  d.add("smtp", Outcome::Delivered, std::string(5000, 'z'));
  d.add("smtp", Outcome::Delivered, "");
  d.add("smtp", Outcome::Delivered, "other");  // a domain called "other" never gets a label
  d.add("smtp", Outcome::Delivered, "other");
  auto series = d.collect();
  std::set<std::string> transports;
  for (const auto& [labels, v] : series) {
    transports.insert(labels[0].second);
    EXPECT_LE(labels[2].second.size(), 253u);
  }
  EXPECT_LE(transports.size(), kMaxTransports + 1);  // + "other"
  EXPECT_TRUE(transports.count("other"));
  auto m = as_map(series);  // no duplicate series (checked inside)
  EXPECT_EQ(total(m), 45);
}

TEST(DomainCounters, ConcurrentAddsAreAllCounted) {
  DomainCounters d(4, 32);
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([&, t] {
      for (int i = 0; i < 5000; ++i) {
        d.add(t % 2 ? "smtp" : "local", Outcome::Delivered, "d" + std::to_string(i % 7) + ".test");
        if (i % 1000 == 0) d.collect();  // scrapes while delivering
      }
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(total(as_map(d.collect())), 20000);
}

TEST(DomainCounters, ExposedAsCarrierDeliveriesTotal) {
  count_delivery("local", Outcome::Delivered, "Example.TEST");
  count_delivery("local", Outcome::Delivered, "example.test");
  auto p = test::parse_exposition(global().render());
  EXPECT_TRUE(p.errors.empty()) << test::dump_errors(p);
  EXPECT_EQ(p.type["carrier_deliveries_total"], "counter");
  EXPECT_EQ(p.get("carrier_deliveries_total",
                  {{"transport", "local"}, {"outcome", "delivered"}, {"domain", "example.test"}}),
            2.0);
  // clear_callbacks() (the server shutting down) keeps it.
  global().clear_callbacks();
  EXPECT_NE(global().render().find("carrier_deliveries_total"), std::string::npos);
}

}  // namespace
}  // namespace carrier::metrics
