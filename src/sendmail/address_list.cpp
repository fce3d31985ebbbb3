// carrier sendmail: RFC 5322 3.4 address-list parsing (see address_list.hpp). A tokenizer
// (RFC 5322 3.2: atoms, quoted strings, domain literals, comments, specials) and a small
// structural pass (mailbox / name-addr / group). Pure; UNTRUSTED input; bounded.
#include "sendmail/address_list.hpp"

#include <optional>

namespace carrier::sendmail {

namespace {

struct Token {
  enum Kind { Atom, Quoted, Literal, Special } kind;
  std::string text;  // as written (quotes and brackets kept); for Special the one character
};

// RFC 5322 3.2.3 atext, plus '.' (dot-atom and obs-phrase) and 8-bit bytes (RFC 6532 3.2).
bool atom_char(unsigned char c) {
  if (c >= 0x80) return true;
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+': case '-':
    case '/': case '=': case '?': case '^': case '_': case '`': case '{': case '|': case '}':
    case '~': case '.':
      return true;
    default:
      return false;
  }
}

bool tokenize(std::string_view s, std::vector<Token>& out, std::string* error,
              const AddressListLimits& lim) {
  auto fail = [&](std::string why) {
    if (error) *error = std::move(why);
    return false;
  };
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
      ++i;
    } else if (c == '(') {  // RFC 5322 3.2.2 comment, nested
      int depth = 0;
      while (i < s.size()) {
        char d = s[i++];
        if (d == '\\') {
          if (i >= s.size()) return fail("unterminated comment");
          ++i;
        } else if (d == '(') {
          if (++depth > lim.max_comment_depth) return fail("comments nested too deeply");
        } else if (d == ')') {
          if (--depth == 0) break;
        } else if (d == '\0') {
          return fail("NUL in a comment");
        }
      }
      if (depth != 0) return fail("unterminated comment");
    } else if (c == '"') {  // RFC 5322 3.2.4 quoted-string
      std::string q = "\"";
      ++i;
      bool closed = false;
      while (i < s.size()) {
        char d = s[i++];
        if (d == '\r' || d == '\n') continue;  // folding inside the quotes
        if (d == '\0') return fail("NUL in a quoted string");
        if (d == '\\') {
          if (i >= s.size()) break;
          // RFC 5322 3.2.1: quoted-pair = "\" (VCHAR / WSP); a CR, LF or NUL cannot be quoted.
          if (s[i] == '\0' || s[i] == '\r' || s[i] == '\n')
            return fail("invalid quoted-pair in a quoted string");
          q += d;
          q += s[i++];
          continue;
        }
        q += d;
        if (d == '"') {
          closed = true;
          break;
        }
      }
      if (!closed) return fail("unterminated quoted string");
      out.push_back({Token::Quoted, std::move(q)});
    } else if (c == '[') {  // RFC 5322 3.4.1 domain-literal
      std::size_t end = s.find(']', i);
      if (end == std::string_view::npos) return fail("unterminated domain literal");
      std::string lit;
      for (std::size_t j = i; j <= end; ++j) {
        char d = s[j];
        if (d == ' ' || d == '\t' || d == '\r' || d == '\n') continue;
        if (d == '\\' || (d == '[' && j != i) || static_cast<unsigned char>(d) < 0x20)
          return fail("invalid domain literal");
        lit += d;
      }
      out.push_back({Token::Literal, std::move(lit)});
      i = end + 1;
    } else if (c == '<' || c == '>' || c == ',' || c == ':' || c == ';' || c == '@') {
      out.push_back({Token::Special, std::string(1, static_cast<char>(c))});
      ++i;
    } else if (atom_char(c)) {
      std::size_t start = i;
      while (i < s.size() && atom_char(static_cast<unsigned char>(s[i]))) ++i;
      out.push_back({Token::Atom, std::string(s.substr(start, i - start))});
    } else {
      return fail(c < 0x20 || c == 0x7F ? std::string("control character in an address list")
                                        : std::string("unexpected '") + static_cast<char>(c) + "'");
    }
  }
  return true;
}

bool is_special(const Token& t, char c) { return t.kind == Token::Special && t.text[0] == c; }

// addr-spec from the tokens of one mailbox (inside "<...>" or bare). nullopt when not one.
std::optional<std::string> addr_spec(const std::vector<Token>& t) {
  std::size_t i = 0;
  if (!t.empty() && is_special(t[0], '@')) {  // obs-route "@a,@b:" (RFC 5322 4.4): dropped
    while (i < t.size() && !is_special(t[i], ':')) ++i;
    if (i == t.size()) return std::nullopt;
    ++i;
  }
  const std::size_t n = t.size() - i;
  if (n == 0 || (t[i].kind != Token::Atom && t[i].kind != Token::Quoted)) return std::nullopt;
  if (n == 1) return t[i].text;
  if (n == 3 && is_special(t[i + 1], '@') &&
      (t[i + 2].kind == Token::Atom || t[i + 2].kind == Token::Literal))
    return t[i].text + "@" + t[i + 2].text;
  return std::nullopt;
}

std::string shown(const std::vector<Token>& t) {
  std::string s;
  for (const auto& x : t) {
    if (!s.empty() && x.kind != Token::Special && s.back() != '@') s += ' ';
    s += x.text;
  }
  return s.size() > 80 ? s.substr(0, 80) + "..." : s;
}

}  // namespace

bool parse_address_list(std::string_view value, std::vector<std::string>& out, std::string* error,
                        const AddressListLimits& lim) {
  auto fail = [&](std::string why) {
    if (error) *error = std::move(why);
    return false;
  };
  if (value.size() > lim.max_length) return fail("address list too long");
  std::vector<Token> tokens;
  if (!tokenize(value, tokens, error, lim)) return false;

  std::vector<std::string> found;
  std::vector<Token> words, angle;
  bool had_angle = false, in_group = false;
  auto finish_item = [&]() -> bool {
    std::optional<std::string> a;
    if (had_angle) {
      a = addr_spec(angle);
      if (!a) return fail("not an address: <" + shown(angle) + ">");
    } else if (!words.empty()) {
      a = addr_spec(words);
      if (!a) return fail("not an address: " + shown(words));
    }
    if (a) {
      if (found.size() >= lim.max_addresses) return fail("too many addresses");
      found.push_back(std::move(*a));
    }
    words.clear();
    angle.clear();
    had_angle = false;
    return true;
  };

  for (std::size_t i = 0; i < tokens.size(); ++i) {
    const Token& t = tokens[i];
    if (is_special(t, ',')) {
      if (!finish_item()) return false;
    } else if (is_special(t, ':')) {  // group start: the words were its display name
      if (had_angle || in_group) return fail("unexpected ':'");
      in_group = true;
      words.clear();
    } else if (is_special(t, ';')) {
      if (!in_group) return fail("unexpected ';'");
      if (!finish_item()) return false;
      in_group = false;
    } else if (is_special(t, '<')) {
      if (had_angle) return fail("two angle addresses in one mailbox");
      std::size_t j = i + 1;
      while (j < tokens.size() && !is_special(tokens[j], '>')) {
        if (is_special(tokens[j], '<')) return fail("unexpected '<'");
        angle.push_back(tokens[j]);
        ++j;
      }
      if (j == tokens.size()) return fail("missing '>'");
      had_angle = true;
      words.clear();  // the display name
      i = j;
    } else if (is_special(t, '>')) {
      return fail("unexpected '>'");
    } else {
      if (had_angle) return fail("text after an angle address");
      words.push_back(t);
    }
  }
  if (!finish_item()) return false;  // a group without its ';' at the very end is tolerated
  out.insert(out.end(), std::make_move_iterator(found.begin()), std::make_move_iterator(found.end()));
  return true;
}

}  // namespace carrier::sendmail
