// carrier proto: the trace header fields carrier adds — Received: (RFC 5321 4.4, RFC 5322
// 3.6.7, with protocol names of RFC 3848), Return-Path: (RFC 5321 4.4), Delivered-To:, and
// the RFC 5322 3.3 date-time they carry. Values from the client (HELO name, reverse DNS,
// addresses) are UNTRUSTED: they are sanitised and length-capped so no header line can be
// split, smuggled or made longer than RFC 5322 2.1.1 allows. Pure (no I/O, no locale).
#include "proto/headers.hpp"

#include <cstdio>

namespace carrier::proto {

namespace {

// Caps for client-supplied values in a header line (RFC 5322 2.1.1: lines under 998 octets).
constexpr std::size_t kMaxHeloOut = 255;
constexpr std::size_t kMaxRdnsOut = 255;
constexpr std::size_t kMaxIpOut = 64;
constexpr std::size_t kMaxAddrOut = 320;
constexpr std::size_t kMaxOurOut = 255;  // host name, protocol, queue id
constexpr std::size_t kMaxTlsOut = 200;

constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

// Control characters (C0, DEL, C1) and malformed UTF-8 become '?'; well-formed UTF-8 stays
// (RFC 6532 allows it in SMTPUTF8 messages). At most max bytes are produced, never cutting
// a UTF-8 sequence in two.
std::string sanitize(std::string_view s, std::size_t max) {
  std::string out;
  out.reserve(s.size() < max ? s.size() : max);
  std::size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      if (out.size() + 1 > max) break;
      out += (c < 0x20 || c == 0x7F) ? '?' : static_cast<char>(c);
      ++i;
      continue;
    }
    char32_t cp = 0;
    std::size_t len = utf8_sequence(s.substr(i), &cp);
    if (len == 0 || cp < 0xA0) {
      if (out.size() + 1 > max) break;
      out += '?';
      i += len == 0 ? 1 : len;
      continue;
    }
    if (out.size() + len > max) break;
    out.append(s.substr(i, len));
    i += len;
  }
  return out;
}

}  // namespace

std::string sanitize_header_value(std::string_view s) { return sanitize(s, s.size()); }

std::string rfc5322_date(std::chrono::system_clock::time_point t) {
  using namespace std::chrono;
  const auto secs = floor<seconds>(t);
  const auto day = floor<days>(secs);
  const year_month_day ymd{day};
  const weekday wd{day};
  const hh_mm_ss<seconds> hms{secs - day};
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s, %u %s %04d %02d:%02d:%02d +0000", kDays[wd.c_encoding()],
                static_cast<unsigned>(ymd.day()),
                kMonths[static_cast<unsigned>(ymd.month()) - 1], static_cast<int>(ymd.year()),
                static_cast<int>(hms.hours().count()), static_cast<int>(hms.minutes().count()),
                static_cast<int>(hms.seconds().count()));
  return buf;
}

std::string received_header(const ReceivedInfo& info) {
  // RFC 5321 4.4: Stamp = From-domain By-domain Opt-info [CFWS] ";" FWS date-time
  std::string h;
  h.reserve(256);
  h += "Received: from ";
  h += info.helo.empty() ? std::string("unknown") : sanitize(info.helo, kMaxHeloOut);
  h += " (";
  h += info.client_rdns.empty() ? std::string("unknown") : sanitize(info.client_rdns, kMaxRdnsOut);
  h += " [";
  std::string ip = sanitize(info.client_ip, kMaxIpOut);
  // RFC 5321 4.1.3: IPv6 address literals carry the "IPv6:" tag.
  if (ip.find(':') != std::string::npos) h += "IPv6:";
  h += ip.empty() ? std::string("unknown") : ip;
  h += "])\r\n\t";
  // Comments (CFWS) after the from clause, as Postfix writes them: the TLS parameters, then
  // the authenticated user when the operator wants it recorded.
  if (!info.tls_comment.empty()) {
    h += '(';
    h += sanitize(info.tls_comment, kMaxTlsOut);
    h += ")\r\n\t";
  }
  if (!info.auth_user.empty()) {
    h += "(Authenticated sender: ";
    std::string u = sanitize(info.auth_user, kMaxAddrOut);
    for (char& c : u)  // a comment may not contain unbalanced parentheses or a backslash
      if (c == '(' || c == ')' || c == '\\') c = '?';
    h += u;
    h += ")\r\n\t";
  }
  h += "by ";
  h += sanitize(info.by_host, kMaxOurOut);
  h += " with ";
  h += sanitize(info.protocol, kMaxOurOut);
  h += " id ";
  h += sanitize(info.queue_id, kMaxOurOut);
  if (!info.for_rcpt.empty()) {
    h += "\r\n\tfor <";
    h += sanitize(info.for_rcpt, kMaxAddrOut);
    h += '>';
  }
  h += "; ";
  h += rfc5322_date(info.when);
  h += "\r\n";
  return h;
}

std::string return_path_header(const Mailbox& sender) {
  std::string h = "Return-Path: <";
  h += sanitize(sender.str(), kMaxAddrOut);
  h += ">\r\n";
  return h;
}

std::string delivered_to_header(const Mailbox& rcpt) {
  std::string h = "Delivered-To: ";
  h += sanitize(rcpt.str(), kMaxAddrOut);
  h += "\r\n";
  return h;
}

}  // namespace carrier::proto

namespace carrier::proto {

std::string date_header(std::chrono::system_clock::time_point now) {
  return "Date: " + rfc5322_date(now) + "\r\n";
}

std::string message_id_header(std::string_view queue_id, std::string_view host,
                              std::chrono::system_clock::time_point now) {
  // RFC 5322 3.6.4 msg-id = "<" id-left "@" id-right ">": a timestamp and the queue id (unique
  // on this host) on the left, our host name on the right, as Postfix's cleanup does.
  const auto secs = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  std::string h = "Message-ID: <";
  h += std::to_string(secs);
  h += '.';
  h += sanitize(queue_id, kMaxOurOut);
  h += '@';
  h += sanitize(host, kMaxOurOut);
  h += ">\r\n";
  return h;
}

}  // namespace carrier::proto
