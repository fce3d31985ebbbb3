// carrier metrics tests: the Prometheus text exposition format 0.0.4 (HELP/TYPE lines, label
// escaping, histogram buckets/_sum/_count), bounded label cardinality, and concurrent counting.
#include <gtest/gtest.h>

#include <regex>
#include <sstream>
#include <thread>

#include "metrics/metrics.hpp"

namespace carrier::metrics {
namespace {

// Parses the exposition back: sample lines "name{labels} value" into a map.
std::map<std::string, double> parse(const std::string& text) {
  std::map<std::string, double> out;
  std::istringstream in(text);
  std::string line;
  static const std::regex sample(R"(^([a-zA-Z_:][a-zA-Z0-9_:]*(\{.*\})?) (\S+)$)");
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::smatch m;
    EXPECT_TRUE(std::regex_match(line, m, sample)) << line;
    if (m.size() == 4) out[m[1]] = m[3] == "+Inf" ? 1e300 : std::stod(m[3]);
  }
  return out;
}

TEST(Metrics, TextFormatCountersFamiliesAndHistograms) {
  Registry r;
  r.counter("t_plain_total", "plain").inc(3);
  auto& f = r.counter_family("t_results_total", "by result", {"result", "domain"});
  f.with({"ok", "example.org"}).inc();
  f.with({"ok", "example.org"}).inc();
  f.with({"bad", "quote\"back\\slash\nline"}).inc();
  auto& h = r.histogram("t_seconds", "latency", {0.1, 1});
  h.observe(0.05);
  h.observe(0.5);
  h.observe(5);
  r.gauge_callback("t_gauge", "cb", [] {
    return std::vector<std::pair<Labels, double>>{{{{"state", "held"}}, 2}};
  });
  const std::string text = r.render();
  EXPECT_NE(text.find("# HELP t_plain_total plain\n# TYPE t_plain_total counter\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE t_seconds histogram\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE t_gauge gauge\n"), std::string::npos);
  auto m = parse(text);
  EXPECT_EQ(m["t_plain_total"], 3);
  EXPECT_EQ(m["t_results_total{result=\"ok\",domain=\"example.org\"}"], 2);
  EXPECT_EQ(m["t_results_total{result=\"bad\",domain=\"quote\\\"back\\\\slash\\nline\"}"], 1);
  EXPECT_EQ(m["t_seconds_bucket{le=\"0.1\"}"], 1);
  EXPECT_EQ(m["t_seconds_bucket{le=\"1\"}"], 2);
  EXPECT_EQ(m["t_seconds_bucket{le=\"+Inf\"}"], 3);
  EXPECT_EQ(m["t_seconds_count"], 3);
  EXPECT_NEAR(m["t_seconds_sum"], 5.55, 1e-6);
  EXPECT_EQ(m["t_gauge{state=\"held\"}"], 2);
}

TEST(Metrics, LabelCardinalityIsBounded) {
  Registry r;
  auto& f = r.counter_family("t_domains_total", "d", {"domain"}, 3);
  for (int i = 0; i < 100; ++i) f.with({"d" + std::to_string(i) + ".test"}).inc();
  auto snap = f.snapshot();
  EXPECT_LE(snap.size(), 4u);  // 3 series, then "other"
  std::uint64_t total = 0, other = 0;
  for (auto& [k, v] : snap) {
    total += v;
    if (k[0] == "other") other = v;
  }
  EXPECT_EQ(total, 100u);
  EXPECT_EQ(other, 97u);
}

TEST(Metrics, ConcurrentIncrementsAreAllCounted) {
  Registry r;
  auto& c = r.counter("t_c_total", "c");
  auto& f = r.counter_family("t_f_total", "f", {"k"});
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) {
        c.inc();
        f.with({i % 2 ? "a" : "b"}).inc();
      }
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(c.value(), 40000u);
  auto m = parse(r.render());
  EXPECT_EQ(m["t_f_total{k=\"a\"}"] + m["t_f_total{k=\"b\"}"], 40000);
}

}  // namespace
}  // namespace carrier::metrics
