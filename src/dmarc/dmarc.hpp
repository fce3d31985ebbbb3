// carrier dmarc: DMARC (RFC 7489) as pure code — the Public Suffix List (organizational
// domains, RFC 7489 3.2), the DMARC record (6.3), identifier alignment (3.1) and the policy
// decision (6.6). No I/O besides PublicSuffixList::load; the DNS lookups of the record are the
// caller's (src/server/dmarc_stage). Record text and domains are UNTRUSTED: parsed strictly
// with explicit limits (a record of at most kMaxRecord bytes, domains of at most 253).
#pragma once
#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "base/result.hpp"

namespace carrier::dmarc {

// The Public Suffix List (https://publicsuffix.org/list/; Debian package publicsuffix).
class PublicSuffixList {
 public:
  static constexpr std::size_t kMaxFile = 16 * 1024 * 1024;
  // Parses the list's text: one rule per line, "//" comments, "*." wildcards, "!" exceptions.
  static PublicSuffixList parse(std::string_view text);
  static Result<PublicSuffixList> load(const std::filesystem::path& file);
  std::size_t size() const { return rules_.size() + wildcards_.size() + exceptions_.size(); }
  // The public suffix of `domain` (lower case, no trailing dot); the implicit rule "*" when
  // nothing matches.
  std::string public_suffix(std::string_view domain) const;
  // RFC 7489 3.2: the public suffix plus one label; the domain itself when it is a public
  // suffix (or has a single label).
  std::string organizational_domain(std::string_view domain) const;

 private:
  std::unordered_set<std::string> rules_, wildcards_, exceptions_;  // wildcards_: "*.x" as "x"
};

enum class Policy { None, Quarantine, Reject };
const char* policy_name(Policy p);

struct Record {
  static constexpr std::size_t kMaxRecord = 4096;
  Policy p = Policy::None;
  std::optional<Policy> sp;  // for subdomains of the organizational domain
  bool adkim_strict = false;
  bool aspf_strict = false;
  int pct = 100;
};

// Parses one TXT record (strings already joined). nullopt when it is not a DMARC record
// (does not start with "v=DMARC1"); an error text in *why when it starts so but is invalid.
// RFC 7489 6.6.3: a record with an invalid or missing p= but a valid rua= counts as p=none;
// here: a missing/invalid p= makes the record p=none only when rua= is present, else invalid.
std::optional<Record> parse_record(std::string_view txt, std::string* why = nullptr);

// From the TXT records at one name: the DMARC record when exactly one is there (RFC 7489
// 6.6.3: none or several → no policy). `found_invalid` is set when one started with
// "v=DMARC1" but did not parse.
std::optional<Record> pick_record(const std::vector<std::string>& txts, bool* several = nullptr);

// True when `a` and `b` are aligned: identical (strict), or with the same organizational
// domain (relaxed). Case-insensitive.
bool aligned(std::string_view a, std::string_view b, bool strict, const PublicSuffixList& psl);

struct Input {
  std::string from_domain;               // RFC5322.From domain
  std::string spf_result;                // "pass", "fail", ... ("" = not checked)
  std::string spf_domain;                // the domain SPF checked (MAIL FROM, or HELO)
  std::vector<std::string> dkim_pass;    // d= of every DKIM signature that passed
};

struct Outcome {
  std::string result;       // "pass", "fail", "none", "temperror", "permerror"
  Policy policy = Policy::None;  // what the domain owner asks for this message (after pct)
  bool spf_aligned = false, dkim_aligned = false;
  std::string reason;       // for the log
};

// RFC 7489 6.6.2-6.6.4: `record` found at `record_domain` (the From domain or its
// organizational domain). `sample` in [0, 100): the message's pct draw.
Outcome evaluate(const Input& in, const Record& record, std::string_view record_domain,
                 const PublicSuffixList& psl, int sample);

}  // namespace carrier::dmarc
