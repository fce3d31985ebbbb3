// carrier session tests: greeting and EHLO/HELO (RFC 5321 4.1.1.1, 4.2, 3.1; RFC 2034 3),
// the full DATA transaction and every way it can fail (RFC 5321 3.3, 4.1.1.4, 4.2.5, 4.5.2,
// 6.3; RFC 1870 6; RFC 3463 X.3.x/X.4.6/X.5.2), the other commands (RSET, VRFY, EXPN, NOOP,
// QUIT, HELP, STARTTLS, unknown verbs: RFC 5321 4.1.1.5-4.1.1.10, 3.5, 4.2.4) and
// PIPELINING order (RFC 2920 3.1). Also checks the fixture's own RFC 2034 reply check.
#include <gtest/gtest.h>

#include <regex>
#include <string>

#include "session_harness.hpp"

namespace carrier::session::test {
namespace {

// ---------------------------------------------------------------- greeting, EHLO, HELO

TEST_F(SessionTest, GreetingIs220WithOurName) {  // RFC 5321 4.2 / 3.1, RFC 2034 3 (no code)
  Smtp t;
  EXPECT_EQ(t.connect(), "220 mx.carrier.test ESMTP carrier\r\n");
  EXPECT_EQ(t.state(), State::Start);
  EXPECT_EQ(t.want(), Want::Line);
  EXPECT_EQ(t.s().line_limit(), 512u);  // RFC 5321 4.5.3.1.4
}

TEST_F(SessionTest, EhloListsEveryExtensionWithoutEnhancedCodes) {
  // RFC 5321 4.1.1.1 (ehlo-ok-rsp), RFC 2920, RFC 1870 4 (SIZE with the limit), RFC 6152,
  // RFC 6531, RFC 2034, RFC 3030, RFC 3461; RFC 2034 3: no enhanced code on EHLO replies.
  Smtp t;
  t.connect();
  const std::string r = t.C("EHLO client.example");
  EXPECT_EQ(r,
            "250-mx.carrier.test\r\n"
            "250-PIPELINING\r\n"
            "250-SIZE 52428800\r\n"
            "250-8BITMIME\r\n"
            "250-SMTPUTF8\r\n"
            "250-ENHANCEDSTATUSCODES\r\n"
            "250-CHUNKING\r\n"
            "250-BINARYMIME\r\n"
            "250-DSN\r\n"
            "250 HELP\r\n");
  static const std::regex kEnhanced(R"(^250[ -][245]\.[0-9]+\.[0-9]+)");
  for (const auto& l : split_lines(r)) EXPECT_FALSE(std::regex_search(l, kEnhanced)) << l;
  EXPECT_EQ(t.state(), State::Greeted);
  EXPECT_EQ(t.env().helo, "client.example");
  EXPECT_EQ(t.env().protocol, "ESMTP");  // RFC 3848
}

TEST_F(SessionTest, EhloFollowsConfigurationSwitches) {
  Config c = test_config();
  c.limits.max_message_size = 10240;
  c.pipelining = c.eightbitmime = c.smtputf8 = c.chunking = c.dsn = false;
  Smtp t(c);
  t.connect();
  EXPECT_EQ(t.C("EHLO client.example"),
            "250-mx.carrier.test\r\n250-SIZE 10240\r\n250-ENHANCEDSTATUSCODES\r\n250 HELP\r\n");
  // Parameters of extensions not offered are refused (RFC 5321 4.1.1.11 / 4.2.4: 555).
  transcript(t, {
      {"MAIL FROM:<a@b.example> BODY=8BITMIME", "555 5.5.4"},
      {"MAIL FROM:<a@b.example> SMTPUTF8", "555 5.5.4"},
      {"MAIL FROM:<a@b.example> RET=HDRS", "555 5.5.4"},
      {"MAIL FROM:<a@b.example> BODY=BINARYMIME", "555 5.5.4"},
      {"MAIL FROM:<a@b.example>", "250 2.1.0"},
      {"RCPT TO:<alice@localhost> NOTIFY=NEVER", "555 5.5.4"},
  });
}

TEST_F(SessionTest, HeloReplies250WithoutExtensions) {  // RFC 5321 4.1.1.1, RFC 2034 3
  Smtp t;
  t.connect();
  EXPECT_EQ(t.C("HELO client.example"), "250 mx.carrier.test\r\n");
  EXPECT_EQ(t.state(), State::Greeted);
  EXPECT_EQ(t.env().protocol, "SMTP");
}

TEST_F(SessionTest, EhloAndHeloNeedADomain) {  // RFC 5321 4.1.1.1: 501
  Smtp t;
  t.connect();
  transcript(t, {
      {"EHLO", "501 5.5.4 Syntax: EHLO hostname"},
      {"HELO", "501 5.5.4 Syntax: HELO hostname"},
      {"EHLO two words", "501 5.5.4"},
      {"MAIL FROM:<a@b.example>", "503 5.5.1"},  // still not greeted
  });
  EXPECT_EQ(t.state(), State::Start);
  EXPECT_TRUE(reply_is(t.C("EHLO [192.0.2.1]"), "250"));  // an address literal is fine
}

// ---------------------------------------------------------------- the DATA transaction

TEST_F(SessionTest, FullDataTransaction) {
  // RFC 5321 3.3: MAIL, RCPT, DATA, 354, content, 250; 4.1.1.4; 4.2.5 (queued after the
  // data is safely stored); 4.1.4: the transaction is reset afterwards.
  Smtp t;
  t.greet();
  transcript(t, {
      {"MAIL FROM:<sender@client.example>", "250 2.1.0 Ok"},
      {"RCPT TO:<alice@localhost>", "250 2.1.5 Ok"},
  });
  EXPECT_EQ(t.C("DATA"), "");  // no reply yet: the spool writer comes first
  EXPECT_EQ(t.want(), Want::OpenMessage);
  EXPECT_EQ(t.opened(true, false), "354 End data with <CR><LF>.<CR><LF>\r\n");
  EXPECT_EQ(t.want(), Want::Data);
  EXPECT_EQ(t.state(), State::Data);
  EXPECT_TRUE(t.s().message_open());
  EXPECT_EQ(t.data_end(content(1234)), "");  // nothing until the message is durable
  EXPECT_EQ(t.want(), Want::Commit);
  EXPECT_TRUE(t.s().message_open());
  EXPECT_EQ(t.committed("0123456789AB"), "250 2.0.0 Ok: queued as 0123456789AB\r\n");
  EXPECT_EQ(t.want(), Want::Line);
  EXPECT_EQ(t.state(), State::Greeted);
  EXPECT_FALSE(t.s().message_open());
  EXPECT_EQ(t.s().transactions(), 1);
  EXPECT_TRUE(t.env().sender.empty());
  EXPECT_TRUE(t.env().recipients.empty());
  EXPECT_FALSE(t.env().params.size.has_value());
  EXPECT_EQ(t.env().received_at_ms, 0);
  EXPECT_EQ(t.env().helo, "client.example");  // the session identity survives
  // The accepted transaction is logged once, with queue id, sender, recipients, size.
  bool logged = false;
  for (const auto& e : t.s().events())
    if (e.kind == ServerSession::Event::Accepted) {
      logged = true;
      EXPECT_EQ(e.text, "0123456789AB: from=<sender@client.example> to=<alice@localhost> size=1234 nrcpt=1");
    }
  EXPECT_TRUE(logged);
  // MAIL is allowed again and starts from an empty envelope.
  transcript(t, {
      {"RCPT TO:<bob@localhost>", "503 5.5.1"},
      {"MAIL FROM:<>", "250 2.1.0"},
      {"RCPT TO:<bob@localhost>", "250 2.1.5"},
  });
  ASSERT_EQ(t.env().recipients.size(), 1u);
  EXPECT_EQ(t.env().recipients[0].mailbox, "bob");
  EXPECT_TRUE(t.env().sender.empty());  // RFC 5321 4.5.5: null reverse-path
}

TEST_F(SessionTest, StampIsKeptUntilTheTransactionEnds) {
  Smtp t;
  t.greet();
  t.C("MAIL FROM:<a@b.example>");
  t.s().stamp(1700000000123);
  EXPECT_EQ(t.env().received_at_ms, 1700000000123);
  t.C("RSET");
  EXPECT_EQ(t.env().received_at_ms, 0);
}

TEST_F(SessionTest, DataNeedsAnAcceptedRecipient) {  // RFC 5321 3.3: no valid RCPT → 503/554
  Smtp t;
  t.greet();
  transcript(t, {
      {"MAIL FROM:<a@b.example>", "250 2.1.0"},
      {"RCPT TO:<nobody@localhost>", "550 5.1.1"},
      {"DATA", "503 5.5.1 Error: need RCPT command"},
      {"DATA now", "503 5.5.1"},
  });
  EXPECT_EQ(t.state(), State::Mail);
}

TEST_F(SessionTest, DataTakesNoArgument) {  // RFC 5321 4.1.1.4: data = "DATA" CRLF
  Smtp t;
  t.greet();
  transcript(t, {
      {"MAIL FROM:<a@b.example>", "250 2.1.0"},
      {"RCPT TO:<alice@localhost>", "250 2.1.5"},
      {"DATA please", "501 5.5.4 Syntax: DATA"},
  });
  EXPECT_EQ(t.want(), Want::Line);
  EXPECT_EQ(t.state(), State::Rcpt);
}

TEST_F(SessionTest, LinesAreIgnoredWhileTheIoLayerOwnsTheStream) {
  // Pipelined lines after DATA belong to the content (RFC 2920 3.1, RFC 5321 4.1.1.4): the
  // session never acts on a line while it waits for something else.
  Smtp t;
  t.greet();
  t.C("MAIL FROM:<a@b.example>");
  t.C("RCPT TO:<alice@localhost>");
  t.C("DATA");
  ASSERT_EQ(t.want(), Want::OpenMessage);
  EXPECT_EQ(t.C("RSET"), "");
  EXPECT_EQ(t.C("QUIT"), "");
  EXPECT_EQ(t.want(), Want::OpenMessage);
  t.opened();
  EXPECT_EQ(t.C("QUIT"), "");
  EXPECT_EQ(t.want(), Want::Data);
  EXPECT_EQ(t.state(), State::Data);
  // Events out of turn are ignored too.
  EXPECT_EQ(t.committed("X"), "");
  EXPECT_EQ(t.chunk_end(content(1)), "");
  EXPECT_EQ(t.want(), Want::Data);
}

TEST_F(SessionTest, SpoolUnavailableAtOpen) {  // RFC 5321 4.2.5 451/452; RFC 3463 X.3.0, X.3.1
  {
    Smtp t;
    t.greet();
    t.C("MAIL FROM:<a@b.example>");
    t.C("RCPT TO:<alice@localhost>");
    t.C("DATA");
    EXPECT_EQ(t.opened(false, true), "452 4.3.1 Error: insufficient system storage\r\n");
    EXPECT_EQ(t.want(), Want::Line);
    EXPECT_EQ(t.state(), State::Greeted);
    EXPECT_FALSE(t.s().message_open());
    EXPECT_TRUE(t.env().recipients.empty());
    EXPECT_TRUE(reply_is(t.C("MAIL FROM:<a@b.example>"), "250 2.1.0"));  // the client may retry
  }
  {
    Smtp t;
    t.greet();
    t.C("MAIL FROM:<a@b.example>");
    t.C("RCPT TO:<alice@localhost>");
    t.C("DATA");
    EXPECT_TRUE(reply_is(t.opened(false, false), "451 4.3.0"));
    EXPECT_EQ(t.want(), Want::Line);
  }
}

// Drives a session to Want::Commit through DATA.
void to_commit(Smtp& t, const ContentReport& r = content(100)) {
  t.greet();
  t.C("MAIL FROM:<a@b.example>");
  t.C("RCPT TO:<alice@localhost>");
  t.C("DATA");
  t.opened();
  EXPECT_EQ(t.data_end(r), "");
  ASSERT_EQ(t.want(), Want::Commit);
}

TEST_F(SessionTest, CommitFailureIsTransient) {  // RFC 5321 4.2.5; RFC 3463 X.3.1 / X.3.0
  {
    Smtp t;
    to_commit(t);
    EXPECT_EQ(t.commit_failed(true), "452 4.3.1 Error: insufficient system storage\r\n");
    EXPECT_EQ(t.want(), Want::Line);
    EXPECT_EQ(t.state(), State::Greeted);
    EXPECT_EQ(t.s().transactions(), 0);
    EXPECT_FALSE(t.s().message_open());
    EXPECT_TRUE(t.env().recipients.empty());
  }
  {
    Smtp t;
    to_commit(t);
    EXPECT_EQ(t.commit_failed(false), "451 4.3.0 Error: local error in processing\r\n");
    EXPECT_EQ(t.want(), Want::Line);
    EXPECT_TRUE(reply_is(t.C("MAIL FROM:<a@b.example>"), "250 2.1.0"));
  }
}

struct ContentCase {
  const char* name;
  ContentReport report;
  proto::BareNewline policy;
  const char* reply;  // "" = accepted (Want::Commit)
};

ContentReport with(void (*f)(ContentReport&)) {
  ContentReport r = content(500);
  f(r);
  return r;
}

class DataContent : public SessionTest, public ::testing::WithParamInterface<ContentCase> {};

TEST_P(DataContent, EndOfDataVerdict) {
  const ContentCase& c = GetParam();
  Config cfg = test_config();
  cfg.bare_newline = c.policy;
  Smtp t(cfg);
  t.greet();
  t.C("MAIL FROM:<a@b.example>");
  t.C("RCPT TO:<alice@localhost>");
  t.C("DATA");
  t.opened();
  const std::string got = t.data_end(c.report);
  if (std::string_view(c.reply).empty()) {
    EXPECT_EQ(got, "");
    EXPECT_EQ(t.want(), Want::Commit);
    EXPECT_TRUE(t.s().message_open());
    EXPECT_TRUE(reply_is(t.committed("0123456789AB"), "250 2.0.0"));
  } else {
    EXPECT_TRUE(reply_is(got, c.reply)) << got;
    EXPECT_EQ(t.want(), Want::Line);
    EXPECT_EQ(t.state(), State::Greeted);
    EXPECT_FALSE(t.s().message_open()) << "the I/O layer must drop the spool writer";
    EXPECT_TRUE(t.env().recipients.empty());
    EXPECT_EQ(t.s().transactions(), 0);
    EXPECT_TRUE(reply_is(t.C("MAIL FROM:<a@b.example>"), "250 2.1.0"));
  }
}

const ContentCase kContentCases[] = {
    {"Plain", content(500), proto::BareNewline::Reject, ""},
    // RFC 1870 6.2 / RFC 5321 4.5.3.1.10: 552, RFC 3463 5.3.4
    {"TooBig", with([](ContentReport& r) { r.too_big = true; }), proto::BareNewline::Reject,
     "552 5.3.4"},
    // RFC 5321 2.3.8 / 4.1.1.4: bare CR/LF rejected as a whole (SMTP smuggling defence)
    {"BareNewlineRejected", with([](ContentReport& r) { r.bare_newline = true; }),
     proto::BareNewline::Reject, "554 5.5.2"},
    {"BareNewlineNormalized", with([](ContentReport& r) { r.bare_newline = true; }),
     proto::BareNewline::Normalize, ""},
    // RFC 5321 6.3: loop detection by counting Received: (threshold at least 100)
    {"ReceivedAtLimit", with([](ContentReport& r) { r.received_count = 100; }),
     proto::BareNewline::Reject, ""},
    {"ReceivedOverLimit", with([](ContentReport& r) { r.received_count = 101; }),
     proto::BareNewline::Reject, "554 5.4.6"},
    // RFC 5321 4.2.5 / RFC 3463 X.3.1, X.3.0: spool write errors are transient
    {"WriteFailedNoSpace", with([](ContentReport& r) { r.write_failed = r.write_no_space = true; }),
     proto::BareNewline::Reject, "452 4.3.1"},
    {"WriteFailed", with([](ContentReport& r) { r.write_failed = true; }),
     proto::BareNewline::Reject, "451 4.3.0"},
    // Precedence: a too-big message is reported as too big even if it also had bare LFs.
    {"TooBigWins", with([](ContentReport& r) { r.too_big = r.bare_newline = true; }),
     proto::BareNewline::Reject, "552 5.3.4"},
    // 8-bit header bytes alone are not a reason to refuse (RFC 6152 / RFC 6532 leniency).
    {"Header8bit", with([](ContentReport& r) { r.header_8bit = true; }),
     proto::BareNewline::Reject, ""},
};

INSTANTIATE_TEST_SUITE_P(Rfc5321, DataContent, ::testing::ValuesIn(kContentCases),
                         [](const auto& info) { return std::string(info.param.name); });

// ---------------------------------------------------------------- other commands

TEST_F(SessionTest, RsetMidTransactionResets) {  // RFC 5321 4.1.1.5
  Smtp t;
  t.greet();
  transcript(t, {
      {"MAIL FROM:<a@b.example> SIZE=100", "250 2.1.0"},
      {"RCPT TO:<alice@localhost>", "250 2.1.5"},
      {"RSET", "250 2.0.0 Ok"},
  });
  EXPECT_EQ(t.state(), State::Greeted);
  EXPECT_TRUE(t.env().sender.empty());
  EXPECT_TRUE(t.env().recipients.empty());
  EXPECT_FALSE(t.env().params.size.has_value());
  transcript(t, {
      {"RCPT TO:<alice@localhost>", "503 5.5.1"},
      {"MAIL FROM:<c@d.example>", "250 2.1.0"},
      {"RSET now", "501 5.5.4 Syntax: RSET"},  // rset = "RSET" CRLF
  });
  EXPECT_EQ(t.state(), State::Mail);
}

TEST_F(SessionTest, RsetBeforeHeloKeepsStart) {  // RFC 5321 4.1.1.5: RSET is always allowed
  Smtp t;
  t.connect();
  EXPECT_TRUE(reply_is(t.C("RSET"), "250 2.0.0"));
  EXPECT_EQ(t.state(), State::Start);
  EXPECT_TRUE(reply_is(t.C("MAIL FROM:<a@b.example>"), "503 5.5.1"));
}

TEST_F(SessionTest, EhloMidTransactionResets) {  // RFC 5321 4.1.4
  Smtp t;
  t.greet();
  transcript(t, {
      {"MAIL FROM:<a@b.example>", "250 2.1.0"},
      {"RCPT TO:<alice@localhost>", "250 2.1.5"},
      {"EHLO other.example", "250"},
  });
  EXPECT_EQ(t.state(), State::Greeted);
  EXPECT_TRUE(t.env().recipients.empty());
  EXPECT_TRUE(t.env().sender.empty());
  EXPECT_EQ(t.env().helo, "other.example");
  transcript(t, {{"DATA", "503 5.5.1"}, {"MAIL FROM:<a@b.example>", "250 2.1.0"}});
}

TEST_F(SessionTest, HeloAfterEhloWithdrawsExtensions) {  // RFC 5321 4.1.1.1 / 4.1.4
  Smtp t;
  t.greet();
  transcript(t, {
      {"MAIL FROM:<a@b.example>", "250 2.1.0"},
      {"HELO client.example", "250 mx.carrier.test"},
      {"MAIL FROM:<a@b.example> SIZE=10", "555 5.5.4"},
      {"MAIL FROM:<a@b.example>", "250 2.1.0"},
  });
  EXPECT_EQ(t.env().protocol, "SMTP");
}

TEST_F(SessionTest, VrfyExpnNoopHelp) {
  Smtp t;
  t.greet();
  transcript(t, {
      // RFC 5321 3.5.3 / 7.3: 252 without disclosing whether the user exists
      {"VRFY alice", "252 2.5.0"},
      {"VRFY nobody", "252 2.5.0"},
      {"VRFY", "501 5.5.4"},
      // RFC 5321 3.5.2 / 7.3: EXPN may be disabled → 502
      {"EXPN team", "502 5.5.1"},
      // RFC 5321 4.1.1.9: NOOP with or without a parameter
      {"NOOP", "250 2.0.0 Ok"},
      {"NOOP hello there", "250 2.0.0 Ok"},
      // RFC 5321 4.1.1.8: HELP → 214
      {"HELP", "214 2.0.0"},
      {"HELP MAIL", "214 2.0.0"},
  });
  EXPECT_EQ(t.state(), State::Greeted);
  EXPECT_EQ(t.s().errors(), 1);  // only the bare VRFY
}

TEST_F(SessionTest, QuitCloses) {  // RFC 5321 4.1.1.10: 221, then close
  Smtp t;
  t.greet();
  t.C("MAIL FROM:<a@b.example>");
  EXPECT_EQ(t.C("QUIT"), "221 2.0.0 Bye\r\n");
  EXPECT_EQ(t.want(), Want::Close);
  EXPECT_EQ(t.state(), State::Closed);
  EXPECT_EQ(t.C("NOOP"), "");  // nothing after QUIT
}

TEST_F(SessionTest, QuitDuringBdatDropsTheMessage) {  // RFC 5321 4.1.1.10: no delivery
  Smtp t;
  drive_to(t, State::Bdat);
  ASSERT_TRUE(t.s().message_open());
  EXPECT_TRUE(reply_is(t.C("QUIT"), "221 2.0.0"));
  EXPECT_FALSE(t.s().message_open());
  EXPECT_EQ(t.s().transactions(), 0);
}

TEST_F(SessionTest, UnknownCommand) {  // RFC 5321 4.2.4: 500 command unrecognized
  Smtp t;
  t.greet();
  transcript(t, {
      {"XYZZY", "500 5.5.1 Error: command not recognized"},
      {"", "500 5.5.1"},
      {"MAILFROM:<a@b.example>", "500 5.5.1"},
      {"TURN", "500 5.5.1"},
  });
  EXPECT_EQ(t.state(), State::Greeted);
  EXPECT_EQ(t.s().errors(), 4);
}

TEST_F(SessionTest, VerbsAreCaseInsensitive) {  // RFC 5321 2.4
  Smtp t;
  t.connect();
  transcript(t, {
      {"ehlo client.example", "250"},
      {"mail from:<a@b.example>", "250 2.1.0"},
      {"Rcpt To:<alice@localhost>", "250 2.1.5"},
      {"rset", "250 2.0.0"},
  });
}

TEST_F(SessionTest, StartTlsNotAvailable) {  // RFC 3207 4 (not offered) / RFC 5321 4.2.4: 502
  Smtp t;
  t.greet();
  EXPECT_EQ(t.C("STARTTLS"), "502 5.5.1 Error: STARTTLS not available\r\n");
  EXPECT_EQ(t.want(), Want::Line);
  EXPECT_EQ(t.state(), State::Greeted);
}

TEST_F(SessionTest, PipelinedRepliesComeInOrder) {  // RFC 2920 3.1 / 3.2
  Smtp t;
  t.greet();
  for (auto l : {"MAIL FROM:<a@b.example>", "RCPT TO:<alice@localhost>",
                 "RCPT TO:<nobody@localhost>", "RCPT TO:<bob@localhost>", "DATA"})
    t.s().on_line(l);
  const std::string out = t.s().out();
  t.s().out().clear();
  auto lines = split_lines(out);
  ASSERT_EQ(lines.size(), 4u) << out;
  EXPECT_EQ(lines[0].substr(0, 9), "250 2.1.0");
  EXPECT_EQ(lines[1].substr(0, 9), "250 2.1.5");
  EXPECT_EQ(lines[2].substr(0, 9), "550 5.1.1");
  EXPECT_EQ(lines[3].substr(0, 9), "250 2.1.5");
  for (const auto& l : lines) reply_log().push_back({"<pipelined>", l + "\r\n", false});
  EXPECT_EQ(t.want(), Want::OpenMessage);
  EXPECT_EQ(t.env().recipients.size(), 2u);
}

// ---------------------------------------------------------------- the checker itself

TEST(ReplyCheck, RejectsRepliesThatBreakRfc2034) {
  // The fixture's check must be able to fail, or it proves nothing.
  EXPECT_TRUE(reply_well_formed({"x", "250 2.1.0 Ok\r\n", false}));
  EXPECT_TRUE(reply_well_formed({"x", "250-a\r\n250 b\r\n", true}));
  EXPECT_TRUE(reply_well_formed({"x", "354 go ahead\r\n", false}));
  EXPECT_FALSE(reply_well_formed({"x", "250 Ok\r\n", false}));            // no enhanced code
  EXPECT_FALSE(reply_well_formed({"x", "550 4.1.1 no\r\n", false}));      // class mismatch
  EXPECT_FALSE(reply_well_formed({"x", "250 2.1.0 Ok", false}));          // no CRLF
  EXPECT_FALSE(reply_well_formed({"x", "250-2.0.0 a\r\n", false}));       // ends with '-'
  EXPECT_FALSE(reply_well_formed({"x", "250-2.0.0 a\r\n550 5.0.0 b\r\n", false}));
  EXPECT_FALSE(reply_well_formed({"x", "25 2.0.0 a\r\n", false}));
  EXPECT_FALSE(reply_well_formed({"x", "421 4.7.0x\r\n", false}));
}

}  // namespace
}  // namespace carrier::session::test
