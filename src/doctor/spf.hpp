// carrier doctor: a simple SPF evaluator (RFC 7208) to tell an operator whether a domain's SPF
// record covers this host. Implements check_host() (RFC 7208 4) for the mechanisms all,
// include, a, mx, ip4, ip6 (with dual CIDR lengths, 5.6), exists (without macros) and the
// redirect modifier (6.1), the qualifiers + - ~ ? (4.6.2), record selection (4.5), syntax
// errors as permerror (4.6), and the limits of 4.6.4 (10 DNS-querying terms, 10 MX names, 2 void
// lookups). Not supported, and said so in the result's notes: macros (7; terms with '%' never
// match) and ptr (5.5; never matches, as the RFC discourages it). exp= is ignored.
// Pure: every DNS answer comes through the SpfDns interface (a fake in unit tests, the
// Resolver in the doctor). Handles UNTRUSTED input (TXT records from DNS): every record and term
// is bounded, nothing throws.
#pragma once
#include <array>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dns/types.hpp"

namespace carrier::doctor {

inline constexpr int kSpfMaxDnsTerms = 10;    // RFC 7208 4.6.4: include a mx ptr exists redirect
inline constexpr int kSpfMaxVoidLookups = 2;  // RFC 7208 4.6.4
inline constexpr std::size_t kSpfMaxMxNames = 10;  // RFC 7208 4.6.4
inline constexpr std::size_t kSpfMaxRecord = 4096; // longer records are a permerror (our bound)
inline constexpr std::size_t kSpfMaxTerms = 128;   // more terms are a permerror (our bound)

// An IPv4 or IPv6 address as bytes (IPv4 in the first 4).
struct Ip {
  int family = 0;  // AF_INET or AF_INET6
  std::array<unsigned char, 16> bytes{};
};
// A plain IPv4 or IPv6 literal; nullopt for anything else.
std::optional<Ip> parse_ip(std::string_view text);
// True when both are of one family and the first `prefix` bits are equal.
bool in_network(const Ip& ip, const Ip& net, int prefix);

// The DNS answers the evaluator needs.
class SpfDns {
 public:
  virtual ~SpfDns() = default;
  virtual dns::TxtResult txt(const std::string& name) = 0;
  virtual dns::AddrResult addresses(const std::string& name) = 0;
  virtual dns::MxResult mx(const std::string& name) = 0;
};

enum class SpfVerdict { Pass, Fail, SoftFail, Neutral, None, PermError, TempError };
std::string_view to_string(SpfVerdict v);  // "pass", "fail", "softfail", ... (RFC 7208 2.6)

struct SpfResult {
  SpfVerdict verdict = SpfVerdict::None;
  std::string record;   // the domain's SPF record ("" when there is none)
  std::string matched;  // the term that decided, e.g. "-all", "ip4:127.0.0.0/8", "include:x.test"
  std::string reason;   // why, for none / permerror / temperror, and for the default neutral
  int dns_terms = 0;    // DNS-querying terms evaluated (RFC 7208 4.6.4)
  std::vector<std::string> notes;  // unsupported parts met on the way (macros, ptr)
};

// check_host(ip, domain) of RFC 7208 4 with the restrictions above. `ip` must be an IP literal
// (else permerror); `domain` a domain name (else none, RFC 7208 4.3).
SpfResult evaluate_spf(std::string_view ip, std::string_view domain, SpfDns& dns);

}  // namespace carrier::doctor
