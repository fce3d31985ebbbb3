// carrier dmarc: see dmarc.hpp.
#include "dmarc/dmarc.hpp"

#include "base/ascii.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>

namespace carrier::dmarc {

namespace {

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

std::string to_lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = lower(c);
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r' || s.front() == '\n'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n'))
    s.remove_suffix(1);
  return s;
}


// Lower case, without a trailing dot; empty when not a plausible domain name.
std::string clean_domain(std::string_view d) {
  if (!d.empty() && d.back() == '.') d.remove_suffix(1);
  if (d.empty() || d.size() > 253) return {};
  return to_lower(d);
}

std::optional<Policy> parse_policy(std::string_view v) {
  if (ascii_iequals(v, "none")) return Policy::None;
  if (ascii_iequals(v, "quarantine")) return Policy::Quarantine;
  if (ascii_iequals(v, "reject")) return Policy::Reject;
  return std::nullopt;
}

}  // namespace

const char* policy_name(Policy p) {
  switch (p) {
    case Policy::None: return "none";
    case Policy::Quarantine: return "quarantine";
    case Policy::Reject: return "reject";
  }
  return "none";
}

// ---- Public Suffix List ------------------------------------------------------------------

PublicSuffixList PublicSuffixList::parse(std::string_view text) {
  PublicSuffixList psl;
  while (!text.empty()) {
    const std::size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    // A rule is the first whitespace-separated word of a line; "//" starts a comment.
    line = trim(line);
    if (line.empty() || line.substr(0, 2) == "//") continue;
    line = line.substr(0, line.find_first_of(" \t"));
    if (line.size() > 253) continue;
    if (line[0] == '!') {
      if (line.size() > 1) psl.exceptions_.insert(to_lower(line.substr(1)));
    } else if (line.substr(0, 2) == "*.") {
      if (line.size() > 2) psl.wildcards_.insert(to_lower(line.substr(2)));
    } else {
      psl.rules_.insert(to_lower(line));
    }
  }
  return psl;
}

Result<PublicSuffixList> PublicSuffixList::load(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return Error{"cannot read " + file.string() + ": " + std::strerror(errno), errno};
  std::string text(kMaxFile + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  if (in.bad()) return Error{"cannot read " + file.string() + ": " + std::strerror(errno), errno};
  text.resize(static_cast<std::size_t>(in.gcount()));
  if (text.size() > kMaxFile)
    return Error{file.string() + " is larger than 16 MiB: not a public suffix list", 0};
  auto psl = parse(text);
  if (psl.size() == 0) return Error{file.string() + " holds no public suffix rules", 0};
  return psl;
}

std::string PublicSuffixList::public_suffix(std::string_view domain) const {
  const std::string d = clean_domain(domain);
  if (d.empty()) return {};
  // Start offsets of each candidate suffix: d itself, then after each dot.
  std::vector<std::size_t> starts{0};
  for (std::size_t i = 0; i < d.size(); ++i)
    if (d[i] == '.') starts.push_back(i + 1);
  // An exception rule prevails: its public suffix is the rule minus its leftmost label.
  for (std::size_t k = 0; k < starts.size(); ++k)
    if (exceptions_.count(d.substr(starts[k])))
      return k + 1 < starts.size() ? d.substr(starts[k + 1]) : d.substr(starts[k]);
  // Else the longest matching rule; "*.x" matches any one label before x.
  for (std::size_t k = 0; k < starts.size(); ++k) {
    const std::string cand = d.substr(starts[k]);
    if (rules_.count(cand)) return cand;
    if (k + 1 < starts.size() && wildcards_.count(d.substr(starts[k + 1]))) return cand;
  }
  return d.substr(starts.back());  // the implicit rule "*"
}

std::string PublicSuffixList::organizational_domain(std::string_view domain) const {
  const std::string d = clean_domain(domain);
  const std::string ps = public_suffix(d);
  if (ps.empty() || ps.size() >= d.size()) return d;
  // One more label to the left of the public suffix.
  const std::size_t end = d.size() - ps.size() - 1;  // the dot before the suffix
  const std::size_t dot = d.rfind('.', end == 0 ? 0 : end - 1);
  return dot == std::string::npos || dot >= end ? d : d.substr(dot + 1);
}

// ---- the record --------------------------------------------------------------------------

std::optional<Record> parse_record(std::string_view txt, std::string* why) {
  auto fail = [&](std::string w) -> std::optional<Record> {
    if (why) *why = std::move(w);
    return std::nullopt;
  };
  if (why) why->clear();
  std::string_view t = trim(txt);
  // RFC 7489 6.4: "v=DMARC1" first, exactly.
  {
    std::string_view first = trim(t.substr(0, t.find(';')));
    const auto eq = first.find('=');
    if (eq == std::string_view::npos || trim(first.substr(0, eq)) != "v" ||
        trim(first.substr(eq + 1)) != "DMARC1")
      return std::nullopt;  // not a DMARC record at all
  }
  if (txt.size() > Record::kMaxRecord) return fail("record longer than 4096 bytes");
  Record r;
  bool have_p = false, bad_p = false, have_rua = false;
  bool first = true;
  std::size_t tags = 0;
  while (!t.empty()) {
    const std::size_t semi = t.find(';');
    std::string_view tag = trim(t.substr(0, semi));
    t.remove_prefix(semi == std::string_view::npos ? t.size() : semi + 1);
    if (tag.empty()) continue;
    if (++tags > 64) return fail("more than 64 tags");
    const auto eq = tag.find('=');
    if (eq == std::string_view::npos) return fail("tag without '=': " + std::string(tag.substr(0, 40)));
    const std::string_view name = trim(tag.substr(0, eq));
    const std::string_view value = trim(tag.substr(eq + 1));
    if (first) {  // v=DMARC1, checked above
      first = false;
      continue;
    }
    if (name == "p") {
      if (auto p = parse_policy(value)) {
        r.p = *p;
        have_p = true;
      } else {
        bad_p = true;
      }
    } else if (name == "sp") {
      if (auto p = parse_policy(value)) r.sp = *p;  // invalid sp=: ignored (falls back to p)
    } else if (name == "adkim" || name == "aspf") {
      bool strict;
      if (ascii_iequals(value, "s")) strict = true;
      else if (ascii_iequals(value, "r")) strict = false;
      else return fail(std::string(name) + "= must be r or s");
      (name == "adkim" ? r.adkim_strict : r.aspf_strict) = strict;
    } else if (name == "pct") {
      if (value.empty() || value.size() > 3 ||
          !std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; }))
        return fail("pct= must be 0..100");
      const int v = std::stoi(std::string(value));
      if (v > 100) return fail("pct= must be 0..100");
      r.pct = v;
    } else if (name == "rua") {
      have_rua = !value.empty();
    }
    // ruf, fo, rf, ri and unknown tags: not used here (RFC 7489 6.3: unknown tags ignored).
  }
  if (!have_p) {
    // RFC 7489 6.6.3: a record with a valid rua= but no (valid) p= is treated as p=none.
    if (have_rua) {
      r.p = Policy::None;
      return r;
    }
    return fail(bad_p ? "p= must be none, quarantine or reject" : "no p= tag");
  }
  return r;
}

std::optional<Record> pick_record(const std::vector<std::string>& txts, bool* several) {
  std::optional<Record> found;
  int n = 0;
  for (const auto& t : txts) {
    std::string why;
    auto r = parse_record(t, &why);
    const bool dmarc = r.has_value() || !why.empty();
    if (!dmarc) continue;
    ++n;
    if (r) found = r;
  }
  if (several) *several = n > 1;
  if (n != 1) return std::nullopt;
  return found;
}

bool aligned(std::string_view a, std::string_view b, bool strict, const PublicSuffixList& psl) {
  const std::string x = clean_domain(a), y = clean_domain(b);
  if (x.empty() || y.empty()) return false;
  if (x == y) return true;
  if (strict) return false;
  return psl.organizational_domain(x) == psl.organizational_domain(y);
}

Outcome evaluate(const Input& in, const Record& record, std::string_view record_domain,
                 const PublicSuffixList& psl, int sample) {
  Outcome o;
  o.spf_aligned = in.spf_result == "pass" &&
                  aligned(in.spf_domain, in.from_domain, record.aspf_strict, psl);
  for (const auto& d : in.dkim_pass)
    if (aligned(d, in.from_domain, record.adkim_strict, psl)) {
      o.dkim_aligned = true;
      break;
    }
  if (o.spf_aligned || o.dkim_aligned) {
    o.result = "pass";
    o.policy = Policy::None;
    o.reason = o.dkim_aligned ? "aligned DKIM pass" : "aligned SPF pass";
    return o;
  }
  o.result = "fail";
  // The record of the organizational domain applies sp= to its subdomains (RFC 7489 6.3).
  const bool at_org = clean_domain(record_domain) != clean_domain(in.from_domain);
  Policy p = at_org && record.sp ? *record.sp : record.p;
  // pct (6.6.4): a message outside the sample gets the next policy down.
  if (sample >= record.pct) {
    if (p == Policy::Reject) p = Policy::Quarantine;
    else if (p == Policy::Quarantine) p = Policy::None;
  }
  o.policy = p;
  o.reason = std::string("no aligned SPF or DKIM pass; policy ") + policy_name(p);
  return o;
}

}  // namespace carrier::dmarc
