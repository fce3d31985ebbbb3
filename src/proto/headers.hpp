// carrier proto: trace header fields carrier adds (RFC 5321 4.4, RFC 5322 3.6.7), and the
// date format they use. Pure. Values that come from the client (HELO name, addresses) are
// sanitised: control characters and non-printable bytes are replaced, so a header can never
// be split or smuggled.
#pragma once
#include <chrono>
#include <string>
#include <string_view>

#include "proto/envelope.hpp"

namespace carrier::proto {

// RFC 5322 3.3 date-time in UTC: "Mon, 23 Nov 2026 17:50:00 +0000".
std::string rfc5322_date(std::chrono::system_clock::time_point t);

struct ReceivedInfo {
  std::string helo;         // as sent by the client
  std::string client_rdns;  // may be empty (then "unknown")
  std::string client_ip;    // "192.0.2.1" or "2001:db8::1" (rendered as [IPv6:...])
  std::string by_host;      // our host name
  std::string protocol;     // "ESMTP", "ESMTPS", "ESMTPSA", "UTF8SMTP", "SMTP", ...
  std::string queue_id;
  std::string tls_comment;  // e.g. "using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384"; may be empty
  std::string auth_user;    // "(Authenticated sender: USER)" when not empty
  std::string for_rcpt;     // only when the message has exactly one recipient, else empty
  std::chrono::system_clock::time_point when;
};

// "Received: from HELO (RDNS [IP])\r\n\tby HOST with PROTO id QUEUEID\r\n\tfor <RCPT>; DATE\r\n"
// Folded to lines well under 998 octets; ends with CRLF.
std::string received_header(const ReceivedInfo& info);

// Header fields an MSA adds when the submitted message lacks them (RFC 6409 8.2, 8.3).
std::string date_header(std::chrono::system_clock::time_point now);  // "Date: ...\r\n"
// "Message-ID: <SECONDS.QUEUEID@HOST>\r\n"
std::string message_id_header(std::string_view queue_id, std::string_view host,
                              std::chrono::system_clock::time_point now);

// "Return-Path: <sender>\r\n" ("<>" for the null sender).
std::string return_path_header(const Mailbox& sender);
// "Delivered-To: local@domain\r\n"
std::string delivered_to_header(const Mailbox& rcpt);

// Replaces CR, LF, NUL and other control characters with '?' (header values from the network).
std::string sanitize_header_value(std::string_view s);

}  // namespace carrier::proto
