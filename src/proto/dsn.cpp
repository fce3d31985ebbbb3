// carrier proto: delivery status notifications — RFC 3464 (message/delivery-status fields, in
// the order of its 2.2 and 2.3 syntax), RFC 6522 (multipart/report), RFC 3463 (status codes and
// their descriptions for the human-readable part), RFC 6533 (global DSN types, utf-8 address
// type), RFC 3834 5 (Auto-Submitted:), RFC 2046 5.1.1 (boundary). Pure. All DsnInput values
// are treated as UNTRUSTED: sanitised with sanitize_header_value, capped and folded.
#include "proto/dsn.hpp"

#include <cstdio>

#include "proto/headers.hpp"

namespace carrier::proto {

namespace {

// Output caps (octets) for values that may come from the network.
constexpr std::size_t kMaxAddrOut = 320;      // RFC 5321 4.5.3.1: 64 + 1 + 255
constexpr std::size_t kMaxOrcptOut = 500;     // RFC 3461 4.2
constexpr std::size_t kMaxEnvidOut = 100;     // RFC 3461 4.4
constexpr std::size_t kMaxHostOut = 255;      // RFC 5321 4.5.3.1.2
constexpr std::size_t kMaxTypeOut = 64;       // address-type / diagnostic-type atoms
constexpr std::size_t kMaxQueueIdOut = 64;
constexpr std::size_t kMaxDiagnosticOut = 2000;  // a joined multi-line reply, folded
constexpr std::size_t kSoftLine = 78;   // RFC 5322 2.1.1 SHOULD
constexpr std::size_t kHardLine = 900;  // well under the 998 MUST, leaves room for escapes
constexpr std::size_t kTextWidth = 76;  // human-readable part
constexpr std::size_t kTextLongWord = 200;  // longer words are split in the text part

constexpr char kCrlf[] = "\r\n";

// ---- text cleaning ------------------------------------------------------------------------

// Cuts s to at most max octets without splitting a UTF-8 sequence.
void cap_utf8(std::string& s, std::size_t max) {
  if (s.size() <= max) return;
  std::size_t n = max;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  s.resize(n);
}

// A single-line text value from untrusted input: runs of SP, HT, CR and LF become one space
// (multi-line replies are joined), leading and trailing spaces go, other controls and
// malformed UTF-8 become '?' (sanitize_header_value), at most max octets.
std::string one_line(std::string_view s, std::size_t max) {
  std::string joined;
  const std::size_t in_cap = max * 4 + 16;  // enough input for max output octets
  joined.reserve(s.size() < in_cap ? s.size() : in_cap);
  bool space = false;
  for (std::size_t i = 0; i < s.size() && joined.size() < in_cap; ++i) {
    char c = s[i];
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
      space = true;
      continue;
    }
    if (space && !joined.empty()) joined += ' ';
    space = false;
    joined += c;
  }
  std::string out = sanitize_header_value(joined);
  cap_utf8(out, max);
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

// An address from untrusted input: controls and malformed UTF-8 become '?'; spaces (inside a
// quoted local part) are kept; at most max octets.
std::string clean_address(std::string_view s, std::size_t max) {
  std::string out = sanitize_header_value(s.substr(0, max * 2));
  cap_utf8(out, max);
  return out;
}

void append_hex(std::string& out, unsigned long v, int min_digits) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%0*lX", min_digits, v);
  out += buf;
}

// Replaces every non-ASCII code point of clean UTF-8 text with "\x{HEX}" (the
// EmbeddedUnicodeChar notation of RFC 6533 3), making it ASCII.
std::string ascii_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  std::size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      out += static_cast<char>(c);
      ++i;
      continue;
    }
    char32_t cp = 0;
    std::size_t len = utf8_sequence(s.substr(i), &cp);
    if (len == 0) {  // cannot happen after sanitising; stay safe
      out += '?';
      ++i;
      continue;
    }
    out += "\\x{";
    append_hex(out, static_cast<unsigned long>(cp), 2);
    out += '}';
    i += len;
  }
  return out;
}

bool has_non_ascii(std::string_view s) {
  for (unsigned char c : s)
    if (c >= 0x80) return true;
  return false;
}

// RFC 6533 3: utf-8-addr-unitext (raw_utf8) or utf-8-addr-xtext. QCHAR = %x21-2a / %x2c-3c /
// %x3e-5b / %x5d-7e passes; space, '+', '=', '\' and controls become \x{HH}; non-ASCII code
// points are kept (unitext) or escaped (xtext).
std::string utf8_addr_encode(std::string_view clean, bool raw_utf8) {
  std::string out;
  out.reserve(clean.size());
  std::size_t i = 0;
  while (i < clean.size()) {
    unsigned char c = static_cast<unsigned char>(clean[i]);
    if (c < 0x80) {
      if (c >= 0x21 && c <= 0x7E && c != '+' && c != '=' && c != '\\') {
        out += static_cast<char>(c);
      } else {
        out += "\\x{";
        append_hex(out, c, 2);
        out += '}';
      }
      ++i;
      continue;
    }
    char32_t cp = 0;
    std::size_t len = utf8_sequence(clean.substr(i), &cp);
    if (len == 0) {
      out += "\\x{3F}";  // '?': cannot happen after sanitising
      ++i;
      continue;
    }
    if (raw_utf8) {
      out.append(clean.substr(i, len));
    } else {
      out += "\\x{";
      append_hex(out, static_cast<unsigned long>(cp), 2);
      out += '}';
    }
    i += len;
  }
  return out;
}

// An atom-like token (address-type, diagnostic-type): letters, digits, '-', '.', '_' only.
std::string token(std::string_view s, std::string_view fallback) {
  std::string out;
  for (char c : s.substr(0, kMaxTypeOut)) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '.' || c == '_')
      out += c;
  }
  return out.empty() ? std::string(fallback) : out;
}

// Host name for Reporting-MTA / Remote-MTA / From: — letters, digits, '-', '.', '_' only, so
// it can break neither the field nor the MAILER-DAEMON address; an address literal
// ("[192.0.2.1]", "[IPv6:2001:db8::1]") keeps its brackets and colons.
std::string host_name(std::string_view s) {
  s = s.substr(0, kMaxHostOut);
  const bool literal = s.size() >= 2 && s.front() == '[' && s.back() == ']';
  std::string out;
  if (literal) {
    out += '[';
    s = s.substr(1, s.size() - 2);
  }
  for (char c : s) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '.' || c == '_' || (literal && c == ':'))
      out += c;
  }
  if (literal) {
    if (out.size() == 1) return {};
    out += ']';
  }
  return out;
}

// ---- folding ------------------------------------------------------------------------------

// Appends "Name: value\r\n", folding (RFC 5322 2.2.3) before a space so lines stay within
// kSoftLine where the words allow it; a word that would carry a line past kHardLine is split
// (at a UTF-8 boundary) by a fold. value is clean: no CR/LF/controls, single spaces, trimmed.
void add_field(std::string& out, std::string_view name, std::string_view value) {
  std::size_t line = name.size() + 1;
  out += name;
  out += ':';
  std::size_t i = 0;
  bool first = true;
  while (i < value.size()) {
    std::size_t end = value.find(' ', i);
    if (end == std::string_view::npos) end = value.size();
    std::string_view word = value.substr(i, end - i);
    i = end < value.size() ? end + 1 : end;
    if (word.empty()) continue;
    if (!first && line + 1 + word.size() > kSoftLine) {
      out += "\r\n";
      line = 0;
    }
    first = false;
    out += ' ';
    ++line;
    while (line + word.size() > kHardLine) {
      std::size_t take = kHardLine - line;
      while (take > 0 && (static_cast<unsigned char>(word[take]) & 0xC0) == 0x80) --take;
      if (take == 0) take = 1;  // unreachable with clean UTF-8 and kHardLine >> 4
      out.append(word.substr(0, take));
      word.remove_prefix(take);
      out += "\r\n ";
      line = 1;
    }
    out.append(word);
    line += word.size();
  }
  out += kCrlf;
}

// Appends text (clean ASCII, single spaces) as lines of at most kTextWidth columns, each
// starting with indent; words longer than kTextLongWord are split.
void add_wrapped(std::string& out, std::string_view text, std::string_view indent) {
  std::string line(indent);
  bool empty = true;
  auto flush = [&] {
    out += line;
    out += kCrlf;
    line.assign(indent);
    empty = true;
  };
  std::size_t i = 0;
  while (i < text.size()) {
    std::size_t end = text.find(' ', i);
    if (end == std::string_view::npos) end = text.size();
    std::string_view word = text.substr(i, end - i);
    i = end < text.size() ? end + 1 : end;
    if (word.empty()) continue;
    while (word.size() > kTextLongWord) {
      if (!empty) flush();
      line.append(word.substr(0, kTextLongWord));
      word.remove_prefix(kTextLongWord);
      flush();
    }
    if (!empty && line.size() + 1 + word.size() > kTextWidth) flush();
    if (!empty) line += ' ';
    line.append(word);
    empty = false;
  }
  if (!empty) flush();
}

// ---- values -------------------------------------------------------------------------------

std::chrono::system_clock::time_point from_ms(std::int64_t ms) {
  return std::chrono::system_clock::time_point(std::chrono::milliseconds(ms));
}

bool digits_1_3(std::string_view s) {
  if (s.empty() || s.size() > 3) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

// RFC 3463 2: status-code = class "." subject "." detail; class 2/4/5, 1*3digit each.
bool valid_status(std::string_view s) {
  if (s.size() < 5 || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.') return false;
  std::size_t dot = s.find('.', 2);
  if (dot == std::string_view::npos) return false;
  return digits_1_3(s.substr(2, dot - 2)) && digits_1_3(s.substr(dot + 1));
}

std::string status_of(const DsnRecipient& r) {
  if (valid_status(r.status)) return r.status;
  switch (r.action) {
    case DsnAction::Failed: return "5.0.0";
    case DsnAction::Delayed: return "4.0.0";
    default: return "2.0.0";
  }
}

// RFC 3463 3.x: what subject.detail means (human-readable text only).
std::string_view status_description(std::string_view status) {
  struct Entry {
    const char* code;
    const char* text;
  };
  static constexpr Entry kTable[] = {
      {"0.0", "other undefined status"},
      {"1.0", "other address status"},
      {"1.1", "bad destination mailbox address"},
      {"1.2", "bad destination system address"},
      {"1.3", "bad destination mailbox address syntax"},
      {"1.4", "destination mailbox address ambiguous"},
      {"1.5", "destination address valid"},
      {"1.6", "destination mailbox has moved, no forwarding address"},
      {"1.7", "bad sender's mailbox address syntax"},
      {"1.8", "bad sender's system address"},
      {"2.0", "other or undefined mailbox status"},
      {"2.1", "mailbox disabled, not accepting messages"},
      {"2.2", "mailbox full"},
      {"2.3", "message length exceeds administrative limit"},
      {"2.4", "mailing list expansion problem"},
      {"3.0", "other or undefined mail system status"},
      {"3.1", "mail system full"},
      {"3.2", "system not accepting network messages"},
      {"3.3", "system not capable of selected features"},
      {"3.4", "message too big for system"},
      {"3.5", "system incorrectly configured"},
      {"4.0", "other or undefined network or routing status"},
      {"4.1", "no answer from host"},
      {"4.2", "bad connection"},
      {"4.3", "directory server failure"},
      {"4.4", "unable to route"},
      {"4.5", "mail system congestion"},
      {"4.6", "routing loop detected"},
      {"4.7", "delivery time expired"},
      {"5.0", "other or undefined protocol status"},
      {"5.1", "invalid command"},
      {"5.2", "syntax error"},
      {"5.3", "too many recipients"},
      {"5.4", "invalid command arguments"},
      {"5.5", "wrong protocol version"},
      {"6.0", "other or undefined media error"},
      {"6.1", "media not supported"},
      {"6.2", "conversion required and prohibited"},
      {"6.3", "conversion required but not supported"},
      {"6.4", "conversion with loss performed"},
      {"6.5", "conversion failed"},
      {"7.0", "other or undefined security status"},
      {"7.1", "delivery not authorized, message refused"},
      {"7.2", "mailing list expansion prohibited"},
      {"7.3", "security conversion required but not possible"},
      {"7.4", "security features not supported"},
      {"7.5", "cryptographic failure"},
      {"7.6", "cryptographic algorithm not supported"},
      {"7.7", "message integrity failure"},
  };
  std::string_view rest = status.size() > 2 ? status.substr(2) : std::string_view();
  for (const auto& e : kTable)
    if (rest == e.code) return e.text;
  return {};
}

struct Prepared {
  DsnLayout layout;
  std::string boundary;
  std::string host;  // reporting MTA
};

// An address for a report field: "rfc822; addr" when ASCII, else "utf-8; <unitext>" (RFC 6533
// 3; only ever reached in a global report, which allows raw UTF-8).
std::string typed_address(const Mailbox& m, bool global) {
  std::string a = clean_address(m.str(), kMaxAddrOut);
  if (!has_non_ascii(a)) return "rfc822; " + a;
  return "utf-8; " + utf8_addr_encode(a, global);
}

std::string text_address(const Mailbox& m) {
  return "<" + ascii_escape(clean_address(m.str(), kMaxAddrOut)) + ">";
}

std::uint64_t fnv1a(std::string_view s, std::uint64_t h = 14695981039346656037ull) {
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

std::int64_t unix_ms(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

// A subset of RFC 2046 5.1.1 bcharsnospace that is also atext (usable in the Message-ID).
bool boundary_safe(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_' || c == '.';
}

std::string subject_for(const DsnInput& in) {
  bool failed = false, delayed = false;
  for (const auto& r : in.recipients) {
    failed |= r.action == DsnAction::Failed;
    delayed |= r.action == DsnAction::Delayed;
  }
  if (failed) return "Undelivered Mail Returned to Sender";
  if (delayed) return "Delivery Status Notification (Delay)";
  return "Delivery Status Notification (Success)";
}

// ---- parts --------------------------------------------------------------------------------

void human_text(std::string& out, const DsnInput& in, const Prepared& p) {
  out += "This is the mail delivery system at ";
  out += p.host;
  out += ".\r\n\r\n";

  const DsnAction order[] = {DsnAction::Failed, DsnAction::Delayed, DsnAction::Delivered,
                             DsnAction::Relayed, DsnAction::Expanded};
  for (DsnAction act : order) {
    bool any = false;
    for (const auto& r : in.recipients) any |= r.action == act;
    if (!any) continue;
    switch (act) {
      case DsnAction::Failed:
        add_wrapped(out,
                    "Your message could not be delivered to one or more recipients. It was NOT "
                    "delivered to the following addresses, and the mail system has given up "
                    "on them:",
                    "");
        break;
      case DsnAction::Delayed:
        add_wrapped(out,
                    "Delivery of your message to the following addresses has been delayed. It "
                    "has not been delivered yet; the mail system will keep trying. This is a "
                    "warning only: you do not need to send the message again.",
                    "");
        break;
      case DsnAction::Delivered:
        add_wrapped(out, "Your message was delivered to the following addresses:", "");
        break;
      case DsnAction::Relayed:
        add_wrapped(out,
                    "Your message was passed on to the following addresses, to mail systems "
                    "that may not report its further delivery:",
                    "");
        break;
      case DsnAction::Expanded:
        add_wrapped(out,
                    "Your message was delivered to the following addresses, which forward it "
                    "on to further recipients:",
                    "");
        break;
    }
    out += kCrlf;
    for (const auto& r : in.recipients) {
      if (r.action != act) continue;
      std::string head = text_address(r.final_recipient);
      if (!r.orcpt.empty()) {
        std::string orig = ascii_escape(one_line(r.orcpt, kMaxOrcptOut));
        if (orig != ascii_escape(clean_address(r.final_recipient.str(), kMaxAddrOut)))
          head += " (originally <" + orig + ">)";
      }
      add_wrapped(out, head, "  ");
      const std::string status = status_of(r);
      std::string line = "Status: " + status;
      std::string_view desc = status_description(status);
      if (!desc.empty()) {
        line += " (";
        line += desc;
        line += ')';
      }
      add_wrapped(out, line, "      ");
      std::string remote = host_name(r.remote_mta);
      std::string diag = ascii_escape(one_line(r.diagnostic, kMaxDiagnosticOut));
      if (!diag.empty()) {
        std::string said = remote.empty() ? std::string("Reason: ")
                                          : "The mail server " + remote + " said: ";
        add_wrapped(out, said + diag, "      ");
      } else if (!remote.empty()) {
        add_wrapped(out, "Mail server: " + remote, "      ");
      }
      if (r.last_attempt_ms > 0)
        add_wrapped(out, "Last attempt: " + rfc5322_date(from_ms(r.last_attempt_ms)), "      ");
      if (act == DsnAction::Delayed) {
        if (r.will_retry_until_ms > 0)
          add_wrapped(out,
                      "Will be retried until " +
                          rfc5322_date(from_ms(r.will_retry_until_ms)) + ".",
                      "      ");
      }
      out += kCrlf;
    }
  }

  if (p.layout.full_message)
    add_wrapped(out, "Your message is attached below.", "");
  else
    add_wrapped(out, "The header of your message is attached below.", "");
  out += kCrlf;
  std::string qid = ascii_escape(one_line(in.queue_id, kMaxQueueIdOut));
  if (!qid.empty()) add_wrapped(out, "Queue ID: " + qid, "");
  if (in.arrival_ms > 0)
    add_wrapped(out, "Arrival date: " + rfc5322_date(from_ms(in.arrival_ms)), "");
}

// RFC 3464 2.1: per-message fields, then one group per recipient, each preceded by a blank line.
void status_fields(std::string& out, const DsnInput& in, const Prepared& p) {
  const bool g = p.layout.global_report;
  auto text = [g](std::string_view s, std::size_t max) {
    std::string v = one_line(s, max);
    return g ? v : ascii_escape(v);
  };
  // RFC 3464 2.2: [original-envelope-id] reporting-mta [dsn-gateway] [received-from-mta]
  // [arrival-date] *extension-field
  std::string envid = text(in.envid, kMaxEnvidOut);
  if (!envid.empty()) add_field(out, "Original-Envelope-Id", envid);
  add_field(out, "Reporting-MTA", "dns; " + p.host);
  if (in.arrival_ms > 0) add_field(out, "Arrival-Date", rfc5322_date(from_ms(in.arrival_ms)));
  std::string qid = text(in.queue_id, kMaxQueueIdOut);
  if (!qid.empty()) add_field(out, "X-Carrier-Queue-ID", qid);
  add_field(out, "X-Carrier-Sender", typed_address(in.sender, g));

  // RFC 3464 2.3: [original-recipient] final-recipient action status [remote-mta]
  // [diagnostic-code] [last-attempt-date] [final-log-id] [will-retry-until] *extension-field
  for (const auto& r : in.recipients) {
    out += kCrlf;
    if (!r.orcpt_type.empty() && !r.orcpt.empty()) {
      std::string type = token(r.orcpt_type, "rfc822");
      std::string addr = clean_address(one_line(r.orcpt, kMaxOrcptOut), kMaxOrcptOut);
      bool utf8_type = type == "utf-8" || type == "UTF-8";
      if (utf8_type)
        addr = utf8_addr_encode(addr, g);  // RFC 6533 3
      else if (!g)
        addr = ascii_escape(addr);
      add_field(out, "Original-Recipient", type + "; " + addr);
    }
    add_field(out, "Final-Recipient", typed_address(r.final_recipient, g));
    add_field(out, "Action", dsn_action_name(r.action));
    add_field(out, "Status", status_of(r));
    std::string remote = host_name(r.remote_mta);
    if (!remote.empty()) add_field(out, "Remote-MTA", "dns; " + remote);
    std::string diag = text(r.diagnostic, kMaxDiagnosticOut);
    if (!diag.empty())
      add_field(out, "Diagnostic-Code", token(r.diagnostic_type, "smtp") + "; " + diag);
    if (r.last_attempt_ms > 0)
      add_field(out, "Last-Attempt-Date", rfc5322_date(from_ms(r.last_attempt_ms)));
    if (r.action == DsnAction::Delayed && r.will_retry_until_ms > 0)
      add_field(out, "Will-Retry-Until", rfc5322_date(from_ms(r.will_retry_until_ms)));
  }
}

}  // namespace

std::string_view dsn_action_name(DsnAction a) {
  switch (a) {
    case DsnAction::Failed: return "failed";
    case DsnAction::Delayed: return "delayed";
    case DsnAction::Delivered: return "delivered";
    case DsnAction::Relayed: return "relayed";
    case DsnAction::Expanded: return "expanded";
  }
  return "failed";
}

DsnLayout dsn_layout(const DsnInput& in) {
  DsnLayout l;
  bool utf8_addr = in.sender.needs_utf8();
  for (const auto& r : in.recipients) {
    utf8_addr |= r.final_recipient.needs_utf8();
    utf8_addr |= has_non_ascii(r.orcpt);
  }
  l.global_content = in.original_smtputf8;
  l.global_report = in.original_smtputf8 || utf8_addr;
  l.full_message = in.ret == Ret::Full && in.original_body != Body::BinaryMime;
  l.smtputf8 = l.global_report;
  const bool content_8bit = in.original_smtputf8 || in.original_body != Body::SevenBit;
  l.body = (l.global_report || content_8bit) ? Body::EightBitMime : Body::SevenBit;
  l.status_type = l.global_report ? "message/global-delivery-status" : "message/delivery-status";
  if (l.full_message)
    l.content_type = l.global_content ? "message/global" : "message/rfc822";
  else
    l.content_type = l.global_content ? "message/global-headers" : "text/rfc822-headers";
  return l;
}

std::string dsn_boundary(const DsnInput& in) {
  std::string b = "=_carrier_";
  std::size_t kept = 0;
  for (char c : in.boundary_seed) {
    if (kept == 32) break;
    if (boundary_safe(c)) {
      b += c;
      ++kept;
    }
  }
  b += '_';
  std::uint64_t h = fnv1a(in.boundary_seed);
  h = fnv1a(std::string_view("\0", 1), h);
  h = fnv1a(in.queue_id, h);
  h = fnv1a(std::to_string(unix_ms(in.now)), h);
  char buf[24];
  std::snprintf(buf, sizeof buf, "%016llX", static_cast<unsigned long long>(h));
  b += buf;
  return b;
}

Result<std::string> dsn_head(const DsnInput& in) {
  if (in.recipients.empty())
    return Error{"DSN without recipients (RFC 3464 2.1 needs at least one)"};
  if (in.sender.empty())
    return Error{"DSN to the null reverse-path (RFC 5321 6.1: never bounce a bounce)"};

  Prepared p;
  p.layout = dsn_layout(in);
  p.boundary = dsn_boundary(in);
  p.host = host_name(in.reporting_mta);
  if (p.host.empty()) p.host = "localhost";
  const bool g = p.layout.global_report;

  std::string out;
  out.reserve(4096);
  // Message header (RFC 5322 3.6). MAILER-DAEMON is the conventional bounce sender name.
  add_field(out, "From", "Mail Delivery System <MAILER-DAEMON@" + p.host + ">");
  std::string to = clean_address(in.sender.str(), kMaxAddrOut);
  add_field(out, "To", "<" + (g ? to : ascii_escape(to)) + ">");
  add_field(out, "Subject", subject_for(in));
  add_field(out, "Date", rfc5322_date(in.now));
  std::string mid_domain = host_name(in.message_id_domain);
  if (mid_domain.empty() || mid_domain.find_first_of("[]:") != std::string::npos)
    mid_domain = p.host.find_first_of("[]:") == std::string::npos ? p.host : "localhost";
  // RFC 5322 3.6.4 msg-id: dot-atom-text "@" dot-atom-text, no empty atoms.
  std::string mid = "<" + std::to_string(unix_ms(in.now)) + ".";
  std::string qid_atom;
  for (char c : in.queue_id.substr(0, kMaxQueueIdOut))
    if (boundary_safe(c) && c != '.') qid_atom += c;
  if (!qid_atom.empty()) mid += qid_atom + ".";
  mid += "dsn.";
  char hbuf[24];
  std::snprintf(hbuf, sizeof hbuf, "%016llX",
                static_cast<unsigned long long>(fnv1a(in.boundary_seed)));
  mid += hbuf;
  mid += "@" + mid_domain + ">";
  add_field(out, "Message-ID", mid);
  add_field(out, "Auto-Submitted", "auto-replied");  // RFC 3834 5
  add_field(out, "MIME-Version", "1.0");
  // RFC 6522 3: report-type is the subtype of the second part.
  out += "Content-Type: multipart/report; report-type=";
  out += g ? "global-delivery-status" : "delivery-status";
  out += ";\r\n\tboundary=\"";
  out += p.boundary;
  out += "\"\r\n\r\n";
  out += "This is a MIME-encapsulated message.\r\n";

  // Part 1: human-readable explanation (RFC 6522 3), US-ASCII.
  out += "\r\n--" + p.boundary + "\r\n";
  out += "Content-Description: Notification\r\n";
  out += "Content-Type: text/plain; charset=us-ascii\r\n";
  out += "Content-Transfer-Encoding: 7bit\r\n\r\n";
  human_text(out, in, p);

  // Part 2: the machine-readable report (RFC 3464 2.1 / RFC 6533 6).
  out += "\r\n--" + p.boundary + "\r\n";
  out += "Content-Description: Delivery report\r\n";
  out += "Content-Type: ";
  out += p.layout.status_type;
  out += "\r\nContent-Transfer-Encoding: ";
  out += g ? "8bit" : "7bit";
  out += "\r\n\r\n";
  status_fields(out, in, p);

  // Part 3: the returned content; the caller writes it after this header.
  const bool content_8bit = in.original_smtputf8 || in.original_body != Body::SevenBit;
  out += "\r\n--" + p.boundary + "\r\n";
  out += "Content-Description: ";
  out += p.layout.full_message ? "Undelivered Message" : "Undelivered Message Headers";
  out += "\r\nContent-Type: ";
  out += p.layout.content_type;
  out += "\r\nContent-Transfer-Encoding: ";
  out += content_8bit ? "8bit" : "7bit";
  out += "\r\n\r\n";
  return out;
}

std::string dsn_tail(const DsnInput& in) { return "\r\n--" + dsn_boundary(in) + "--\r\n"; }

std::size_t header_section_length(std::string_view content) {
  const std::size_t limit = content.size() < kDsnMaxHeaderSection ? content.size()
                                                                  : kDsnMaxHeaderSection;
  std::size_t pos = 0;
  while (pos < limit) {
    std::size_t nl = content.substr(0, limit).find('\n', pos);
    if (nl == std::string_view::npos) break;
    std::size_t len = nl - pos;
    if (len == 0 || (len == 1 && content[pos] == '\r')) return nl + 1;  // the empty line
    pos = nl + 1;
  }
  if (content.size() < kDsnMaxHeaderSection) return content.size();  // no body at all
  return pos;  // cut at the last line end within the limit
}

}  // namespace carrier::proto
