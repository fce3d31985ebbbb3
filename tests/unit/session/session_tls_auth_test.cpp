// carrier session tests: STARTTLS (RFC 3207), submission and AUTH (RFC 6409, RFC 4954,
// RFC 4616 PLAIN, the LOGIN mechanism), the Received: protocol names (RFC 3848) and the
// relay right of an authenticated user. The session only asks (Want::StartTls,
// Want::Authenticate); these tests play the I/O layer's part.
#include <gtest/gtest.h>

#include "proto/sasl.hpp"
#include "session_harness.hpp"

namespace carrier::session::test {
namespace {

using V = ServerSession::AuthVerdict;

Config submission_config() {
  Config c = test_config();
  c.starttls_available = true;
  c.submission = true;
  c.auth_available = true;
  c.sender_allowed = [](const AuthIdentity& who, const proto::Mailbox& m) {
    return m.str().empty() || m.str() == who.user;
  };
  return c;
}

// connect, EHLO, STARTTLS, handshake done, EHLO again.
void tls_up(Smtp& t) {
  t.connect();
  t.C("EHLO client.example");
  ASSERT_TRUE(reply_is(t.C("STARTTLS"), "220 2.0.0"));
  ASSERT_EQ(t.want(), Want::StartTls);
  t.s().on_tls_started("using TLSv1.3 with cipher TLS_AES_128_GCM_SHA256 (128/128 bits)");
  ASSERT_EQ(t.want(), Want::Line);
}

std::string b64(std::string_view s) { return proto::base64_encode(s); }

TEST_F(SessionTest, Rfc3207_StartTlsAdvertisedOnlyBeforeTls) {
  Smtp t(submission_config());
  t.connect();
  std::string ehlo = t.C("EHLO client.example");
  EXPECT_NE(ehlo.find("250-STARTTLS\r\n"), std::string::npos) << ehlo;
  EXPECT_EQ(ehlo.find("AUTH"), std::string::npos) << "RFC 4954 4 / 8314: no AUTH in clear";
  EXPECT_EQ(t.C("STARTTLS"), "220 2.0.0 Ready to start TLS\r\n");
  EXPECT_EQ(t.want(), Want::StartTls);
  t.s().on_tls_started("using TLSv1.3");
  // RFC 3207 4.2: state discarded; EHLO first, and STARTTLS is not offered again.
  EXPECT_TRUE(reply_is(t.C("MAIL FROM:<alice@example.test>"), "503 5.5.1"));
  ehlo = t.C("EHLO client.example");
  EXPECT_EQ(ehlo.find("STARTTLS"), std::string::npos) << ehlo;
  EXPECT_NE(ehlo.find("250-AUTH PLAIN LOGIN\r\n"), std::string::npos) << ehlo;
  EXPECT_TRUE(reply_is(t.C("STARTTLS"), "503 5.5.1"));
}

TEST_F(SessionTest, Rfc3207_StartTlsSyntaxAndStates) {
  Smtp t(submission_config());
  t.connect();
  t.C("EHLO client.example");
  EXPECT_TRUE(reply_is(t.C("STARTTLS now"), "501 5.5.4"));  // RFC 3207 4: no parameters
  Smtp plain;  // not configured
  plain.greet();
  EXPECT_TRUE(reply_is(plain.C("STARTTLS"), "502 5.5.1"));
}

TEST_F(SessionTest, Rfc4954_AuthRefusedBeforeTls) {
  Smtp t(submission_config());
  t.greet();
  EXPECT_EQ(t.C("AUTH PLAIN " + b64(std::string("\0alice@example.test\0pw", 22))),
            "538 5.7.11 Encryption required for requested authentication mechanism\r\n");
  EXPECT_EQ(t.want(), Want::Line);
  // RFC 6409 4.3: the submission service requires authentication.
  EXPECT_EQ(t.C("MAIL FROM:<alice@example.test>"), "530 5.7.0 Authentication required\r\n");
}

TEST_F(SessionTest, Rfc4954_PlaintextAuthOnLoopbackWhenAllowed) {
  Config c = submission_config();
  c.auth_plaintext_loopback = true;
  Smtp lo(c, test_policy(), ClientInfo{"127.0.0.1", "", 1, false, true, "", "", {}, {}});
  lo.connect();
  EXPECT_NE(lo.C("EHLO client.example").find("AUTH PLAIN LOGIN"), std::string::npos);
  Smtp remote(c);  // 192.0.2.10
  remote.connect();
  EXPECT_EQ(remote.C("EHLO client.example").find("AUTH"), std::string::npos);
}

TEST_F(SessionTest, Rfc4616_PlainWithInitialResponse) {
  Smtp t(submission_config());
  tls_up(t);
  t.C("EHLO client.example");
  EXPECT_EQ(t.C("AUTH PLAIN " + b64(std::string("\0alice@example.test\0secret", 26))), "");
  ASSERT_EQ(t.want(), Want::Authenticate);
  EXPECT_EQ(t.s().auth_request().mechanism, "PLAIN");
  EXPECT_EQ(t.s().auth_request().user, "alice@example.test");
  EXPECT_EQ(t.s().auth_request().password, "secret");
  t.s().on_auth_result(V::Ok, AuthIdentity{"alice@example.test", {}});
  EXPECT_EQ(t.s().out(), "235 2.7.0 Authentication successful\r\n");
  t.s().out().clear();
  EXPECT_TRUE(t.s().auth_request().password.empty());  // not kept after the check
  EXPECT_TRUE(reply_is(t.C("AUTH PLAIN " + b64(std::string("\0a\0b", 4))), "503 5.5.1"));
  // RFC 6409 6.1: only an owned sender.
  EXPECT_TRUE(reply_is(t.C("MAIL FROM:<bob@example.test>"), "553 5.7.1"));
  EXPECT_TRUE(reply_is(t.C("MAIL FROM:<alice@example.test>"), "250 2.1.0"));
  EXPECT_EQ(t.env().protocol, "ESMTPSA");  // RFC 3848
  // RFC 4954 6: an authenticated client may relay.
  EXPECT_TRUE(reply_is(t.C("RCPT TO:<someone@elsewhere.example>"), "250 2.1.5"));
  EXPECT_TRUE(t.s().add_missing_headers());
  std::string h = t.s().received_header("QID", std::chrono::system_clock::from_time_t(0));
  EXPECT_NE(h.find("(using TLSv1.3 with cipher TLS_AES_128_GCM_SHA256 (128/128 bits))"),
            std::string::npos) << h;
  EXPECT_NE(h.find("with ESMTPSA id QID"), std::string::npos) << h;
  EXPECT_EQ(h.find("Authenticated sender"), std::string::npos) << "only when configured";
}

TEST_F(SessionTest, Rfc4954_4_PlainEmptyChallengeAndCancel) {
  Smtp t(submission_config());
  tls_up(t);
  t.C("EHLO client.example");
  EXPECT_EQ(t.C("AUTH PLAIN"), "334 \r\n");  // RFC 4954 4: empty server challenge
  EXPECT_EQ(t.s().line_limit(), t.cfg().limits.max_auth_line);
  EXPECT_EQ(t.C("*"), "501 5.0.0 Authentication cancelled\r\n");
  EXPECT_EQ(t.s().line_limit(), t.cfg().limits.max_command_line);
  EXPECT_EQ(t.C("AUTH PLAIN"), "334 \r\n");
  EXPECT_TRUE(reply_is(t.C("not base64!"), "501 5.5.2"));
  EXPECT_EQ(t.C("AUTH PLAIN"), "334 \r\n");
  EXPECT_TRUE(reply_is(t.C(b64("no nul separators")), "501 5.5.2"));
  // Acting for another identity (authzid) is refused.
  EXPECT_TRUE(reply_is(t.C("AUTH PLAIN " + b64(std::string("bob\0alice\0pw", 12))), "535 5.7.8"));
  EXPECT_TRUE(reply_is(t.C("AUTH CRAM-MD5"), "504 5.5.4"));
  EXPECT_TRUE(reply_is(t.C("AUTH"), "501 5.5.4"));
}

TEST_F(SessionTest, LoginMechanismAndBadCredentials) {
  Smtp t(submission_config());
  tls_up(t);
  t.C("EHLO client.example");
  EXPECT_EQ(t.C("AUTH LOGIN"), "334 VXNlcm5hbWU6\r\n");
  EXPECT_EQ(t.C(b64("alice@example.test")), "334 UGFzc3dvcmQ6\r\n");
  EXPECT_EQ(t.C(b64("wrong")), "");
  ASSERT_EQ(t.want(), Want::Authenticate);
  EXPECT_EQ(t.s().auth_request().user, "alice@example.test");
  EXPECT_EQ(t.s().auth_request().password, "wrong");
  t.s().on_auth_result(V::Bad);
  EXPECT_EQ(t.s().out(), "535 5.7.8 Authentication credentials invalid\r\n");
  t.s().out().clear();
  EXPECT_EQ(t.C("MAIL FROM:<alice@example.test>"), "530 5.7.0 Authentication required\r\n");
  // LOGIN with the user name as initial response.
  EXPECT_EQ(t.C("AUTH LOGIN " + b64("alice@example.test")), "334 UGFzc3dvcmQ6\r\n");
  t.C(b64("pw"));
  t.s().on_auth_result(V::TempFail);
  EXPECT_TRUE(reply_is(t.s().out(), "454 4.7.0"));
  t.s().out().clear();
  t.C("AUTH LOGIN " + b64("alice@example.test"));
  t.C(b64("pw"));
  t.s().on_auth_result(V::Throttled);
  EXPECT_TRUE(reply_is(t.s().out(), "421 4.7.0"));
  t.s().out().clear();
  EXPECT_EQ(t.want(), Want::Close);
}

TEST_F(SessionTest, Rfc3207_4_2_TlsForgetsAnEarlierAuth) {
  Config c = submission_config();
  c.auth_plaintext_loopback = true;
  Smtp t(c, test_policy(), ClientInfo{"127.0.0.1", "", 1, false, true, "", "", {}, {}});
  t.greet();
  t.C("AUTH PLAIN " + b64(std::string("\0alice@example.test\0pw", 22)));
  t.s().on_auth_result(V::Ok, AuthIdentity{"alice@example.test", {}});
  t.s().out().clear();
  EXPECT_TRUE(reply_is(t.C("STARTTLS"), "220 2.0.0"));
  t.s().on_tls_started("using TLSv1.3");
  t.C("EHLO client.example");
  EXPECT_EQ(t.C("MAIL FROM:<alice@example.test>"), "530 5.7.0 Authentication required\r\n");
}

TEST_F(SessionTest, AuthNotOfferedOnAnMtaListener) {
  Config c = test_config();
  c.starttls_available = true;
  Smtp t(c);
  tls_up(t);
  std::string ehlo = t.C("EHLO client.example");
  EXPECT_EQ(ehlo.find("AUTH"), std::string::npos);
  EXPECT_TRUE(reply_is(t.C("AUTH PLAIN"), "502 5.5.1"));
  // Not submission: MAIL without AUTH is fine, relaying is not.
  EXPECT_TRUE(reply_is(t.C("MAIL FROM:<x@elsewhere.example>"), "250 2.1.0"));
  EXPECT_EQ(t.env().protocol, "ESMTPS");
  EXPECT_TRUE(reply_is(t.C("RCPT TO:<y@elsewhere.example>"), "554 5.7.1"));
  EXPECT_FALSE(t.s().add_missing_headers());
}

TEST_F(SessionTest, Rfc4954_ReceivedNamesTheUserWhenConfigured) {
  Config c = submission_config();
  c.received_auth_user = true;
  Smtp t(c);
  tls_up(t);
  t.C("EHLO client.example");
  t.C("AUTH PLAIN " + b64(std::string("\0alice@example.test\0pw", 22)));
  t.s().on_auth_result(V::Ok, AuthIdentity{"alice@example.test", {}});
  t.s().out().clear();
  t.C("MAIL FROM:<alice@example.test>");
  std::string h = t.s().received_header("QID", std::chrono::system_clock::from_time_t(0));
  EXPECT_NE(h.find("(Authenticated sender: alice@example.test)"), std::string::npos) << h;
}

}  // namespace
}  // namespace carrier::session::test
