// Unit tests of the sendmail -bs SMTP session (sendmail/smtp.hpp): a whole transcript, command
// order (RFC 5321 4.1.4), EHLO keywords, dot rules (4.5.2), LF-only input, limits (line length,
// SIZE of RFC 1870, recipients), RSET, and that a failed store answers 451.
#include "sendmail/smtp.hpp"

#include <gtest/gtest.h>

using namespace carrier::sendmail;

namespace {

struct Transcript {
  std::string replies;
  std::vector<std::string> contents;
  std::vector<std::vector<std::string>> rcpts;
  std::vector<std::string> senders;
  bool quit = false;
};

// Feeds the whole input; each finished message is "stored" (ok unless store_ok is false).
Transcript run(SmtpSubmit& s, std::string_view in, bool store_ok = true) {
  Transcript r;
  r.replies = s.greeting();
  while (!in.empty() && !r.quit) {
    auto st = s.feed(in);
    in.remove_prefix(st.consumed);
    r.replies += st.reply;
    r.quit = st.quit;
    if (st.message_ready) {
      r.contents.push_back(s.content());
      r.senders.push_back(s.sender().str());
      std::vector<std::string> rc;
      for (auto& m : s.recipients()) rc.push_back(m.str());
      r.rcpts.push_back(rc);
      r.replies += s.stored(store_ok, store_ok ? "NAME1" : "disk full");
    }
    if (st.consumed == 0 && st.reply.empty() && !st.message_ready) break;
  }
  return r;
}

SmtpOptions opts() {
  SmtpOptions o;
  o.hostname = "mx.example";
  o.build.date_field = "Date: D\r\n";
  o.build.message_id_field = "Message-ID: <M@h>\r\n";
  return o;
}

}  // namespace

TEST(SendmailSmtp, WholeTranscript) {
  SmtpSubmit s(opts());
  auto r = run(s,
               "EHLO client\r\nMAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.net>\r\n"
               "RCPT TO:<carol@example.net>\r\nDATA\r\nSubject: s\r\n\r\n..dotted\r\nbody\r\n.\r\n"
               "QUIT\r\n");
  EXPECT_EQ(r.replies,
            "220 mx.example ESMTP carrier (sendmail -bs)\r\n"
            "250-mx.example\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250-SIZE 52428800\r\n"
            "250 ENHANCEDSTATUSCODES\r\n"
            "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n"
            "354 End data with <CR><LF>.<CR><LF>\r\n"
            "250 2.0.0 Ok: queued as NAME1\r\n221 2.0.0 Bye\r\n");
  EXPECT_TRUE(r.quit);
  ASSERT_EQ(r.contents.size(), 1u);
  EXPECT_EQ(r.senders[0], "alice@example.org");
  EXPECT_EQ(r.rcpts[0], (std::vector<std::string>{"bob@example.net", "carol@example.net"}));
  // RFC 5321 4.5.2 unstuffing; From:/Date:/Message-ID: added (the MAIL FROM address).
  EXPECT_EQ(r.contents[0],
            "Subject: s\r\nFrom: alice@example.org\r\nDate: D\r\nMessage-ID: <M@h>\r\n\r\n"
            ".dotted\r\nbody\r\n");
}

TEST(SendmailSmtp, LfOnlyInputAndTwoMessages) {
  SmtpSubmit s(opts());
  auto r = run(s,
               "HELO c\nMAIL FROM:<>\nRCPT TO:<bob@example.net>\nDATA\nFrom: x@y.z\n\none\n.\n"
               "MAIL FROM:<a@b.c>\nRCPT TO:<d@e.f>\nDATA\nFrom: x@y.z\n\ntwo\n.\nQUIT\n");
  ASSERT_EQ(r.contents.size(), 2u);
  EXPECT_EQ(r.senders[0], "");
  EXPECT_EQ(r.contents[0], "From: x@y.z\r\nDate: D\r\nMessage-ID: <M@h>\r\n\r\none\r\n");
  EXPECT_EQ(r.contents[1], "From: x@y.z\r\nDate: D\r\nMessage-ID: <M@h>\r\n\r\ntwo\r\n");
  EXPECT_EQ(r.rcpts[1], std::vector<std::string>{"d@e.f"});
  EXPECT_TRUE(r.quit);
}

TEST(SendmailSmtp, CommandOrder) {  // RFC 5321 4.1.4
  SmtpSubmit s(opts());
  auto r = run(s,
               "RCPT TO:<b@x.y>\r\nDATA\r\nMAIL FROM:<a@x.y>\r\nMAIL FROM:<a@x.y>\r\nDATA\r\n"
               "RSET\r\nRCPT TO:<b@x.y>\r\nNOOP\r\nVRFY bob\r\nEXPN list\r\nSTARTTLS\r\nBDAT 1\r\n"
               "FOO\r\nHELO\r\nDATA x\r\n");
  EXPECT_EQ(r.replies,
            "220 mx.example ESMTP carrier (sendmail -bs)\r\n"
            "503 5.5.1 Error: need MAIL command\r\n503 5.5.1 Error: need MAIL command\r\n"
            "250 2.1.0 Ok\r\n503 5.5.1 Error: nested MAIL command\r\n"
            "554 5.5.1 Error: no valid recipients\r\n250 2.0.0 Ok\r\n"
            "503 5.5.1 Error: need MAIL command\r\n250 2.0.0 Ok\r\n"
            "252 2.5.2 Cannot VRFY user; send the message and it will be delivered\r\n"
            "502 5.5.1 Error: command not implemented\r\n502 5.5.1 Error: command not implemented\r\n"
            "502 5.5.1 Error: command not implemented\r\n500 5.5.2 Error: command not recognized\r\n"
            "501 5.5.4 Syntax: HELO hostname\r\n503 5.5.1 Error: need MAIL command\r\n");
  EXPECT_FALSE(r.quit);
}

TEST(SendmailSmtp, BadAddressesAndPostmaster) {  // RFC 5321 4.1.2, 4.5.1
  SmtpSubmit s(opts());
  auto r = run(s, "MAIL FROM:alice\r\nMAIL FROM:<a@x.y>\r\nRCPT TO:<bad>\r\nRCPT TO:<PostMaster>\r\n"
                  "DATA\r\nx\r\n.\r\n");
  EXPECT_EQ(r.replies.substr(r.replies.find("\r\n") + 2),
            "501 5.1.7 Bad sender address syntax\r\n250 2.1.0 Ok\r\n"
            "501 5.1.3 Bad recipient address syntax\r\n250 2.1.5 Ok\r\n"
            "354 End data with <CR><LF>.<CR><LF>\r\n250 2.0.0 Ok: queued as NAME1\r\n");
  ASSERT_EQ(r.rcpts.size(), 1u);
  EXPECT_EQ(r.rcpts[0], std::vector<std::string>{"postmaster@mx.example"});
}

TEST(SendmailSmtp, LongLineRejectedAndSessionGoesOn) {  // RFC 5321 4.5.3.1.4
  auto o = opts();
  o.max_line = 64;
  SmtpSubmit s(o);
  auto r = run(s, "NOOP " + std::string(500, 'x') + "\r\nNOOP\r\n");
  EXPECT_EQ(r.replies.substr(r.replies.find("\r\n") + 2),
            "500 5.5.2 Error: line too long\r\n250 2.0.0 Ok\r\n");
}

TEST(SendmailSmtp, MessageSizeLimit) {  // RFC 1870
  auto o = opts();
  o.max_size = 1000;
  SmtpSubmit s(o);
  auto r = run(s, "MAIL FROM:<a@x.y> SIZE=5000\r\nMAIL FROM:<a@x.y>\r\nRCPT TO:<b@x.y>\r\nDATA\r\n" +
                      std::string(3000, 'x') + "\r\n.\r\nNOOP\r\n");
  EXPECT_NE(r.replies.find("552 5.3.4"), std::string::npos) << r.replies;
  EXPECT_NE(r.replies.find("552 5.3.4 Error: message too large (limit 1000 bytes)\r\n250 2.0.0 Ok\r\n"),
            std::string::npos)
      << r.replies;
  EXPECT_TRUE(r.contents.empty());
}

TEST(SendmailSmtp, TooManyRecipients) {
  auto o = opts();
  o.max_recipients = 2;
  SmtpSubmit s(o);
  auto r = run(s, "MAIL FROM:<a@x.y>\r\nRCPT TO:<b@x.y>\r\nRCPT TO:<c@x.y>\r\nRCPT TO:<d@x.y>\r\n");
  EXPECT_NE(r.replies.find("250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n452 4.5.3"), std::string::npos);
}

TEST(SendmailSmtp, FailedStoreAnswers451AndResets) {
  SmtpSubmit s(opts());
  auto r = run(s, "MAIL FROM:<a@x.y>\r\nRCPT TO:<b@x.y>\r\nDATA\r\nx\r\n.\r\nDATA\r\n", false);
  EXPECT_NE(r.replies.find("451 4.3.0 Error: message not stored: disk full\r\n"
                           "503 5.5.1 Error: need MAIL command\r\n"),
            std::string::npos)
      << r.replies;
}

TEST(SendmailSmtp, DataSplitAcrossFeeds) {
  SmtpSubmit s(opts());
  std::string in = "MAIL FROM:<a@x.y>\r\nRCPT TO:<b@x.y>\r\nDATA\r\nFrom: f@x.y\r\n\r\nabc\r\n.\r\nQUIT\r\n";
  Transcript r;
  for (char c : in) {  // one byte at a time
    std::string_view one(&c, 1);
    while (!one.empty()) {
      auto st = s.feed(one);
      one.remove_prefix(st.consumed);
      r.replies += st.reply;
      if (st.message_ready) {
        r.contents.push_back(s.content());
        r.replies += s.stored(true, "N");
      }
      if (st.consumed == 0 && !st.message_ready) break;
    }
  }
  ASSERT_EQ(r.contents.size(), 1u);
  EXPECT_EQ(r.contents[0], "From: f@x.y\r\nDate: D\r\nMessage-ID: <M@h>\r\n\r\nabc\r\n");
  EXPECT_NE(r.replies.find("221 2.0.0 Bye"), std::string::npos);
}
