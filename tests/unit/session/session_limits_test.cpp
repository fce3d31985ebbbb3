// carrier session tests: input limits and MAIL/RCPT parameters. Limits: recipients (RFC 5321
// 4.5.3.1.8, 4.5.3.1.10: 452 4.5.3, not a client error), the error limit (421 4.7.0, RFC 5321
// 3.8 / 4.2.2), command line length (4.5.3.1.4, 4.2.2: 500 5.5.6), timeouts (4.5.3.2: 421
// 4.4.2) and messages per connection. Parameters: SIZE (RFC 1870 4, 6.1), parameters after
// HELO (RFC 5321 4.1.1.1, 4.1.1.11: 555 5.5.4), SMTPUTF8 (RFC 6531 3.4, 3.5: 553 5.6.7,
// protocol UTF8SMTP per RFC 6531 4.3), DSN (RFC 3461 4.1-4.4), BODY (RFC 6152, RFC 3030 3).
#include <gtest/gtest.h>

#include <string>

#include "session_harness.hpp"

namespace carrier::session::test {
namespace {

// ---------------------------------------------------------------- limits

TEST_F(SessionTest, TooManyRecipientsIs452AndNotAnError) {  // RFC 5321 4.5.3.1.8/4.5.3.1.10
  Config c = test_config();
  c.limits.max_recipients = 2;
  c.limits.max_errors = 3;
  Smtp t(c);
  t.greet();
  transcript(t, {
      {"MAIL FROM:<a@b.example>", "250 2.1.0"},
      {"RCPT TO:<alice@localhost>", "250 2.1.5"},
      {"RCPT TO:<bob@localhost>", "250 2.1.5"},
      {"RCPT TO:<carol@localhost>", "452 4.5.3 Error: too many recipients"},
      {"RCPT TO:<carol@localhost>", "452 4.5.3"},
      {"RCPT TO:<carol@localhost>", "452 4.5.3"},
      {"RCPT TO:<carol@localhost>", "452 4.5.3"},
  });
  EXPECT_EQ(t.s().errors(), 0) << "RFC 5321 4.5.3.1.10: the client retries these later";
  EXPECT_EQ(t.want(), Want::Line);
  EXPECT_EQ(t.env().recipients.size(), 2u);
  // The message goes on with the recipients accepted so far.
  EXPECT_EQ(t.C("DATA"), "");
  EXPECT_EQ(t.want(), Want::OpenMessage);
}

TEST_F(SessionTest, RecipientLimitIsPerTransaction) {  // RFC 5321 4.5.3.1.8
  Config c = test_config();
  c.limits.max_recipients = 1;
  Smtp t(c);
  t.greet();
  transcript(t, {
      {"MAIL FROM:<a@b.example>", "250 2.1.0"},
      {"RCPT TO:<alice@localhost>", "250 2.1.5"},
      {"RCPT TO:<bob@localhost>", "452 4.5.3"},
      {"RSET", "250 2.0.0"},
      {"MAIL FROM:<a@b.example>", "250 2.1.0"},
      {"RCPT TO:<bob@localhost>", "250 2.1.5"},
  });
}

TEST_F(SessionTest, TooManyErrorsCloses) {  // RFC 5321 4.2.2 / 3.8: 421 and close
  Config c = test_config();
  c.limits.max_errors = 3;
  Smtp t(c);
  t.greet();
  transcript(t, {
      {"XYZZY", "500 5.5.1"},
      {"MAIL FROM:a@b.example", "501 5.1.7"},
  });
  EXPECT_EQ(t.want(), Want::Line);
  EXPECT_EQ(t.s().errors(), 2);
  const std::string got = t.C("RCPT TO:<alice@localhost>");  // 503: the third error
  auto lines = split_lines(got);
  ASSERT_EQ(lines.size(), 2u) << got;
  EXPECT_EQ(lines[0].substr(0, 9), "503 5.5.1");
  EXPECT_EQ(lines[1], "421 4.7.0 mx.carrier.test Error: too many errors, closing connection");
  EXPECT_EQ(t.want(), Want::Close);
  EXPECT_EQ(t.state(), State::Closed);
  EXPECT_EQ(t.C("NOOP"), "");
}

TEST_F(SessionTest, RejectedRecipientsCountAsErrors) {  // (hard error limit, RFC 5321 3.8)
  Config c = test_config();
  c.limits.max_errors = 2;
  Smtp t(c);
  t.greet();
  t.C("MAIL FROM:<a@b.example>");
  EXPECT_TRUE(reply_is(t.C("RCPT TO:<x@localhost>"), "550 5.1.1"));
  const std::string got = t.C("RCPT TO:<u@other.test>");
  EXPECT_NE(got.find("554 5.7.1"), std::string::npos) << got;
  EXPECT_NE(got.find("421 4.7.0"), std::string::npos) << got;
  EXPECT_EQ(t.want(), Want::Close);
}

TEST_F(SessionTest, ErrorLimitDuringOpenMessageDropsIt) {
  Config c = test_config();
  c.limits.max_errors = 1;
  Smtp t(c);
  drive_to(t, State::Bdat);
  ASSERT_TRUE(t.s().message_open());
  const std::string got = t.C("FOO");
  EXPECT_NE(got.find("421 4.7.0"), std::string::npos) << got;
  EXPECT_FALSE(t.s().message_open());
  EXPECT_EQ(t.want(), Want::Close);
}

TEST_F(SessionTest, LineTooLong) {  // RFC 5321 4.5.3.1.4 (512 octets) and 4.2.2: 500 5.5.6
  Smtp t;
  t.greet();
  EXPECT_EQ(t.s().line_limit(), 512u);
  EXPECT_EQ(t.too_long(), "500 5.5.6 Error: line too long\r\n");
  EXPECT_EQ(t.want(), Want::Line);
  EXPECT_EQ(t.state(), State::Greeted);
  EXPECT_EQ(t.s().errors(), 1);
  Config c = test_config();
  c.limits.max_command_line = 1000;
  Smtp u(c);
  EXPECT_EQ(u.s().line_limit(), 1000u);
}

TEST_F(SessionTest, LineTooLongCountsTowardsTheErrorLimit) {
  Config c = test_config();
  c.limits.max_errors = 2;
  Smtp t(c);
  t.greet();
  t.too_long();
  const std::string got = t.too_long();
  EXPECT_NE(got.find("421 4.7.0"), std::string::npos) << got;
  EXPECT_EQ(t.want(), Want::Close);
}

TEST_F(SessionTest, TimeoutCloses) {  // RFC 5321 4.5.3.2 / 4.2.2: 421 4.4.2
  Smtp t;
  t.greet();
  t.C("MAIL FROM:<a@b.example>");
  t.C("RCPT TO:<alice@localhost>");
  t.C("DATA");
  t.opened();
  ASSERT_TRUE(t.s().message_open());
  EXPECT_EQ(t.timeout(), "421 4.4.2 mx.carrier.test Error: timeout exceeded, closing connection\r\n");
  EXPECT_EQ(t.want(), Want::Close);
  EXPECT_EQ(t.state(), State::Closed);
  EXPECT_FALSE(t.s().message_open()) << "a timed-out message must not be queued";
}

TEST_F(SessionTest, PeerCloseIsSilent) {
  Smtp t;
  drive_to(t, State::Bdat);
  t.s().on_closed();
  EXPECT_TRUE(t.s().out().empty());
  EXPECT_EQ(t.want(), Want::Close);
  EXPECT_FALSE(t.s().message_open());
}

TEST_F(SessionTest, MaxTransactionsPerConnection) {
  Config c = test_config();
  c.limits.max_transactions = 2;
  Smtp t(c);
  t.greet();
  for (int i = 0; i < 2; ++i) {
    t.C("MAIL FROM:<a@b.example>");
    t.C("RCPT TO:<alice@localhost>");
    t.C("DATA");
    t.opened();
    t.data_end(content(10));
    EXPECT_TRUE(reply_is(t.committed("ID" + std::to_string(i)), "250 2.0.0"));
  }
  EXPECT_EQ(t.s().transactions(), 2);
  EXPECT_TRUE(reply_is(t.C("RSET"), "250 2.0.0"));
  const std::string got = t.C("MAIL FROM:<a@b.example>");
  EXPECT_TRUE(reply_is(got, "421 4.7.0")) << got;
  EXPECT_EQ(t.want(), Want::Close);
  EXPECT_EQ(t.state(), State::Closed);
  EXPECT_EQ(t.s().errors(), 0);
}

TEST_F(SessionTest, FailedMessagesDoNotCountAsTransactions) {
  Config c = test_config();
  c.limits.max_transactions = 1;
  Smtp t(c);
  t.greet();
  t.C("MAIL FROM:<a@b.example>");
  t.C("RCPT TO:<alice@localhost>");
  t.C("DATA");
  t.opened();
  ContentReport big = content(10);
  big.too_big = true;
  EXPECT_TRUE(reply_is(t.data_end(big), "552 5.3.4"));
  EXPECT_TRUE(reply_is(t.C("MAIL FROM:<a@b.example>"), "250 2.1.0"));
}

// ---------------------------------------------------------------- MAIL parameters

TEST_F(SessionTest, SizeParameter) {  // RFC 1870 4 (EHLO SIZE n), 6.1 (552 5.3.4 at MAIL)
  Config c = test_config();
  c.limits.max_message_size = 1000;
  Smtp t(c);
  t.connect();
  EXPECT_NE(t.C("EHLO client.example").find("250-SIZE 1000\r\n"), std::string::npos);
  transcript(t, {
      {"MAIL FROM:<a@b.example> SIZE=1001", "552 5.3.4"},
      {"MAIL FROM:<a@b.example> SIZE=99999999999999999999999", "501 5.5.4"},
      {"MAIL FROM:<a@b.example> SIZE=18446744073709551616", "552 5.3.4"},
      {"MAIL FROM:<a@b.example> SIZE=abc", "501 5.5.4"},
      {"MAIL FROM:<a@b.example> SIZE=1000", "250 2.1.0"},
  });
  EXPECT_EQ(t.state(), State::Mail);
  ASSERT_TRUE(t.env().params.size.has_value());
  EXPECT_EQ(*t.env().params.size, 1000u);
}

TEST_F(SessionTest, ParametersAfterHeloAreRefused) {  // RFC 5321 4.1.1.1 / 4.1.1.11: 555
  Smtp t;
  t.connect();
  t.C("HELO client.example");
  transcript(t, {
      {"MAIL FROM:<a@b.example> SIZE=100", "555 5.5.4"},
      {"MAIL FROM:<a@b.example> BODY=8BITMIME", "555 5.5.4"},
      {"MAIL FROM:<a@b.example> SMTPUTF8", "555 5.5.4"},
      {"MAIL FROM:<a@b.example> RET=FULL", "555 5.5.4"},
      {"MAIL FROM:<a@b.example>", "250 2.1.0"},
      {"RCPT TO:<alice@localhost> NOTIFY=SUCCESS", "555 5.5.4"},
      {"RCPT TO:<alice@localhost> ORCPT=rfc822;a@b", "555 5.5.4"},
      {"RCPT TO:<alice@localhost>", "250 2.1.5"},
  });
}

TEST_F(SessionTest, UnknownAndDuplicateParameters) {  // RFC 5321 4.1.1.11 (555); RFC 1870 6
  Smtp t;
  t.greet();
  transcript(t, {
      {"MAIL FROM:<a@b.example> FOO=bar", "555 5.5.4 Unsupported parameter: FOO"},
      {"MAIL FROM:<a@b.example> SIZE=1 SIZE=2", "501 5.5.4"},
      {"MAIL FROM:<a@b.example> BODY=9BIT", "501 5.5.4"},
      {"MAIL FROM:<a@b.example> BODY=8BITMIME", "250 2.1.0"},
  });
  EXPECT_EQ(t.env().params.body, proto::Body::EightBitMime);
}

TEST_F(SessionTest, Utf8AddressNeedsSmtputf8) {  // RFC 6531 3.4 / 3.5: 553 5.6.7
  Smtp t;
  t.greet();
  transcript(t, {
      {"MAIL FROM:<j\xC3\xBCrgen@b.example>", "553 5.6.7"},
      {"MAIL FROM:<a@b.example>", "250 2.1.0"},
      {"RCPT TO:<j\xC3\xBCrgen@localhost>", "553 5.6.7"},
  });
  EXPECT_EQ(t.env().protocol, "ESMTP");
}

TEST_F(SessionTest, Smtputf8AcceptedAndProtocolIsUtf8smtp) {  // RFC 6531 3.4, 4.3 (RFC 3848)
  Smtp t;
  t.greet();
  transcript(t, {
      {"MAIL FROM:<j\xC3\xBCrgen@b\xC3\xBC.example> SMTPUTF8", "250 2.1.0"},
      {"RCPT TO:<j\xC3\xBCrgen@localhost>", "250 2.1.5"},
      {"RCPT TO:<alice@localhost>", "250 2.1.5"},
  });
  EXPECT_TRUE(t.env().params.smtputf8);
  EXPECT_EQ(t.env().protocol, "UTF8SMTP");
  ASSERT_EQ(t.env().recipients.size(), 2u);
  EXPECT_EQ(t.env().recipients[0].mailbox, "j\xC3\xBCrgen");
  const std::string h = t.s().received_header("0123456789AB", std::chrono::system_clock::time_point{});
  EXPECT_NE(h.find("with UTF8SMTP id 0123456789AB"), std::string::npos) << h;
  // The next transaction without SMTPUTF8 is plain ESMTP again.
  t.C("RSET");
  t.C("MAIL FROM:<a@b.example>");
  EXPECT_EQ(t.env().protocol, "ESMTP");
  EXPECT_FALSE(t.env().params.smtputf8);
}

TEST_F(SessionTest, Smtputf8DisabledRefusesUtf8) {  // RFC 6531 3.2 (not advertised)
  Config c = test_config();
  c.smtputf8 = false;
  Smtp t(c);
  t.greet();
  transcript(t, {
      {"MAIL FROM:<a@b.example> SMTPUTF8", "555 5.5.4"},
      {"MAIL FROM:<j\xC3\xBCrgen@b.example>", "553 5.6.7"},
  });
}

TEST_F(SessionTest, DsnRetAndEnvidStored) {  // RFC 3461 4.3 (RET), 4.4 (ENVID, xtext)
  Smtp t;
  t.greet();
  transcript(t, {
      {"MAIL FROM:<a@b.example> RET=HDRS ENVID=QQ314159+2Bx", "250 2.1.0"},
  });
  EXPECT_EQ(t.env().params.ret, proto::Ret::Hdrs);
  EXPECT_EQ(t.env().params.envid, "QQ314159+x");
  transcript(t, {
      {"RSET", "250 2.0.0"},
      {"MAIL FROM:<a@b.example> RET=full", "250 2.1.0"},
  });
  EXPECT_EQ(t.env().params.ret, proto::Ret::Full);
  EXPECT_TRUE(t.env().params.envid.empty());
  transcript(t, {
      {"RSET", "250 2.0.0"},
      {"MAIL FROM:<a@b.example> RET=BODY", "501 5.5.4"},
      {"MAIL FROM:<a@b.example> ENVID=a+zz", "501 5.5.4"},
  });
}

TEST_F(SessionTest, DsnNotifyAndOrcptOnEveryEnvelopeRecipient) {  // RFC 3461 4.1, 4.2
  Smtp t;
  t.greet();
  transcript(t, {
      {"MAIL FROM:<a@b.example>", "250 2.1.0"},
      // an alias: both recipients it expands to carry the parameters
      {"RCPT TO:<team@localhost> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;team+40localhost", "250 2.1.5"},
      {"RCPT TO:<carol@localhost> NOTIFY=NEVER", "250 2.1.5"},
      {"RCPT TO:<carol@example.test>", "250 2.1.5"},  // same mailbox: collapsed
      {"RCPT TO:<bob@localhost> NOTIFY=NEVER,SUCCESS", "501 5.5.4"},
      {"RCPT TO:<bob@localhost> ORCPT=rfc822", "501 5.5.4"},
  });
  const auto& r = t.env().recipients;
  ASSERT_EQ(r.size(), 3u);
  for (int i = 0; i < 2; ++i) {
    SCOPED_TRACE(r[i].mailbox);
    EXPECT_EQ(r[i].notify, proto::kNotifySuccess | proto::kNotifyDelay);
    EXPECT_EQ(r[i].orcpt_type, "rfc822");
    EXPECT_EQ(r[i].orcpt, "team@localhost");
    EXPECT_EQ(r[i].original.str(), "team@localhost");
  }
  EXPECT_EQ(r[0].mailbox, "alice");
  EXPECT_EQ(r[1].mailbox, "bob");
  EXPECT_EQ(r[2].mailbox, "carol");
  EXPECT_EQ(r[2].notify, proto::kNotifyNever);
  EXPECT_TRUE(r[2].orcpt_type.empty());
  EXPECT_TRUE(r[2].orcpt.empty());
}

TEST_F(SessionTest, NullSenderAndSyntaxErrors) {  // RFC 5321 4.1.1.2, 4.5.5, 4.1.2
  Smtp t;
  t.greet();
  transcript(t, {
      {"MAIL FROM:a@b.example", "501 5.1.7"},  // no angle brackets: bad path
      {"MAIL TO:<a@b.example>", "501 5.5.2"},
      {"MAIL FROM:<a@@b.example>", "501 5.1.7"},
      {"MAIL FROM:<>", "250 2.1.0"},
      {"RCPT TO:<>", "501 5.1.3"},
      {"RCPT FROM:<alice@localhost>", "501 5.5.2"},
      {"RCPT TO:alice@localhost", "501 5.1.3"},
      {"RCPT TO:<alice@localhost>", "250 2.1.5"},
  });
}

}  // namespace
}  // namespace carrier::session::test
