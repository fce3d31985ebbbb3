// [[milter]] configuration: addresses (inet IPv4/IPv6, unix), defaults, on_failure, timeout
// bounds, and strict errors with their line.
#include <gtest/gtest.h>

#include "config/config.hpp"

using namespace carrier::config;

TEST(ConfigMilter, EntriesInOrderWithDefaults) {
  std::vector<Diagnostic> d;
  auto c = load_string(
      "[[milter]]\naddress = \"inet:127.0.0.1:11332\"\n"
      "[[milter]]\nname = \"dkim\"\naddress = \"unix:/run/opendkim.sock\"\non_failure = \"accept\"\ntimeout = \"5s\"\n"
      "[[milter]]\naddress = \"inet:[::1]:8891\"\n",
      "t.toml", d);
  ASSERT_TRUE(c) << (d.empty() ? "" : d[0].str());
  ASSERT_EQ(c->milters.size(), 3u);
  EXPECT_EQ(c->milters[0].name, "inet:127.0.0.1:11332");
  EXPECT_EQ(c->milters[0].host, "127.0.0.1");
  EXPECT_EQ(c->milters[0].port, 11332);
  EXPECT_FALSE(c->milters[0].accept_on_failure);
  EXPECT_EQ(c->milters[0].timeout.count(), 30);
  EXPECT_EQ(c->milters[1].name, "dkim");
  EXPECT_EQ(c->milters[1].host, "/run/opendkim.sock");
  EXPECT_EQ(c->milters[1].port, 0);
  EXPECT_TRUE(c->milters[1].accept_on_failure);
  EXPECT_EQ(c->milters[1].timeout.count(), 5);
  EXPECT_EQ(c->milters[2].host, "::1");
  EXPECT_EQ(c->milters[2].port, 8891);
  EXPECT_TRUE(load_string("", "t.toml", d)->milters.empty());
}

TEST(ConfigMilter, BadValuesAreErrorsWithTheirLine) {
  for (const char* bad : {"address = \"inet:localhost:11332\"", "address = \"inet:127.0.0.1:0\"",
                          "address = \"inet:127.0.0.1\"", "address = \"unix:relative.sock\"",
                          "address = \"tcp:127.0.0.1:1\"", "timeout = \"101s\"", "timeout = 0",
                          "on_failure = \"reject\"", "nmae = \"x\""}) {
    std::vector<Diagnostic> d;
    std::string text = std::string("[[milter]]\n") + bad + "\n";
    if (std::string(bad).rfind("address", 0) != 0) text += "address = \"inet:127.0.0.1:1\"\n";
    EXPECT_FALSE(load_string(text, "t.toml", d)) << bad;
    ASSERT_FALSE(d.empty()) << bad;
    EXPECT_EQ(d[0].line, 2) << bad << ": " << d[0].str();
  }
  std::vector<Diagnostic> d;
  EXPECT_FALSE(load_string("[[milter]]\nname = \"x\"\n", "t.toml", d));
  ASSERT_EQ(d.size(), 1u);
  EXPECT_NE(d[0].message.find("missing required key 'address'"), std::string::npos);
}
