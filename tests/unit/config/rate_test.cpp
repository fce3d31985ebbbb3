#include <gtest/gtest.h>

#include "config/config.hpp"

using namespace carrier::config;

TEST(ConfigRelayRate, GlobalAndPerRoute) {
  std::vector<Diagnostic> d;
  auto c = load_string(R"([relay]
rate_per_destination = "600/m"
[[route]]
domain = "slow.example"
next_hop = "[192.0.2.1]:25"
rate = "1/s"
)", "t.toml", d);
  ASSERT_TRUE(c) << (d.empty() ? "" : d[0].str());
  EXPECT_DOUBLE_EQ(c->relay_rate_per_destination, 10.0);
  ASSERT_EQ(c->routes.size(), 1u);
  EXPECT_DOUBLE_EQ(c->routes[0].rate, 1.0);
}

TEST(ConfigRelayRate, BadRateIsAnErrorWithItsLine) {
  std::vector<Diagnostic> d;
  auto c = load_string("[relay]\nrate_per_destination = \"fast\"\n", "t.toml", d);
  EXPECT_FALSE(c);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].line, 2);
  EXPECT_NE(d[0].message.find("10/s"), std::string::npos) << d[0].message;
}

TEST(ConfigRelayTimeouts, UnsetMeansTheRfcValuesAndBothCanBeSet) {
  std::vector<Diagnostic> d;
  auto c = load_string("[relay]\n", "t.toml", d);
  ASSERT_TRUE(c);
  EXPECT_FALSE(c->relay_command_timeout);
  EXPECT_FALSE(c->relay_data_timeout);
  c = load_string("[relay]\ncommand_timeout = \"20s\"\ndata_timeout = \"2m\"\n", "t.toml", d);
  ASSERT_TRUE(c) << (d.empty() ? "" : d[0].str());
  EXPECT_EQ(c->relay_command_timeout, std::chrono::seconds(20));
  EXPECT_EQ(c->relay_data_timeout, std::chrono::seconds(120));
}

TEST(ConfigRelayTimeouts, ZeroIsAnErrorWithItsLine) {
  std::vector<Diagnostic> d;
  auto c = load_string("[relay]\ncommand_timeout = \"0s\"\n", "t.toml", d);
  EXPECT_FALSE(c);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].line, 2);
}
