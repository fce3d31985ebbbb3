#include "base/rate.hpp"

#include <gtest/gtest.h>

using carrier::parse_rate;

TEST(Rate, Units) {
  EXPECT_DOUBLE_EQ(*parse_rate("10/s"), 10.0);
  EXPECT_DOUBLE_EQ(*parse_rate("600/m"), 10.0);
  EXPECT_DOUBLE_EQ(*parse_rate("3600/h"), 1.0);
  EXPECT_DOUBLE_EQ(*parse_rate("0"), 0.0);
  EXPECT_DOUBLE_EQ(*parse_rate(""), 0.0);
}

TEST(Rate, Malformed) {
  for (const char* bad : {"10", "/s", "10/", "10/d", "10/ss", "-1/s", "1.5/s", "x/s", "10 /s",
                          "99999999999/s"})
    EXPECT_FALSE(parse_rate(bad).has_value()) << bad;
}
