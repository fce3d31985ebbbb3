// carrier config tests: the [server] keys of sender notices — max_queue_lifetime (RFC 5321
// 4.5.4.1: give up after a period "at least 4-5 days"), delay_warning (0 disables) and
// max_bounces_per_minute — loaded, defaulted, and rejected out of range with their line.
#include <gtest/gtest.h>

#include "test_util.hpp"

namespace carrier::config {
namespace {

using namespace std::chrono_literals;
using test::expect_one_error;
using test::load;

TEST(ConfigNoticeKeys, Loaded) {
  auto l = load("[server]\nmax_queue_lifetime = \"7d\"\ndelay_warning = \"30m\"\n"
                "max_bounces_per_minute = 5\n");
  ASSERT_TRUE(l.config) << test::dump(l.diags);
  EXPECT_EQ(l.config->max_queue_lifetime, 7 * 86400s);
  EXPECT_EQ(l.config->delay_warning, 1800s);
  EXPECT_EQ(l.config->max_bounces_per_minute, 5);
}

TEST(ConfigNoticeKeys, DefaultsWhenAbsent) {
  auto l = load("[server]\nhostname = \"mx.example.test\"\n");
  ASSERT_TRUE(l.config) << test::dump(l.diags);
  EXPECT_EQ(l.config->max_queue_lifetime, 5 * 86400s);
  EXPECT_EQ(l.config->delay_warning, 4 * 3600s);
  EXPECT_EQ(l.config->max_bounces_per_minute, 60);
  EXPECT_EQ(l.config->retry_initial, 300s);
}

TEST(ConfigNoticeKeys, ZeroDelayWarningDisables) {
  auto l = load("[server]\ndelay_warning = 0\n");
  ASSERT_TRUE(l.config) << test::dump(l.diags);
  EXPECT_EQ(l.config->delay_warning, 0s);
}

TEST(ConfigNoticeKeys, OutOfRangeOrWrongType) {
  expect_one_error("[server]\nmax_queue_lifetime = 0\n", 2,
                   "[server] max_queue_lifetime: must be at least 1s");
  expect_one_error("[server]\nmax_queue_lifetime = \"366d\"\n", 2, "must be at most 365d");
  expect_one_error("[server]\n\ndelay_warning = \"4 h\"\n", 3,
                   "[server] delay_warning: invalid duration \"4 h\"");
  expect_one_error("[server]\nmax_bounces_per_minute = 0\n", 2,
                   "[server] max_bounces_per_minute: must be at least 1");
  expect_one_error("[server]\nmax_bounces_per_minute = 100001\n", 2, "must be at most 100000");
  expect_one_error("[server]\nmax_bounces_per_minute = \"60\"\n", 2, "expected an integer");
}

}  // namespace
}  // namespace carrier::config
