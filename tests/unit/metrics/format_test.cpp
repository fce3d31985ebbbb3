// carrier metrics tests: the text format 0.0.4 read back with a strict parser (exposition.hpp):
// HELP/TYPE before samples, label value escaping (\\ \" \n) and UTF-8 sanitising of untrusted
// label values, HELP escaping, histogram buckets/_sum/_count.
#include <gtest/gtest.h>

#include <cmath>

#include "exposition.hpp"
#include "metrics/metrics.hpp"

namespace carrier::metrics {
namespace {

TEST(MetricsFormat, EverythingParsesBackStrictly) {
  Registry r;
  r.counter("t_plain_total", "plain \\ help\nsecond line").inc(7);
  auto& f = r.counter_family("t_f_total", "family", {"domain", "transport"});
  f.with({"a\"b\\c\nd", "smtp"}).inc(2);
  auto& h = r.histogram("t_h_seconds", "hist", {0.5, 1, 2});
  for (double v : {0.1, 0.5, 0.7, 1.5, 3.0}) h.observe(v);
  r.gauge_callback("t_g", "gauge", [] {
    return std::vector<std::pair<Labels, double>>{{{{"state", "held"}}, 1.5}, {{{"state", "active"}}, 0}};
  });
  auto p = test::parse_exposition(r.render());
  ASSERT_TRUE(p.errors.empty()) << test::dump_errors(p);
  EXPECT_EQ(p.help["t_plain_total"], "plain \\ help\nsecond line");
  EXPECT_EQ(p.type["t_h_seconds"], "histogram");
  EXPECT_EQ(p.get("t_plain_total"), 7.0);
  EXPECT_EQ(p.get("t_f_total", {{"domain", "a\"b\\c\nd"}, {"transport", "smtp"}}), 2.0);
  // le is "less than or equal": 0.5 falls in the 0.5 bucket.
  EXPECT_EQ(p.get("t_h_seconds_bucket", {{"le", "0.5"}}), 2.0);
  EXPECT_EQ(p.get("t_h_seconds_bucket", {{"le", "1"}}), 3.0);
  EXPECT_EQ(p.get("t_h_seconds_bucket", {{"le", "2"}}), 4.0);
  EXPECT_EQ(p.get("t_h_seconds_bucket", {{"le", "+Inf"}}), 5.0);
  EXPECT_EQ(p.get("t_h_seconds_count"), 5.0);
  EXPECT_NEAR(*p.get("t_h_seconds_sum"), 5.8, 1e-6);
  EXPECT_EQ(p.get("t_g", {{"state", "held"}}), 1.5);
}

TEST(MetricsFormat, LabelValuesAreEscapedAndMadeValidUtf8) {
  EXPECT_EQ(escape_label("plain.example"), "plain.example");
  EXPECT_EQ(escape_label("q\"b\\n\nx"), "q\\\"b\\\\n\\nx");
  EXPECT_EQ(escape_label("b\xC3\xBC" "cher.example"), "b\xC3\xBC" "cher.example");  // ü kept
  EXPECT_EQ(escape_label("\xF0\x9F\x93\xA7"), "\xF0\x9F\x93\xA7");             // 4-byte kept
  const std::string fffd = "\xEF\xBF\xBD";
  EXPECT_EQ(escape_label("a\xFF" "b"), "a" + fffd + "b");          // never valid
  EXPECT_EQ(escape_label("\xC0\xAF"), fffd + fffd);                // overlong '/'
  EXPECT_EQ(escape_label("\xED\xA0\x80"), fffd + fffd + fffd);     // surrogate
  EXPECT_EQ(escape_label("x\xE2\x82"), "x" + fffd + fffd);         // cut sequence
  EXPECT_EQ(escape_help("a\\b\nc\"d"), "a\\\\b\\nc\"d");
}

TEST(MetricsFormat, HostileLabelValueStillGivesAValidScrape) {
  Registry r;
  r.counter_family("t_d_total", "d", {"domain"}).with({std::string("x\"}\n# TYPE t_d_total gauge\n\xFF")}).inc();
  auto p = test::parse_exposition(r.render());
  EXPECT_TRUE(p.errors.empty()) << test::dump_errors(p);
  ASSERT_EQ(p.samples.size(), 1u);
  EXPECT_EQ(p.type["t_d_total"], "counter");
}

TEST(MetricsFormat, HistogramIgnoresNaN) {
  Registry r;
  auto& h = r.histogram("t_nan_seconds", "h", {1});
  h.observe(NAN);
  h.observe(0.5);
  auto s = h.snapshot();
  EXPECT_EQ(s.count, 1u);
  EXPECT_EQ(s.cumulative.front(), 1u);
}

TEST(MetricsFormat, ClearCallbacksRemovesCallbacksOnly) {
  Registry r;
  r.counter("t_keep_total", "k").inc();
  r.gauge_callback("t_cb", "cb", [] { return std::vector<std::pair<Labels, double>>{{{}, 1}}; });
  r.counter_source("t_src_total", "src", [] { return std::vector<std::pair<Labels, double>>{{{}, 3}}; });
  r.clear_callbacks();
  auto p = test::parse_exposition(r.render());
  EXPECT_TRUE(p.errors.empty()) << test::dump_errors(p);
  EXPECT_EQ(p.get("t_keep_total"), 1.0);
  EXPECT_EQ(p.get("t_src_total"), 3.0);
  EXPECT_FALSE(p.type.count("t_cb"));
}

}  // namespace
}  // namespace carrier::metrics
