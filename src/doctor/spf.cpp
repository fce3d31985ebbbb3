// carrier doctor: the simple SPF evaluator (RFC 7208 4, 4.5, 4.6, 5, 6.1). Pure: DNS answers
// come through SpfDns. Handles UNTRUSTED input (SPF records): bounded, never throws.
#include "doctor/spf.hpp"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>

#include "dns/rdata.hpp"

namespace carrier::doctor {

std::optional<Ip> parse_ip(std::string_view text) {
  if (text.empty() || text.size() >= INET6_ADDRSTRLEN || text.find('\0') != std::string_view::npos)
    return std::nullopt;
  const std::string s(text);
  Ip ip;
  if (::inet_pton(AF_INET, s.c_str(), ip.bytes.data()) == 1) {
    ip.family = AF_INET;
    return ip;
  }
  if (::inet_pton(AF_INET6, s.c_str(), ip.bytes.data()) == 1) {
    ip.family = AF_INET6;
    return ip;
  }
  return std::nullopt;
}

bool in_network(const Ip& ip, const Ip& net, int prefix) {
  if (ip.family != net.family || ip.family == 0) return false;
  const int max = ip.family == AF_INET ? 32 : 128;
  if (prefix < 0 || prefix > max) return false;
  const int full = prefix / 8, rest = prefix % 8;
  if (std::memcmp(ip.bytes.data(), net.bytes.data(), static_cast<std::size_t>(full)) != 0) return false;
  if (rest == 0) return true;
  const auto mask = static_cast<unsigned char>(0xff << (8 - rest));
  return (ip.bytes[static_cast<std::size_t>(full)] & mask) == (net.bytes[static_cast<std::size_t>(full)] & mask);
}

std::string_view to_string(SpfVerdict v) {
  switch (v) {
    case SpfVerdict::Pass: return "pass";
    case SpfVerdict::Fail: return "fail";
    case SpfVerdict::SoftFail: return "softfail";
    case SpfVerdict::Neutral: return "neutral";
    case SpfVerdict::None: return "none";
    case SpfVerdict::PermError: return "permerror";
    case SpfVerdict::TempError: return "temperror";
  }
  return "?";
}

namespace {

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }
std::string lowered(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = lower(c);
  return out;
}

// RFC 7208 4.5: "v=spf1" exactly (case-insensitive), then a space or the end.
bool is_spf_record(std::string_view r) {
  if (r.size() < 6 || lowered(r.substr(0, 6)) != "v=spf1") return false;
  return r.size() == 6 || r[6] == ' ';
}

enum class Kind { All, Include, A, Mx, Ptr, Ip4, Ip6, Exists, Redirect, Exp, OtherModifier };

struct Term {
  std::string text;       // as written, for messages
  char qualifier = '+';
  Kind kind = Kind::All;
  std::string domain;     // domain-spec ("" = the current domain); normalised unless macro
  bool macro = false;     // domain-spec uses macros (RFC 7208 7): not evaluated
  Ip net;                 // ip4 / ip6
  int cidr4 = 32, cidr6 = 128;
};

// "/N" with 0 <= N <= max, no leading zeros (RFC 7208 5.6 ip4-cidr-length / ip6-cidr-length).
bool parse_len(std::string_view s, int max, int& out) {
  if (s.empty() || s.size() > 3 || (s.size() > 1 && s[0] == '0')) return false;
  int v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  if (v > max) return false;
  out = v;
  return true;
}

// dual-cidr-length = [ ip4-cidr-length ] [ "/" ip6-cidr-length ] (RFC 7208 5.6)
bool parse_dual_cidr(std::string_view s, Term& t) {
  if (s.empty()) return true;
  if (s[0] != '/') return false;
  s.remove_prefix(1);
  const auto dbl = s.find('/');
  if (dbl == 0) return parse_len(s.substr(1), 128, t.cidr6);  // "//M"
  if (dbl == std::string_view::npos) return parse_len(s, 32, t.cidr4);
  if (!parse_len(s.substr(0, dbl), 32, t.cidr4)) return false;
  s.remove_prefix(dbl);  // "//M"
  return s.size() > 2 && s[1] == '/' && parse_len(s.substr(2), 128, t.cidr6);
}

// A domain-spec (RFC 7208 4.8, 7.1): macros are recognised but not expanded.
bool set_domain(std::string_view spec, Term& t) {
  if (spec.empty()) return false;
  if (spec.find('%') != std::string_view::npos) {
    t.macro = true;
    t.domain = std::string(spec);
    return true;
  }
  auto d = dns::normalize_domain(spec);
  if (!d) return false;
  t.domain = std::move(*d);
  return true;
}

// One term; nullopt on a syntax error (the whole record is then a permerror, RFC 7208 4.6).
std::optional<Term> parse_term(std::string_view w) {
  Term t;
  t.text = std::string(w);
  if (w.empty()) return std::nullopt;
  const auto sep = w.find_first_of(":/=");
  if (sep != std::string_view::npos && w[sep] == '=') {  // modifier: name "=" macro-string
    const std::string name = lowered(w.substr(0, sep));
    if (name.empty() || !((name[0] >= 'a' && name[0] <= 'z'))) return std::nullopt;
    for (char c : name) {
      if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.')) return std::nullopt;
    }
    const auto value = w.substr(sep + 1);
    if (name == "redirect") {
      t.kind = Kind::Redirect;
      if (!set_domain(value, t)) return std::nullopt;
    } else if (name == "exp") {
      t.kind = Kind::Exp;
      if (value.empty()) return std::nullopt;
    } else {
      t.kind = Kind::OtherModifier;  // RFC 7208 6: unknown modifiers are ignored
    }
    return t;
  }
  if (w[0] == '+' || w[0] == '-' || w[0] == '~' || w[0] == '?') {
    t.qualifier = w[0];
    w.remove_prefix(1);
  }
  const auto end = w.find_first_of(":/");
  const std::string name = lowered(w.substr(0, end));
  std::string_view rest = end == std::string_view::npos ? std::string_view{} : w.substr(end);
  auto domain_then_cidr = [&](bool cidr_allowed) -> bool {
    std::string_view spec;
    if (!rest.empty() && rest[0] == ':') {
      rest.remove_prefix(1);
      const auto slash = cidr_allowed ? rest.find('/') : std::string_view::npos;
      spec = rest.substr(0, slash);
      rest = slash == std::string_view::npos ? std::string_view{} : rest.substr(slash);
      if (!set_domain(spec, t)) return false;
    }
    return cidr_allowed ? parse_dual_cidr(rest, t) : rest.empty();
  };
  if (name == "all") {
    t.kind = Kind::All;
    if (!rest.empty()) return std::nullopt;
  } else if (name == "include" || name == "exists") {
    t.kind = name == "include" ? Kind::Include : Kind::Exists;
    if (rest.size() < 2 || rest[0] != ':' || !set_domain(rest.substr(1), t)) return std::nullopt;
  } else if (name == "a" || name == "mx") {
    t.kind = name == "a" ? Kind::A : Kind::Mx;
    if (!domain_then_cidr(true)) return std::nullopt;
  } else if (name == "ptr") {
    t.kind = Kind::Ptr;
    if (!domain_then_cidr(false)) return std::nullopt;
  } else if (name == "ip4" || name == "ip6") {
    t.kind = name == "ip4" ? Kind::Ip4 : Kind::Ip6;
    if (rest.size() < 2 || rest[0] != ':') return std::nullopt;
    rest.remove_prefix(1);
    // ip6 addresses contain ':' but never '/': the length follows the first '/'.
    const auto slash = rest.find('/');
    auto ip = parse_ip(rest.substr(0, slash));
    if (!ip || ip->family != (t.kind == Kind::Ip4 ? AF_INET : AF_INET6)) return std::nullopt;
    t.net = *ip;
    if (slash != std::string_view::npos) {
      int& len = t.kind == Kind::Ip4 ? t.cidr4 : t.cidr6;
      if (!parse_len(rest.substr(slash + 1), t.kind == Kind::Ip4 ? 32 : 128, len)) return std::nullopt;
    }
  } else {
    return std::nullopt;  // unknown mechanism: permerror (RFC 7208 5)
  }
  return t;
}

SpfVerdict verdict_of(char q) {
  switch (q) {
    case '-': return SpfVerdict::Fail;
    case '~': return SpfVerdict::SoftFail;
    case '?': return SpfVerdict::Neutral;
    default: return SpfVerdict::Pass;
  }
}

enum class Match { Yes, No, TempErr, PermErr };

struct Evaluator {
  SpfDns& dns;
  Ip ip;
  int dns_terms = 0;
  int voids = 0;
  std::vector<std::string> notes;
  std::string why;  // for TempErr / PermErr

  void note(std::string n) {
    if (std::find(notes.begin(), notes.end(), n) == notes.end() && notes.size() < 16) notes.push_back(std::move(n));
  }
  bool count_dns_term() {
    if (++dns_terms <= kSpfMaxDnsTerms) return true;
    why = "more than " + std::to_string(kSpfMaxDnsTerms) + " DNS-querying terms (RFC 7208 4.6.4)";
    return false;
  }
  bool count_void() {
    if (++voids <= kSpfMaxVoidLookups) return true;
    why = "more than " + std::to_string(kSpfMaxVoidLookups) + " lookups with no answer (RFC 7208 4.6.4)";
    return false;
  }
  bool address_matches(const std::vector<std::string>& addrs, const Term& t) {
    for (const auto& a : addrs) {
      auto x = parse_ip(a);
      if (x && in_network(ip, *x, ip.family == AF_INET ? t.cidr4 : t.cidr6)) return true;
    }
    return false;
  }

  SpfResult check_host(const std::string& domain, int depth) {
    SpfResult r;
    auto finish = [&](SpfVerdict v, std::string matched, std::string reason) {
      r.verdict = v;
      r.matched = std::move(matched);
      r.reason = std::move(reason);
      return r;
    };
    if (depth > kSpfMaxDnsTerms) return finish(SpfVerdict::PermError, "", "include/redirect nested too deeply");
    auto txt = dns.txt(domain);
    if (txt.status == dns::Status::TempFail) return finish(SpfVerdict::TempError, "", txt.error);
    std::vector<std::string> spf;
    if (txt.status == dns::Status::Ok) {
      for (const auto& rec : txt.records) {
        if (is_spf_record(rec)) spf.push_back(rec);
      }
    }
    if (spf.empty()) return finish(SpfVerdict::None, "", domain + " has no SPF record (TXT \"v=spf1 ...\")");
    if (spf.size() > 1) return finish(SpfVerdict::PermError, "", domain + " has " + std::to_string(spf.size()) + " SPF records; RFC 7208 4.5 allows one");
    r.record = spf[0];
    if (r.record.size() > kSpfMaxRecord) return finish(SpfVerdict::PermError, "", "the SPF record of " + domain + " is too long");

    // Parse every term first: a syntax error anywhere is a permerror (RFC 7208 4.6).
    std::vector<Term> terms;
    std::optional<Term> redirect;
    std::string_view rest = std::string_view(r.record).substr(6);
    while (!rest.empty()) {
      if (rest[0] == ' ') {
        rest.remove_prefix(1);
        continue;
      }
      const auto sp = rest.find(' ');
      const auto word = rest.substr(0, sp);
      rest = sp == std::string_view::npos ? std::string_view{} : rest.substr(sp);
      auto t = parse_term(word);
      if (!t) return finish(SpfVerdict::PermError, "", "syntax error in the SPF record of " + domain + " at \"" + std::string(word.substr(0, 80)) + "\"");
      if (terms.size() >= kSpfMaxTerms) return finish(SpfVerdict::PermError, "", "the SPF record of " + domain + " has too many terms");
      if (t->kind == Kind::Redirect) {
        if (redirect) return finish(SpfVerdict::PermError, "", "two redirect= modifiers (RFC 7208 6)");
        redirect = std::move(*t);
      } else if (t->kind != Kind::Exp && t->kind != Kind::OtherModifier) {
        terms.push_back(std::move(*t));
      }
    }

    for (const auto& t : terms) {
      const Match m = evaluate(t, domain, depth);
      if (m == Match::TempErr) return finish(SpfVerdict::TempError, t.text, why);
      if (m == Match::PermErr) return finish(SpfVerdict::PermError, t.text, why);
      if (m == Match::Yes) return finish(verdict_of(t.qualifier), t.text, "");
    }
    // RFC 7208 6.1: redirect applies only when no mechanism matched (and "all" always does).
    if (redirect) {
      if (!count_dns_term()) return finish(SpfVerdict::PermError, redirect->text, why);
      if (redirect->macro) {
        note("macros are not supported: " + redirect->text + " was not followed");
        return finish(SpfVerdict::Neutral, redirect->text, "not evaluated (macro)");
      }
      SpfResult inner = check_host(redirect->domain, depth + 1);
      if (inner.verdict == SpfVerdict::None) {
        return finish(SpfVerdict::PermError, redirect->text, redirect->domain + " has no SPF record (RFC 7208 6.1)");
      }
      return finish(inner.verdict, redirect->text + (inner.matched.empty() ? "" : " -> " + inner.matched), inner.reason);
    }
    return finish(SpfVerdict::Neutral, "", "no mechanism matched and there is no \"all\" (default neutral, RFC 7208 4.7)");
  }

  Match evaluate(const Term& t, const std::string& domain, int depth) {
    const std::string& target = t.domain.empty() ? domain : t.domain;
    switch (t.kind) {
      case Kind::All:
        return Match::Yes;
      case Kind::Ip4:
      case Kind::Ip6:
        return in_network(ip, t.net, t.kind == Kind::Ip4 ? t.cidr4 : t.cidr6) ? Match::Yes : Match::No;
      default:
        break;
    }
    if (!count_dns_term()) return Match::PermErr;
    if (t.macro) {
      note("macros are not supported: \"" + t.text + "\" was treated as not matching");
      return Match::No;
    }
    switch (t.kind) {
      case Kind::Ptr:
        note("\"" + t.text + "\" is not evaluated (RFC 7208 5.5: do not use ptr); treated as not matching");
        return Match::No;
      case Kind::Include: {
        SpfResult inner = check_host(target, depth + 1);
        switch (inner.verdict) {
          case SpfVerdict::Pass: return Match::Yes;
          case SpfVerdict::Fail:
          case SpfVerdict::SoftFail:
          case SpfVerdict::Neutral: return Match::No;
          case SpfVerdict::TempError: why = inner.reason; return Match::TempErr;
          case SpfVerdict::None: why = target + " has no SPF record (RFC 7208 5.2)"; return Match::PermErr;
          case SpfVerdict::PermError: why = inner.reason; return Match::PermErr;
        }
        return Match::PermErr;
      }
      case Kind::A:
      case Kind::Exists: {
        auto a = dns.addresses(target);
        if (a.status == dns::Status::TempFail) {
          why = a.error;
          return Match::TempErr;
        }
        if (a.status != dns::Status::Ok || a.addresses.empty()) return count_void() ? Match::No : Match::PermErr;
        if (t.kind == Kind::Exists) {  // RFC 7208 5.7: any A record
          for (const auto& x : a.addresses) {
            auto p = parse_ip(x);
            if (p && p->family == AF_INET) return Match::Yes;
          }
          return Match::No;
        }
        return address_matches(a.addresses, t) ? Match::Yes : Match::No;
      }
      case Kind::Mx: {
        auto m = dns.mx(target);
        if (m.status == dns::Status::TempFail) {
          why = m.error;
          return Match::TempErr;
        }
        // No MX (an implicit MX is not used by SPF), a null MX, NXDOMAIN: a void lookup.
        if (m.status == dns::Status::NullMx || m.implicit || m.hosts.empty() ||
            (m.status == dns::Status::NotFound && m.hosts.empty())) {
          return count_void() ? Match::No : Match::PermErr;
        }
        if (m.hosts.size() > kSpfMaxMxNames) {
          why = target + " has more than " + std::to_string(kSpfMaxMxNames) + " MX records (RFC 7208 4.6.4)";
          return Match::PermErr;
        }
        for (const auto& h : m.hosts) {
          if (address_matches(h.addresses, t)) return Match::Yes;
        }
        return Match::No;
      }
      default:
        return Match::No;
    }
  }
};

}  // namespace

SpfResult evaluate_spf(std::string_view ip_text, std::string_view domain, SpfDns& dns) {
  auto ip = parse_ip(ip_text);
  if (!ip) {
    SpfResult r;
    r.verdict = SpfVerdict::PermError;
    r.reason = "not an IP address: " + std::string(ip_text.substr(0, 64));
    return r;
  }
  auto d = dns::normalize_domain(domain);
  if (!d) {  // RFC 7208 4.3: a malformed domain gives none
    SpfResult r;
    r.verdict = SpfVerdict::None;
    r.reason = "not a domain name: " + d.error().message;
    return r;
  }
  Evaluator ev{dns, *ip, 0, 0, {}, {}};
  SpfResult r = ev.check_host(*d, 0);
  r.dns_terms = ev.dns_terms;
  r.notes = std::move(ev.notes);
  return r;
}

}  // namespace carrier::doctor
