// carrier session tests: the Received: trace field the session builds for the open
// transaction (RFC 5321 4.4: From-domain with the HELO name, the client's reverse name and
// IP, By-domain, "with" protocol per RFC 3848 / RFC 6531 4.3, "id" queue id, "for" only when
// there is exactly one recipient, RFC 5322 3.3 date). Also the envelope the session hands to
// the spool (client IP/rDNS, HELO).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <string>

#include "session_harness.hpp"

namespace carrier::session::test {
namespace {

using namespace std::chrono;

const system_clock::time_point kWhen = sys_days{year{2024} / January / 1} + hours{13} + minutes{5} + seconds{9};

TEST_F(SessionTest, ReceivedHeaderWithOneRecipient) {  // RFC 5321 4.4
  Smtp t;  // 192.0.2.10, rDNS client.rdns.example
  t.greet("EHLO client.example");
  t.C("MAIL FROM:<a@b.example>");
  t.C("RCPT TO:<alice+tag@localhost>");
  const std::string h = t.s().received_header("0123456789AB", kWhen);
  EXPECT_EQ(h,
            "Received: from client.example (client.rdns.example [192.0.2.10])\r\n"
            "\tby mx.carrier.test with ESMTP id 0123456789AB\r\n"
            "\tfor <alice+tag@localhost>; Mon, 1 Jan 2024 13:05:09 +0000\r\n");
}

TEST_F(SessionTest, ReceivedHeaderWithoutForWhenSeveralRecipients) {  // RFC 5321 4.4 / 7.2
  Smtp t;
  t.greet();
  t.C("MAIL FROM:<a@b.example>");
  t.C("RCPT TO:<alice@localhost>");
  t.C("RCPT TO:<bob@localhost>");
  const std::string h = t.s().received_header("0123456789AB", kWhen);
  EXPECT_EQ(h.find("for <"), std::string::npos) << h;
  EXPECT_NE(h.find("from client.example (client.rdns.example [192.0.2.10])"), std::string::npos) << h;
  EXPECT_NE(h.find("by mx.carrier.test with ESMTP id 0123456789AB;"), std::string::npos) << h;
}

TEST_F(SessionTest, ReceivedHeaderAliasFanOutHasNoFor) {
  // One RCPT, but it expands to two mailboxes: naming the alias would tell each reader the
  // other's delivery; no "for" (RFC 5321 7.2 on disclosing recipients).
  Smtp t;
  t.greet();
  t.C("MAIL FROM:<a@b.example>");
  t.C("RCPT TO:<team@localhost>");
  ASSERT_EQ(t.env().recipients.size(), 2u);
  EXPECT_EQ(t.s().received_header("Q1", kWhen).find("for <"), std::string::npos);
}

TEST_F(SessionTest, ReceivedHeaderDuplicateRcptStillOneRecipient) {
  Smtp t;
  t.greet();
  t.C("MAIL FROM:<a@b.example>");
  t.C("RCPT TO:<alice@localhost>");
  t.C("RCPT TO:<ALICE@localhost>");
  EXPECT_NE(t.s().received_header("Q1", kWhen).find("\tfor <alice@localhost>;"), std::string::npos);
}

TEST_F(SessionTest, ReceivedHeaderHeloIpv6AndUnknownRdns) {  // RFC 5321 4.1.3 IPv6 literal
  Smtp t(test_config(), test_policy(), client_at("2001:db8::25"));
  t.connect();
  t.C("HELO old.client.example");
  t.C("MAIL FROM:<a@b.example>");
  t.C("RCPT TO:<alice@localhost>");
  const std::string h = t.s().received_header("ABCDEF", kWhen);
  EXPECT_EQ(h,
            "Received: from old.client.example (unknown [IPv6:2001:db8::25])\r\n"
            "\tby mx.carrier.test with SMTP id ABCDEF\r\n"
            "\tfor <alice@localhost>; Mon, 1 Jan 2024 13:05:09 +0000\r\n");
}

TEST_F(SessionTest, EnvelopeCarriesClientIdentity) {
  Smtp t;
  t.greet("EHLO [192.0.2.10]");
  EXPECT_EQ(t.env().client_ip, "192.0.2.10");
  EXPECT_EQ(t.env().client_rdns, "client.rdns.example");
  EXPECT_EQ(t.env().helo, "[192.0.2.10]");
  EXPECT_NE(t.s().received_header("Q", kWhen).find("from [192.0.2.10] (client.rdns.example"),
            std::string::npos);
}

}  // namespace
}  // namespace carrier::session::test

namespace {
// After all tests: the RFC 2034 check of the SessionTest fixture really saw replies.
class ReplyCheckSummary : public ::testing::Environment {
 public:
  void TearDown() override {
    const std::size_t n = carrier::session::test::replies_checked_total();
    std::printf("[ session  ] %zu session replies checked for RFC 5321 4.2 / RFC 2034 form\n", n);
    if (::testing::UnitTest::GetInstance()->test_to_run_count() > 100) {
      EXPECT_GT(n, 500u);
    }
  }
};
const auto* const kSummary = ::testing::AddGlobalTestEnvironment(new ReplyCheckSummary);
}  // namespace
