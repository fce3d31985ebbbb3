// Unit tests for proto/headers: RFC 5322 3.3 date-time, RFC 5321 4.4 Received: and
// Return-Path:, Delivered-To:, and the sanitising of client-supplied values (header
// injection must be impossible).
#include "proto/headers.hpp"

#include <gtest/gtest.h>

using namespace carrier::proto;

namespace {

std::chrono::system_clock::time_point at(std::int64_t unix_seconds, int ms = 0) {
  return std::chrono::system_clock::time_point(std::chrono::seconds(unix_seconds) +
                                               std::chrono::milliseconds(ms));
}

ReceivedInfo full_info() {
  ReceivedInfo i;
  i.helo = "client.example";
  i.client_rdns = "mail.client.example";
  i.client_ip = "192.0.2.1";
  i.by_host = "mx.example";
  i.protocol = "ESMTPS";
  i.queue_id = "0ABCDEFGHJKM";
  i.tls_comment = "using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384";
  i.for_rcpt = "user@example.com";
  i.when = at(1700000000);
  return i;
}

// Splits on CRLF; fails the test on a bare CR or LF.
std::vector<std::string> lines_of(const std::string& h) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start < h.size()) {
    std::size_t e = h.find("\r\n", start);
    if (e == std::string::npos) {
      ADD_FAILURE() << "no final CRLF";
      break;
    }
    out.push_back(h.substr(start, e - start));
    start = e + 2;
  }
  for (const auto& l : out) {
    EXPECT_EQ(l.find('\r'), std::string::npos);
    EXPECT_EQ(l.find('\n'), std::string::npos);
  }
  return out;
}

}  // namespace

// --- RFC 5322 3.3 date-time ------------------------------------------------------------

TEST(Headers, Rfc5322_3_3_Date) {
  EXPECT_EQ(rfc5322_date(at(0)), "Thu, 1 Jan 1970 00:00:00 +0000");
  EXPECT_EQ(rfc5322_date(at(1700000000)), "Tue, 14 Nov 2023 22:13:20 +0000");
  EXPECT_EQ(rfc5322_date(at(1709208000)), "Thu, 29 Feb 2024 12:00:00 +0000");  // leap day
  EXPECT_EQ(rfc5322_date(at(1795456200)), "Mon, 23 Nov 2026 17:50:00 +0000");
  EXPECT_EQ(rfc5322_date(at(946684799)), "Fri, 31 Dec 1999 23:59:59 +0000");
  // Fractions of a second are truncated, never rounded up.
  EXPECT_EQ(rfc5322_date(at(1700000000, 999)), "Tue, 14 Nov 2023 22:13:20 +0000");
}

TEST(Headers, Rfc5322_3_3_AllDayAndMonthNames) {
  const char* days[] = {"Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"};
  for (int d = 0; d < 7; ++d) EXPECT_EQ(rfc5322_date(at(d * 86400)).substr(0, 3), days[d]);
  const char* months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                          "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  std::int64_t month_starts_2023[] = {1672531200, 1675209600, 1677628800, 1680307200,
                                      1682899200, 1685577600, 1688169600, 1690848000,
                                      1693526400, 1696118400, 1698796800, 1701388800};
  for (int m = 0; m < 12; ++m) {
    std::string d = rfc5322_date(at(month_starts_2023[m]));
    EXPECT_EQ(d.substr(5, 10), std::string("1 ") + months[m] + " 2023") << d;
  }
}

// --- Received:, RFC 5321 4.4 -----------------------------------------------------------

TEST(Headers, Rfc5321_4_4_ReceivedFullForm) {
  EXPECT_EQ(received_header(full_info()),
            "Received: from client.example (mail.client.example [192.0.2.1])\r\n"
            "\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384)\r\n"
            "\tby mx.example with ESMTPS id 0ABCDEFGHJKM\r\n"
            "\tfor <user@example.com>; Tue, 14 Nov 2023 22:13:20 +0000\r\n");
}

// RFC 4954 7 / Postfix smtpd_sasl_authenticated_header: the user, as a comment that cannot be
// broken out of.
TEST(Headers, Rfc4954_7_ReceivedAuthenticatedSender) {
  ReceivedInfo i = full_info();
  i.protocol = "ESMTPSA";
  i.auth_user = "al(ice)\\x\r\nX-Evil: 1";
  std::string h = received_header(i);
  EXPECT_NE(h.find("\t(Authenticated sender: al?ice??x??X-Evil: 1)\r\n\tby mx.example with ESMTPSA"),
            std::string::npos) << h;
}

// RFC 6409 8.2 / 8.3: Date: and Message-ID: an MSA adds.
TEST(Headers, Rfc6409_8_DateAndMessageId) {
  auto t = std::chrono::system_clock::from_time_t(1700000000);
  EXPECT_EQ(date_header(t), "Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n");
  EXPECT_EQ(message_id_header("0ABC", "mx.example", t),
            "Message-ID: <1700000000.0ABC@mx.example>\r\n");
}

TEST(Headers, Rfc5321_4_4_ReceivedMinimalForm) {
  ReceivedInfo i = full_info();
  i.client_rdns.clear();
  i.tls_comment.clear();
  i.for_rcpt.clear();
  i.protocol = "ESMTP";
  EXPECT_EQ(received_header(i),
            "Received: from client.example (unknown [192.0.2.1])\r\n"
            "\tby mx.example with ESMTP id 0ABCDEFGHJKM; Tue, 14 Nov 2023 22:13:20 +0000\r\n");
}

TEST(Headers, Rfc5321_4_1_3_ReceivedIpv6Literal) {
  ReceivedInfo i = full_info();
  i.client_ip = "2001:db8::1";
  std::string h = received_header(i);
  EXPECT_NE(h.find("(mail.client.example [IPv6:2001:db8::1])\r\n"), std::string::npos) << h;
}

TEST(Headers, ReceivedSanitisesHeloInjection) {
  ReceivedInfo i = full_info();
  i.helo = "evil\r\nX-Injected: yes\r\n\r\nbody";
  i.client_rdns = "rdns\nX-Also: no";
  i.for_rcpt = "a\rb@example.com";
  std::string h = received_header(i);
  auto ls = lines_of(h);
  ASSERT_EQ(ls.size(), 4u);  // from, (TLS comment), by, for
  EXPECT_EQ(ls[0].rfind("Received: from evil??X-Injected: yes????body (rdns?X-Also: no [", 0), 0u)
      << ls[0];
  EXPECT_EQ(ls[1][0], '\t');
  EXPECT_EQ(ls[2][0], '\t');
  EXPECT_EQ(ls[3].rfind("\tfor <a?b@example.com>; ", 0), 0u) << ls[3];
}

TEST(Headers, Rfc5322_2_1_1_ReceivedLinesStayShort) {
  ReceivedInfo i = full_info();
  i.helo = std::string(5000, 'h');
  i.client_rdns = std::string(5000, 'r');
  i.client_ip = std::string(5000, '1');
  i.for_rcpt = std::string(5000, 'f');
  i.tls_comment = std::string(5000, 't');
  for (const auto& l : lines_of(received_header(i))) EXPECT_LT(l.size(), 998u);
}

TEST(Headers, ReceivedEmptyHelo) {
  ReceivedInfo i = full_info();
  i.helo.clear();
  EXPECT_EQ(received_header(i).rfind("Received: from unknown (", 0), 0u);
}

// --- Return-Path / Delivered-To --------------------------------------------------------

TEST(Headers, Rfc5321_4_4_ReturnPath) {
  EXPECT_EQ(return_path_header(Mailbox{"user", "example.com"}), "Return-Path: <user@example.com>\r\n");
  EXPECT_EQ(return_path_header(Mailbox{}), "Return-Path: <>\r\n");
  EXPECT_EQ(return_path_header(Mailbox{"a\r\nX: y", "example.com"}),
            "Return-Path: <a??X: y@example.com>\r\n");
}

TEST(Headers, DeliveredTo) {
  EXPECT_EQ(delivered_to_header(Mailbox{"demo", "example.com"}), "Delivered-To: demo@example.com\r\n");
  EXPECT_EQ(delivered_to_header(Mailbox{"j\xC3\xB6rg", "example.com"}),
            "Delivered-To: j\xC3\xB6rg@example.com\r\n");  // RFC 6532: UTF-8 kept
}

// --- sanitize_header_value -------------------------------------------------------------

TEST(Headers, SanitizeReplacesControls) {
  EXPECT_EQ(sanitize_header_value("plain text"), "plain text");
  EXPECT_EQ(sanitize_header_value("a\r\nb"), "a??b");
  EXPECT_EQ(sanitize_header_value(std::string_view("a\0b", 3)), "a?b");
  EXPECT_EQ(sanitize_header_value("a\tb\x7f\x1b"), "a?b??");
  EXPECT_EQ(sanitize_header_value("\xC2\x85"), "?");          // C1 NEL
  EXPECT_EQ(sanitize_header_value("\xFF\xC3"), "??");         // malformed UTF-8
  EXPECT_EQ(sanitize_header_value("caf\xC3\xA9"), "caf\xC3\xA9");  // valid UTF-8 kept
  EXPECT_EQ(sanitize_header_value(""), "");
}
