// Unit tests for proto/reply_parser: SMTP replies received from a server (RFC 5321 4.2, 4.2.1,
// 4.5.3.1.5), RFC 2034 / RFC 3463 enhanced status codes, limits, streaming at every split
// point, malformed input, and the EHLO keyword list (RFC 5321 4.1.1.1, RFC 1870 4, RFC 4954 3).
#include "proto/reply_parser.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace carrier::proto {
namespace {

std::vector<Reply> parse_ok(std::string_view in, ReplyLimits limits = {}) {
  ParsedReplies p = parse_replies(in, limits);
  EXPECT_FALSE(p.error) << *p.error;
  EXPECT_EQ(p.rest, 0u);
  return p.replies;
}

Reply parse_one(std::string_view in) {
  auto v = parse_ok(in);
  EXPECT_EQ(v.size(), 1u);
  return v.empty() ? Reply() : v.front();
}

std::string parse_error(std::string_view in, ReplyLimits limits = {}) {
  ParsedReplies p = parse_replies(in, limits);
  return p.error.value_or("(no error)");
}

using Lines = std::vector<std::string>;

// ---------------------------------------------------------------- RFC 5321 4.2 syntax

TEST(ReplyParser, Rfc5321_4_2_SingleLine) {
  Reply r = parse_one("250 OK\r\n");
  EXPECT_EQ(r.code, 250);
  EXPECT_EQ(r.status, "");
  EXPECT_EQ(r.lines, Lines{"OK"});
}

TEST(ReplyParser, Rfc5321_4_2_CodeOnlyLineHasEmptyText) {
  EXPECT_EQ(parse_one("354\r\n").lines, Lines{""});
  EXPECT_EQ(parse_one("250 \r\n").lines, Lines{""});
}

TEST(ReplyParser, Rfc5321_4_2_1_MultiLineUntilSpaceSeparator) {
  Reply r = parse_one("250-mx.example Hello\r\n250-PIPELINING\r\n250-\r\n250 SIZE 1000\r\n");
  EXPECT_EQ(r.code, 250);
  EXPECT_EQ(r.lines, (Lines{"mx.example Hello", "PIPELINING", "", "SIZE 1000"}));
}

TEST(ReplyParser, Rfc5321_4_2_1_EveryLineMustCarryTheSameCode) {
  EXPECT_EQ(parse_error("250-first\r\n251 second\r\n"),
            "reply code changes within a multi-line reply");
  EXPECT_EQ(parse_error("250-first\r\n550 second\r\n"),
            "reply code changes within a multi-line reply");
}

TEST(ReplyParser, Rfc5321_4_2_CodeMustBe2xxTo5xx) {
  EXPECT_EQ(parse_error("199 informational\r\n"), "reply code 1yz is not valid in SMTP");
  EXPECT_EQ(parse_error("100 x\r\n"), "reply code 1yz is not valid in SMTP");
  for (std::string_view bad : {"600 x\r\n", "099 x\r\n", "abc\r\n", "25\r\n", "2 5 0 x\r\n",
                               "\r\n", "\n", " 250 x\r\n", "25a x\r\n", "x250 ok\r\n"})
    EXPECT_TRUE(parse_replies(bad).error.has_value()) << bad;
  for (std::string_view good : {"200 x\r\n", "299 x\r\n", "421 x\r\n", "599 x\r\n", "590 x\r\n"})
    EXPECT_FALSE(parse_replies(good).error.has_value()) << good;
}

TEST(ReplyParser, Rfc5321_4_2_SeparatorMustBeSpaceOrHyphen) {
  EXPECT_EQ(parse_error("250OK\r\n"), "reply code not followed by SP, \"-\" or the line end");
  EXPECT_EQ(parse_error("250\tOK\r\n"), "reply code not followed by SP, \"-\" or the line end");
  EXPECT_EQ(parse_error("2500 OK\r\n"), "reply code not followed by SP, \"-\" or the line end");
}

TEST(ReplyParser, BareLfLineEndsAccepted) {
  auto v = parse_ok("250-a\n250-b\r\n250 c\n220 next\n");
  ASSERT_EQ(v.size(), 2u);
  EXPECT_EQ(v[0].lines, (Lines{"a", "b", "c"}));
  EXPECT_EQ(v[1].code, 220);
}

TEST(ReplyParser, TextKeptByteForByteExceptNul) {
  // A CR inside a line is text; 8-bit text (RFC 6531 3.7.4 replies) is kept.
  EXPECT_EQ(parse_one("250 a\rb\r\n").lines, Lines{"a\rb"});
  EXPECT_EQ(parse_one("250 gr\xC3\xBC\xC3\x9F\r\n").lines, Lines{"gr\xC3\xBC\xC3\x9F"});
  EXPECT_EQ(parse_one("250  two  spaces \r\n").lines, Lines{" two  spaces "});
  EXPECT_EQ(parse_error(std::string_view("250 a\0b\r\n", 9)), "NUL in reply text");
}

// ---------------------------------------------------------------- RFC 2034 / RFC 3463

TEST(ReplyParser, Rfc2034_EnhancedCodeSplitAndStrippedFromEveryLine) {
  Reply r = parse_one("550-5.7.1 first\r\n550-5.7.1 second\r\n550 5.7.1 last\r\n");
  EXPECT_EQ(r.code, 550);
  EXPECT_EQ(r.status, "5.7.1");
  EXPECT_EQ(r.lines, (Lines{"first", "second", "last"}));
}

TEST(ReplyParser, Rfc3463_2_SubjectAndDetailOneToThreeDigits) {
  EXPECT_EQ(parse_one("250 2.0.0 Ok\r\n").status, "2.0.0");
  EXPECT_EQ(parse_one("452 4.5.3 Too many\r\n").status, "4.5.3");
  EXPECT_EQ(parse_one("550 5.123.999 x\r\n").status, "5.123.999");
  EXPECT_EQ(parse_one("451 4.7.10 x\r\n").status, "4.7.10");
  // Not a status code: kept in the text.
  for (std::string_view t : {"250 2.1234.0 x\r\n", "250 2.1.1234 x\r\n", "250 2..0 x\r\n",
                             "250 2.1. x\r\n", "250 2.1.0x tail\r\n", "250 2.1.0.1 x\r\n",
                             "250 2-1-0 x\r\n", "250 .2.1.0 x\r\n", "250 2.a.0 x\r\n"}) {
    Reply r = parse_one(t);
    EXPECT_EQ(r.status, "") << t;
    EXPECT_EQ(r.lines.front(), std::string(t.substr(4, t.size() - 6))) << t;
  }
}

TEST(ReplyParser, Rfc3463_2_ClassMustMatchTheReplyCode) {
  Reply r = parse_one("550 2.1.0 text\r\n");
  EXPECT_EQ(r.status, "");
  EXPECT_EQ(r.lines, Lines{"2.1.0 text"});
  EXPECT_EQ(parse_one("250 5.0.0 x\r\n").status, "");
  EXPECT_EQ(parse_one("450 5.0.0 x\r\n").status, "");
  EXPECT_EQ(parse_one("354 3.0.0 go\r\n").status, "");  // class 3 does not exist
}

TEST(ReplyParser, Rfc2034_StatusAloneLeavesEmptyText) {
  Reply r = parse_one("250 2.0.0\r\n");
  EXPECT_EQ(r.status, "2.0.0");
  EXPECT_EQ(r.lines, Lines{""});
}

TEST(ReplyParser, Rfc2034_OnlyTheFirstLinesStatusIsStripped) {
  Reply r = parse_one("550-5.7.1 a\r\n550-5.7.2 b\r\n550-c\r\n550 5.7.1\r\n");
  EXPECT_EQ(r.status, "5.7.1");
  EXPECT_EQ(r.lines, (Lines{"a", "5.7.2 b", "c", ""}));
  // A status on a later line only: not the reply's status.
  Reply s = parse_one("250-mx.example\r\n250 2.0.0 x\r\n");
  EXPECT_EQ(s.status, "");
  EXPECT_EQ(s.lines, (Lines{"mx.example", "2.0.0 x"}));
}

TEST(ReplyParser, RoundTripsRenderedReplies) {
  const std::vector<Reply> replies = {
      Reply(250, "2.1.0", "Sender ok"),
      Reply(550, "5.7.1", Lines{"one", "two", "three"}),
      Reply(220, "", "mx.example ESMTP"),
      Reply(250, "", Lines{"mx.example", "PIPELINING", "SIZE 100"}),
      Reply(421, "4.4.2", "timeout"),
      Reply(354, "", "go ahead"),
  };
  std::string wire;
  for (const auto& r : replies) r.append_to(wire);
  auto got = parse_ok(wire);
  ASSERT_EQ(got.size(), replies.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].code, replies[i].code);
    EXPECT_EQ(got[i].status, replies[i].status);
    EXPECT_EQ(got[i].lines, replies[i].lines);
  }
}

// ---------------------------------------------------------------- streaming

const char kTranscript[] =
    "220-mx.example ESMTP\r\n220 welcome\r\n"
    "250-mx.example\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250 8BITMIME\r\n"
    "250 2.1.0 Ok\r\n"
    "550-5.1.1 no such user\r\n550 5.1.1 try again\n"
    "354 go\r\n"
    "250\r\n"
    "451 4.3.0 later\r\n";

TEST(ReplyParser, StopsAfterEachCompleteReply) {
  ReplyParser p;
  std::string_view in = "250 a\r\n251 b\r\n";
  auto st = p.feed(in);
  EXPECT_EQ(st.status, ReplyParser::Status::Ready);
  EXPECT_EQ(st.consumed, 7u);
  EXPECT_TRUE(p.idle());
  EXPECT_EQ(p.take().code, 250);
  st = p.feed(in.substr(7));
  EXPECT_EQ(st.status, ReplyParser::Status::Ready);
  EXPECT_EQ(p.take().code, 251);
  EXPECT_EQ(p.take().code, 0);  // nothing more ready
}

TEST(ReplyParser, SplitAtEveryByteBoundaryGivesTheSameReplies) {
  const std::string all = kTranscript;
  const auto whole = parse_ok(all);
  ASSERT_EQ(whole.size(), 7u);
  for (std::size_t cut = 0; cut <= all.size(); ++cut) {
    ReplyParser p;
    std::vector<Reply> got;
    for (std::string_view part : {std::string_view(all).substr(0, cut),
                                  std::string_view(all).substr(cut)}) {
      while (!part.empty()) {
        auto st = p.feed(part);
        ASSERT_NE(st.status, ReplyParser::Status::Error) << cut;
        part.remove_prefix(st.consumed);
        if (st.status == ReplyParser::Status::Ready) got.push_back(p.take());
      }
    }
    ASSERT_EQ(got.size(), whole.size()) << "cut at " << cut;
    for (std::size_t i = 0; i < got.size(); ++i) {
      EXPECT_EQ(got[i].code, whole[i].code) << cut;
      EXPECT_EQ(got[i].status, whole[i].status) << cut;
      EXPECT_EQ(got[i].lines, whole[i].lines) << cut;
    }
    EXPECT_TRUE(p.idle());
  }
}

TEST(ReplyParser, ByteByByteGivesTheSameReplies) {
  const std::string all = kTranscript;
  const auto whole = parse_ok(all);
  ReplyParser p;
  std::vector<Reply> got;
  for (char c : all) {
    auto st = p.feed(std::string_view(&c, 1));
    ASSERT_EQ(st.consumed, 1u);
    if (st.status == ReplyParser::Status::Ready) got.push_back(p.take());
  }
  ASSERT_EQ(got.size(), whole.size());
  for (std::size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i].lines, whole[i].lines);
  EXPECT_EQ(whole[3].status, "5.1.1");
  EXPECT_EQ(whole[3].lines, (Lines{"no such user", "try again"}));
}

TEST(ReplyParser, IncompleteReplyIsNotReady) {
  ReplyParser p;
  EXPECT_TRUE(p.idle());
  auto st = p.feed("250-first\r\n250 sec");
  EXPECT_EQ(st.status, ReplyParser::Status::NeedMore);
  EXPECT_EQ(st.consumed, 18u);
  EXPECT_FALSE(p.idle());
  st = p.feed("ond\r");
  EXPECT_EQ(st.status, ReplyParser::Status::NeedMore);
  st = p.feed("\n");
  EXPECT_EQ(st.status, ReplyParser::Status::Ready);
  EXPECT_EQ(p.take().lines, (Lines{"first", "second"}));
  ParsedReplies pr = parse_replies("250 a\r\n250-b\r\n");
  EXPECT_EQ(pr.replies.size(), 1u);
  EXPECT_EQ(pr.rest, 7u);
}

// ---------------------------------------------------------------- limits

TEST(ReplyParser, Rfc5321_4_5_3_1_5_LineLimitIsLiberal4096) {
  // 4096 octets including CRLF pass (far beyond the RFC's 512); one more is refused.
  const std::string ok = "250 " + std::string(4096 - 6, 'x') + "\r\n";
  ASSERT_EQ(ok.size(), 4096u);
  EXPECT_EQ(parse_one(ok).lines.front().size(), 4090u);
  const std::string lf = "250 " + std::string(4096 - 5, 'x') + "\n";
  EXPECT_FALSE(parse_replies(lf).error.has_value());
  const std::string over = "250 " + std::string(4096 - 5, 'x') + "\r\n";
  EXPECT_EQ(parse_error(over), "reply line longer than 4096 octets");
}

TEST(ReplyParser, OverlongLineFailsBeforeItsEndArrives) {
  ReplyParser p;
  auto st = p.feed(std::string(4095, '2'));
  EXPECT_EQ(st.status, ReplyParser::Status::NeedMore);  // could still end with LF: 4096
  st = p.feed("5");
  EXPECT_EQ(st.status, ReplyParser::Status::Error);
  EXPECT_TRUE(p.failed());
}

TEST(ReplyParser, AtMost100LinesPerReply) {
  std::string ok;
  for (int i = 0; i < 99; ++i) ok += "250-line\r\n";
  ok += "250 last\r\n";
  EXPECT_EQ(parse_one(ok).lines.size(), 100u);
  std::string over;
  for (int i = 0; i < 100; ++i) over += "250-line\r\n";
  over += "250 last\r\n";
  EXPECT_EQ(parse_error(over), "reply has more than 100 lines");
}

TEST(ReplyParser, CustomLimits) {
  ReplyLimits l;
  l.max_line = 16;
  l.max_lines = 2;
  EXPECT_FALSE(parse_replies("250 0123456789\r\n", l).error);    // 16 octets
  EXPECT_TRUE(parse_replies("250 0123456789a\r\n", l).error);    // 17
  EXPECT_FALSE(parse_replies("250-a\r\n250 b\r\n", l).error);
  EXPECT_TRUE(parse_replies("250-a\r\n250-b\r\n250 c\r\n", l).error);
}

TEST(ReplyParser, ErrorIsStickyUntilReset) {
  ReplyParser p;
  auto st = p.feed("garbage\r\n250 ok\r\n");
  EXPECT_EQ(st.status, ReplyParser::Status::Error);
  EXPECT_EQ(st.consumed, 9u);
  EXPECT_FALSE(p.error().empty());
  st = p.feed("250 ok\r\n");
  EXPECT_EQ(st.status, ReplyParser::Status::Error);
  EXPECT_EQ(st.consumed, 0u);
  EXPECT_FALSE(p.idle());
  p.reset();
  EXPECT_TRUE(p.idle());
  st = p.feed("250 ok\r\n");
  EXPECT_EQ(st.status, ReplyParser::Status::Ready);
  EXPECT_EQ(p.take().lines, Lines{"ok"});
}

TEST(ReplyParser, GarbageIsAnErrorNeverACrash) {
  const std::vector<std::string> garbage = {
      std::string("\x00\x01\x02\xff", 4), "HTTP/1.1 200 OK\r\n", "+OK POP3 ready\r\n",
      "* OK IMAP\r\n", "250", "-250 x\r\n", "250-\r\n\r\n", std::string(10000, '\n'),
      "250-a\r\n250-b\r\nxyz\r\n", "\xEF\xBB\xBF" "220 bom\r\n"};
  for (const auto& g : garbage) {
    ParsedReplies p = parse_replies(g);
    EXPECT_TRUE(p.error.has_value() || p.rest > 0) << g.substr(0, 20);
  }
}

// ---------------------------------------------------------------- EHLO

TEST(ParseEhlo, Rfc5321_4_1_1_1_AllKnownKeywords) {
  Reply r = parse_one(
      "250-mx.example Hello client [127.0.0.1]\r\n250-PIPELINING\r\n250-SIZE 35882577\r\n"
      "250-8BITMIME\r\n250-SMTPUTF8\r\n250-CHUNKING\r\n250-BINARYMIME\r\n250-DSN\r\n"
      "250-STARTTLS\r\n250-ENHANCEDSTATUSCODES\r\n250-AUTH PLAIN LOGIN\r\n250 HELP\r\n");
  ServerCaps c = parse_ehlo(r);
  EXPECT_EQ(c.greeting_name, "mx.example");
  EXPECT_TRUE(c.pipelining && c.eightbitmime && c.smtputf8 && c.chunking && c.binarymime &&
              c.dsn && c.starttls && c.enhancedstatuscodes && c.size_offered);
  EXPECT_EQ(c.size, 35882577u);
  EXPECT_EQ(c.auth, (Lines{"PLAIN", "LOGIN"}));
}

TEST(ParseEhlo, GreetingLineOnlyMeansNoExtensions) {
  ServerCaps c = parse_ehlo(parse_one("250 mx.example\r\n"));
  EXPECT_EQ(c.greeting_name, "mx.example");
  EXPECT_FALSE(c.pipelining || c.eightbitmime || c.smtputf8 || c.chunking || c.binarymime ||
               c.dsn || c.starttls || c.enhancedstatuscodes || c.size_offered);
  EXPECT_FALSE(c.size);
  EXPECT_TRUE(c.auth.empty());
  EXPECT_FALSE(parse_ehlo(Reply()).pipelining);
}

TEST(ParseEhlo, Rfc5321_2_4_KeywordsAreCaseInsensitive) {
  ServerCaps c = parse_ehlo(parse_one(
      "250-mx\r\n250-pipelining\r\n250-8bitmime\r\n250-Size 10\r\n250-starttls\r\n250 dsn\r\n"));
  EXPECT_TRUE(c.pipelining && c.eightbitmime && c.starttls && c.dsn);
  EXPECT_EQ(c.size, 10u);
}

TEST(ParseEhlo, FirstLineIsNeverAKeyword) {
  ServerCaps c = parse_ehlo(parse_one("250-PIPELINING\r\n250 DSN\r\n"));
  EXPECT_FALSE(c.pipelining);
  EXPECT_TRUE(c.dsn);
  EXPECT_EQ(c.greeting_name, "PIPELINING");
}

TEST(ParseEhlo, KeywordsMatchWholeWordsOnly) {
  ServerCaps c = parse_ehlo(parse_one(
      "250-mx\r\n250-PIPELININGX\r\n250-DSNX\r\n250-X-STARTTLS\r\n250 8BITMIMEY\r\n"));
  EXPECT_FALSE(c.pipelining || c.dsn || c.starttls || c.eightbitmime);
}

TEST(ParseEhlo, Rfc1870_4_SizeParameter) {
  auto size_of = [](std::string line) {
    return parse_ehlo(parse_one("250-mx\r\n250 " + line + "\r\n"));
  };
  EXPECT_TRUE(size_of("SIZE").size_offered);
  EXPECT_FALSE(size_of("SIZE").size);                       // no limit announced
  EXPECT_FALSE(size_of("SIZE 0").size);                     // 0: no fixed maximum
  EXPECT_EQ(size_of("SIZE 1").size, 1u);
  EXPECT_EQ(size_of("SIZE 18446744073709551615").size, UINT64_MAX);
  EXPECT_FALSE(size_of("SIZE 18446744073709551616").size);  // overflow: ignored
  EXPECT_FALSE(size_of("SIZE 12abc").size);
  EXPECT_FALSE(size_of("SIZE -5").size);
  EXPECT_EQ(size_of("SIZE  2048").size, 2048u);
  EXPECT_EQ(size_of("SIZE 2048 extra").size, 2048u);
  EXPECT_TRUE(size_of("SIZE 12abc").size_offered);
  EXPECT_FALSE(size_of("SIZEX 5").size_offered);
}

TEST(ParseEhlo, Rfc4954_AuthMechanisms) {
  auto auth_of = [](std::string lines) { return parse_ehlo(parse_one("250-mx\r\n" + lines)).auth; };
  EXPECT_EQ(auth_of("250 AUTH plain Login CRAM-MD5 SCRAM-SHA-256\r\n"),
            (Lines{"PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-256"}));
  // Old "AUTH=" form, duplicates, and invalid names (over 20 chars, bad characters) skipped.
  EXPECT_EQ(auth_of("250-AUTH=LOGIN PLAIN\r\n250 AUTH PLAIN  X$Y ABCDEFGHIJKLMNOPQRSTU XOAUTH2\r\n"),
            (Lines{"LOGIN", "PLAIN", "XOAUTH2"}));
  std::string many = "250 AUTH";
  for (int i = 0; i < 40; ++i) many += " M" + std::to_string(i);
  auto v = auth_of(many + "\r\n");
  EXPECT_EQ(v.size(), kMaxAuthMechanisms);
  EXPECT_EQ(v.front(), "M0");
}

}  // namespace
}  // namespace carrier::proto
