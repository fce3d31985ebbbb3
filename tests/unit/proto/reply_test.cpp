// Unit tests for proto/reply: RFC 5321 4.2 / 4.2.1 reply rendering with RFC 2034 enhanced
// status codes.
#include "proto/reply.hpp"

#include <gtest/gtest.h>

using carrier::proto::Reply;

TEST(Reply, Rfc5321_4_2_SingleLineWithEnhancedCode) {
  EXPECT_EQ(Reply(250, "2.1.0", "Ok").render(), "250 2.1.0 Ok\r\n");
}

TEST(Reply, Rfc5321_4_2_SingleLineWithoutEnhancedCode) {
  EXPECT_EQ(Reply(220, "", "mx.example ESMTP").render(), "220 mx.example ESMTP\r\n");
}

TEST(Reply, Rfc5321_4_2_1_MultiLineHyphenOnAllButLast) {
  Reply r(250, "", std::vector<std::string>{"mx.example", "PIPELINING", "SIZE 1000", "8BITMIME"});
  EXPECT_EQ(r.render(), "250-mx.example\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250 8BITMIME\r\n");
}

TEST(Reply, Rfc2034_EnhancedCodeOnEveryLine) {
  Reply r(550, "5.7.1", std::vector<std::string>{"first", "second", "last"});
  EXPECT_EQ(r.render(), "550-5.7.1 first\r\n550-5.7.1 second\r\n550 5.7.1 last\r\n");
}

TEST(Reply, EmptyTextWithStatusHasNoTrailingSpace) {
  EXPECT_EQ(Reply(250, "2.0.0", "").render(), "250 2.0.0\r\n");
}

TEST(Reply, EmptyTextAndStatusIsJustTheCode) {
  EXPECT_EQ(Reply(250, "", "").render(), "250\r\n");
}

TEST(Reply, EmptyMiddleLine) {
  Reply r(250, "", std::vector<std::string>{"a", "", "b"});
  EXPECT_EQ(r.render(), "250-a\r\n250-\r\n250 b\r\n");
  Reply s(250, "2.0.0", std::vector<std::string>{"a", "", "b"});
  EXPECT_EQ(s.render(), "250-2.0.0 a\r\n250-2.0.0\r\n250 2.0.0 b\r\n");
}

TEST(Reply, NoLinesRendersOneEmptyLine) {
  Reply r;
  r.code = 354;
  EXPECT_EQ(r.render(), "354\r\n");
}

TEST(Reply, AppendToAppends) {
  std::string out = "x";
  Reply(221, "2.0.0", "Bye").append_to(out);
  Reply(250, "", "Ok").append_to(out);
  EXPECT_EQ(out, "x221 2.0.0 Bye\r\n250 Ok\r\n");
}

TEST(Reply, Rfc5321_4_2_1_Classes) {
  EXPECT_TRUE(Reply(250, "", "").positive());
  EXPECT_TRUE(Reply(354, "", "").positive());
  EXPECT_TRUE(Reply(451, "4.3.0", "").transient());
  EXPECT_FALSE(Reply(451, "4.3.0", "").permanent());
  EXPECT_TRUE(Reply(554, "5.0.0", "").permanent());
  EXPECT_FALSE(Reply(554, "5.0.0", "").positive());
}
