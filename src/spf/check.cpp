// carrier SPF: record parsing (RFC 7208 4.5, 4.6, 12) and check_host() (4, 5, 6) over cached
// DNS answers (see spf.hpp for the re-run design). Pure; handles UNTRUSTED input: bounded,
// never throws.
#include <arpa/inet.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>

#include "spf/spf.hpp"

namespace carrier::spf {

bool macro_string_ends_in_macro(std::string_view s, bool& valid);  // macro.cpp

std::string_view to_string(Code c) {
  switch (c) {
    case Code::None: return "none";
    case Code::Neutral: return "neutral";
    case Code::Pass: return "pass";
    case Code::Fail: return "fail";
    case Code::SoftFail: return "softfail";
    case Code::TempError: return "temperror";
    case Code::PermError: return "permerror";
  }
  return "permerror";
}

std::string_view to_string(QType t) {
  switch (t) {
    case QType::Txt: return "TXT";
    case QType::A: return "A";
    case QType::Aaaa: return "AAAA";
    case QType::Mx: return "MX";
    case QType::Ptr: return "PTR";
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
bool alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); }

// Printable excerpt of untrusted text for reasons and logs.
std::string printable(std::string_view s, std::size_t max = 80) {
  std::string out;
  for (char c : s.substr(0, max)) {
    const auto u = static_cast<unsigned char>(c);
    out += (u < 0x20 || u >= 0x7f || c == '"' || c == '\\') ? '?' : c;
  }
  if (s.size() > max) out += "...";
  return out;
}

// A DNS name we query: lower case, one trailing dot removed, labels of 1..63 letters, digits,
// '-' or '_', at most 253 octets. nullopt: not one (a lookup of it has no answer).
std::optional<std::string> dns_name(std::string_view s) {
  if (!s.empty() && s.back() == '.') s.remove_suffix(1);
  if (s.empty() || s.size() > kMaxName) return std::nullopt;
  std::size_t label = 0;
  for (char c : s) {
    if (c == '.') {
      if (label == 0) return std::nullopt;
      label = 0;
      continue;
    }
    if (!(alnum(c) || c == '-' || c == '_')) return std::nullopt;
    if (++label > 63) return std::nullopt;
  }
  if (label == 0) return std::nullopt;
  return lowered(s);
}

// RFC 7208 4.3: the <domain> of check_host must be a multi-label domain name.
std::optional<std::string> check_domain(std::string_view s) {
  auto d = dns_name(s);
  if (!d || d->find('.') == std::string::npos) return std::nullopt;
  return d;
}

// RFC 7208 7.3: an expanded name over 253 octets loses labels on the left.
std::string cut_name(std::string s) {
  while (s.size() > kMaxName) {
    const auto dot = s.find('.');
    if (dot == std::string::npos) return s;  // one huge label: dns_name() refuses it
    s.erase(0, dot + 1);
  }
  return s;
}

// toplabel (RFC 7208 12): alphanumerics and inner hyphens, not all digits.
bool toplabel(std::string_view l) {
  if (l.empty() || l.size() > 63 || l.front() == '-' || l.back() == '-') return false;
  bool alpha = false;
  for (char c : l) {
    if (!(alnum(c) || c == '-')) return false;
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) alpha = true;
  }
  // The second form allows all-digit labels with a hyphen ("1-2"); a plain number is not one.
  return alpha || l.find('-') != std::string_view::npos;
}

// domain-spec = macro-string domain-end; domain-end = ( "." toplabel [ "." ] ) / macro-expand
bool valid_domain_spec(std::string_view s) {
  if (s.empty() || s.size() > kMaxRecord) return false;
  bool valid = false;
  if (macro_string_ends_in_macro(s, valid)) return valid;
  if (!valid) return false;
  std::string_view t = s;
  if (t.back() == '.') t.remove_suffix(1);
  const auto dot = t.rfind('.');
  if (dot == std::string_view::npos) return false;
  return toplabel(t.substr(dot + 1));
}

struct Ip {
  bool v6 = false;
  unsigned char b[16] = {};
};

std::optional<Ip> parse_ip(std::string_view text, bool want_v6) {
  if (text.empty() || text.size() >= INET6_ADDRSTRLEN || text.find('\0') != std::string_view::npos)
    return std::nullopt;
  const std::string s(text);
  Ip ip;
  ip.v6 = want_v6;
  if (::inet_pton(want_v6 ? AF_INET6 : AF_INET, s.c_str(), ip.b) != 1) return std::nullopt;
  return ip;
}

bool in_net(const Ip& a, const Ip& net, int prefix) {
  if (a.v6 != net.v6) return false;
  const int full = prefix / 8, rest = prefix % 8;
  if (std::memcmp(a.b, net.b, static_cast<std::size_t>(full)) != 0) return false;
  if (rest == 0) return true;
  const auto mask = static_cast<unsigned char>(0xff << (8 - rest));
  return (a.b[full] & mask) == (net.b[full] & mask);
}

enum class Kind { All, Include, A, Mx, Ptr, Ip4, Ip6, Exists };

struct Term {
  std::string text;  // as written (printable excerpt), for `matched`
  char qualifier = '+';
  Kind kind = Kind::All;
  std::string spec;  // domain-spec as written; empty: the current domain
  Ip net;
  int cidr4 = 32, cidr6 = 128;
};

struct Record {
  std::vector<Term> terms;
  std::optional<std::string> redirect;  // domain-spec
  std::string redirect_text;
};

// ip4-cidr-length / ip6-cidr-length digits: "0" or no leading zero, at most max.
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

// Splits "[:domain-spec][/N][//M]" of a and mx: the CIDR lengths are taken from the end.
bool parse_a_mx(std::string_view rest, Term& t) {
  // trailing "//M"
  auto trailing_len = [](std::string_view s, std::size_t& digits_from) {
    std::size_t k = s.size();
    while (k > 0 && s[k - 1] >= '0' && s[k - 1] <= '9') --k;
    digits_from = k;
    return k < s.size() && k > 0 && s[k - 1] == '/';
  };
  std::size_t from = 0;
  if (trailing_len(rest, from) && from >= 2 && rest[from - 2] == '/') {
    if (!parse_len(rest.substr(from), 128, t.cidr6)) return false;
    rest = rest.substr(0, from - 2);
  }
  if (trailing_len(rest, from)) {
    // "/N" only when what precedes is the mechanism name or a domain-spec (not "//")
    if (!parse_len(rest.substr(from), 32, t.cidr4)) return false;
    rest = rest.substr(0, from - 1);
  }
  if (rest.empty()) return true;
  if (rest[0] != ':') return false;
  rest.remove_prefix(1);
  if (!valid_domain_spec(rest)) return false;
  t.spec = std::string(rest);
  return true;
}

// One directive or modifier; false on a syntax error (the record is then a permerror).
// Modifiers other than redirect are checked and dropped (exp and unknown ones, RFC 7208 6).
bool parse_word(std::string_view w, Record& rec, bool& seen_exp, std::string& why) {
  why = "syntax error at \"" + printable(w) + "\"";
  // A modifier: name "=" ... where name = ALPHA *( ALPHA / DIGIT / "-" / "_" / "." )
  std::size_t n = 0;
  while (n < w.size() && (alnum(w[n]) || w[n] == '-' || w[n] == '_' || w[n] == '.')) ++n;
  if (n > 0 && n < w.size() && w[n] == '=') {
    if (!((w[0] >= 'a' && w[0] <= 'z') || (w[0] >= 'A' && w[0] <= 'Z'))) return false;
    const std::string name = lowered(w.substr(0, n));
    const std::string_view value = w.substr(n + 1);
    if (name == "redirect") {
      if (rec.redirect) {
        why = "two redirect= modifiers (RFC 7208 6)";
        return false;
      }
      if (!valid_domain_spec(value)) return false;
      rec.redirect = std::string(value);
      rec.redirect_text = printable(w);
    } else if (name == "exp") {
      if (seen_exp) {
        why = "two exp= modifiers (RFC 7208 6)";
        return false;
      }
      seen_exp = true;
      // exp is not used (no explanation is given to the client); its syntax is checked.
      if (value.empty() || !valid_macro_string(value, false)) return false;
    } else {
      if (!valid_macro_string(value, false)) return false;  // unknown modifier: ignored
    }
    return true;
  }
  Term t;
  t.text = printable(w);
  if (!w.empty() && (w[0] == '+' || w[0] == '-' || w[0] == '~' || w[0] == '?')) {
    t.qualifier = w[0];
    w.remove_prefix(1);
  }
  std::size_t e = 0;
  while (e < w.size() && alnum(w[e])) ++e;
  const std::string name = lowered(w.substr(0, e));
  std::string_view rest = w.substr(e);
  if (name == "all") {
    t.kind = Kind::All;
    if (!rest.empty()) return false;
  } else if (name == "include" || name == "exists") {
    t.kind = name == "include" ? Kind::Include : Kind::Exists;
    if (rest.size() < 2 || rest[0] != ':' || !valid_domain_spec(rest.substr(1))) return false;
    t.spec = std::string(rest.substr(1));
  } else if (name == "a" || name == "mx") {
    t.kind = name == "a" ? Kind::A : Kind::Mx;
    if (!parse_a_mx(rest, t)) return false;
  } else if (name == "ptr") {
    t.kind = Kind::Ptr;
    if (!rest.empty()) {
      if (rest[0] != ':' || !valid_domain_spec(rest.substr(1))) return false;
      t.spec = std::string(rest.substr(1));
    }
  } else if (name == "ip4" || name == "ip6") {
    const bool v6 = name == "ip6";
    t.kind = v6 ? Kind::Ip6 : Kind::Ip4;
    if (rest.size() < 2 || rest[0] != ':') return false;
    rest.remove_prefix(1);
    const auto slash = rest.find('/');  // ip6 addresses have ':' but never '/'
    auto ip = parse_ip(rest.substr(0, slash), v6);
    if (!ip) return false;
    t.net = *ip;
    if (slash != std::string_view::npos &&
        !parse_len(rest.substr(slash + 1), v6 ? 128 : 32, v6 ? t.cidr6 : t.cidr4))
      return false;
  } else {
    why = "unknown mechanism \"" + printable(w) + "\"";
    return false;
  }
  if (rec.terms.size() >= kMaxTerms) {
    why = "too many terms";
    return false;
  }
  rec.terms.push_back(std::move(t));
  return true;
}

// RFC 7208 4.5: "v=spf1" (case-insensitive) followed by a space or the end.
bool is_spf(std::string_view r) {
  if (r.size() < 6 || lowered(r.substr(0, 6)) != "v=spf1") return false;
  return r.size() == 6 || r[6] == ' ';
}

std::optional<Record> parse_record(std::string_view r, std::string& why) {
  if (r.size() > kMaxRecord) {
    why = "record longer than " + std::to_string(kMaxRecord) + " octets";
    return std::nullopt;
  }
  Record rec;
  bool seen_exp = false;
  std::string_view rest = r.substr(6);
  while (!rest.empty()) {
    if (rest[0] == ' ') {
      rest.remove_prefix(1);
      continue;
    }
    const auto sp = rest.find(' ');
    const auto word = rest.substr(0, sp);
    rest = sp == std::string_view::npos ? std::string_view{} : rest.substr(sp);
    if (!parse_word(word, rec, seen_exp, why)) return std::nullopt;
  }
  return rec;
}

// Internal outcome: a result code, or "an answer is missing".
enum class Out { None, Neutral, Pass, Fail, SoftFail, TempError, PermError, Pending };
enum class Match { Yes, No, TempErr, PermErr, Pending };

Out of_qualifier(char q) {
  switch (q) {
    case '-': return Out::Fail;
    case '~': return Out::SoftFail;
    case '?': return Out::Neutral;
    default: return Out::Pass;
  }
}

// One evaluation pass over the cached answers.
struct Pass {
  const std::map<Query, Answer>& cache;
  MacroVars vars;
  Ip ip;
  std::optional<Query> need;
  int dns_terms = 0;
  int voids = 0;
  std::string why;
  std::string matched;

  const Answer* lookup(QType t, const std::string& name) {
    auto it = cache.find(Query{t, name});
    if (it != cache.end()) return &it->second;
    if (cache.size() >= kMaxQueries) {
      why = "more than " + std::to_string(kMaxQueries) + " DNS queries";
      static const Answer too_many{Rcode::TempFail, {}, "too many queries"};
      need.reset();
      overflow = true;
      return &too_many;
    }
    if (!need) need = Query{t, name};
    return nullptr;
  }
  bool overflow = false;

  // The client address in canonical form (IPv4 for an IPv4-mapped address), for PTR.
  std::string ip_text() const {
    char buf[INET6_ADDRSTRLEN] = {};
    if (!::inet_ntop(ip.v6 ? AF_INET6 : AF_INET, ip.b, buf, sizeof buf)) return vars.ip;
    return buf;
  }

  bool count_term() {
    if (++dns_terms <= kMaxDnsTerms) return true;
    why = "more than " + std::to_string(kMaxDnsTerms) + " DNS-querying terms (RFC 7208 4.6.4)";
    return false;
  }
  bool count_void() {
    if (++voids <= kMaxVoidLookups) return true;
    why = "more than " + std::to_string(kMaxVoidLookups) + " void lookups (RFC 7208 4.6.4)";
    return false;
  }

  // The target name of a term: its domain-spec expanded (or the current domain). nullopt:
  // the expansion is not a name DNS can be asked about (its lookups have no answer).
  std::optional<std::string> target(const std::string& spec, const std::string& domain) {
    if (spec.empty()) return domain;
    MacroVars v = vars;
    v.domain = domain;
    auto e = expand(spec, v, false);
    if (!e) return std::nullopt;
    return dns_name(cut_name(std::move(*e)));
  }

  bool address_in(const std::vector<std::string>& addrs, int c4, int c6) {
    for (const auto& a : addrs) {
      auto x = parse_ip(a, ip.v6);
      if (x && in_net(ip, *x, ip.v6 ? c6 : c4)) return true;
    }
    return false;
  }

  Out check_host(const std::string& domain, int depth) {
    if (depth > kMaxDnsTerms + 1) {  // unreachable: every level costs a DNS term
      why = "include/redirect nested too deeply";
      return Out::PermError;
    }
    const Answer* txt = lookup(QType::Txt, domain);
    if (!txt) return Out::Pending;
    if (overflow) return Out::PermError;
    if (txt->status == Rcode::TempFail) {
      why = "TXT lookup of " + domain + " failed" + (txt->error.empty() ? "" : ": " + printable(txt->error));
      return Out::TempError;
    }
    std::vector<const std::string*> spf;
    if (txt->status == Rcode::Ok)
      for (const auto& r : txt->records)
        if (is_spf(r)) spf.push_back(&r);
    if (spf.empty()) {
      why = domain + " has no SPF record";
      return Out::None;
    }
    if (spf.size() > 1) {
      why = domain + " has " + std::to_string(spf.size()) + " SPF records (RFC 7208 4.5)";
      return Out::PermError;
    }
    std::string perr;
    auto rec = parse_record(*spf[0], perr);
    if (!rec) {
      why = "SPF record of " + domain + ": " + perr;
      return Out::PermError;
    }
    for (const auto& t : rec->terms) {
      const Match m = evaluate(t, domain, depth);
      switch (m) {
        case Match::Pending: return Out::Pending;
        case Match::TempErr: if (matched.empty()) matched = t.text; return Out::TempError;
        case Match::PermErr: if (matched.empty()) matched = t.text; return Out::PermError;
        case Match::Yes:
          if (matched.empty()) matched = t.text;
          return of_qualifier(t.qualifier);
        case Match::No: break;
      }
    }
    if (rec->redirect) {  // RFC 7208 6.1: only when no mechanism matched
      if (!count_term()) {
        matched = rec->redirect_text;
        return Out::PermError;
      }
      auto to = target(*rec->redirect, domain);
      std::optional<std::string> d = to ? check_domain(*to) : std::nullopt;
      if (!d) {
        matched = rec->redirect_text;
        why = "redirect to a name that is not a domain";
        return Out::PermError;
      }
      const Out o = check_host(*d, depth + 1);
      if (o == Out::None) {
        matched = rec->redirect_text;
        why = *d + " (redirect) has no SPF record (RFC 7208 6.1)";
        return Out::PermError;
      }
      if (o != Out::Pending && o != Out::TempError && o != Out::PermError && matched.empty())
        matched = rec->redirect_text;
      return o;
    }
    why = "no mechanism matched (default neutral, RFC 7208 4.7)";
    return Out::Neutral;
  }

  Match evaluate(const Term& t, const std::string& domain, int depth) {
    switch (t.kind) {
      case Kind::All: return Match::Yes;
      case Kind::Ip4:
      case Kind::Ip6: return in_net(ip, t.net, t.kind == Kind::Ip4 ? t.cidr4 : t.cidr6) ? Match::Yes : Match::No;
      default: break;
    }
    if (!count_term()) return Match::PermErr;
    const auto name = target(t.spec, domain);
    // A lookup result as a match step: nullptr (pending) / overflow / temp / void.
    auto void_or_no = [&]() { return count_void() ? Match::No : Match::PermErr; };
    switch (t.kind) {
      case Kind::Include: {
        std::optional<std::string> d = name ? check_domain(*name) : std::nullopt;
        if (!d) {
          why = "include of a name that is not a domain";
          return Match::PermErr;
        }
        const std::string saved = matched;
        const Out o = check_host(*d, depth + 1);
        matched = saved;  // the include term itself is what matched
        switch (o) {
          case Out::Pending: return Match::Pending;
          case Out::Pass: return Match::Yes;
          case Out::Fail:
          case Out::SoftFail:
          case Out::Neutral: return Match::No;
          case Out::TempError: return Match::TempErr;
          case Out::None: why = *d + " (include) has no SPF record (RFC 7208 5.2)"; return Match::PermErr;
          case Out::PermError: return Match::PermErr;
        }
        return Match::PermErr;
      }
      case Kind::A:
      case Kind::Exists: {
        if (!name) return void_or_no();
        const QType q = (t.kind == Kind::Exists || !ip.v6) ? QType::A : QType::Aaaa;
        const Answer* a = lookup(q, *name);
        if (!a) return Match::Pending;
        if (overflow) return Match::PermErr;
        if (a->status == Rcode::TempFail) {
          why = std::string(to_string(q)) + " lookup of " + *name + " failed";
          return Match::TempErr;
        }
        if (a->status == Rcode::NotFound || a->records.empty()) return void_or_no();
        if (t.kind == Kind::Exists) return Match::Yes;  // RFC 7208 5.7: any A record
        return address_in(a->records, t.cidr4, t.cidr6) ? Match::Yes : Match::No;
      }
      case Kind::Mx: {
        if (!name) return void_or_no();
        const Answer* m = lookup(QType::Mx, *name);
        if (!m) return Match::Pending;
        if (overflow) return Match::PermErr;
        if (m->status == Rcode::TempFail) {
          why = "MX lookup of " + *name + " failed";
          return Match::TempErr;
        }
        if (m->status == Rcode::NotFound || m->records.empty()) return void_or_no();
        if (m->records.size() > kMaxMxNames) {
          why = *name + " has more than " + std::to_string(kMaxMxNames) + " MX records (RFC 7208 4.6.4)";
          return Match::PermErr;
        }
        const QType q = ip.v6 ? QType::Aaaa : QType::A;
        for (const auto& host : m->records) {
          auto h = dns_name(host);
          if (!h) continue;  // "." (null MX) or garbage: no addresses
          const Answer* a = lookup(q, *h);
          if (!a) return Match::Pending;
          if (overflow) return Match::PermErr;
          if (a->status == Rcode::TempFail) {
            why = std::string(to_string(q)) + " lookup of MX host " + *h + " failed";
            return Match::TempErr;
          }
          if (a->status == Rcode::Ok && address_in(a->records, t.cidr4, t.cidr6)) return Match::Yes;
        }
        return Match::No;
      }
      case Kind::Ptr: {  // RFC 7208 5.5
        if (!name) return Match::No;
        const Answer* p = lookup(QType::Ptr, ip_text());
        if (!p) return Match::Pending;
        if (overflow) return Match::PermErr;
        if (p->status == Rcode::TempFail) return Match::No;  // "fails to match"
        if (p->status == Rcode::NotFound || p->records.empty()) return void_or_no();
        const QType q = ip.v6 ? QType::Aaaa : QType::A;
        std::size_t n = 0;
        for (const auto& host : p->records) {
          if (++n > kMaxPtrNames) break;
          auto h = dns_name(host);
          if (!h) continue;
          // Only names in the target domain can match: validate just those.
          if (!(*h == *name || (h->size() > name->size() &&
                                h->compare(h->size() - name->size(), name->size(), *name) == 0 &&
                                (*h)[h->size() - name->size() - 1] == '.')))
            continue;
          const Answer* a = lookup(q, *h);
          if (!a) return Match::Pending;
          if (overflow) return Match::PermErr;
          if (a->status == Rcode::Ok && address_in(a->records, 32, 128))
            return Match::Yes;  // validated and in the domain
        }
        return Match::No;
      }
      default: return Match::No;
    }
  }
};

Code code_of(Out o) {
  switch (o) {
    case Out::None: return Code::None;
    case Out::Neutral: return Code::Neutral;
    case Out::Pass: return Code::Pass;
    case Out::Fail: return Code::Fail;
    case Out::SoftFail: return Code::SoftFail;
    case Out::TempError: return Code::TempError;
    default: return Code::PermError;
  }
}

}  // namespace

Request Request::mail_from(std::string ip, std::string_view local, std::string_view domain,
                           std::string helo) {
  if (local.empty() && domain.empty()) return helo_identity(std::move(ip), std::move(helo));
  Request r;
  r.ip = std::move(ip);
  r.domain = std::string(domain);
  r.sender = (local.empty() ? std::string("postmaster") : std::string(local)) + "@" + r.domain;
  r.helo = std::move(helo);
  return r;
}

Request Request::helo_identity(std::string ip, std::string helo) {
  Request r;
  r.ip = std::move(ip);
  r.domain = helo;
  r.sender = "postmaster@" + helo;
  r.helo = std::move(helo);
  return r;
}

Check::Check(Request r) : req_(std::move(r)) {}

void Check::answer(const Query& q, Answer a) {
  if (finished_ || !pending_ || !(q == *pending_)) return;
  if (a.status == Rcode::Ok && a.records.empty()) a.status = Rcode::NotFound;
  cache_.emplace(q, std::move(a));
  pending_.reset();
}

void Check::abort(std::string reason) {
  if (finished_) return;
  finished_ = true;
  pending_.reset();
  result_.code = Code::TempError;
  result_.reason = printable(reason, 200);
  result_.queries = cache_.size();
}

std::optional<Query> Check::next() {
  if (finished_) return std::nullopt;
  if (pending_) return pending_;
  auto finish = [&](Code c, std::string reason) -> std::optional<Query> {
    finished_ = true;
    result_.code = c;
    result_.reason = std::move(reason);
    result_.queries = cache_.size();
    return std::nullopt;
  };
  auto vars = macro_vars(req_);
  if (!vars) return finish(Code::PermError, "not an IP address: " + printable(req_.ip, 64));
  if (req_.sender.size() > kMaxSender) return finish(Code::None, "sender address too long");
  auto d = check_domain(req_.domain);
  if (!d) {  // RFC 7208 4.3 (also 2.3: a HELO that is an address literal is not checked)
    result_.domain = printable(req_.domain, 255);
    return finish(Code::None, "not a domain name: \"" + printable(req_.domain, 80) + "\"");
  }
  result_.domain = *d;
  vars->domain = *d;
  Pass p{cache_, *vars, Ip{}, std::nullopt, 0, 0, {}, {}};
  p.ip.v6 = vars->ipv6;
  std::memcpy(p.ip.b, vars->bytes, 16);
  const Out o = p.check_host(*d, 0);
  result_.dns_terms = p.dns_terms;
  result_.void_lookups = p.voids;
  if (o == Out::Pending && p.need) {
    pending_ = p.need;
    return pending_;
  }
  result_.matched = p.matched;
  if (o == Out::Pass || o == Out::Fail || o == Out::SoftFail ||
      (o == Out::Neutral && !p.matched.empty()))
    p.why.clear();
  return finish(o == Out::Pending ? Code::PermError : code_of(o), printable(p.why, 200));
}

Result check_host(Request r, const std::function<Answer(const Query&)>& dns) {
  Check c(std::move(r));
  while (auto q = c.next()) c.answer(*q, dns(*q));
  return c.result();
}

}  // namespace carrier::spf
