// carrier proto: streaming parser for SMTP replies sent by a server (RFC 5321 4.2, 4.2.1,
// 4.5.3.1.5), enhanced status codes (RFC 2034 4, RFC 3463 2) and the EHLO keyword list
// (RFC 5321 4.1.1.1; RFC 1870 4 SIZE, RFC 4954 3 AUTH). Handles UNTRUSTED input: every
// malformed or oversized reply becomes an error value; nothing throws, memory is bounded.
#include "base/ascii.hpp"
#include "proto/reply_parser.hpp"

#include <cstring>

namespace carrier::proto {

namespace {

constexpr bool is_digit(char c) { return c >= '0' && c <= '9'; }


// Length of "1*3digit" at the start of s (0 when none or more than three digits).
std::size_t digits_1_3(std::string_view s) {
  std::size_t n = 0;
  while (n < s.size() && is_digit(s[n])) ++n;
  return n <= 3 ? n : 0;
}

// RFC 3463 2: status-code = class "." subject "." detail; class = "2" / "4" / "5";
// subject = 1*3digit; detail = 1*3digit. Returns its length at the start of text when the
// class equals cls and it is followed by SP or the end of the text; else 0.
std::size_t enhanced_code_length(std::string_view text, char cls) {
  if (cls != '2' && cls != '4' && cls != '5') return 0;
  if (text.size() < 5 || text[0] != cls || text[1] != '.') return 0;
  std::size_t i = 2;
  std::size_t n = digits_1_3(text.substr(i));
  if (n == 0) return 0;
  i += n;
  if (i >= text.size() || text[i] != '.') return 0;
  ++i;
  n = digits_1_3(text.substr(i));
  if (n == 0) return 0;
  i += n;
  if (i < text.size() && text[i] != ' ') return 0;
  return i;
}

// SIZE parameter (RFC 1870 4): 1*DIGIT; 0 means no fixed maximum. Up to 20 digits, no overflow.
std::optional<std::uint64_t> parse_size_param(std::string_view s) {
  if (s.empty() || s.size() > 20) return std::nullopt;
  std::uint64_t v = 0;
  for (char c : s) {
    if (!is_digit(c)) return std::nullopt;
    const auto d = static_cast<std::uint64_t>(c - '0');
    if (v > (UINT64_MAX - d) / 10) return std::nullopt;
    v = v * 10 + d;
  }
  if (v == 0) return std::nullopt;
  return v;
}

// RFC 4422 3.1: sasl-mech = 1*20mech-char; mech-char = UPPER-ALPHA / DIGIT / HYPHEN / "_"
// (compared case-insensitively here, stored upper case).
bool valid_mechanism(std::string_view m) {
  if (m.empty() || m.size() > kMaxAuthMechanismLength) return false;
  for (char c : m) {
    const char u = ascii_upper(c);
    if (!((u >= 'A' && u <= 'Z') || is_digit(u) || u == '-' || u == '_')) return false;
  }
  return true;
}

}  // namespace

void ReplyParser::fail(std::string msg) {
  failed_ = true;
  error_ = std::move(msg);
  partial_.clear();
  lines_.clear();
  code_ = 0;
}

void ReplyParser::reset() {
  partial_.clear();
  code_ = 0;
  lines_.clear();
  done_ = Reply();
  ready_ = false;
  failed_ = false;
  error_.clear();
}

Reply ReplyParser::take() {
  if (!ready_) return Reply();
  ready_ = false;
  Reply r = std::move(done_);
  done_ = Reply();
  return r;
}

void ReplyParser::finish() {
  Reply r;
  r.code = code_;
  const char cls = static_cast<char>('0' + code_ / 100);
  const std::size_t n = enhanced_code_length(lines_.front(), cls);
  if (n > 0) r.status = lines_.front().substr(0, n);
  r.lines = std::move(lines_);
  if (!r.status.empty()) {
    for (auto& l : r.lines) {
      // Only lines carrying exactly the same code are stripped (RFC 2034 4: every line has it).
      if (l.compare(0, n, r.status) == 0 && (l.size() == n || l[n] == ' '))
        l.erase(0, l.size() == n ? n : n + 1);
    }
  }
  lines_.clear();
  code_ = 0;
  done_ = std::move(r);
  ready_ = true;
}

bool ReplyParser::line(std::string_view raw) {
  // RFC 5321 4.2: Reply-code = %x32-35 %x30-35 %x30-39; liberal about the second digit.
  if (raw.size() < 3 || raw[0] < '2' || raw[0] > '5' || !is_digit(raw[1]) || !is_digit(raw[2])) {
    fail(raw.size() >= 1 && raw[0] == '1' ? "reply code 1yz is not valid in SMTP"
                                          : "reply line does not start with a 2xx-5xx code");
    return false;
  }
  const int code = (raw[0] - '0') * 100 + (raw[1] - '0') * 10 + (raw[2] - '0');
  if (code_ != 0 && code != code_) {
    fail("reply code changes within a multi-line reply");
    return false;
  }
  bool last = true;
  std::string_view text;
  if (raw.size() > 3) {
    if (raw[3] == '-') {
      last = false;
    } else if (raw[3] != ' ') {
      fail("reply code not followed by SP, \"-\" or the line end");
      return false;
    }
    text = raw.substr(4);
  }
  if (!text.empty() && std::memchr(text.data(), '\0', text.size()) != nullptr) {
    fail("NUL in reply text");
    return false;
  }
  if (lines_.size() >= limits_.max_lines) {
    fail("reply has more than " + std::to_string(limits_.max_lines) + " lines");
    return false;
  }
  code_ = code;
  lines_.emplace_back(text);
  if (last) finish();
  return true;
}

ReplyParser::Step ReplyParser::feed(std::string_view in) {
  if (failed_) return {0, Status::Error};
  if (ready_) {  // the previous reply was not taken: it is dropped
    ready_ = false;
    done_ = Reply();
  }
  std::size_t pos = 0;
  while (pos < in.size()) {
    const void* nl = std::memchr(in.data() + pos, '\n', in.size() - pos);
    if (nl == nullptr) {
      const std::size_t n = in.size() - pos;
      // The line end still to come makes the line at least one octet longer.
      if (partial_.size() + n + 1 > limits_.max_line) {
        fail("reply line longer than " + std::to_string(limits_.max_line) + " octets");
        return {in.size(), Status::Error};
      }
      partial_.append(in.substr(pos));
      return {in.size(), Status::NeedMore};
    }
    const std::size_t end = static_cast<std::size_t>(static_cast<const char*>(nl) - in.data());
    if (partial_.size() + (end - pos) + 1 > limits_.max_line) {
      fail("reply line longer than " + std::to_string(limits_.max_line) + " octets");
      return {end + 1, Status::Error};
    }
    std::string_view raw;
    if (partial_.empty()) {
      raw = in.substr(pos, end - pos);
    } else {
      partial_.append(in.substr(pos, end - pos));
      raw = partial_;
    }
    if (!raw.empty() && raw.back() == '\r') raw.remove_suffix(1);  // CRLF; bare LF accepted
    pos = end + 1;
    const bool ok = line(raw);
    partial_.clear();
    if (!ok) return {pos, Status::Error};
    if (ready_) return {pos, Status::Ready};
  }
  return {pos, Status::NeedMore};
}

ParsedReplies parse_replies(std::string_view in, ReplyLimits limits) {
  ParsedReplies out;
  ReplyParser p(limits);
  while (!in.empty()) {
    const auto step = p.feed(in);
    in.remove_prefix(step.consumed);
    if (step.status == ReplyParser::Status::Ready) {
      out.replies.push_back(p.take());
    } else if (step.status == ReplyParser::Status::Error) {
      out.error = p.error();
      return out;
    } else {
      out.rest = step.consumed;
      break;
    }
  }
  return out;
}

ServerCaps parse_ehlo(const Reply& r) {
  ServerCaps caps;
  if (r.lines.empty()) return caps;
  {
    std::string_view first = r.lines.front();
    const std::size_t sp = first.find(' ');
    caps.greeting_name.assign(first.substr(0, sp));
  }
  for (std::size_t i = 1; i < r.lines.size(); ++i) {
    std::string_view l = r.lines[i];
    while (!l.empty() && l.front() == ' ') l.remove_prefix(1);
    // ehlo-keyword, then SP-separated params; "AUTH=..." (pre-RFC 4954 form) is accepted too.
    std::size_t kend = 0;
    while (kend < l.size() && l[kend] != ' ' && l[kend] != '=') ++kend;
    const std::string_view kw = l.substr(0, kend);
    std::string_view params = kend < l.size() ? l.substr(kend + 1) : std::string_view();
    if (ascii_iequals(kw, "PIPELINING")) {
      caps.pipelining = true;
    } else if (ascii_iequals(kw, "8BITMIME")) {
      caps.eightbitmime = true;
    } else if (ascii_iequals(kw, "SMTPUTF8")) {
      caps.smtputf8 = true;
    } else if (ascii_iequals(kw, "CHUNKING")) {
      caps.chunking = true;
    } else if (ascii_iequals(kw, "BINARYMIME")) {
      caps.binarymime = true;
    } else if (ascii_iequals(kw, "DSN")) {
      caps.dsn = true;
    } else if (ascii_iequals(kw, "STARTTLS")) {
      caps.starttls = true;
    } else if (ascii_iequals(kw, "ENHANCEDSTATUSCODES")) {
      caps.enhancedstatuscodes = true;
    } else if (ascii_iequals(kw, "SIZE")) {
      caps.size_offered = true;
      while (!params.empty() && params.front() == ' ') params.remove_prefix(1);
      caps.size = parse_size_param(params.substr(0, params.find(' ')));
    } else if (ascii_iequals(kw, "AUTH")) {
      while (!params.empty()) {
        const std::size_t sp = params.find(' ');
        const std::string_view mech = params.substr(0, sp);
        params.remove_prefix(sp == std::string_view::npos ? params.size() : sp + 1);
        if (!valid_mechanism(mech)) continue;
        std::string m;
        for (char c : mech) m += ascii_upper(c);
        bool dup = false;
        for (const auto& have : caps.auth) dup = dup || have == m;
        if (!dup && caps.auth.size() < kMaxAuthMechanisms) caps.auth.push_back(std::move(m));
      }
    }
  }
  return caps;
}

}  // namespace carrier::proto
