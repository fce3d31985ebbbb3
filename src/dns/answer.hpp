// carrier DNS: the pure rules that turn DNS answers into MX and address results.
// RFC 5321 5.1 (MX ordering, random among equal preferences, implicit MX, "MX present but
// none usable" is an error), RFC 7505 (null MX), RFC 1035 4.1.1 (RCODE). No I/O: the
// resolver (resolver.cpp) feeds these with what libunbound answered.
// Handles UNTRUSTED input (answer RDATA), through rdata.hpp's parsers.
#pragma once
#include <cstddef>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "dns/types.hpp"

namespace carrier::dns {

inline constexpr std::size_t kMaxMxHosts = 16;     // hosts kept from one MX RRset (bounded work)
inline constexpr std::size_t kMaxAddresses = 16;   // addresses kept per host
inline constexpr std::size_t kMaxTxtRecords = 64;  // TXT records kept from one answer
inline constexpr std::size_t kMaxPtrNames = 16;    // PTR names kept from one answer

// One DNS query's outcome, reduced to what the rules need.
struct Answer {
  enum class Kind {
    Data,      // NOERROR with records (rdata holds each record's RDATA)
    NoData,    // NOERROR, no records of the type (the name exists)
    NxDomain,  // RCODE 3: the name does not exist
    TempFail,  // SERVFAIL, REFUSED, other RCODEs, timeout, resolver error (error says which)
  };
  Kind kind = Kind::TempFail;
  std::vector<std::string> rdata;
  std::string error;
};

// RFC 1035 4.1.1 RCODE -> Kind. NOERROR splits on whether records came back.
Answer::Kind classify_rcode(int rcode, bool havedata);
// "NOERROR", "SERVFAIL", ... or "RCODE n".
std::string rcode_name(int rcode);

// The hosts to try, from a NOERROR MX answer with records:
//  - every RDATA parsed (parse_mx_rdata); malformed ones are skipped;
//  - exactly one usable record and it is "0 ." -> NullMx (RFC 7505 3); a "." exchange next to
//    real hosts violates RFC 7505 3 and is skipped (it is not a host);
//  - nothing usable left -> NotFound (RFC 5321 5.1: MX records present but none usable);
//  - else Ok: ordered by preference, shuffled with `rng` among equal preferences (RFC 5321
//    5.1), duplicate names dropped (first kept), at most kMaxMxHosts (the most preferred).
struct MxPlan {
  Status status = Status::NotFound;
  std::vector<std::pair<int, std::string>> hosts;  // {preference, name}
  std::string error;                               // when not Ok
};
MxPlan plan_mx(const std::vector<std::string>& rdata, std::mt19937_64& rng);

// One host's addresses from its A and AAAA answers (nullptr: that family is not looked up).
// Addresses: the preferred family first, each family in answer order, malformed RDATA skipped,
// duplicates dropped; at most kMaxAddresses, keeping at least min(n, 8) of the other family so
// a broken family always has a fallback. Status: Ok if any address; else TempFail if either
// lookup failed temporarily; else NotFound (NXDOMAIN / no A/AAAA records).
AddrResult combine_addresses(std::string_view host, const Answer* a, const Answer* aaaa,
                             bool prefer_ipv6);

// Overall status of an MX result once every host's lookup is done (RFC 5321 5.1): Ok if at
// least one host has an address; else TempFail if any host failed temporarily (the caller
// retries later); else NotFound ("no MX host has an address", permanent). Sets r.error when not
// Ok. Does not touch NullMx results.
void finish_mx(MxResult& r);

// A TXT answer for `name` -> TxtResult: Data -> Ok with every well-formed record (malformed RDATA
// skipped; none left -> NotFound), at most kMaxTxtRecords, in answer order; NoData / NxDomain
// -> NotFound; TempFail -> TempFail. error says which (empty when Ok).
TxtResult make_txt_result(std::string_view name, const Answer& a);
// A PTR answer for `name` (the in-addr.arpa / ip6.arpa name) -> PtrResult, the same way:
// names lower-cased, duplicates dropped, at most kMaxPtrNames.
PtrResult make_ptr_result(std::string_view name, const Answer& a);

}  // namespace carrier::dns
