// Unit tests of sendmail's message input (sendmail/message.hpp): LF/CRLF → CRLF (RFC 5322
// 2.3), the lone-dot rule with and without -i, SMTP dot unstuffing (RFC 5321 4.5.2), -t
// recipient extraction from To/Cc/Bcc and Resent- fields (RFC 5322 3.6.3, 3.6.6), Bcc
// removal, added From:/Date:/Message-ID: (RFC 5322 3.6.1, 3.6.2, 3.6.4), header bounds, and
// input split at every byte.
#include "sendmail/message.hpp"

#include <gtest/gtest.h>

using namespace carrier::sendmail;

namespace {

struct Built {
  bool ok = false;
  std::string content, error;
  std::vector<std::string> rcpts;
  std::size_t consumed = 0;
};

// Feeds `in` in pieces of `step` bytes (0: all at once).
Built build(std::string_view in, BuildOptions o, std::size_t step = 0) {
  MessageBuilder b(o);
  Built r;
  std::size_t pos = 0;
  while (pos < in.size() && !b.ended()) {
    std::size_t n = step ? std::min(step, in.size() - pos) : in.size() - pos;
    std::size_t used = b.feed(in.substr(pos, n), r.content);
    pos += used;
    if (used < n) break;
  }
  r.consumed = pos;
  r.ok = b.finish(r.content);
  r.error = b.error();
  r.rcpts = b.header_recipients();
  return r;
}

BuildOptions plain() {
  BuildOptions o;
  o.date_field = "Date: D\r\n";
  o.message_id_field = "Message-ID: <M@h>\r\n";
  o.from_address = "alice@example.org";
  return o;
}

}  // namespace

TEST(LineConverter, LineEndsBecomeCrlf) {
  LineConverter c(false, false);
  std::string out;
  EXPECT_EQ(c.feed("a\nb\r\nc\rd\n.\nlast", out), 15u);
  c.finish(out);
  EXPECT_EQ(out, "a\r\nb\r\nc\rd\r\n.\r\nlast\r\n");
}

TEST(LineConverter, LoneDotEndsAndNothingAfterIsTaken) {
  for (std::string_view in : {"a\n.\nrest", "a\r\n.\r\nrest"}) {
    LineConverter c(true, false);
    std::string out;
    std::size_t used = c.feed(in, out);
    EXPECT_TRUE(c.ended());
    EXPECT_EQ(in.substr(used), "rest");
    EXPECT_EQ(out, "a\r\n");
  }
  LineConverter c(true, false);  // ".." and ".x" are kept as they are without SMTP
  std::string out;
  c.feed("..\n.x\n. \n", out);
  c.finish(out);
  EXPECT_FALSE(c.ended());
  EXPECT_EQ(out, "..\r\n.x\r\n. \r\n");
}

TEST(LineConverter, SmtpUnstuffing) {  // RFC 5321 4.5.2
  LineConverter c(true, true);
  std::string out;
  std::string_view in = "..a\r\n.\rx\r\n...\r\n.\r\nQUIT\r\n";
  std::size_t used = c.feed(in, out);
  EXPECT_TRUE(c.ended());
  EXPECT_EQ(in.substr(used), "QUIT\r\n");
  EXPECT_EQ(out, ".a\r\n\rx\r\n..\r\n");
}

TEST(LineConverter, FinishCompletesTheLastLine) {
  LineConverter c(true, false);
  std::string out;
  c.feed("a\r", out);
  c.finish(out);
  EXPECT_EQ(out, "a\r\n");
  LineConverter d(true, false);
  std::string o2;
  d.feed("a\n.", o2);  // "." without a line end at EOF is text
  d.finish(o2);
  EXPECT_EQ(o2, "a\r\n.\r\n");
}

TEST(MessageBuilder, AddsMissingFieldsAndConvertsLineEnds) {  // RFC 5322 3.6
  auto r = build("Subject: hi\nTo: bob@example.net\n\nbody\n", plain());
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.content,
            "Subject: hi\r\nTo: bob@example.net\r\nFrom: alice@example.org\r\nDate: D\r\n"
            "Message-ID: <M@h>\r\n\r\nbody\r\n");
}

TEST(MessageBuilder, KeepsExistingFields) {
  auto r = build("from: x@y.z\r\nDATE: today\r\nMessage-Id: <a@b>\r\n\r\nbody\r\n", plain());
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.content, "from: x@y.z\r\nDATE: today\r\nMessage-Id: <a@b>\r\n\r\nbody\r\n");
}

TEST(MessageBuilder, FullNameInFrom) {
  auto o = plain();
  o.full_name = "Alice Liddell";
  auto r = build("Subject: s\n\nb\n", o);
  EXPECT_NE(r.content.find("From: Alice Liddell <alice@example.org>\r\n"), std::string::npos);
  EXPECT_EQ(from_field("a@b.c", "Smith, \"J\""), "From: \"Smith, \\\"J\\\"\" <a@b.c>\r\n");
  EXPECT_EQ(from_field("a@b.c", "J\xc3\xb6rg"), "From: =?UTF-8?B?SsO2cmc=?= <a@b.c>\r\n");  // RFC 2047
  EXPECT_EQ(from_field("a@b.c", "  "), "From: a@b.c\r\n");
  EXPECT_EQ(from_field("a@b.c", "Evil\r\nBcc: x"), "From: \"Evil  Bcc: x\" <a@b.c>\r\n");
  // Long 8-bit names: several encoded-words, each at most 75 characters (RFC 2047 2).
  std::string longname;
  for (int i = 0; i < 40; ++i) longname += "\xc3\xa9";
  std::string f = from_field("a@b.c", longname);
  EXPECT_NE(f.find("?=\r\n =?UTF-8?B?"), std::string::npos);
  std::size_t start = 0;
  while ((start = f.find("=?", start)) != std::string::npos) {
    std::size_t end = f.find("?=", start + 10);
    ASSERT_NE(end, std::string::npos);
    EXPECT_LE(end + 2 - start, 75u);
    start = end + 2;
  }
}

TEST(MessageBuilder, DotEndsInputWithoutDashI) {
  auto r = build("Subject: s\n\nline\n.\nnot part\n", plain());
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.content.substr(r.content.find("\r\n\r\n")), "\r\n\r\nline\r\n");
  EXPECT_EQ(r.consumed, std::string_view("Subject: s\n\nline\n.\n").size());
  auto o = plain();
  o.ignore_dots = true;  // -i / -oi
  auto r2 = build("Subject: s\n\nline\n.\nstill part\n", o);
  EXPECT_EQ(r2.content.substr(r2.content.find("\r\n\r\n")), "\r\n\r\nline\r\n.\r\nstill part\r\n");
}

TEST(MessageBuilder, DotInTheHeaderSectionEndsToo) {
  auto r = build("Subject: s\n.\nrest\n", plain());
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.content,
            "Subject: s\r\nFrom: alice@example.org\r\nDate: D\r\nMessage-ID: <M@h>\r\n\r\n");
}

TEST(MessageBuilder, ExtractRecipientsAndRemoveBcc) {  // RFC 5322 3.6.3
  auto o = plain();
  o.extract_recipients = true;
  auto r = build(
      "To: Bob <bob@example.net>,\n carol@example.net\nCc: team: dave@example.net;\n"
      "Bcc: secret@example.net,\n\tother@example.net\nSubject: x\n\nbody\n",
      o);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.rcpts, (std::vector<std::string>{"bob@example.net", "carol@example.net",
                                               "dave@example.net", "secret@example.net",
                                               "other@example.net"}));
  EXPECT_EQ(r.content.find("secret"), std::string::npos);
  EXPECT_EQ(r.content.find("other@"), std::string::npos);
  EXPECT_EQ(r.content.find("Bcc"), std::string::npos);
  EXPECT_EQ(r.content.substr(0, 52), "To: Bob <bob@example.net>,\r\n carol@example.net\r\nCc: ");
}

TEST(MessageBuilder, BccRemovedEvenWithoutDashT) {
  auto r = build("BCC: hidden@example.net\nSubject: x\n\nb\n", plain());
  EXPECT_EQ(r.content.find("hidden"), std::string::npos);
  EXPECT_TRUE(r.rcpts.empty());
}

TEST(MessageBuilder, ResentFieldsWinWhenPresent) {  // RFC 5322 3.6.6
  auto o = plain();
  o.extract_recipients = true;
  auto r = build("To: orig@example.net\nResent-To: new@example.net\nResent-Bcc: b@example.net\n\nx\n", o);
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.rcpts, (std::vector<std::string>{"new@example.net", "b@example.net"}));
  EXPECT_EQ(r.content.find("Resent-Bcc"), std::string::npos);
  EXPECT_NE(r.content.find("To: orig@example.net"), std::string::npos);
}

TEST(MessageBuilder, BadAddressInHeaderIsAnError) {
  auto o = plain();
  o.extract_recipients = true;
  auto r = build("To: Bob Smith\n\nx\n", o);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.error, "bad address in the To: header: not an address: Bob Smith");
}

TEST(MessageBuilder, BodyWithoutEmptyLineAndMboxFromLine) {
  auto r = build("From alice Mon Jan  1 00:00:00 2024\nSubject: s\nthis is body\nmore\n", plain());
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.content,
            "Subject: s\r\nFrom: alice@example.org\r\nDate: D\r\nMessage-ID: <M@h>\r\n\r\n"
            "this is body\r\nmore\r\n");
}

TEST(MessageBuilder, EmptyInputAndHeaderOnly) {
  auto r = build("", plain());
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.content, "From: alice@example.org\r\nDate: D\r\nMessage-ID: <M@h>\r\n\r\n");
  auto h = build("Subject: no newline at end", plain());
  ASSERT_TRUE(h.ok);
  EXPECT_EQ(h.content.substr(0, 28), "Subject: no newline at end\r\n");
}

TEST(MessageBuilder, SameResultForEverySplit) {
  auto o = plain();
  o.extract_recipients = true;
  const std::string in =
      "To: a@x.test\r\nBcc: b@x.test\r\nSubject: s\r\n\r\nline\r\n..dot\r\nx\ry\n.\r\nafter\n";
  auto whole = build(in, o);
  ASSERT_TRUE(whole.ok);
  for (std::size_t step = 1; step < 8; ++step) {
    auto r = build(in, o, step);
    EXPECT_EQ(r.content, whole.content) << step;
    EXPECT_EQ(r.rcpts, whole.rcpts) << step;
    EXPECT_EQ(r.consumed, whole.consumed) << step;
  }
  EXPECT_EQ(whole.content.substr(whole.content.find("\r\n\r\n")), "\r\n\r\nline\r\n..dot\r\nx\ry\r\n");
}

TEST(MessageBuilder, HeaderSectionIsBounded) {
  auto o = plain();
  o.max_header_bytes = 100;
  auto r = build("Subject: " + std::string(200, 'x') + "\n\nbody\n", o);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.error, "header section too long (limit 100 bytes)");
  // A header line without any line end is bounded as well (no unbounded buffering).
  MessageBuilder b(o);
  std::string out;
  b.feed(std::string(1000, 'x'), out);
  EXPECT_TRUE(b.failed());
  EXPECT_TRUE(out.empty());
  EXPECT_FALSE(b.finish(out));
}

TEST(MessageBuilder, TooManyRecipients) {
  auto o = plain();
  o.extract_recipients = true;
  o.max_recipients = 2;
  auto r = build("To: a@x.y, b@x.y\nCc: c@x.y\n\nb\n", o);
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.error.find("too many"), std::string::npos) << r.error;
}

TEST(MessageBuilder, SmtpDataUnstuffsAndKeepsBcc) {
  auto o = plain();
  o.smtp_data = true;
  o.remove_bcc = false;
  auto r = build("Bcc: b@x.y\r\n\r\n..leading\r\n.\r\n", o);
  ASSERT_TRUE(r.ok);
  EXPECT_NE(r.content.find("Bcc: b@x.y\r\n"), std::string::npos);
  EXPECT_EQ(r.content.substr(r.content.find("\r\n\r\n")), "\r\n\r\n.leading\r\n");
}
