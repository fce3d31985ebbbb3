// carrier proto: SMTP command lines (RFC 5321 4.1.1, 4.1.2 esmtp-param, 2.4 case rules) and
// the ESMTP parameters carrier supports: RFC 1870 SIZE, RFC 6152 BODY=8BITMIME, RFC 3030
// BDAT/BINARYMIME, RFC 6531 SMTPUTF8, RFC 3461 DSN (RET, ENVID, NOTIFY, ORCPT, xtext),
// RFC 6533 ORCPT utf-8 address type, RFC 4954 5 MAIL AUTH=. Handles UNTRUSTED input: every
// failure is a Reply value (RFC 5321 4.2.3 codes, RFC 3463 enhanced codes), nothing throws.
#include "base/ascii.hpp"
#include "proto/command.hpp"

#include <array>
#include <cstring>

namespace carrier::proto {

namespace {

// Explicit input limits.
constexpr std::size_t kMaxSizeDigits = 20;   // SIZE= / BDAT size: fits the uint64 range
constexpr std::size_t kMaxEnvid = 100;       // RFC 3461 4.4
constexpr std::size_t kMaxOrcpt = 500;       // RFC 3461 4.2 (the whole parameter value)
constexpr std::size_t kMaxAddrType = 64;     // ORCPT addr-type atom
constexpr std::size_t kMaxAuth = 500;        // AUTH= value (an xtext mailbox)
constexpr std::size_t kMaxHelo = 255;        // a domain (RFC 5321 4.5.3.1.2) or a literal
constexpr std::size_t kMaxKeywordEcho = 32;  // keyword length echoed in a reply



bool istarts_with(std::string_view s, std::string_view p) {
  return s.size() >= p.size() && ascii_iequals(s.substr(0, p.size()), p);
}

constexpr bool is_alnum(unsigned char c) {
  return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z');
}

bool is_upper_hex(char c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'); }
int hex_value(char c) { return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10; }

// Digits only, 1..20 of them. Sets overflow when the value does not fit in uint64.
bool parse_decimal(std::string_view s, std::uint64_t& v, bool& overflow) {
  if (s.empty() || s.size() > kMaxSizeDigits) return false;
  v = 0;
  overflow = false;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    unsigned d = static_cast<unsigned>(c - '0');
    if (v > (UINT64_MAX - d) / 10) overflow = true;
    v = v * 10 + d;
  }
  return true;
}

// RFC 5321 4.1.2: esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")
bool valid_keyword(std::string_view k) {
  if (k.empty() || !is_alnum(static_cast<unsigned char>(k[0]))) return false;
  for (unsigned char c : k)
    if (!is_alnum(c) && c != '-') return false;
  return true;
}

// RFC 5321 4.1.2: esmtp-value = 1*(%d33-60 / %d62-126), RFC 6531 3.3 adds UTF8-non-ascii.
bool valid_value(std::string_view v) {
  if (v.empty()) return false;
  std::size_t i = 0;
  while (i < v.size()) {
    unsigned char c = static_cast<unsigned char>(v[i]);
    if (c >= 0x80) {
      std::size_t len = utf8_sequence(v.substr(i));
      if (len == 0) return false;
      i += len;
      continue;
    }
    if (c < 33 || c > 126 || c == '=') return false;
    ++i;
  }
  return true;
}

// Printable US-ASCII (graphic and space), RFC 3461 4.2 / 4.4 for decoded DSN values.
bool printable_ascii(std::string_view s) {
  for (unsigned char c : s)
    if (c < 32 || c > 126) return false;
  return true;
}

// Well-formed UTF-8 without C0 controls, DEL or C1 controls (decoded mailbox-like values).
bool clean_utf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    char32_t cp = 0;
    std::size_t len = utf8_sequence(s.substr(i), &cp);
    if (len == 0 || cp < 0x20 || (cp >= 0x7F && cp < 0xA0)) return false;
    i += len;
  }
  return true;
}

Reply param_syntax(std::string_view text) { return Reply(501, "5.5.4", std::string(text)); }

Reply unsupported_param(std::string_view keyword) {
  std::string t = "Unsupported parameter: ";
  t.append(keyword.substr(0, kMaxKeywordEcho));  // keyword already checked: alnum and '-'
  return Reply(555, "5.5.4", std::move(t));
}

Reply duplicate_param(std::string_view keyword) {
  std::string t = "Duplicate parameter: ";
  t.append(keyword.substr(0, kMaxKeywordEcho));
  return Reply(501, "5.5.4", std::move(t));
}

Reply size_exceeded() {
  // RFC 1870 6.1
  return Reply(552, "5.3.4", "Message size exceeds fixed maximum message size");
}

Reply utf8_needs_smtputf8() {
  // RFC 6531 3.5
  return Reply(553, "5.6.7", "Non-ASCII address requires the SMTPUTF8 parameter");
}

// One "KEYWORD[=value]" token.
struct Param {
  std::string_view keyword;
  std::string_view value;
  bool has_value = false;
};

// Walks the parameters after a path: rest is empty or starts with a space. Parameters are
// separated by SP (RFC 5321 4.1.2); runs of spaces and trailing spaces are tolerated.
// f(const Param&) returns std::optional<Reply>: an error stops the walk.
template <class F>
std::optional<Reply> for_each_param(std::string_view rest, std::string_view usage, F&& f) {
  if (rest.empty()) return std::nullopt;
  if (rest[0] != ' ') return param_syntax(usage);
  std::size_t i = 0;
  while (i < rest.size()) {
    while (i < rest.size() && rest[i] == ' ') ++i;
    if (i >= rest.size()) break;
    std::size_t end = rest.find(' ', i);
    if (end == std::string_view::npos) end = rest.size();
    std::string_view tok = rest.substr(i, end - i);
    i = end;
    Param p;
    std::size_t eq = tok.find('=');
    if (eq == std::string_view::npos) {
      p.keyword = tok;
    } else {
      p.keyword = tok.substr(0, eq);
      p.value = tok.substr(eq + 1);
      p.has_value = true;
    }
    if (!valid_keyword(p.keyword) || (p.has_value && !valid_value(p.value)))
      return param_syntax("Syntax error in parameters");
    if (auto r = f(p)) return r;
  }
  return std::nullopt;
}

Reply path_error(PathError e, bool sender) {
  switch (e) {
    case PathError::Utf8NotAllowed:
      return utf8_needs_smtputf8();
    case PathError::TooLong:
      return sender ? Reply(501, "5.1.7", "Sender address too long")
                    : Reply(501, "5.1.3", "Recipient address too long");
    case PathError::NullNotAllowed:
      return Reply(501, "5.1.3", "Null recipient address not allowed");
    case PathError::BadUtf8:
      return sender ? Reply(501, "5.1.7", "Bad sender address: invalid UTF-8")
                    : Reply(501, "5.1.3", "Bad recipient address: invalid UTF-8");
    default:
      return sender ? Reply(501, "5.1.7", "Bad sender address syntax")
                    : Reply(501, "5.1.3", "Bad recipient address syntax");
  }
}

std::string_view skip_spaces(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size() && s[i] == ' ') ++i;
  return s.substr(i);
}

// RFC 6533 3: utf-8-addr-xtext / utf-8-addr-unitext, decoded to UTF-8. Embedded "\x{HEX}"
// code points are decoded; "+XX" (plain xtext, as some clients send) is decoded too; raw
// UTF-8 is allowed only with SMTPUTF8. The result must be valid UTF-8 without controls.
std::optional<std::string> decode_utf8_addr(std::string_view v, bool smtputf8) {
  std::string out;
  out.reserve(v.size());
  std::size_t i = 0;
  while (i < v.size()) {
    unsigned char c = static_cast<unsigned char>(v[i]);
    if (c == '\\') {
      // EmbeddedUnicodeChar = %x5C.78 "{" HEXPOINT "}", HEXPOINT = 2..6 hex digits
      if (i + 3 >= v.size() || v[i + 1] != 'x' || v[i + 2] != '{') return std::nullopt;
      std::size_t j = i + 3;
      char32_t cp = 0;
      std::size_t digits = 0;
      while (j < v.size() && v[j] != '}') {
        if (!is_upper_hex(ascii_upper(v[j])) || ++digits > 6) return std::nullopt;
        cp = cp * 16 + static_cast<char32_t>(hex_value(v[j]));
        ++j;
      }
      if (j >= v.size() || digits < 2) return std::nullopt;
      if (cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp < 0xA0) || (cp >= 0xD800 && cp <= 0xDFFF) ||
          cp > 0x10FFFF)
        return std::nullopt;
      if (cp < 0x80) {
        out += static_cast<char>(cp);
      } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
      } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
      } else {
        out += static_cast<char>(0xF0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
      }
      i = j + 1;
    } else if (c == '+') {
      if (i + 2 >= v.size() || !is_upper_hex(v[i + 1]) || !is_upper_hex(v[i + 2]))
        return std::nullopt;
      out += static_cast<char>(hex_value(v[i + 1]) * 16 + hex_value(v[i + 2]));
      i += 3;
    } else if (c >= 0x80) {
      char32_t cp = 0;
      std::size_t len = utf8_sequence(v.substr(i), &cp);
      if (!smtputf8 || len == 0 || cp < 0xA0) return std::nullopt;
      out.append(v.substr(i, len));
      i += len;
    } else if (c >= 33 && c <= 126 && c != '=') {
      out += static_cast<char>(c);
      ++i;
    } else {
      return std::nullopt;
    }
  }
  if (out.empty() || !clean_utf8(out)) return std::nullopt;
  return out;
}

// RFC 3461 4.2: ORCPT=addr-type ";" xtext. addr-type is an atom; stored lower case.
std::optional<Reply> parse_orcpt(std::string_view v, bool smtputf8, RcptParams& rp) {
  static const Reply bad = param_syntax("Syntax: ORCPT=<addr-type>;<address>");
  if (v.size() > kMaxOrcpt) return bad;
  std::size_t semi = v.find(';');
  if (semi == std::string_view::npos || semi == 0 || semi > kMaxAddrType) return bad;
  std::string_view type = v.substr(0, semi);
  std::string_view addr = v.substr(semi + 1);
  for (unsigned char c : type) {
    // atom of RFC 5322 3.2.3 (atext; '=' cannot occur in an esmtp-value anyway)
    if (!(is_alnum(c) || std::strchr("!#$%&'*+-/?^_`{|}~", c) != nullptr) || c == 0) return bad;
  }
  std::optional<std::string> decoded;
  if (ascii_iequals(type, "utf-8")) {
    decoded = decode_utf8_addr(addr, smtputf8);
  } else {
    decoded = xtext_decode(addr);
    if (decoded && (decoded->empty() || !printable_ascii(*decoded))) decoded.reset();
  }
  if (!decoded) return bad;
  rp.orcpt_type.assign(type);
  for (char& c : rp.orcpt_type)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c | 0x20);
  rp.orcpt = std::move(*decoded);
  return std::nullopt;
}

// RFC 3461 4.1: NOTIFY="NEVER" / 1#( "SUCCESS" / "FAILURE" / "DELAY" )
std::optional<Reply> parse_notify(std::string_view v, RcptParams& rp) {
  static const Reply bad = param_syntax("Syntax: NOTIFY=NEVER or NOTIFY=SUCCESS,FAILURE,DELAY");
  unsigned bits = 0;
  std::size_t i = 0;
  while (true) {
    std::size_t comma = v.find(',', i);
    std::string_view item = v.substr(i, comma == std::string_view::npos ? v.size() - i : comma - i);
    if (ascii_iequals(item, "NEVER"))
      bits |= kNotifyNever;
    else if (ascii_iequals(item, "SUCCESS"))
      bits |= kNotifySuccess;
    else if (ascii_iequals(item, "FAILURE"))
      bits |= kNotifyFailure;
    else if (ascii_iequals(item, "DELAY"))
      bits |= kNotifyDelay;
    else
      return bad;  // unknown word or empty item
    if (comma == std::string_view::npos) break;
    i = comma + 1;
  }
  if ((bits & kNotifyNever) && bits != kNotifyNever) return bad;  // NEVER must stand alone
  rp.notify = bits;
  return std::nullopt;
}

enum MailKey : unsigned { kSize = 1, kBody = 2, kUtf8 = 4, kRet = 8, kEnvid = 16, kAuth = 32 };
enum RcptKey : unsigned { kNotify = 1, kOrcpt = 2 };

constexpr std::string_view kMailUsage = "Syntax: MAIL FROM:<address> [parameters]";
constexpr std::string_view kRcptUsage = "Syntax: RCPT TO:<address> [parameters]";

}  // namespace

Command parse_command(std::string_view line) {
  Command c;
  std::size_t sp = line.find(' ');
  c.name = sp == std::string_view::npos ? line : line.substr(0, sp);
  c.arg = sp == std::string_view::npos ? std::string_view() : line.substr(sp + 1);
  std::string_view v = c.name;
  if (v.size() == 4) {
    char k[4] = {ascii_upper(v[0]), ascii_upper(v[1]), ascii_upper(v[2]), ascii_upper(v[3])};
    std::string_view key(k, 4);
    static constexpr std::pair<std::string_view, Verb> kVerbs[] = {
        {"HELO", Verb::Helo}, {"EHLO", Verb::Ehlo}, {"MAIL", Verb::Mail}, {"RCPT", Verb::Rcpt},
        {"DATA", Verb::Data}, {"BDAT", Verb::Bdat}, {"RSET", Verb::Rset}, {"NOOP", Verb::Noop},
        {"QUIT", Verb::Quit}, {"VRFY", Verb::Vrfy}, {"EXPN", Verb::Expn}, {"HELP", Verb::Help},
        {"AUTH", Verb::Auth},
    };
    for (const auto& [name, verb] : kVerbs) {
      if (key == name) {
        c.verb = verb;
        break;
      }
    }
  } else if (ascii_iequals(v, "STARTTLS")) {
    c.verb = Verb::StartTls;
  }
  return c;
}

MailResult parse_mail(std::string_view arg, const Extensions& ext) {
  if (!istarts_with(arg, "FROM:")) return Reply(501, "5.5.2", "Syntax: MAIL FROM:<address>");
  std::string_view rest = skip_spaces(arg.substr(5));
  PathError pe = PathError::None;
  auto path = parse_path(rest, /*allow_null=*/true, /*allow_utf8=*/ext.smtputf8, &pe);
  if (!path) return path_error(pe, /*sender=*/true);
  MailFrom mf;
  mf.sender = std::move(path->mailbox);
  MailParams& mp = mf.params;
  unsigned seen = 0;
  auto err = for_each_param(rest.substr(path->consumed), kMailUsage,
                            [&](const Param& p) -> std::optional<Reply> {
    unsigned key = 0;
    if (ascii_iequals(p.keyword, "SIZE") && ext.size)
      key = kSize;
    else if (ascii_iequals(p.keyword, "BODY") && (ext.eightbitmime || ext.chunking))
      key = kBody;
    else if (ascii_iequals(p.keyword, "SMTPUTF8") && ext.smtputf8)
      key = kUtf8;
    else if (ascii_iequals(p.keyword, "RET") && ext.dsn)
      key = kRet;
    else if (ascii_iequals(p.keyword, "ENVID") && ext.dsn)
      key = kEnvid;
    else if (ascii_iequals(p.keyword, "AUTH") && ext.auth)
      key = kAuth;
    else
      return unsupported_param(p.keyword);
    if (seen & key) return duplicate_param(p.keyword);
    seen |= key;
    switch (key) {
      case kSize: {
        std::uint64_t v = 0;
        bool overflow = false;
        if (!p.has_value || !parse_decimal(p.value, v, overflow))
          return param_syntax("Syntax: SIZE=<number>");
        if (overflow || (ext.max_size != 0 && v > ext.max_size)) return size_exceeded();
        mp.size = v;
        return std::nullopt;
      }
      case kBody: {
        static const Reply bad = param_syntax("Syntax: BODY=7BIT|8BITMIME|BINARYMIME");
        if (!p.has_value) return bad;
        if (ascii_iequals(p.value, "7BIT")) {
          mp.body = Body::SevenBit;
        } else if (ascii_iequals(p.value, "8BITMIME")) {
          if (!ext.eightbitmime) return Reply(555, "5.5.4", "BODY=8BITMIME not supported");
          mp.body = Body::EightBitMime;
        } else if (ascii_iequals(p.value, "BINARYMIME")) {
          // RFC 3030 3: BINARYMIME only together with CHUNKING
          if (!ext.chunking) return Reply(555, "5.5.4", "BODY=BINARYMIME not supported");
          mp.body = Body::BinaryMime;
        } else {
          return bad;
        }
        mp.body_given = true;
        return std::nullopt;
      }
      case kUtf8:
        if (p.has_value) return param_syntax("SMTPUTF8 takes no value");  // RFC 6531 3.4
        mp.smtputf8 = true;
        return std::nullopt;
      case kRet:
        if (p.has_value && ascii_iequals(p.value, "FULL"))
          mp.ret = Ret::Full;
        else if (p.has_value && ascii_iequals(p.value, "HDRS"))
          mp.ret = Ret::Hdrs;
        else
          return param_syntax("Syntax: RET=FULL|HDRS");
        return std::nullopt;
      case kEnvid: {
        static const Reply bad = param_syntax("Syntax: ENVID=<xtext, at most 100 characters>");
        if (!p.has_value || p.value.size() > kMaxEnvid) return bad;
        auto d = xtext_decode(p.value);
        if (!d || d->empty() || !printable_ascii(*d)) return bad;  // RFC 3461 4.4
        mp.envid = std::move(*d);
        return std::nullopt;
      }
      case kAuth: {
        // RFC 4954 5: AUTH=xtext / "<>"
        static const Reply bad = param_syntax("Syntax: AUTH=<xtext mailbox> or AUTH=<>");
        if (!p.has_value || p.value.size() > kMaxAuth) return bad;
        if (p.value == "<>") {
          mp.auth = "<>";
          return std::nullopt;
        }
        auto d = xtext_decode(p.value);
        if (!d || d->empty() || !clean_utf8(*d)) return bad;
        mp.auth = std::move(*d);
        return std::nullopt;
      }
    }
    return std::nullopt;
  });
  if (err) return std::move(*err);
  // RFC 6531 3.5: a non-ASCII reverse-path needs the SMTPUTF8 parameter on this MAIL.
  if (!mp.smtputf8 && mf.sender.needs_utf8()) return utf8_needs_smtputf8();
  return mf;
}

RcptResult parse_rcpt(std::string_view arg, const Extensions& ext, bool smtputf8) {
  if (!istarts_with(arg, "TO:")) return Reply(501, "5.5.2", "Syntax: RCPT TO:<address>");
  std::string_view rest = skip_spaces(arg.substr(3));
  PathError pe = PathError::None;
  auto path = parse_path(rest, /*allow_null=*/false, /*allow_utf8=*/smtputf8, &pe);
  if (!path) return path_error(pe, /*sender=*/false);
  RcptTo rt;
  rt.rcpt = std::move(path->mailbox);
  unsigned seen = 0;
  auto err = for_each_param(rest.substr(path->consumed), kRcptUsage,
                            [&](const Param& p) -> std::optional<Reply> {
    unsigned key = 0;
    if (ascii_iequals(p.keyword, "NOTIFY") && ext.dsn)
      key = kNotify;
    else if (ascii_iequals(p.keyword, "ORCPT") && ext.dsn)
      key = kOrcpt;
    else
      return unsupported_param(p.keyword);
    if (seen & key) return duplicate_param(p.keyword);
    seen |= key;
    if (key == kNotify) {
      if (!p.has_value) return param_syntax("Syntax: NOTIFY=NEVER or NOTIFY=SUCCESS,FAILURE,DELAY");
      return parse_notify(p.value, rt.params);
    }
    if (!p.has_value) return param_syntax("Syntax: ORCPT=<addr-type>;<address>");
    return parse_orcpt(p.value, smtputf8, rt.params);
  });
  if (err) return std::move(*err);
  return rt;
}

BdatResult parse_bdat(std::string_view arg) {
  // RFC 3030 2: bdat-cmd = "BDAT" SP chunk-size [ SP end-marker ] CR LF
  static const Reply bad = Reply(501, "5.5.4", "Syntax: BDAT <size> [LAST]");
  std::size_t sp = arg.find(' ');
  std::string_view num = arg.substr(0, sp);
  Bdat b;
  bool overflow = false;
  if (!parse_decimal(num, b.size, overflow) || overflow) return bad;
  if (sp != std::string_view::npos) {
    std::string_view rest = skip_spaces(arg.substr(sp));
    std::size_t end = rest.find(' ');
    std::string_view word = rest.substr(0, end);
    if (end != std::string_view::npos && !skip_spaces(rest.substr(end)).empty()) return bad;
    if (!word.empty()) {
      if (!ascii_iequals(word, "LAST")) return bad;
      b.last = true;
    }
  }
  return b;
}

bool valid_helo_arg(std::string_view arg) {
  if (arg.empty() || arg.size() > kMaxHelo) return false;
  for (unsigned char c : arg)
    if (c < 33 || c > 126) return false;  // printable ASCII, no SP, no controls
  return true;
}

std::optional<std::string> xtext_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '+') {
      // hexchar = ASCII "+" immediately followed by two upper case hexadecimal digits
      if (i + 2 >= s.size() || !is_upper_hex(s[i + 1]) || !is_upper_hex(s[i + 2]))
        return std::nullopt;
      out += static_cast<char>(hex_value(s[i + 1]) * 16 + hex_value(s[i + 2]));
      i += 2;
    } else if (c >= 33 && c <= 126 && c != '=') {
      out += c;
    } else {
      return std::nullopt;
    }
  }
  return out;
}

std::string xtext_encode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    if (c >= 33 && c <= 126 && c != '+' && c != '=') {
      out += static_cast<char>(c);
    } else {
      out += '+';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

}  // namespace carrier::proto
