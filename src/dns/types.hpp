// carrier DNS: the result types of MX and address lookups (RFC 5321 5.1 "Locating the Target
// Host", RFC 7505 null MX). Plain data, no I/O, no untrusted input.
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace carrier::dns {

enum class Status {
  Ok,        // at least one usable address
  NullMx,    // the domain publishes "MX 0 ." (RFC 7505): it accepts no mail, fail at once
  NotFound,  // permanent: NXDOMAIN, or no MX and no A/AAAA, or no MX host with an address
  TempFail,  // SERVFAIL, timeout, network or resolver trouble: try again later
};

std::string_view to_string(Status s);

// One mail exchanger (or, for an implicit MX, the domain itself).
struct Host {
  std::string name;                    // lower case, no trailing dot
  int preference = 0;                  // MX preference (0 for an implicit MX)
  std::vector<std::string> addresses;  // textual IPs, preferred family first, at most 16
  Status status = Status::Ok;          // of this host's A/AAAA lookups: Ok, NotFound or TempFail
  std::string error;                   // why status is not Ok (empty when Ok)
};

struct MxResult {
  Status status = Status::TempFail;
  // Sorted by MX preference; RANDOM order among hosts of equal preference (RFC 5321 5.1).
  // Hosts whose address lookup failed stay in the list (status != Ok, no addresses) so the
  // caller can log them; it simply skips hosts without addresses. At most 16 hosts.
  std::vector<Host> hosts;
  bool implicit = false;  // no MX records: the domain itself is the only host (RFC 5321 5.1)
  std::string error;      // human-readable, for logs and DSN diagnostics; empty when Ok
};

struct AddrResult {
  Status status = Status::TempFail;     // Ok, NotFound or TempFail (never NullMx)
  std::vector<std::string> addresses;   // textual IPs, preferred family first, at most 16
  std::string error;                    // empty when Ok
};

// TXT records of one name (RFC 1035 3.3.14), e.g. SPF (RFC 7208 3).
struct TxtResult {
  Status status = Status::TempFail;  // Ok, NotFound (NXDOMAIN / no TXT) or TempFail
  // One entry per record, its character-strings concatenated without separators (RFC 7208
  // 3.3); raw octets (may be non-ASCII). At most kMaxTxtRecords (dns/answer.hpp).
  std::vector<std::string> records;
  std::string error;  // empty when Ok
};

// PTR names of one address (RFC 1035 3.5 in-addr.arpa, RFC 3596 2.5 ip6.arpa).
struct PtrResult {
  Status status = Status::TempFail;  // Ok, NotFound (NXDOMAIN / no PTR) or TempFail
  std::vector<std::string> names;    // lower case, no trailing dot; at most kMaxPtrNames
  std::string error;                 // empty when Ok
};

}  // namespace carrier::dns
