// [spf] configuration: defaults, the three actions, strict values and unknown keys.
#include <gtest/gtest.h>

#include "config/config.hpp"

using namespace carrier::config;

TEST(ConfigSpf, OffByDefaultAndEachActionLoads) {
  std::vector<Diagnostic> d;
  auto c = load_string("", "t.toml", d);
  ASSERT_TRUE(c);
  EXPECT_FALSE(c->spf_enabled);
  EXPECT_EQ(c->spf_action, "tag");
  for (const char* a : {"none", "tag", "quarantine", "reject"}) {
    c = load_string(std::string("[spf]\nenabled = true\naction = \"") + a + "\"\n", "t.toml", d);
    ASSERT_TRUE(c) << (d.empty() ? "" : d[0].str());
    EXPECT_TRUE(c->spf_enabled);
    EXPECT_EQ(c->spf_action, a);
  }
}

TEST(ConfigSpf, BadValuesAndUnknownKeysAreErrorsWithTheirLine) {
  std::vector<Diagnostic> d;
  EXPECT_FALSE(load_string("[spf]\nenabled = true\naction = \"hold\"\n", "t.toml", d));
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].line, 3);
  d.clear();
  EXPECT_FALSE(load_string("[spf]\nenabled = \"yes\"\n", "t.toml", d));
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].line, 2);
  d.clear();
  EXPECT_FALSE(load_string("[spf]\nhelo = true\n", "t.toml", d));
  ASSERT_EQ(d.size(), 1u);
  EXPECT_NE(d[0].message.find("[spf]"), std::string::npos) << d[0].message;
}
