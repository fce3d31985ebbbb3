// [dmarc] (docs/configuration.md): defaults, values, errors with their lines.
#include <gtest/gtest.h>

#include "config/config.hpp"

using namespace carrier::config;

TEST(ConfigDmarc, DefaultsAndValues) {
  std::vector<Diagnostic> d;
  auto c = load_string("", "t.toml", d);
  ASSERT_TRUE(c);
  EXPECT_FALSE(c->dmarc_enabled);
  EXPECT_EQ(c->dmarc_action, "tag");
  EXPECT_EQ(c->dmarc_public_suffix_list, "/usr/share/publicsuffix/public_suffix_list.dat");
  c = load_string("[dmarc]\nenabled = true\naction = \"enforce\"\n", "t.toml", d);
  ASSERT_TRUE(c) << (d.empty() ? "" : d[0].str());
  EXPECT_TRUE(c->dmarc_enabled);
  EXPECT_EQ(c->dmarc_action, "enforce");
}

TEST(ConfigDmarc, ErrorsNameTheLine) {
  std::vector<Diagnostic> d;
  auto c = load_string("[dmarc]\nenabled = true\naction = \"reject\"\n", "t.toml", d);
  EXPECT_FALSE(c);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].line, 3);
  d.clear();
  c = load_string("[dmarc]\npublic_suffix_list = \"/nonexistent/list.dat\"\n", "t.toml", d);
  EXPECT_FALSE(c);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].line, 2);
  EXPECT_NE(d[0].message.find("no such file: /nonexistent/list.dat"), std::string::npos) << d[0].message;
  d.clear();
  c = load_string("[dmarc]\npolicy = \"reject\"\n", "t.toml", d);
  EXPECT_FALSE(c);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_NE(d[0].message.find("unknown key 'policy' in [dmarc]"), std::string::npos) << d[0].message;
}
