// Session hooks for the defence checks: the MAIL/RCPT Gate (rate limits, disk reserve), a
// connect-time refusal given at RCPT (DNSBL, Postfix's smtpd_delay_reject), and a message
// refused by the content checks (on_refused) — each leaves the session usable.
#include <gtest/gtest.h>

#include <memory>

#include "session_harness.hpp"

namespace carrier::session::test {
namespace {

class ScriptedGate : public Gate {
 public:
  std::optional<proto::Reply> mail_reply, rcpt_reply;
  int mails = 0, rcpts = 0, accepted = 0;
  std::string last_rcpt, last_accepted_sender;
  std::optional<proto::Reply> on_mail(const ClientInfo&, const proto::Mailbox&,
                                      const proto::MailParams&) override {
    ++mails;
    return mail_reply;
  }
  std::optional<proto::Reply> on_rcpt(const ClientInfo&, const proto::Envelope&,
                                      const proto::Mailbox& rcpt) override {
    ++rcpts;
    last_rcpt = rcpt.str();
    return rcpt_reply;
  }
  void on_accepted(const ClientInfo&, const proto::Envelope& env) override {
    ++accepted;
    last_accepted_sender = env.sender.str();
  }
};

Config with_gate(std::shared_ptr<Gate> g) {
  Config c = test_config();
  c.gate = std::move(g);
  return c;
}

TEST_F(SessionTest, GateRefusesMailWithItsReplyAndTheSessionGoesOn) {
  auto g = std::make_shared<ScriptedGate>();
  g->mail_reply = proto::Reply(452, "4.3.1", "Error: insufficient system storage");
  Smtp t(with_gate(g));
  t.connect();
  t.greet();
  EXPECT_EQ(t.C("MAIL FROM:<a@b.example> SIZE=1000"), "452 4.3.1 Error: insufficient system storage\r\n");
  EXPECT_EQ(t.state(), State::Greeted);  // no transaction began
  g->mail_reply.reset();
  EXPECT_EQ(t.C("MAIL FROM:<a@b.example>"), "250 2.1.0 Ok\r\n");
  EXPECT_EQ(g->mails, 2);
}

TEST_F(SessionTest, GateRefusesOneRecipientOthersGoOn) {  // RFC 5321 4.5.3.1.10: 450/452 per RCPT
  auto g = std::make_shared<ScriptedGate>();
  Smtp t(with_gate(g));
  t.connect();
  t.greet();
  t.C("MAIL FROM:<a@b.example>");
  g->rcpt_reply = proto::Reply(450, "4.7.1", "Error: rate limit exceeded, try again later");
  EXPECT_EQ(t.C("RCPT TO:<alice@localhost>"), "450 4.7.1 Error: rate limit exceeded, try again later\r\n");
  EXPECT_EQ(t.state(), State::Mail);
  g->rcpt_reply.reset();
  EXPECT_EQ(t.C("RCPT TO:<bob@localhost>"), "250 2.1.5 Ok\r\n");
  EXPECT_EQ(g->last_rcpt, "bob@localhost");
  ASSERT_EQ(t.s().envelope().recipients.size(), 1u);
  EXPECT_EQ(t.s().envelope().recipients[0].mailbox, "bob");
}

TEST_F(SessionTest, GateIsNotAskedAboutUnknownRecipients) {
  auto g = std::make_shared<ScriptedGate>();
  Smtp t(with_gate(g));
  t.connect();
  t.greet();
  t.C("MAIL FROM:<a@b.example>");
  EXPECT_EQ(t.C("RCPT TO:<nobody@localhost>").substr(0, 3), "550");
  EXPECT_EQ(g->rcpts, 0);
}

TEST_F(SessionTest, GateCountsOnlyCommittedMessages) {
  auto g = std::make_shared<ScriptedGate>();
  Smtp t(with_gate(g));
  t.connect();
  t.greet();
  t.C("MAIL FROM:<a@b.example>");
  t.C("RCPT TO:<alice@localhost>");
  t.C("DATA");
  t.opened();
  t.data_end(content(10));
  t.commit_failed(false);
  EXPECT_EQ(g->accepted, 0);
  t.C("MAIL FROM:<c@b.example>");
  t.C("RCPT TO:<alice@localhost>");
  t.C("DATA");
  t.opened();
  t.data_end(content(10));
  EXPECT_EQ(t.committed("ABC123").substr(0, 3), "250");
  EXPECT_EQ(g->accepted, 1);
  EXPECT_EQ(g->last_accepted_sender, "c@b.example");
}

TEST_F(SessionTest, ConnectRefusalIsGivenAtEveryRcpt) {
  Smtp t;
  t.s().set_connect_verdict(proto::Reply(554, "5.7.1", "Service unavailable; client [192.0.2.10] blocked using bl.test"), {});
  t.connect();
  t.greet();
  EXPECT_EQ(t.C("MAIL FROM:<a@b.example>"), "250 2.1.0 Ok\r\n");
  EXPECT_EQ(t.C("RCPT TO:<alice@localhost>"),
            "554 5.7.1 Service unavailable; client [192.0.2.10] blocked using bl.test\r\n");
  EXPECT_EQ(t.C("RCPT TO:<bob@localhost>").substr(0, 3), "554");
  EXPECT_EQ(t.C("DATA").substr(0, 3), "503");  // no valid recipients (RFC 5321 3.3)
  EXPECT_EQ(t.C("QUIT").substr(0, 3), "221");
}

TEST_F(SessionTest, ConnectTagsAreKeptForTheChecks) {
  Smtp t;
  t.s().set_connect_verdict({}, {"bl.test=127.0.0.2"});
  t.connect();
  t.greet();
  t.C("MAIL FROM:<a@b.example>");
  EXPECT_EQ(t.C("RCPT TO:<alice@localhost>"), "250 2.1.5 Ok\r\n");
  ASSERT_EQ(t.s().client().connect_tags.size(), 1u);
  EXPECT_EQ(t.s().client().connect_tags[0], "bl.test=127.0.0.2");
}

TEST_F(SessionTest, RefusedByTheChecksGivesTheirReplyAndANewTransactionWorks) {
  Smtp t;
  t.connect();
  t.greet();
  t.C("MAIL FROM:<a@b.example>");
  t.C("RCPT TO:<alice@localhost>");
  t.C("DATA");
  t.opened();
  t.data_end(content(10));
  ASSERT_EQ(t.want(), Want::Commit);
  t.s().on_refused(proto::Reply(550, "5.7.23", "SPF validation failed"), "spf: fail");
  EXPECT_EQ(t.replies("<refused>"), "550 5.7.23 SPF validation failed\r\n");
  EXPECT_EQ(t.want(), Want::Line);
  EXPECT_FALSE(t.s().message_open());
  EXPECT_EQ(t.state(), State::Greeted);
  EXPECT_EQ(t.C("MAIL FROM:<a@b.example>"), "250 2.1.0 Ok\r\n");
}

TEST_F(SessionTest, EnvelopeKeepsTheAuthenticatedUser) {
  Config c = test_config();
  c.submission = true;
  c.auth_available = true;
  ClientInfo ci = client_at("192.0.2.20");
  ci.tls = true;
  Smtp t(c, test_policy(), ci);
  t.connect();
  t.greet();
  t.C("AUTH PLAIN AGFsaWNlAHNlY3JldA==");
  ASSERT_EQ(t.want(), Want::Authenticate);
  t.s().on_auth_result(ServerSession::AuthVerdict::Ok, AuthIdentity{"alice", {}});
  EXPECT_EQ(t.replies("<auth>").substr(0, 3), "235");
  EXPECT_EQ(t.C("MAIL FROM:<alice@localhost>"), "250 2.1.0 Ok\r\n");
  EXPECT_EQ(t.s().envelope().auth_user, "alice");
}

}  // namespace
}  // namespace carrier::session::test
