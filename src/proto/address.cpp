// carrier proto: parser for SMTP paths and mailboxes — RFC 5321 4.1.2 (Path, Mailbox,
// Dot-string, Quoted-string, Domain, address-literal), 4.1.3 (IPv4/IPv6 literals), 4.5.3.1
// (size limits), Appendix C (source routes, accepted and ignored), RFC 6531 3.3 (UTF-8 in
// local parts and U-labels) and RFC 3629 (UTF-8 well-formedness). Handles UNTRUSTED input:
// every byte is checked, nothing is allocated until a result is built, never throws.
#include "proto/address.hpp"

#include <arpa/inet.h>

#include <array>
#include <cstring>

namespace carrier::proto {

namespace {

constexpr std::size_t kMaxLocal = 64;    // RFC 5321 4.5.3.1.1
constexpr std::size_t kMaxDomain = 255;  // RFC 5321 4.5.3.1.2
constexpr std::size_t kMaxPath = 256;    // RFC 5321 4.5.3.1.3
constexpr std::size_t kMaxLabel = 63;    // RFC 1035 2.3.4 (ASCII labels)
constexpr std::size_t kMaxLiteral = 64;  // "[IPv6:" + 45 + "]" fits easily

constexpr bool is_alpha(unsigned char c) { return (c | 0x20) >= 'a' && (c | 0x20) <= 'z'; }
constexpr bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
constexpr bool is_letdig(unsigned char c) { return is_alpha(c) || is_digit(c); }

// RFC 5322 3.2.3 atext (ASCII part).
constexpr std::array<bool, 256> make_atext() {
  std::array<bool, 256> t{};
  for (int c = 0; c < 256; ++c) t[c] = is_letdig(static_cast<unsigned char>(c));
  for (unsigned char c : std::string_view("!#$%&'*+-/=?^_`{|}~")) t[c] = true;
  return t;
}
constexpr auto kAtext = make_atext();

// Checks the 8-bit sequence at s[pos]: well-formed UTF-8, allowed (SMTPUTF8), not a C1
// control. Returns its length, or 0 with err set.
std::size_t check_8bit(std::string_view s, std::size_t pos, bool utf8, PathError& err) {
  char32_t cp = 0;
  std::size_t len = utf8_sequence(s.substr(pos), &cp);
  if (len == 0) {
    err = PathError::BadUtf8;
    return 0;
  }
  if (!utf8) {
    err = PathError::Utf8NotAllowed;
    return 0;
  }
  if (cp < 0xA0) {  // U+0080..U+009F are C1 control characters
    err = PathError::Syntax;
    return 0;
  }
  return len;
}

// Scans a Domain (sub-domain *("." sub-domain), RFC 5321 4.1.2; U-labels per RFC 6531 3.3)
// starting at s[pos]. One trailing dot is accepted. On success pos is after the domain (the
// caller checks what follows).
bool scan_domain(std::string_view s, std::size_t& pos, bool utf8, PathError& err) {
  const std::size_t n = s.size();
  const std::size_t start = pos;
  std::size_t labels = 0;
  bool trailing_dot = false;
  while (true) {
    const std::size_t lstart = pos;
    bool ascii = true;
    while (pos < n) {
      unsigned char c = static_cast<unsigned char>(s[pos]);
      if (is_letdig(c) || c == '-') {
        ++pos;
      } else if (c >= 0x80) {
        std::size_t len = check_8bit(s, pos, utf8, err);
        if (len == 0) return false;
        ascii = false;
        pos += len;
      } else {
        break;
      }
    }
    if (pos == lstart) {
      // Empty label: only allowed as the one trailing dot after at least one label.
      if (labels == 0) {
        err = PathError::Syntax;
        return false;
      }
      trailing_dot = true;
      break;
    }
    if (s[lstart] == '-' || s[pos - 1] == '-') {  // Let-dig at both ends
      err = PathError::Syntax;
      return false;
    }
    if (ascii && pos - lstart > kMaxLabel) {
      err = PathError::TooLong;
      return false;
    }
    ++labels;
    if (pos < n && s[pos] == '.') {
      ++pos;
      continue;
    }
    break;
  }
  std::size_t len = pos - start - (trailing_dot ? 1 : 0);
  if (len > kMaxDomain) {
    err = PathError::TooLong;
    return false;
  }
  return true;
}

bool iequals_prefix(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    unsigned char a = static_cast<unsigned char>(s[i]);
    unsigned char b = static_cast<unsigned char>(prefix[i]);
    if (a >= 'A' && a <= 'Z') a = static_cast<unsigned char>(a | 0x20);
    if (b >= 'A' && b <= 'Z') b = static_cast<unsigned char>(b | 0x20);
    if (a != b) return false;
  }
  return true;
}

// Scans an address literal "[...]" at s[pos] (RFC 5321 4.1.3): IPv4 dotted quad or
// "IPv6:" + an IPv6 address, both checked with inet_pton. General-address-literal (a
// standardized tag other than IPv6) is rejected: no such tag is registered for use here.
bool scan_literal(std::string_view s, std::size_t& pos, PathError& err) {
  const std::size_t n = s.size();
  std::size_t i = pos + 1;
  while (i < n && s[i] != ']') {
    unsigned char c = static_cast<unsigned char>(s[i]);
    // dcontent: %d33-90 / %d94-126
    if (c < 33 || c > 126 || c == '[' || c == '\\') {
      err = PathError::Syntax;
      return false;
    }
    if (i - pos > kMaxLiteral) {
      err = PathError::Syntax;
      return false;
    }
    ++i;
  }
  if (i >= n) {
    err = PathError::Syntax;
    return false;
  }
  std::string_view body = s.substr(pos + 1, i - pos - 1);
  char buf[kMaxLiteral + 1];
  unsigned char addr[16];
  bool ok = false;
  if (iequals_prefix(body, "IPv6:")) {
    std::string_view a = body.substr(5);
    std::memcpy(buf, a.data(), a.size());
    buf[a.size()] = '\0';
    ok = !a.empty() && inet_pton(AF_INET6, buf, addr) == 1;
  } else if (body.find(':') == std::string_view::npos) {
    std::memcpy(buf, body.data(), body.size());
    buf[body.size()] = '\0';
    ok = !body.empty() && inet_pton(AF_INET, buf, addr) == 1;
  }
  if (!ok) {
    err = PathError::Syntax;
    return false;
  }
  pos = i + 1;
  return true;
}

// Scans a Local-part (Dot-string or Quoted-string, RFC 5321 4.1.2; UTF-8 per RFC 6531 3.3).
bool scan_local(std::string_view s, std::size_t& pos, bool utf8, PathError& err) {
  const std::size_t n = s.size();
  const std::size_t start = pos;
  if (pos < n && s[pos] == '"') {
    ++pos;
    bool closed = false;
    while (pos < n) {
      unsigned char c = static_cast<unsigned char>(s[pos]);
      if (c == '"') {
        ++pos;
        closed = true;
        break;
      }
      if (c == '\\') {  // quoted-pairSMTP = %d92 %d32-126
        if (pos + 1 >= n) break;
        unsigned char q = static_cast<unsigned char>(s[pos + 1]);
        if (q < 32 || q > 126) {
          err = PathError::Syntax;  // control, NUL or 8-bit after a backslash
          return false;
        }
        pos += 2;
      } else if (c >= 32 && c <= 126) {  // qtextSMTP (the '"' and '\\' handled above)
        ++pos;
      } else if (c >= 0x80) {
        std::size_t len = check_8bit(s, pos, utf8, err);
        if (len == 0) return false;
        pos += len;
      } else {
        err = PathError::Syntax;  // control character or NUL
        return false;
      }
    }
    if (!closed || pos - start == 2) {  // unterminated, or "" (empty local part)
      err = PathError::Syntax;
      return false;
    }
  } else {
    // Dot-string = Atom *("." Atom)
    bool need_atext = true;  // at start or right after a dot
    while (pos < n) {
      unsigned char c = static_cast<unsigned char>(s[pos]);
      if (kAtext[c]) {
        ++pos;
        need_atext = false;
      } else if (c == '.') {
        if (need_atext) {
          err = PathError::Syntax;
          return false;
        }
        ++pos;
        need_atext = true;
      } else if (c >= 0x80) {
        std::size_t len = check_8bit(s, pos, utf8, err);
        if (len == 0) return false;
        pos += len;
        need_atext = false;
      } else {
        break;
      }
    }
    if (need_atext) {  // empty, or ends with a dot
      err = PathError::Syntax;
      return false;
    }
  }
  if (pos - start > kMaxLocal) {
    err = PathError::TooLong;
    return false;
  }
  return true;
}

// Mailbox = Local-part "@" ( Domain / address-literal ). Returns the split positions.
bool scan_mailbox(std::string_view s, std::size_t& pos, bool utf8, PathError& err,
                  std::size_t& at) {
  if (!scan_local(s, pos, utf8, err)) return false;
  if (pos >= s.size() || s[pos] != '@') {
    err = PathError::Syntax;
    return false;
  }
  at = pos++;
  if (pos < s.size() && s[pos] == '[') return scan_literal(s, pos, err);
  return scan_domain(s, pos, utf8, err);
}

inline void set_err(PathError* out, PathError e) {
  if (out) *out = e;
}

}  // namespace

std::size_t utf8_sequence(std::string_view s, char32_t* cp) {
  if (s.empty()) return 0;
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const std::size_t n = s.size();
  unsigned char b0 = p[0];
  if (b0 < 0x80) {
    if (cp) *cp = b0;
    return 1;
  }
  // RFC 3629 4: the well-formed sequences, with the restricted second byte ranges that
  // exclude overlongs (E0, F0), surrogates (ED) and code points above U+10FFFF (F4).
  std::size_t len;
  unsigned char lo = 0x80, hi = 0xBF;
  char32_t v;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    len = 2;
    v = b0 & 0x1F;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    len = 3;
    v = b0 & 0x0F;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    len = 4;
    v = b0 & 0x07;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return 0;  // continuation byte, C0/C1 overlong lead, or F5..FF
  }
  if (n < len) return 0;
  if (p[1] < lo || p[1] > hi) return 0;
  v = (v << 6) | (p[1] & 0x3F);
  for (std::size_t i = 2; i < len; ++i) {
    if (p[i] < 0x80 || p[i] > 0xBF) return 0;
    v = (v << 6) | (p[i] & 0x3F);
  }
  if (cp) *cp = v;
  return len;
}

bool is_valid_utf8(std::string_view s) {
  std::size_t i = 0;
  const std::size_t n = s.size();
  while (i < n) {
    // ASCII fast path
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    std::size_t len = utf8_sequence(s.substr(i));
    if (len == 0) return false;
    i += len;
  }
  return true;
}

std::string Mailbox::unquoted_local() const {
  if (!is_quoted()) return local;
  std::string out;
  out.reserve(local.size());
  // local is "\"...\"" as produced by the parser; tolerate a missing closing quote anyway.
  std::size_t end = local.size() >= 2 && local.back() == '"' ? local.size() - 1 : local.size();
  for (std::size_t i = 1; i < end; ++i) {
    if (local[i] == '\\' && i + 1 < end) ++i;
    out += local[i];
  }
  return out;
}

bool Mailbox::needs_utf8() const {
  for (unsigned char c : local)
    if (c >= 0x80) return true;
  for (unsigned char c : domain)
    if (c >= 0x80) return true;
  return false;
}

std::string normalize_domain(std::string_view d) {
  if (!d.empty() && d.back() == '.') d.remove_suffix(1);
  std::string out(d);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c | 0x20);
  return out;
}

std::optional<PathParse> parse_path(std::string_view s, bool allow_null, bool allow_utf8,
                                    PathError* err) {
  PathError e = PathError::Syntax;
  if (s.empty() || s[0] != '<') {
    set_err(err, PathError::Syntax);
    return std::nullopt;
  }
  if (s.size() >= 2 && s[1] == '>') {
    if (!allow_null) {
      set_err(err, PathError::NullNotAllowed);
      return std::nullopt;
    }
    PathParse r;
    r.consumed = 2;
    set_err(err, PathError::None);
    return r;
  }
  std::size_t pos = 1;
  bool route = false;
  if (pos < s.size() && s[pos] == '@') {
    // A-d-l = At-domain *( "," At-domain ) ":"  (RFC 5321 4.1.2; ignored per Appendix C)
    route = true;
    while (true) {
      ++pos;  // '@'
      if (!scan_domain(s, pos, allow_utf8, e)) {
        set_err(err, e);
        return std::nullopt;
      }
      if (pos + 1 < s.size() && s[pos] == ',' && s[pos + 1] == '@') {
        ++pos;
        continue;
      }
      break;
    }
    if (pos >= s.size() || s[pos] != ':') {
      set_err(err, PathError::Syntax);
      return std::nullopt;
    }
    ++pos;
  }
  const std::size_t mstart = pos;
  std::size_t at = 0;
  if (!scan_mailbox(s, pos, allow_utf8, e, at)) {
    set_err(err, e);
    return std::nullopt;
  }
  if (pos >= s.size() || s[pos] != '>') {
    set_err(err, PathError::Syntax);
    return std::nullopt;
  }
  ++pos;
  if (pos > kMaxPath) {
    set_err(err, PathError::TooLong);
    return std::nullopt;
  }
  PathParse r;
  r.mailbox.local.assign(s.data() + mstart, at - mstart);
  r.mailbox.domain.assign(s.data() + at + 1, pos - 1 - (at + 1));
  r.had_source_route = route;
  r.consumed = pos;
  set_err(err, PathError::None);
  return r;
}

std::optional<Mailbox> parse_mailbox(std::string_view s, bool allow_utf8, PathError* err) {
  PathError e = PathError::Syntax;
  std::size_t pos = 0, at = 0;
  if (!scan_mailbox(s, pos, allow_utf8, e, at)) {
    set_err(err, e);
    return std::nullopt;
  }
  if (pos != s.size()) {
    set_err(err, PathError::Syntax);
    return std::nullopt;
  }
  Mailbox m;
  m.local.assign(s.data(), at);
  m.domain.assign(s.data() + at + 1, s.size() - at - 1);
  set_err(err, PathError::None);
  return m;
}

bool is_valid_domain(std::string_view d, bool allow_utf8) {
  if (d.empty()) return false;
  PathError e = PathError::None;
  std::size_t pos = 0;
  bool ok = d[0] == '[' ? scan_literal(d, pos, e) : scan_domain(d, pos, allow_utf8, e);
  return ok && pos == d.size();
}

}  // namespace carrier::proto
