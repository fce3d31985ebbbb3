// carrier SPF: check_host() of RFC 7208 as a sans-I/O evaluator, for checking incoming mail
// (the MAIL FROM identity, or the HELO identity for the null sender; RFC 7208 2.3, 2.4).
//
// The evaluator never does I/O. `Check::next()` evaluates the record(s) with the DNS answers
// given so far and either finishes or names the one DNS query it needs next (TXT, A, AAAA, MX
// or PTR); the caller answers it with `Check::answer()` (now or later, from any I/O loop) and
// calls next() again. Each next() re-runs the evaluation from the start over the answers
// cached so far, so the evaluator holds no suspended state and every limit is counted exactly
// as in a synchronous run; the cost is a few microseconds per query (at most kMaxQueries).
//
// Implemented: record selection (4.5: exactly one "v=spf1" record, else permerror), the whole
// record syntax (4.6.1, 12: mechanisms all include a mx ptr ip4 ip6 exists with qualifiers and
// dual CIDR lengths, modifiers redirect and exp at most once, unknown modifiers checked and
// ignored), macros (7: s l o d i p v h, digit and r transformers, delimiters, upper-case URL
// escaping, %% %_ %-; "p" expands to "unknown" (7.3 allows it; ptr validation is not done for
// macros); c r t only in exp, which is parsed and otherwise ignored), the limits of 4.6.4 (10
// DNS-querying terms, 2 void lookups, 10 MX names per mx, 10 PTR names per ptr), DNS errors as
// temperror (5, 4.4), and the results none neutral pass fail softfail temperror permerror (2.6).
//
// Handles UNTRUSTED input (envelope addresses, HELO names, TXT records): every record, term,
// name and macro expansion is bounded, nothing throws.
#pragma once
#include <cstddef>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace carrier::spf {

inline constexpr int kMaxDnsTerms = 10;            // RFC 7208 4.6.4: include a mx ptr exists redirect
inline constexpr int kMaxVoidLookups = 2;          // RFC 7208 4.6.4
inline constexpr std::size_t kMaxMxNames = 10;     // RFC 7208 4.6.4: more MX names: permerror
inline constexpr std::size_t kMaxPtrNames = 10;    // RFC 7208 4.6.4: names past 10 are ignored
inline constexpr std::size_t kMaxRecord = 4096;    // our bound: a longer record is a permerror
inline constexpr std::size_t kMaxTerms = 128;      // our bound: more terms are a permerror
inline constexpr std::size_t kMaxQueries = 160;    // our bound on distinct queries of one check
inline constexpr std::size_t kMaxName = 253;       // RFC 7208 7.3 (expanded names are cut to it)
inline constexpr std::size_t kMaxSender = 512;     // our bound on the <sender> (longer: none)

enum class Code { None, Neutral, Pass, Fail, SoftFail, TempError, PermError };
std::string_view to_string(Code c);  // "none", "neutral", "pass", ... (RFC 7208 2.6, RFC 8601)

enum class QType { Txt, A, Aaaa, Mx, Ptr };
std::string_view to_string(QType t);

// A DNS query the evaluator needs. `name` is lower case without a trailing dot; for Ptr it is
// the IP address (the caller builds the in-addr.arpa / ip6.arpa name).
struct Query {
  QType type = QType::Txt;
  std::string name;
  bool operator==(const Query&) const = default;
  auto operator<=>(const Query&) const = default;
};

enum class Rcode {
  Ok,        // records (possibly none, which counts as NotFound)
  NotFound,  // NXDOMAIN, or NOERROR without records of the type (a "void lookup", 4.6.4)
  TempFail,  // SERVFAIL, timeout, any other error (temperror, 2.6.6)
};

// The answer to a Query: TXT: one string per record (character-strings joined, RFC 7208
// 3.3); A/AAAA: textual addresses; MX: the exchange host names (preference irrelevant); PTR:
// host names.
struct Answer {
  Rcode status = Rcode::TempFail;
  std::vector<std::string> records;
  std::string error;  // why, when TempFail (for the reason)
};

// check_host(<ip>, <domain>, <sender>) plus <helo> for the %{h} macro.
struct Request {
  std::string ip;      // the SMTP client's address (IPv4-mapped IPv6 is treated as IPv4)
  std::string domain;  // the domain checked
  std::string sender;  // local@domain (local "postmaster" when it had none, RFC 7208 4.3)
  std::string helo;    // the HELO/EHLO name as given

  // The MAIL FROM identity (RFC 7208 2.4). An empty reverse-path (null sender) checks
  // postmaster@<helo> (2.4), i.e. the HELO name's policy.
  static Request mail_from(std::string ip, std::string_view local, std::string_view domain,
                           std::string helo);
  // The HELO identity (RFC 7208 2.3): <domain> is the HELO name, <sender> postmaster@<helo>.
  static Request helo_identity(std::string ip, std::string helo);
};

struct Result {
  Code code = Code::None;
  std::string domain;    // the domain checked (normalised), for smtp.mailfrom / smtp.helo
  std::string matched;   // the term that decided, e.g. "-all", "include:_spf.example.org"
  std::string reason;    // why (none, permerror, temperror, default neutral); short, printable
  int dns_terms = 0;     // DNS-querying terms evaluated
  int void_lookups = 0;
  std::size_t queries = 0;  // distinct DNS queries answered
};

class Check {
 public:
  explicit Check(Request r);
  // Evaluates with the answers so far: the next query to answer, or nullopt when finished
  // (then result() is final). Calling next() again without answering returns the same query.
  std::optional<Query> next();
  // The answer to a query next() returned (other queries are ignored).
  void answer(const Query& q, Answer a);
  // Ends the check now as temperror (e.g. the whole check took too long).
  void abort(std::string reason);
  bool finished() const { return finished_; }
  const Result& result() const { return result_; }
  const Request& request() const { return req_; }

 private:
  Request req_;
  std::map<Query, Answer> cache_;
  std::optional<Query> pending_;
  Result result_;
  bool finished_ = false;
};

// Drives a Check synchronously, answering each query with `dns` (tests and tools).
Result check_host(Request r, const std::function<Answer(const Query&)>& dns);

// ---- pieces, exposed for tests ------------------------------------------------------------

// The values macros expand to (RFC 7208 7.3).
struct MacroVars {
  std::string sender;         // s
  std::string local;          // l
  std::string sender_domain;  // o
  std::string domain;         // d (the current domain)
  std::string ip;             // the client address as given (for c)
  std::string helo;           // h
  bool ipv6 = false;          // v: "ip6" / "in-addr"; i: nibbles / dotted quad
  unsigned char bytes[16] = {};
  std::string receiver = "unknown";  // r (explanation only)
  long long timestamp = 0;           // t (explanation only)
};
// Makes MacroVars from a request; nullopt when the IP is not an address.
std::optional<MacroVars> macro_vars(const Request& r);

// True when `s` is a valid macro-string (RFC 7208 7.1); `explanation`: c r t allowed.
bool valid_macro_string(std::string_view s, bool explanation = false);
// Expands a macro-string; nullopt on a syntax error. The result is not cut to 253 octets.
std::optional<std::string> expand(std::string_view s, const MacroVars& v, bool explanation = false);

}  // namespace carrier::spf
