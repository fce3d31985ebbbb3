// carrier proto: rendering of SMTP replies (RFC 5321 4.2, 4.2.1 multi-line replies) with
// enhanced status codes (RFC 2034 / RFC 3463) on every line. No untrusted input: replies are
// built by carrier itself.
#include "proto/reply.hpp"

namespace carrier::proto {

namespace {

void append_code(std::string& out, int code) {
  if (code >= 100 && code <= 999) {
    out += static_cast<char>('0' + code / 100);
    out += static_cast<char>('0' + code / 10 % 10);
    out += static_cast<char>('0' + code % 10);
  } else {
    out += std::to_string(code);  // never produced by carrier; rendered as is
  }
}

void append_line(std::string& out, int code, const std::string& status, std::string_view text,
                 bool last) {
  append_code(out, code);
  // RFC 5321 4.2.1: "-" after the code on every line but the last, SP on the last.
  // A last line with no text and no status is just the code ("250\r\n").
  if (status.empty() && text.empty()) {
    if (!last) out += '-';
  } else {
    out += last ? ' ' : '-';
    if (!status.empty()) {
      out += status;
      if (!text.empty()) out += ' ';
    }
    out += text;
  }
  out += "\r\n";
}

}  // namespace

void Reply::append_to(std::string& out) const {
  if (lines.empty()) {
    append_line(out, code, status, {}, true);
    return;
  }
  for (std::size_t i = 0; i < lines.size(); ++i) {
    append_line(out, code, status, lines[i], i + 1 == lines.size());
  }
}

std::string Reply::render() const {
  std::string out;
  std::size_t n = 0;
  for (const auto& l : lines) n += l.size() + status.size() + 7;
  out.reserve(n + 8);
  append_to(out);
  return out;
}

}  // namespace carrier::proto
