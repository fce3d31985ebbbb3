// Unit tests for proto/dsn: the RFC 6522 multipart/report structure, RFC 3464 per-message and
// per-recipient fields (syntax order, blank-line separation), RFC 3463 status handling, RFC 6533
// global types, RET=FULL/HDRS (RFC 3461 4.3), header-section cutting, line rules (CRLF only,
// no line over 998 octets, RFC 5322 2.1.1) and neutralised injection attempts.
#include "proto/dsn.hpp"

#include <gtest/gtest.h>

#include <cctype>
#include <string>
#include <utility>
#include <vector>

using namespace carrier::proto;

namespace {

constexpr std::int64_t kArrival = 1700000000000;       // Tue, 14 Nov 2023 22:13:20 +0000
constexpr std::int64_t kLastAttempt = 1700003500000;   // Tue, 14 Nov 2023 23:11:40 +0000
constexpr std::int64_t kRetryUntil = 1700432000000;    // Sun, 19 Nov 2023 22:13:20 +0000

std::chrono::system_clock::time_point at_seconds(std::int64_t s) {
  return std::chrono::system_clock::time_point(std::chrono::seconds(s));
}

const std::string kOriginal =
    "Received: from client.example by mx.example.org; Tue, 14 Nov 2023 22:13:20 +0000\r\n"
    "From: Alice <alice@example.org>\r\n"
    "To: bob@example.net, carol@example.com\r\n"
    "Subject: hello\r\n"
    "\r\n"
    "Hello Bob,\r\n"
    "this is the body.\r\n";

DsnRecipient bob() {
  DsnRecipient r;
  r.final_recipient = {"bob", "example.net"};
  r.orcpt_type = "rfc822";
  r.orcpt = "Bob@Example.NET";
  r.action = DsnAction::Failed;
  r.status = "5.1.1";
  r.remote_mta = "mx.example.net";
  r.diagnostic = "550-5.1.1 <bob@example.net>: Recipient address rejected:\r\n"
                 "550 5.1.1 User unknown in virtual mailbox table";
  r.last_attempt_ms = kLastAttempt;
  return r;
}

DsnRecipient carol() {
  DsnRecipient r;
  r.final_recipient = {"carol", "example.com"};
  r.action = DsnAction::Failed;
  r.status = "5.4.7";
  r.diagnostic_type = "X-Carrier";
  r.diagnostic = "delivery time expired";
  return r;
}

DsnInput failed_input() {
  DsnInput in;
  in.reporting_mta = "mx.example.org";
  in.envid = "ENV-42";
  in.ret = Ret::Hdrs;
  in.sender = {"alice", "example.org"};
  in.arrival_ms = kArrival;
  in.queue_id = "0ABCDEFGHJKM";
  in.recipients = {bob(), carol()};
  in.now = at_seconds(1700003600);  // Tue, 14 Nov 2023 23:13:20 +0000
  in.boundary_seed = "seed1234";
  in.message_id_domain = "example.org";
  return in;
}

// The complete DSN as a caller writes it: head, the returned content, tail.
std::string build(const DsnInput& in, const std::string& original = kOriginal) {
  auto head = dsn_head(in);
  EXPECT_TRUE(head.ok()) << (head.ok() ? "" : head.error().message);
  if (!head.ok()) return {};
  std::string out = *head;
  if (dsn_layout(in).full_message)
    out += original;
  else
    out += original.substr(0, header_section_length(original));
  out += dsn_tail(in);
  return out;
}

// Splits on CRLF; a bare CR or LF, a missing final CRLF or a line over 998 octets fails the test.
std::vector<std::string> crlf_lines(const std::string& s) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start < s.size()) {
    std::size_t e = s.find("\r\n", start);
    if (e == std::string::npos) {
      ADD_FAILURE() << "no final CRLF";
      break;
    }
    out.push_back(s.substr(start, e - start));
    start = e + 2;
  }
  for (const auto& l : out) {
    EXPECT_EQ(l.find('\r'), std::string::npos) << "bare CR in: " << l;
    EXPECT_EQ(l.find('\n'), std::string::npos) << "bare LF in: " << l;
    EXPECT_LE(l.size() + 2, 1000u) << "RFC 5322 2.1.1: line over 998 octets";
  }
  return out;
}

using Fields = std::vector<std::pair<std::string, std::string>>;

// Unfolds a header block (RFC 5322 2.2.3) into (name, value) pairs; value without the one
// space after the colon.
Fields unfold(const std::vector<std::string>& lines) {
  Fields f;
  for (const auto& l : lines) {
    if (!l.empty() && (l[0] == ' ' || l[0] == '\t')) {
      if (f.empty()) {
        ADD_FAILURE() << "continuation line first: " << l;
        continue;
      }
      f.back().second += l;
      continue;
    }
    std::size_t colon = l.find(':');
    if (colon == std::string::npos) {
      ADD_FAILURE() << "not a field: " << l;
      continue;
    }
    std::string v = l.substr(colon + 1);
    if (!v.empty() && v[0] == ' ') v.erase(0, 1);
    f.emplace_back(l.substr(0, colon), v);
  }
  return f;
}

std::vector<std::string> names(const Fields& f) {
  std::vector<std::string> n;
  for (const auto& [k, v] : f) n.push_back(k);
  return n;
}

std::string get(const Fields& f, const std::string& name) {
  for (const auto& [k, v] : f)
    if (k == name) return v;
  return "<absent>";
}

struct Part {
  Fields headers;
  std::vector<std::string> body;  // lines; the CRLF before the next delimiter removed
};

struct Parsed {
  Fields headers;
  std::string boundary;
  std::vector<Part> parts;
  bool closed = false;   // saw the close-delimiter
  bool epilogue_empty = true;
};

// A strict multipart parser for the tests (RFC 2046 5.1.1), given the boundary.
Parsed parse(const std::string& msg, const std::string& boundary) {
  Parsed p;
  p.boundary = boundary;
  std::vector<std::string> lines = crlf_lines(msg);
  std::size_t i = 0;
  std::vector<std::string> hdr;
  while (i < lines.size() && !lines[i].empty()) hdr.push_back(lines[i++]);
  p.headers = unfold(hdr);
  const std::string delim = "--" + boundary;
  const std::string close = delim + "--";
  // Skip the preamble.
  while (i < lines.size() && lines[i] != delim) ++i;
  Part* cur = nullptr;
  bool in_headers = false;
  std::vector<std::string> part_hdr;
  for (; i < lines.size(); ++i) {
    const std::string& l = lines[i];
    if (l == delim || l == close) {
      if (cur) {
        EXPECT_FALSE(cur->body.empty()) << "RFC 2046 5.1.1: delimiter must follow a CRLF";
        if (!cur->body.empty()) {
          EXPECT_EQ(cur->body.back(), "");
          cur->body.pop_back();
        }
      }
      if (l == close) {
        p.closed = true;
        p.epilogue_empty = i + 1 == lines.size();
        break;
      }
      p.parts.emplace_back();
      cur = &p.parts.back();
      in_headers = true;
      part_hdr.clear();
      continue;
    }
    EXPECT_NE(l.rfind("--", 0), 0u) << "a line starting with -- that is not a delimiter: " << l;
    if (in_headers) {
      if (l.empty()) {
        cur->headers = unfold(part_hdr);
        in_headers = false;
      } else {
        part_hdr.push_back(l);
      }
      continue;
    }
    cur->body.push_back(l);
  }
  return p;
}

// Splits a message/delivery-status body into its field groups (RFC 3464 2.1).
std::vector<Fields> groups(const std::vector<std::string>& body) {
  std::vector<Fields> out;
  std::vector<std::string> cur;
  for (const auto& l : body) {
    if (l.empty()) {
      EXPECT_FALSE(cur.empty()) << "two blank lines in a row";
      out.push_back(unfold(cur));
      cur.clear();
    } else {
      cur.push_back(l);
    }
  }
  // The last group ends with its CRLF, which precedes the delimiter's own CRLF (RFC 2046
  // 5.1.1): parse() already checked and removed that empty line.
  EXPECT_FALSE(cur.empty()) << "a blank line after the last group";
  if (!cur.empty()) out.push_back(unfold(cur));
  return out;
}

std::string joined(const std::vector<std::string>& lines) {
  std::string s;
  for (const auto& l : lines) s += l + "\n";
  return s;
}

// The lines joined with single spaces: phrases of the wrapped text part can be searched.
std::string flat(const std::vector<std::string>& lines) {
  std::string s;
  for (const auto& l : lines) {
    for (char c : l) {
      if (c == ' ' && (s.empty() || s.back() == ' ')) continue;
      s += c;
    }
    if (!s.empty() && s.back() != ' ') s += ' ';
  }
  return s;
}

bool ascii_only(const std::string& s) {
  for (unsigned char c : s)
    if (c >= 0x80) return false;
  return true;
}

}  // namespace

// --- a failed DSN for two recipients, all fields ------------------------------------------

TEST(Dsn, Rfc3464_FailedTwoRecipients_ExactStructure) {
  const DsnInput in = failed_input();
  const std::string b = dsn_boundary(in);
  const std::string msg = build(in);
  Parsed p = parse(msg, b);

  // RFC 5322 3.6 message header, RFC 3834 5, RFC 6522 3.
  EXPECT_EQ(names(p.headers),
            (std::vector<std::string>{"From", "To", "Subject", "Date", "Message-ID",
                                      "Auto-Submitted", "MIME-Version", "Content-Type"}));
  EXPECT_EQ(get(p.headers, "From"), "Mail Delivery System <MAILER-DAEMON@mx.example.org>");
  EXPECT_EQ(get(p.headers, "To"), "<alice@example.org>");
  EXPECT_EQ(get(p.headers, "Subject"), "Undelivered Mail Returned to Sender");
  EXPECT_EQ(get(p.headers, "Date"), "Tue, 14 Nov 2023 23:13:20 +0000");
  EXPECT_EQ(get(p.headers, "Auto-Submitted"), "auto-replied");
  EXPECT_EQ(get(p.headers, "MIME-Version"), "1.0");
  EXPECT_EQ(get(p.headers, "Content-Type"),
            "multipart/report; report-type=delivery-status;\tboundary=\"" + b + "\"");
  const std::string mid = get(p.headers, "Message-ID");
  EXPECT_EQ(mid.front(), '<');
  EXPECT_EQ(mid.back(), '>');
  EXPECT_NE(mid.find("0ABCDEFGHJKM"), std::string::npos);
  EXPECT_EQ(mid.substr(mid.size() - 13), "@example.org>");
  EXPECT_EQ(mid.find(".."), std::string::npos);

  // RFC 2046 5.1.1: three parts, closed, nothing after the close-delimiter.
  ASSERT_EQ(p.parts.size(), 3u);
  EXPECT_TRUE(p.closed);
  EXPECT_TRUE(p.epilogue_empty);
  EXPECT_EQ(msg.substr(msg.size() - (b.size() + 8)), "\r\n--" + b + "--\r\n");
  EXPECT_EQ(dsn_tail(in), "\r\n--" + b + "--\r\n");

  // Part 1: human-readable, US-ASCII (RFC 6522 3).
  EXPECT_EQ(get(p.parts[0].headers, "Content-Type"), "text/plain; charset=us-ascii");
  EXPECT_EQ(get(p.parts[0].headers, "Content-Transfer-Encoding"), "7bit");
  const std::string text = flat(p.parts[0].body);
  EXPECT_TRUE(ascii_only(text));
  EXPECT_NE(text.find("mx.example.org"), std::string::npos);
  EXPECT_NE(text.find("NOT"), std::string::npos);
  EXPECT_NE(text.find("delivered"), std::string::npos);
  EXPECT_NE(text.find("<bob@example.net>"), std::string::npos);
  EXPECT_NE(text.find("<carol@example.com>"), std::string::npos);
  EXPECT_NE(text.find("5.1.1 (bad destination mailbox address)"), std::string::npos);
  EXPECT_NE(text.find("5.4.7 (delivery time expired)"), std::string::npos);
  EXPECT_NE(text.find("mx.example.net said: 550-5.1.1"), std::string::npos);
  EXPECT_NE(text.find("User unknown in virtual mailbox"), std::string::npos);
  EXPECT_NE(text.find("Queue ID: 0ABCDEFGHJKM"), std::string::npos);
  EXPECT_NE(text.find("header of your message"), std::string::npos);
  for (const auto& l : p.parts[0].body) EXPECT_LE(l.size(), 78u) << l;

  // Part 2: RFC 3464 2.1 — per-message group, then one group per recipient.
  EXPECT_EQ(get(p.parts[1].headers, "Content-Type"), "message/delivery-status");
  EXPECT_EQ(get(p.parts[1].headers, "Content-Transfer-Encoding"), "7bit");
  std::vector<Fields> g = groups(p.parts[1].body);
  ASSERT_EQ(g.size(), 3u);
  // RFC 3464 2.2 order: original-envelope-id, reporting-mta, arrival-date, extension fields.
  EXPECT_EQ(names(g[0]),
            (std::vector<std::string>{"Original-Envelope-Id", "Reporting-MTA", "Arrival-Date",
                                      "X-Carrier-Queue-ID", "X-Carrier-Sender"}));
  EXPECT_EQ(get(g[0], "Original-Envelope-Id"), "ENV-42");
  EXPECT_EQ(get(g[0], "Reporting-MTA"), "dns; mx.example.org");
  EXPECT_EQ(get(g[0], "Arrival-Date"), "Tue, 14 Nov 2023 22:13:20 +0000");
  EXPECT_EQ(get(g[0], "X-Carrier-Queue-ID"), "0ABCDEFGHJKM");
  EXPECT_EQ(get(g[0], "X-Carrier-Sender"), "rfc822; alice@example.org");
  // RFC 3464 2.3 order: original-recipient, final-recipient, action, status, remote-mta,
  // diagnostic-code, last-attempt-date.
  EXPECT_EQ(names(g[1]),
            (std::vector<std::string>{"Original-Recipient", "Final-Recipient", "Action", "Status",
                                      "Remote-MTA", "Diagnostic-Code", "Last-Attempt-Date"}));
  EXPECT_EQ(get(g[1], "Original-Recipient"), "rfc822; Bob@Example.NET");
  EXPECT_EQ(get(g[1], "Final-Recipient"), "rfc822; bob@example.net");
  EXPECT_EQ(get(g[1], "Action"), "failed");
  EXPECT_EQ(get(g[1], "Status"), "5.1.1");
  EXPECT_EQ(get(g[1], "Remote-MTA"), "dns; mx.example.net");
  // Multi-line reply joined with spaces (folding restored by unfolding).
  EXPECT_EQ(get(g[1], "Diagnostic-Code"),
            "smtp; 550-5.1.1 <bob@example.net>: Recipient address rejected: 550 5.1.1 User "
            "unknown in virtual mailbox table");
  EXPECT_EQ(get(g[1], "Last-Attempt-Date"), "Tue, 14 Nov 2023 23:11:40 +0000");
  EXPECT_EQ(names(g[2]), (std::vector<std::string>{"Final-Recipient", "Action", "Status",
                                                   "Diagnostic-Code"}));
  EXPECT_EQ(get(g[2], "Final-Recipient"), "rfc822; carol@example.com");
  EXPECT_EQ(get(g[2], "Diagnostic-Code"), "X-Carrier; delivery time expired");
  // Folded report lines stay within the RFC 5322 2.1.1 SHOULD of 78.
  for (const auto& l : p.parts[1].body) EXPECT_LE(l.size(), 78u) << l;

  // Part 3: the header section of the original, exactly as stored (RFC 3464 2.1, RFC 6522 3).
  EXPECT_EQ(get(p.parts[2].headers, "Content-Type"), "text/rfc822-headers");
  EXPECT_EQ(get(p.parts[2].headers, "Content-Transfer-Encoding"), "7bit");
  const std::string hdr_section = kOriginal.substr(0, kOriginal.find("\r\n\r\n") + 4);
  EXPECT_NE(msg.find("\r\n\r\n" + hdr_section + "\r\n--" + b + "--\r\n"), std::string::npos);
  EXPECT_EQ(joined(p.parts[2].body).find("this is the body"), std::string::npos);

  // The head ends exactly where the caller's content begins.
  auto head = dsn_head(in);
  ASSERT_TRUE(head.ok());
  EXPECT_EQ(head->substr(head->size() - 4), "\r\n\r\n");
  EXPECT_EQ(msg.substr(0, head->size()), *head);
}

TEST(Dsn, Deterministic_AndBoundaryShape) {
  DsnInput in = failed_input();
  EXPECT_EQ(build(in), build(in));
  const std::string b = dsn_boundary(in);
  EXPECT_LE(b.size(), 70u);  // RFC 2046 5.1.1
  EXPECT_EQ(b.rfind("=_carrier_seed1234_", 0), 0u);
  for (char c : b)
    EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(c)) || c == '=' || c == '_' || c == '-' ||
                c == '.')
        << c;
  DsnInput other = in;
  other.boundary_seed = "seed1235";
  EXPECT_NE(dsn_boundary(other), b);
  other = in;
  other.now += std::chrono::milliseconds(1);
  EXPECT_NE(dsn_boundary(other), b);
  // Seeds with unsafe characters still give a safe, bounded boundary.
  other = in;
  other.boundary_seed = std::string("\"\r\n--x;y") + std::string(200, 'z');
  const std::string b2 = dsn_boundary(other);
  EXPECT_LE(b2.size(), 70u);
  EXPECT_EQ(b2.find_first_of("\"\r\n;"), std::string::npos);
  Parsed p = parse(build(other), b2);
  EXPECT_EQ(p.parts.size(), 3u);
  EXPECT_TRUE(p.closed);
}

// --- delayed --------------------------------------------------------------------------------

TEST(Dsn, Rfc3464_2_3_7_DelayedHasWillRetryUntil) {
  DsnInput in = failed_input();
  in.ret = Ret::Unset;
  in.recipients = {bob()};
  in.recipients[0].action = DsnAction::Delayed;
  in.recipients[0].status = "4.4.1";
  in.recipients[0].diagnostic.clear();
  in.recipients[0].will_retry_until_ms = kRetryUntil;
  const std::string msg = build(in);
  Parsed p = parse(msg, dsn_boundary(in));
  ASSERT_EQ(p.parts.size(), 3u);
  EXPECT_EQ(get(p.headers, "Subject"), "Delivery Status Notification (Delay)");
  std::vector<Fields> g = groups(p.parts[1].body);
  ASSERT_EQ(g.size(), 2u);
  EXPECT_EQ(names(g[1]),
            (std::vector<std::string>{"Original-Recipient", "Final-Recipient", "Action", "Status",
                                      "Remote-MTA", "Last-Attempt-Date", "Will-Retry-Until"}));
  EXPECT_EQ(get(g[1], "Action"), "delayed");
  EXPECT_EQ(get(g[1], "Status"), "4.4.1");
  EXPECT_EQ(get(g[1], "Will-Retry-Until"), "Sun, 19 Nov 2023 22:13:20 +0000");
  const std::string text = flat(p.parts[0].body);
  EXPECT_NE(text.find("delayed"), std::string::npos);
  EXPECT_NE(text.find("not been delivered yet"), std::string::npos);
  EXPECT_NE(text.find("Will be retried until Sun, 19 Nov 2023 22:13:20 +0000."),
            std::string::npos);
  EXPECT_NE(text.find("Mail server: mx.example.net"), std::string::npos);
  EXPECT_EQ(text.find("NOT delivered"), std::string::npos);
}

TEST(Dsn, Rfc3464_2_3_7_WillRetryUntilOnlyForDelayed) {
  DsnInput in = failed_input();
  in.recipients[0].will_retry_until_ms = kRetryUntil;  // failed: must not be reported
  Parsed p = parse(build(in), dsn_boundary(in));
  ASSERT_EQ(p.parts.size(), 3u);
  for (const auto& grp : groups(p.parts[1].body))
    EXPECT_EQ(get(grp, "Will-Retry-Until"), "<absent>");
}

TEST(Dsn, Rfc3464_2_3_3_ActionsAndSubjects) {
  DsnInput in = failed_input();
  in.recipients = {bob()};
  in.recipients[0].action = DsnAction::Delivered;
  in.recipients[0].status = "2.0.0";
  Parsed p = parse(build(in), dsn_boundary(in));
  EXPECT_EQ(get(p.headers, "Subject"), "Delivery Status Notification (Success)");
  ASSERT_EQ(p.parts.size(), 3u);
  EXPECT_EQ(get(groups(p.parts[1].body)[1], "Action"), "delivered");
  EXPECT_NE(flat(p.parts[0].body).find("was delivered to"), std::string::npos);

  EXPECT_EQ(dsn_action_name(DsnAction::Relayed), "relayed");
  EXPECT_EQ(dsn_action_name(DsnAction::Expanded), "expanded");
  EXPECT_EQ(dsn_action_name(DsnAction::Failed), "failed");
  EXPECT_EQ(dsn_action_name(DsnAction::Delayed), "delayed");

  // Mixed: a failure wins the subject; both sections appear in the text.
  in.recipients = {bob(), carol()};
  in.recipients[0].action = DsnAction::Delayed;
  in.recipients[0].status = "4.4.1";
  p = parse(build(in), dsn_boundary(in));
  EXPECT_EQ(get(p.headers, "Subject"), "Undelivered Mail Returned to Sender");
  const std::string text = flat(p.parts[0].body);
  EXPECT_NE(text.find("NOT delivered"), std::string::npos);
  EXPECT_NE(text.find("has been delayed"), std::string::npos);
  in.recipients = {bob()};
  in.recipients[0].action = DsnAction::Relayed;
  p = parse(build(in), dsn_boundary(in));
  EXPECT_EQ(get(p.headers, "Subject"), "Delivery Status Notification (Success)");
  EXPECT_EQ(get(groups(p.parts[1].body)[1], "Action"), "relayed");
}

TEST(Dsn, Rfc3463_MalformedStatusFallsBackByAction) {
  DsnInput in = failed_input();
  in.recipients = {bob(), carol(), bob()};
  in.recipients[0].status = "5.1";                    // too short
  in.recipients[1].status = "9.1.1";                  // bad class
  in.recipients[1].action = DsnAction::Delayed;
  in.recipients[2].status = "5.1.1\r\nAction: ok";    // injection attempt
  in.recipients[2].action = DsnAction::Delivered;
  Parsed p = parse(build(in), dsn_boundary(in));
  ASSERT_EQ(p.parts.size(), 3u);
  std::vector<Fields> g = groups(p.parts[1].body);
  ASSERT_EQ(g.size(), 4u);
  EXPECT_EQ(get(g[1], "Status"), "5.0.0");
  EXPECT_EQ(get(g[2], "Status"), "4.0.0");
  EXPECT_EQ(get(g[3], "Status"), "2.0.0");
  EXPECT_EQ(names(g[3]).size(), 7u);  // no extra Action field
  in.recipients = {bob()};
  in.recipients[0].status = "5.123.456";
  g = groups(parse(build(in), dsn_boundary(in)).parts[1].body);
  EXPECT_EQ(get(g[1], "Status"), "5.123.456");
  in.recipients[0].status = "5.1234.1";
  g = groups(parse(build(in), dsn_boundary(in)).parts[1].body);
  EXPECT_EQ(get(g[1], "Status"), "5.0.0");
}

// --- RET and returned content -----------------------------------------------------------------

TEST(Dsn, Rfc3461_4_3_RetFullReturnsMessageRfc822) {
  DsnInput in = failed_input();
  in.ret = Ret::Full;
  DsnLayout l = dsn_layout(in);
  EXPECT_TRUE(l.full_message);
  EXPECT_EQ(l.content_type, "message/rfc822");
  EXPECT_EQ(l.body, Body::SevenBit);
  EXPECT_FALSE(l.smtputf8);
  const std::string msg = build(in);
  Parsed p = parse(msg, dsn_boundary(in));
  ASSERT_EQ(p.parts.size(), 3u);
  EXPECT_EQ(get(p.parts[2].headers, "Content-Type"), "message/rfc822");
  EXPECT_EQ(get(p.parts[2].headers, "Content-Transfer-Encoding"), "7bit");
  EXPECT_NE(joined(p.parts[2].body).find("this is the body."), std::string::npos);
  EXPECT_NE(msg.find("\r\n\r\n" + kOriginal + "\r\n--"), std::string::npos);
  EXPECT_NE(flat(p.parts[0].body).find("Your message is attached"), std::string::npos);
}

TEST(Dsn, Rfc3461_4_3_RetHdrsAndUnsetReturnHeadersOnly) {
  for (Ret r : {Ret::Hdrs, Ret::Unset}) {
    DsnInput in = failed_input();
    in.ret = r;
    DsnLayout l = dsn_layout(in);
    EXPECT_FALSE(l.full_message);
    EXPECT_EQ(l.content_type, "text/rfc822-headers");
    Parsed p = parse(build(in), dsn_boundary(in));
    ASSERT_EQ(p.parts.size(), 3u);
    EXPECT_EQ(get(p.parts[2].headers, "Content-Type"), "text/rfc822-headers");
    EXPECT_EQ(get(p.parts[2].headers, "Content-Description"), "Undelivered Message Headers");
    EXPECT_NE(joined(p.parts[2].body).find("Subject: hello"), std::string::npos);
    EXPECT_EQ(joined(p.parts[2].body).find("this is the body"), std::string::npos);
  }
}

TEST(Dsn, Rfc6152_EightBitOriginalIsLabelled8bit_BinaryMimeReturnsHeaders) {
  DsnInput in = failed_input();
  in.ret = Ret::Full;
  in.original_body = Body::EightBitMime;
  DsnLayout l = dsn_layout(in);
  EXPECT_TRUE(l.full_message);
  EXPECT_EQ(l.body, Body::EightBitMime);
  auto head = dsn_head(in);
  ASSERT_TRUE(head.ok());
  EXPECT_NE(head->find("Content-Type: message/rfc822\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"),
            std::string::npos);

  // RFC 3030 3: a BINARYMIME body cannot travel in a DSN sent without BINARYMIME.
  in.original_body = Body::BinaryMime;
  l = dsn_layout(in);
  EXPECT_FALSE(l.full_message);
  EXPECT_EQ(l.content_type, "text/rfc822-headers");
  head = dsn_head(in);
  ASSERT_TRUE(head.ok());
  EXPECT_NE(head->find("Content-Type: text/rfc822-headers\r\n"), std::string::npos);
}

// --- ENVID / ORCPT only when given -----------------------------------------------------------

TEST(Dsn, Rfc3464_2_2_1_And_2_3_1_EnvidAndOrcptOnlyWhenGiven) {
  DsnInput in = failed_input();
  in.envid.clear();
  in.arrival_ms = 0;
  in.queue_id.clear();
  in.recipients = {bob(), carol()};
  in.recipients[0].orcpt_type.clear();
  in.recipients[0].orcpt.clear();
  in.recipients[0].last_attempt_ms = 0;
  in.recipients[0].remote_mta.clear();
  in.recipients[0].diagnostic.clear();
  const std::string msg = build(in);
  EXPECT_EQ(msg.find("Original-Envelope-Id"), std::string::npos);
  EXPECT_EQ(msg.find("Original-Recipient"), std::string::npos);
  EXPECT_EQ(msg.find("Arrival-Date"), std::string::npos);
  EXPECT_EQ(msg.find("X-Carrier-Queue-ID"), std::string::npos);
  Parsed p = parse(msg, dsn_boundary(in));
  ASSERT_EQ(p.parts.size(), 3u);
  std::vector<Fields> g = groups(p.parts[1].body);
  ASSERT_EQ(g.size(), 3u);
  EXPECT_EQ(names(g[0]), (std::vector<std::string>{"Reporting-MTA", "X-Carrier-Sender"}));
  EXPECT_EQ(names(g[1]), (std::vector<std::string>{"Final-Recipient", "Action", "Status"}));
  EXPECT_EQ(get(p.headers, "Message-ID").find(".."), std::string::npos);

  // Type given but no address (or the reverse): no half field.
  in.recipients[0].orcpt_type = "rfc822";
  EXPECT_EQ(build(in).find("Original-Recipient"), std::string::npos);
}

// --- injection --------------------------------------------------------------------------------

TEST(Dsn, Rfc5322_2_2_HeaderInjectionNeutralised) {
  DsnInput in = failed_input();
  in.queue_id = "Q\r\nX-Injected: 7";
  const std::string b = dsn_boundary(in);  // the real boundary, tried from inside the report
  in.recipients[0].diagnostic =
      "550 no\r\nX-Injected: 1\r\n\r\n--" + b + "--\r\nContent-Type: text/html\r\n" +
      std::string("\0\x7f", 2) + "end";
  in.recipients[0].final_recipient = {"bob\r\nX-Injected: 2", "example.net"};
  in.recipients[0].orcpt = "a\r\nX-Injected: 3";
  in.recipients[0].remote_mta = "mx.example.net\r\nX-Injected: 4";
  in.recipients[0].diagnostic_type = "smtp\r\nX-Injected: 5";
  in.sender = {"alice\r\nBcc: victim@example.com", "example.org"};
  in.envid = "E\r\nX-Injected: 6";
  in.reporting_mta = "mx.example.org\r\nX-Injected: 8";
  in.message_id_domain = "x>\r\nX-Injected: 9";
  const std::string msg = build(in);
  Parsed p = parse(msg, b);  // also: no bare CR/LF, no stray "--" lines
  ASSERT_EQ(p.parts.size(), 3u);
  EXPECT_TRUE(p.closed);
  for (const auto& l : crlf_lines(msg)) {
    EXPECT_NE(l.rfind("X-Injected", 0), 0u) << l;
    EXPECT_NE(l.rfind("Bcc", 0), 0u) << l;
    EXPECT_NE(l.rfind("Content-Type: text/html", 0), 0u) << l;
  }
  EXPECT_EQ(msg.find('\0'), std::string::npos);
  EXPECT_EQ(msg.find('\x7f'), std::string::npos);
  EXPECT_EQ(names(p.headers).size(), 8u);
  EXPECT_EQ(get(p.headers, "To"), "<alice??Bcc: victim@example.com@example.org>");
  std::vector<Fields> g = groups(p.parts[1].body);
  ASSERT_EQ(g.size(), 3u);
  EXPECT_EQ(g[1].size(), 7u);
  EXPECT_EQ(get(g[1], "Final-Recipient"), "rfc822; bob??X-Injected: 2@example.net");
  EXPECT_EQ(get(g[1], "Original-Recipient"), "rfc822; a X-Injected: 3");
  EXPECT_EQ(get(g[1], "Remote-MTA"), "dns; mx.example.netX-Injected4");
  EXPECT_EQ(get(g[1], "Diagnostic-Code"),
            "smtpX-Injected5; 550 no X-Injected: 1 --" + b +
                "-- Content-Type: text/html ??end");
  EXPECT_EQ(get(g[0], "Original-Envelope-Id"), "E X-Injected: 6");
  EXPECT_EQ(get(g[0], "Reporting-MTA"), "dns; mx.example.orgX-Injected8");
  // The Message-ID keeps dot-atom characters only.
  const std::string mid = get(p.headers, "Message-ID");
  EXPECT_EQ(mid.find_first_of(" >", 1), mid.size() - 1);
}

TEST(Dsn, Rfc5322_2_1_1_LongValuesFoldedAndCapped) {
  DsnInput in = failed_input();
  in.recipients[0].diagnostic = std::string(5000, 'x');                      // one huge word
  in.recipients[1].diagnostic.clear();
  for (int i = 0; i < 400; ++i) in.recipients[1].diagnostic += "550-5.0.0 line\r\n";
  const std::string msg = build(in);
  Parsed p = parse(msg, dsn_boundary(in));  // checks every line <= 998
  ASSERT_EQ(p.parts.size(), 3u);
  std::vector<Fields> g = groups(p.parts[1].body);
  ASSERT_EQ(g.size(), 3u);
  const std::string d1 = get(g[1], "Diagnostic-Code");
  EXPECT_LE(d1.size(), 2100u);
  EXPECT_GE(d1.size(), 1900u);
  const std::string d2 = get(g[2], "Diagnostic-Code");
  EXPECT_LE(d2.size(), 2100u);
  EXPECT_EQ(d2.rfind("X-Carrier; 550-5.0.0 line 550-5.0.0 line", 0), 0u);
  for (const auto& l : p.parts[0].body) EXPECT_LE(l.size(), 210u);
}

// --- header section length --------------------------------------------------------------------

TEST(Dsn, Rfc5322_2_1_HeaderSectionLength) {
  // CRLF CRLF: up to and including the empty line.
  EXPECT_EQ(header_section_length("A: 1\r\nB: 2\r\n\r\nbody\r\n"), 14u);
  // LF LF (content stored with bare LF).
  EXPECT_EQ(header_section_length("A: 1\nB: 2\n\nbody\n"), 11u);
  // Mixed LF then CRLF empty line.
  EXPECT_EQ(header_section_length("A: 1\n\r\nbody"), 7u);
  // An empty line first: no header fields at all.
  EXPECT_EQ(header_section_length("\r\nbody\r\n"), 2u);
  // A CR alone is not a line end.
  EXPECT_EQ(header_section_length("A: 1\r\r\nB: 2\r\n\r\n"), 15u);
  // No empty line, short content: all of it is header (a message without a body).
  EXPECT_EQ(header_section_length("A: 1\r\nB: 2\r\n"), 12u);
  EXPECT_EQ(header_section_length("A: 1\r\nB: 2"), 10u);
  EXPECT_EQ(header_section_length(""), 0u);

  // No empty line within the limit: cut at the last line end inside the limit.
  std::string big;
  while (big.size() < kDsnMaxHeaderSection + 1000) big += "X-Filler: 0123456789abcdef\r\n";
  std::size_t n = header_section_length(big);
  EXPECT_LE(n, kDsnMaxHeaderSection);
  EXPECT_GT(n, kDsnMaxHeaderSection - 28);
  EXPECT_EQ(big.substr(n - 2, 2), "\r\n");
  // An empty line just past the limit is not reached.
  std::string past = big.substr(0, n) + std::string(100, 'a') + "\r\n\r\nbody";
  ASSERT_GT(past.size(), kDsnMaxHeaderSection);
  EXPECT_EQ(header_section_length(past), n);
  // An empty line ending exactly at the limit is included.
  std::string exact(kDsnMaxHeaderSection - 4, 'a');
  exact[0] = 'A';
  exact += "\r\n\r\n";
  exact += "body";
  EXPECT_EQ(header_section_length(exact), kDsnMaxHeaderSection);
  // One line longer than the limit and no line end: nothing can be cut cleanly.
  EXPECT_EQ(header_section_length(std::string(kDsnMaxHeaderSection + 10, 'a')), 0u);
}

// --- RFC 6533 global types ------------------------------------------------------------------

TEST(Dsn, Rfc6533_Utf8RecipientUsesGlobalTypes) {
  DsnInput in = failed_input();
  in.original_smtputf8 = true;
  in.ret = Ret::Hdrs;
  in.recipients[0].final_recipient = {"\xC3\xA9l\xC3\xA8ve", "\xC3\xA9" "cole.example"};
  in.recipients[0].orcpt_type = "utf-8";
  in.recipients[0].orcpt = "\xC3\xA9l\xC3\xA8ve+x=y@\xC3\xA9" "cole.example";
  DsnLayout l = dsn_layout(in);
  EXPECT_TRUE(l.global_report);
  EXPECT_TRUE(l.global_content);
  EXPECT_TRUE(l.smtputf8);
  EXPECT_EQ(l.body, Body::EightBitMime);
  EXPECT_EQ(l.status_type, "message/global-delivery-status");
  EXPECT_EQ(l.content_type, "message/global-headers");
  const std::string original = "Subject: caf\xC3\xA9\r\n\r\nbody\r\n";
  Parsed p = parse(build(in, original), dsn_boundary(in));
  EXPECT_EQ(get(p.headers, "Content-Type"),
            "multipart/report; report-type=global-delivery-status;\tboundary=\"" +
                dsn_boundary(in) + "\"");
  ASSERT_EQ(p.parts.size(), 3u);
  EXPECT_EQ(get(p.parts[1].headers, "Content-Type"), "message/global-delivery-status");
  EXPECT_EQ(get(p.parts[1].headers, "Content-Transfer-Encoding"), "8bit");
  EXPECT_EQ(get(p.parts[2].headers, "Content-Type"), "message/global-headers");
  EXPECT_EQ(get(p.parts[2].headers, "Content-Transfer-Encoding"), "8bit");
  std::vector<Fields> g = groups(p.parts[1].body);
  ASSERT_EQ(g.size(), 3u);
  // RFC 6533 3: utf-8 address type; unitext keeps UTF-8, escapes '+' and '='.
  EXPECT_EQ(get(g[1], "Final-Recipient"), "utf-8; \xC3\xA9l\xC3\xA8ve@\xC3\xA9" "cole.example");
  EXPECT_EQ(get(g[1], "Original-Recipient"),
            "utf-8; \xC3\xA9l\xC3\xA8ve\\x{2B}x\\x{3D}y@\xC3\xA9" "cole.example");
  EXPECT_EQ(get(g[2], "Final-Recipient"), "rfc822; carol@example.com");
  // The human-readable part stays ASCII.
  const std::string text = flat(p.parts[0].body);
  EXPECT_TRUE(ascii_only(text));
  EXPECT_NE(text.find("<\\x{E9}l\\x{E8}ve@\\x{E9}cole.example>"), std::string::npos);
  EXPECT_NE(joined(p.parts[2].body).find("caf\xC3\xA9"), std::string::npos);

  // RET=FULL of an SMTPUTF8 message: message/global (RFC 6532 3.7).
  in.ret = Ret::Full;
  EXPECT_EQ(dsn_layout(in).content_type, "message/global");
}

TEST(Dsn, Rfc6533_Utf8SenderAloneMakesReportGlobal_ContentStaysRfc822) {
  DsnInput in = failed_input();
  in.sender = {"j\xC3\xB6rg", "example.org"};
  DsnLayout l = dsn_layout(in);
  EXPECT_TRUE(l.global_report);
  EXPECT_FALSE(l.global_content);
  EXPECT_TRUE(l.smtputf8);
  EXPECT_EQ(l.content_type, "text/rfc822-headers");
  Parsed p = parse(build(in), dsn_boundary(in));
  EXPECT_EQ(get(p.headers, "To"), "<j\xC3\xB6rg@example.org>");  // RFC 6532 3.2
  ASSERT_EQ(p.parts.size(), 3u);
  EXPECT_EQ(get(groups(p.parts[1].body)[0], "X-Carrier-Sender"), "utf-8; j\xC3\xB6rg@example.org");
}

TEST(Dsn, Rfc6533_AsciiReportEscapesNonAscii) {
  DsnInput in = failed_input();
  // A remote reply with UTF-8 does not make the report global; it is escaped.
  in.recipients[0].diagnostic = "550 Benutzer unbekannt: J\xC3\xBCrgen";
  // A utf-8 ORCPT with an ASCII address stays in the xtext form of RFC 6533 3.
  in.recipients[1].orcpt_type = "utf-8";
  in.recipients[1].orcpt = "c+1=2\\x@example.com";
  DsnLayout l = dsn_layout(in);
  EXPECT_FALSE(l.global_report);
  EXPECT_FALSE(l.smtputf8);
  const std::string msg = build(in);
  EXPECT_TRUE(ascii_only(msg));
  Parsed p = parse(msg, dsn_boundary(in));
  ASSERT_EQ(p.parts.size(), 3u);
  EXPECT_EQ(get(p.parts[1].headers, "Content-Type"), "message/delivery-status");
  std::vector<Fields> g = groups(p.parts[1].body);
  ASSERT_EQ(g.size(), 3u);
  EXPECT_EQ(get(g[1], "Diagnostic-Code"), "smtp; 550 Benutzer unbekannt: J\\x{FC}rgen");
  EXPECT_EQ(get(g[2], "Original-Recipient"), "utf-8; c\\x{2B}1\\x{3D}2\\x{5C}x@example.com");
}

// --- errors -----------------------------------------------------------------------------------

TEST(Dsn, Rfc3464_2_1_NoRecipientsIsAnError) {
  DsnInput in = failed_input();
  in.recipients.clear();
  auto r = dsn_head(in);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("recipients"), std::string::npos);
}

TEST(Dsn, Rfc5321_6_1_NullSenderIsAnError) {
  DsnInput in = failed_input();
  in.sender = {};
  auto r = dsn_head(in);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("null reverse-path"), std::string::npos);
}

TEST(Dsn, EmptyHostNamesFallBack) {
  DsnInput in = failed_input();
  in.reporting_mta = "\r\n";
  in.message_id_domain.clear();
  Parsed p = parse(build(in), dsn_boundary(in));
  EXPECT_EQ(get(p.headers, "From"), "Mail Delivery System <MAILER-DAEMON@localhost>");
  EXPECT_EQ(get(p.headers, "Message-ID").substr(get(p.headers, "Message-ID").size() - 11),
            "@localhost>");
  ASSERT_EQ(p.parts.size(), 3u);
  EXPECT_EQ(get(groups(p.parts[1].body)[0], "Reporting-MTA"), "dns; localhost");
}
