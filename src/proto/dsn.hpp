// carrier proto: builds delivery status notifications (bounces, delay warnings, success
// reports): RFC 3464 message/delivery-status inside an RFC 6522 multipart/report, status codes
// of RFC 3463, the internationalised forms of RFC 6533 (message/global-delivery-status,
// message/global-headers, message/global of RFC 6532, the "utf-8" address type), and the
// Auto-Submitted: field of RFC 3834 5. Pure (no I/O, no clock, no randomness).
//
// Every value may come from the network (addresses, ENVID, ORCPT, the remote server's reply,
// the remote host name): each is sanitised (CR, LF, NUL and other controls become '?' or a
// space, malformed UTF-8 becomes '?'), length-capped, and folded, so no header or report field
// can be split or injected and no generated line exceeds 998 octets (RFC 5322 2.1.1).
//
// Streaming: the original message (maybe 50 MiB) is never held in memory. A DSN is written as
//   dsn_head(in)                 everything up to and including the blank line after the
//                                header of the third part (the returned content);
//   <the original content>       copied by the caller as stored (CRLF lines): the whole message
//                                when dsn_layout(in).full_message, else its first
//                                header_section_length(prefix) octets (the header section);
//   dsn_tail(in)                 "\r\n--boundary--\r\n", which ends the multipart.
// The DSN is sent with the null reverse-path MAIL FROM:<> (RFC 5321 4.5.5, RFC 3461 6.1), with
// SMTPUTF8 when dsn_layout(in).smtputf8 and BODY=8BITMIME when dsn_layout(in).body says so.
//
// Choice of media types (RFC 6533 3-6):
//   - The report is "global" (message/global-delivery-status, report-type=
//     global-delivery-status as RFC 6522 3 names the second part's subtype) when the original
//     arrived with SMTPUTF8 or any address in the report (the return path, a final recipient,
//     an ORCPT) is non-ASCII. Then UTF-8 is written as is and non-ASCII addresses use the
//     "utf-8" address type in its utf-8-addr-unitext form. Otherwise every field is ASCII
//     (message/delivery-status, anything non-ASCII written as \x{HEX} escapes).
//   - The returned content is message/global or message/global-headers when the original arrived
//     with SMTPUTF8, else message/rfc822 or text/rfc822-headers.
//   - RET=FULL returns the whole message, RET=HDRS or no RET the header section only (RFC 3461
//     4.3 leaves the default to the MTA). A BODY=BINARYMIME original is always returned as
//     headers only: its body cannot be carried by a DSN sent without BINARYMIME.
//   - The human-readable first part is always plain US-ASCII text.
// Subject: "Undelivered Mail Returned to Sender" when any recipient failed, else "Delivery
// Status Notification (Delay)" when any is delayed, else "Delivery Status Notification
// (Success)". The per-message group carries X-Carrier-Queue-ID and X-Carrier-Sender extension
// fields (RFC 3464 2.4) after the standard ones.
#pragma once
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.hpp"
#include "proto/address.hpp"
#include "proto/command.hpp"

namespace carrier::proto {

// RFC 3464 2.3.3 action-value.
enum class DsnAction { Failed, Delayed, Delivered, Relayed, Expanded };

// "failed", "delayed", "delivered", "relayed", "expanded".
std::string_view dsn_action_name(DsnAction a);

struct DsnRecipient {
  Mailbox final_recipient;       // Final-Recipient: rfc822; addr  (utf-8; addr when non-ASCII)
  std::string orcpt_type;        // RCPT ORCPT= type (lower case, e.g. "rfc822", "utf-8");
  std::string orcpt;             // and its decoded address. Original-Recipient: only when given
  DsnAction action = DsnAction::Failed;
  std::string status;            // RFC 3463 "5.1.1"; malformed or empty: 5.0.0 / 4.0.0 / 2.0.0
                                 // by action (failed / delayed / the others)
  std::string remote_mta;        // Remote-MTA: dns; mx.example.net  (empty: omitted)
  std::string diagnostic_type = "smtp";  // Diagnostic-Code type (RFC 3464 2.3.6); an atom,
                                         // e.g. "X-Carrier" for reasons not from an SMTP peer
  std::string diagnostic;        // Diagnostic-Code: smtp; 550 5.1.1 <x>: user unknown — the
                                 // peer's reply as received; multi-line replies are joined
                                 // with spaces (empty: omitted)
  std::int64_t last_attempt_ms = 0;      // Last-Attempt-Date (Unix ms; 0: omitted)
  std::int64_t will_retry_until_ms = 0;  // Will-Retry-Until, written for Delayed only (0: omitted)
};

struct DsnInput {
  std::string reporting_mta;     // our host name: Reporting-MTA: dns; host, From: MAILER-DAEMON@host
  std::string envid;             // MAIL ENVID= (decoded); Original-Envelope-Id only when non-empty
  Ret ret = Ret::Unset;          // MAIL RET=: Full returns the whole message, else headers only
  bool original_smtputf8 = false;        // MAIL SMTPUTF8 was given (RFC 6531)
  Body original_body = Body::SevenBit;   // MAIL BODY=
  Mailbox sender;                // the original return path = the DSN's To: (must not be empty)
  std::int64_t arrival_ms = 0;   // Arrival-Date (Unix ms; 0: omitted)
  std::string queue_id;          // X-Carrier-Queue-ID: and in the human-readable text
  std::vector<DsnRecipient> recipients;  // at least one
  std::chrono::system_clock::time_point now;  // Date: of the DSN
  // Makes the MIME boundary and Message-ID unique. Must be unpredictable in production (for
  // example 16 random bytes in hex): the returned message is not scanned for the boundary.
  // Fixed in tests for byte-exact output.
  std::string boundary_seed;
  std::string message_id_domain;  // right side of the DSN's Message-ID (empty: reporting_mta)
};

// How the DSN is shaped, derived from DsnInput (see the choice of media types above).
struct DsnLayout {
  bool global_report = false;   // message/global-delivery-status
  bool global_content = false;  // message/global / message/global-headers
  bool full_message = false;    // the caller copies the whole original, else its header section
  bool smtputf8 = false;        // the DSN holds UTF-8 header/report fields: send with SMTPUTF8
  Body body = Body::SevenBit;   // BODY= for sending the DSN (EightBitMime when a part is 8bit)
  std::string_view status_type;   // "message/delivery-status" / "message/global-delivery-status"
  std::string_view content_type;  // media type of the third part
};
DsnLayout dsn_layout(const DsnInput& in);

// The MIME boundary: "=_carrier_" + the seed's boundary-safe characters (at most 32) + "_" + 16
// hex digits hashed from seed, queue id and time. At most 70 characters (RFC 2046 5.1.1).
std::string dsn_boundary(const DsnInput& in);

// The DSN up to the start of the returned content (see above). Errors: no recipients (RFC 3464
// 2.1 requires at least one per-recipient group) or an empty sender (RFC 5321 6.1: never
// bounce to the null reverse-path).
Result<std::string> dsn_head(const DsnInput& in);

// Closes the multipart: "\r\n--" boundary "--\r\n". The leading CRLF also ends a returned
// content whose last line has no line end.
std::string dsn_tail(const DsnInput& in);

// RET=HDRS: the header section is at most this long (larger ones are cut at a line end).
constexpr std::size_t kDsnMaxHeaderSection = 256 * 1024;

// How many octets of the stored content form its header section (RFC 5322 2.1): up to and
// including the first empty line (CRLF CRLF, or LF LF for content stored with bare LF). content
// is the start of the stored message: at least kDsnMaxHeaderSection octets of it, or all of it
// when shorter. Without an empty line within the limit: the whole content when it is shorter
// than the limit (a message without a body), else the content up to the last line end within
// the limit (0 when there is none).
std::size_t header_section_length(std::string_view content);

}  // namespace carrier::proto
