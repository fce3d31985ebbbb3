// carrier dnsbl: DNS block and allow lists of client IPs (RFC 5782): the query name (IPv4
// octets or IPv6 nibbles reversed, under the list's zone), which answers count as "listed"
// (the list's return codes, RFC 5782 2.1: 127.0.0.0/8 only), the score (sum of the weights of
// the lists that list the client; allow lists have negative weights) against a threshold, and
// the reply text. PURE: the lookups are done by the caller (src/server/filters.cpp) through
// carrier's asynchronous resolver; this module only builds names and judges answers.
// Handles UNTRUSTED input: answers from DNS (addresses, TXT text), bounded and sanitized.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace carrier::dnsbl {

struct List {
  std::string zone;                  // "zen.spamhaus.org" (no trailing dot)
  double weight = 1.0;               // negative: an allow list (DNSWL)
  std::vector<std::string> returns;  // "127.0.0.2" or "127.0.0.0/24"; empty: any 127.0.0.0/8
  std::string message;               // reply text; "$ip" and "$zone" and "$text" expanded
};

// "2.0.0.127.zone" for 127.0.0.2; 32 nibbles for IPv6 (RFC 5782 2.4). nullopt: not an IP
// literal (or an IPv4-mapped IPv6 address, which is looked up as IPv4).
std::optional<std::string> query_name(std::string_view ip, std::string_view zone);

// Domain name lists (RHSBL, RFC 5782 2.3): "example.com.zone" for the domain example.com
// (lower case, a trailing dot dropped). nullopt: not a host name (letters, digits, '-', '_'
// and dots, no empty label, at most 63 per label), an IP literal ("[1.2.3.4]" or digits and
// dots only), or a query name longer than 253.
std::optional<std::string> domain_query_name(std::string_view domain, std::string_view zone);

// True when one of `answers` (A records of the query) is a listing by `list`: inside
// 127.0.0.0/8 (RFC 5782 2.1: other answers mean the list is broken or gone and never count)
// and matching list.returns when given.
bool listed(const List& list, const std::vector<std::string>& answers);

struct Hit {
  std::size_t list = 0;      // index into the configured lists
  std::string answer;        // the A record that matched
  std::string text;          // the list's TXT text, sanitized (may be empty)
};

struct Verdict {
  double score = 0;
  bool over = false;         // score >= threshold
  std::vector<Hit> hits;
};
Verdict judge(const std::vector<List>& lists, const std::vector<Hit>& hits, double threshold);

// The refusal text for the first blocking hit: list.message with $ip/$zone/$text expanded, or
// "Service unavailable; client [IP] blocked using ZONE[: TEXT]". Printable ASCII only, at
// most 400 characters.
std::string reply_text(const List& list, const Hit& hit, std::string_view ip);

// Header-safe text of a listing for tag mode: "zone=answer" joined by ", ".
std::string tag_text(const std::vector<List>& lists, const std::vector<Hit>& hits);

// A valid zone name (letters, digits, '-', '_', dots; 1..200 characters; no empty label).
bool valid_zone(std::string_view zone);
// A valid returns entry: "127.0.0.N" or "127.0.0.0/BITS" (IPv4 within 127.0.0.0/8).
bool valid_return(std::string_view r);

}  // namespace carrier::dnsbl
