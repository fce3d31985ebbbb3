// carrier auth: password file parsing, authentication with crypt_r(3) and the sender rules
// of the issue-5 spec ("Password file"). The file is trusted; user names, passwords and
// sender addresses passed in are UNTRUSTED (SMTP AUTH, MAIL FROM; RFC 4954, RFC 5321 4.1.2).
#include "auth/userdb.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

#include "auth/password.hpp"
#include "base/ascii.hpp"

namespace carrier::auth {

namespace {

// yescrypt hash (libxcrypt default cost) of a throwaway password; only used to spend the same
// time on an unknown user as on a known one.
const std::string kDummyHash =
    "$y$j9T$xBZx2Zjrw8zuQZ9mUb5Ne/$ZQnif/jAA2/Hc/24mxEzyXCS/mzXoooxfVnxtE5Rhx1";

bool is_blank(char c) { return c == ' ' || c == '\t'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && (is_blank(s.front()) || s.front() == '\r')) s.remove_prefix(1);
  while (!s.empty() && (is_blank(s.back()) || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

// Empty when the name is acceptable, else why not.
std::string check_user_name(std::string_view u) {
  if (u.empty()) return "empty user name";
  if (u.size() > kMaxUserName)
    return "user name longer than " + std::to_string(kMaxUserName) + " octets";
  for (unsigned char c : u)
    if (c <= 0x20 || c == 0x7f) return "user name contains whitespace or a control character";
  if (!proto::is_valid_utf8(u)) return "user name is not valid UTF-8";
  return {};
}

// One sender pattern → normalized form, or an error message.
Result<std::string> parse_pattern(std::string_view p) {
  if (p.empty()) return Error{"empty sender pattern"};
  if (p == "*") return std::string("*");
  std::string_view domain;
  if (p.starts_with("*@")) domain = p.substr(2);
  else if (p.starts_with("@")) domain = p.substr(1);
  if (p.front() == '@' || p.starts_with("*@")) {
    if (!proto::is_valid_domain(domain, true))
      return Error{"bad domain in sender pattern \"" + std::string(p) + "\""};
    return "@" + proto::normalize_domain(domain);
  }
  auto m = proto::parse_mailbox(p, true);
  if (!m) return Error{"bad sender pattern \"" + std::string(p) + "\" (want local@domain, @domain or *)"};
  return m->unquoted_local() + "@" + proto::normalize_domain(m->domain);
}

// Splits "local@domain" normalized pattern at its last '@'.
bool match_address(std::string_view pattern, const proto::Mailbox& sender) {
  const std::size_t at = pattern.rfind('@');
  if (at == std::string_view::npos) return false;
  return proto::normalize_domain(sender.domain) == pattern.substr(at + 1) &&
         ascii_iequals(sender.unquoted_local(), pattern.substr(0, at));
}

}  // namespace

std::string normalize_user(std::string_view user) {
  const std::size_t at = user.rfind('@');
  if (at == std::string_view::npos) return std::string(user);
  std::string out(user.substr(0, at + 1));
  out += proto::normalize_domain(user.substr(at + 1));
  return out;
}

Result<UserDb> UserDb::parse(std::string_view text, std::string_view source_name) {
  UserDb db;
  std::unordered_map<std::string, std::size_t> first_line;
  std::string errors;
  std::size_t n_errors = 0;
  std::size_t line_no = 0;
  auto fail = [&](const std::string& msg) {
    ++n_errors;
    if (n_errors > kMaxReportedErrors) return;
    if (!errors.empty()) errors += '\n';
    errors += std::string(source_name) + ":" + std::to_string(line_no) + ": " + msg;
  };

  while (!text.empty()) {
    ++line_no;
    const std::size_t nl = text.find('\n');
    std::string_view raw = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    if (raw.size() > kMaxLine) {
      fail("line longer than " + std::to_string(kMaxLine) + " octets");
      continue;
    }
    const std::string_view line = trim(raw);
    if (line.empty() || line.front() == '#') continue;
    if (line.find('\0') != std::string_view::npos) {
      fail("line contains a NUL");
      continue;
    }

    const std::size_t c1 = line.find(':');
    if (c1 == std::string_view::npos) {
      fail("expected user:hash or user:hash:senders");
      continue;
    }
    const std::size_t c2 = line.find(':', c1 + 1);
    if (c2 != std::string_view::npos && line.find(':', c2 + 1) != std::string_view::npos) {
      fail("too many ':' (expected user:hash or user:hash:senders)");
      continue;
    }
    const std::string_view user = line.substr(0, c1);
    const std::string_view hash =
        c2 == std::string_view::npos ? line.substr(c1 + 1) : line.substr(c1 + 1, c2 - c1 - 1);

    if (std::string why = check_user_name(user); !why.empty()) {
      fail(why);
      continue;
    }
    if (std::string why = check_hash(hash); !why.empty()) {
      fail(why);
      continue;
    }

    Entry e;
    e.hash = std::string(hash);
    bool bad = false;
    if (c2 != std::string_view::npos) {
      std::string_view list = line.substr(c2 + 1);
      if (trim(list).empty()) {
        fail("empty senders field (leave out the second ':' for the default)");
        continue;
      }
      while (true) {
        const std::size_t comma = list.find(',');
        auto pat = parse_pattern(trim(list.substr(0, comma)));
        if (!pat) {
          fail(pat.error().message);
          bad = true;
          break;
        }
        e.senders.push_back(std::move(pat.value()));
        if (comma == std::string_view::npos) break;
        list.remove_prefix(comma + 1);
      }
    } else if (auto m = proto::parse_mailbox(user, true)) {
      e.senders.push_back(m->unquoted_local() + "@" + proto::normalize_domain(m->domain));
    }
    if (bad) continue;

    std::string key = normalize_user(user);
    if (auto it = first_line.find(key); it != first_line.end()) {
      fail("duplicate user " + key + " (first on line " + std::to_string(it->second) + ")");
      continue;
    }
    first_line.emplace(key, line_no);
    db.users_.emplace(std::move(key), std::move(e));
  }

  if (n_errors > 0) {
    if (n_errors > kMaxReportedErrors)
      errors += "\n" + std::string(source_name) + ": " + std::to_string(n_errors - kMaxReportedErrors) +
                " more errors not shown";
    return Error{std::move(errors)};
  }
  return db;
}

Result<UserDb> UserDb::load(const std::filesystem::path& file) {
  const std::string name = file.string();
  std::unique_ptr<std::FILE, decltype(&std::fclose)> f(std::fopen(name.c_str(), "rb"), &std::fclose);
  if (!f) return sys_error(name + ": cannot open");
  std::string text;
  char buf[65536];
  while (true) {
    const std::size_t n = std::fread(buf, 1, sizeof buf, f.get());
    text.append(buf, n);
    if (text.size() > kMaxFileSize)
      return Error{name + ": larger than " + std::to_string(kMaxFileSize) + " octets"};
    if (n < sizeof buf) {
      if (std::ferror(f.get())) return sys_error(name + ": read error");
      break;
    }
  }
  return parse(text, name);
}

AuthResult UserDb::authenticate(std::string_view user, std::string_view password) const {
  AuthResult r;
  if (password.empty()) {
    r.error = "empty password";
    return r;
  }
  if (password.size() > kMaxPasswordLength) {
    r.error = "password too long";
    return r;
  }
  if (password.find('\0') != std::string_view::npos) {
    r.error = "password contains a NUL";
    return r;
  }
  const bool name_ok = !user.empty() && user.size() <= kMaxUserName;
  const auto it = name_ok ? users_.find(normalize_user(user)) : users_.end();
  if (it == users_.end()) {
    (void)verify_password(password, kDummyHash);  // same cost as a known user
    r.error = "unknown user";
    return r;
  }
  switch (verify_password(password, it->second.hash)) {
    case Verify::Match:
      r.verdict = AuthResult::Ok;
      r.user = it->first;
      r.senders = it->second.senders;
      return r;
    case Verify::Mismatch:
      r.error = "wrong password";
      return r;
    case Verify::Error:
      break;
  }
  r.verdict = AuthResult::TempFail;
  r.error = "crypt_r failed";
  return r;
}

bool sender_allowed(const std::vector<std::string>& patterns, const proto::Mailbox& sender) {
  if (sender.empty()) return true;  // "<>" (spec: the null sender is always allowed)
  for (const std::string& p : patterns) {
    if (p.empty()) continue;
    if (p == "*") return true;
    if (p.front() == '@') {
      if (proto::normalize_domain(sender.domain) == std::string_view(p).substr(1)) return true;
    } else if (match_address(p, sender)) {
      return true;
    }
  }
  return false;
}

bool sender_allowed(const AuthResult& u, const proto::Mailbox& sender) {
  return u.verdict == AuthResult::Ok && sender_allowed(u.senders, sender);
}

}  // namespace carrier::auth
