// [rate_limit] rules and [limits] min_free_space (docs/configuration.md, docs/defence.md).
#include <gtest/gtest.h>

#include "config/config.hpp"
#include "test_util.hpp"

using namespace carrier::config;
using carrier::config::test::expect_one_error;

TEST(ConfigRateLimit, RulesAreReadInOrderWithDefaults) {
  std::vector<Diagnostic> d;
  auto c = load_string(R"([rate_limit]
[[rate_limit.rule]]
key = "ip"
messages = 100
window = "1h"
[[rate_limit.rule]]
key = "user"
recipients = 500
[[rate_limit.rule]]
key = "sender_domain"
messages = 10
recipients = 20
window = "10m"
)", "t.toml", d);
  ASSERT_TRUE(c) << (d.empty() ? "" : d[0].str());
  ASSERT_EQ(c->rate_rules.size(), 3u);
  EXPECT_EQ(c->rate_rules[0].key, "ip");
  EXPECT_EQ(c->rate_rules[0].messages, 100u);
  EXPECT_EQ(c->rate_rules[0].recipients, 0u);
  EXPECT_EQ(c->rate_rules[1].key, "user");
  EXPECT_EQ(c->rate_rules[1].window, std::chrono::seconds(3600));  // default window
  EXPECT_EQ(c->rate_rules[2].window, std::chrono::seconds(600));
}

TEST(ConfigRateLimit, NoRulesByDefault) {
  std::vector<Diagnostic> d;
  auto c = load_string("", "t.toml", d);
  ASSERT_TRUE(c);
  EXPECT_TRUE(c->rate_rules.empty());
  EXPECT_EQ(c->limits.min_free_space, 0u);
}

TEST(ConfigRateLimit, ARuleWithoutALimitIsAnError) {
  expect_one_error("[[rate_limit.rule]]\nkey = \"ip\"\nwindow = \"1m\"\n", 1, "needs messages or recipients");
}

TEST(ConfigRateLimit, UnknownKeyKindAndUnknownFieldsAreErrors) {
  expect_one_error("[[rate_limit.rule]]\nkey = \"country\"\nmessages = 1\n", 2, "key");
  expect_one_error("[[rate_limit.rule]]\nkey = \"ip\"\nmessages = 1\nburst = 3\n", 4, "burst");
}

TEST(ConfigLimits, MinFreeSpaceIsASize) {
  std::vector<Diagnostic> d;
  auto c = load_string("[limits]\nmin_free_space = \"200M\"\n", "t.toml", d);
  ASSERT_TRUE(c) << (d.empty() ? "" : d[0].str());
  EXPECT_EQ(c->limits.min_free_space, 200ull << 20);
  expect_one_error("[limits]\nmin_free_space = \"lots\"\n", 2, "invalid size");
}
