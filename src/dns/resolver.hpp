// carrier DNS: asynchronous MX and address resolution for relaying (RFC 5321 5.1, RFC 7505),
// plus TXT (RFC 1035 3.3.14, for SPF) and PTR (RFC 1035 3.5, RFC 3596 2.5) lookups,
// on libunbound (caching stub resolver, asynchronous in its own thread) driven by the caller's
// Asio io_context. Asio stays out of this header (pimpl): include it where you like.
//
// Threads: resolve_mx/resolve_addresses/resolve_txt/resolve_ptr/stats may be called from any thread; the work and every
// callback run on the io_context's thread (one thread must run that io_context). Callbacks are
// always posted, never called from inside resolve_*. Destroy the Resolver on that thread (or
// after the io_context stopped running), and before the io_context itself: lookups still running
// then get TempFail "resolver shut down" (posted), so every accepted lookup is answered exactly
// once while the io_context runs.
// Between lookups the Resolver holds no outstanding Asio work: io_context::run() can return.
//
// Handles UNTRUSTED input: domains from mail envelopes and answers from the network.
#pragma once
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/result.hpp"
#include "dns/types.hpp"

namespace asio {
class io_context;
}

namespace carrier::dns {

struct ResolverOptions {
  // Forwarder "IP[@port]" (e.g. "127.0.0.1@5353" in tests); empty: the nameservers of the
  // system's /etc/resolv.conf. libunbound only ever forwards to these (no root hints).
  std::string upstream;
  bool ipv4 = true, ipv6 = true;  // which address records (A, AAAA) are looked up
  bool prefer_ipv6 = false;       // order of addresses within one host
  // Each becomes libunbound "local-zone: X transparent": without it libunbound answers the
  // RFC 6761 names (test., invalid., ...) itself with NXDOMAIN and never asks the upstream.
  std::vector<std::string> transparent_zones = {"test."};
  // Bound on each DNS query (MX, A or AAAA); when it expires the query is cancelled and counts as
  // TempFail. libunbound's own retries stay inside this.
  std::chrono::milliseconds query_timeout{15000};
  // Seed of the generator that shuffles MX hosts of equal preference; 0: from std::random_device.
  std::uint64_t shuffle_seed = 0;
};

class Resolver {
 public:
  Resolver(asio::io_context& io, ResolverOptions opts);
  ~Resolver();
  Resolver(const Resolver&) = delete;
  Resolver& operator=(const Resolver&) = delete;

  // Creates the libunbound context (thread mode) and hooks its descriptor into the io_context.
  // Errors: both ipv4 and ipv6 off, an upstream libunbound does not accept, an unreadable
  // resolv.conf, a zone name it refuses. Lookups before a successful init() get TempFail.
  Result<void> init();

  // The mail hosts of `domain` (RFC 5321 5.1):
  //  - the name is lower-cased, one trailing dot removed; an empty name, a label over 63 or a name
  //    over 253 characters, or a character outside letters/digits/'-'/'_' -> NotFound + error,
  //    without a query;
  //  - MX answer NXDOMAIN -> NotFound; SERVFAIL, REFUSED, timeout, resolver error -> TempFail;
  //  - one MX "0 ." -> NullMx (RFC 7505), no address lookups;
  //  - NOERROR without MX records -> implicit MX: the domain itself (preference 0, implicit =
  //    true) with its A/AAAA records;
  //  - else each MX host (sorted by preference, random order among equal preferences, at most
  //    16) gets its A and/or AAAA records looked up, all concurrently (at most 16 addresses per
  //    host). A host's status is Ok (has addresses), NotFound (NXDOMAIN / no address records)
  //    or TempFail (a lookup failed temporarily and no address came back).
  //  - Overall: Ok if at least one host has an address (the caller tries those in order and
  //    skips the others); otherwise TempFail if ANY host failed temporarily (only when all
  //    usable hosts failed temporarily does the whole lookup fail temporarily); otherwise
  //    NotFound (MX present but none usable / no address for the implicit MX).
  // Does not drop the local host and less preferred MXs (RFC 5321 5.1): the caller knows its names.
  void resolve_mx(std::string domain, std::function<void(MxResult)> cb);

  // A and/or AAAA of `host` (as options say), preferred family first, at most 16 addresses.
  // Ok if any address; TempFail if a lookup failed temporarily and none came back; else NotFound.
  // Same name checks as resolve_mx.
  void resolve_addresses(std::string host, std::function<void(AddrResult)> cb);

  // TXT records of `name` (one query; see make_txt_result in dns/answer.hpp). Same name checks
  // as resolve_mx (NotFound + error without a query); Ok / NotFound / TempFail.
  void resolve_txt(std::string name, std::function<void(TxtResult)> cb);

  // PTR names of the IP literal `ip` (the in-addr.arpa / ip6.arpa name is queried). Not an IP
  // literal -> NotFound + error without a query; else Ok / NotFound / TempFail.
  // Note: libunbound answers some reverse zones itself (127.in-addr.arpa, private ranges)
  // unless they are in ResolverOptions::transparent_zones.
  void resolve_ptr(std::string ip, std::function<void(PtrResult)> cb);

  struct Stats {
    std::uint64_t lookups = 0;   // resolve_mx/addresses/txt/ptr calls
    std::uint64_t failures = 0;  // of those, finished with TempFail
    std::uint64_t queries = 0;   // DNS queries handed to libunbound (its cache may answer them)
  };
  Stats stats() const;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace carrier::dns
