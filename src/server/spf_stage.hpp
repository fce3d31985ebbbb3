// carrier server: the "spf" message check (RFC 7208; docs/defence.md "SPF"). Runs the sans-I/O
// evaluator of src/spf on FilterRuntime's resolver: each DNS query the evaluator asks for is
// sent asynchronously (bounded by the resolver's query timeout) and its answer resumes the
// evaluator on the runtime's I/O thread; no thread waits for DNS. The whole check is bounded
// by kSpfCheckTimeout (then temperror).
//
// The identity checked is MAIL FROM (RFC 7208 2.4); for the null sender it is the HELO name
// (postmaster@HELO, 2.3/2.4). Authenticated clients and [relay] trusted_networks are skipped.
// The result goes to ctx.auth (method "spf", smtp.mailfrom=<domain> or smtp.helo=<name>) for
// the Authentication-Results: field unless action = "none", and to the log notes ("spf=pass").
// action = "reject": fail -> 550 5.7.23, temperror -> 451 4.7.24 (RFC 7372 3.2);
// action = "quarantine": fail -> accepted and held in the queue.
#pragma once
#include <chrono>
#include <memory>

#include "config/config.hpp"
#include "filter/filter.hpp"

namespace carrier::server {

class FilterRuntime;

inline constexpr std::chrono::seconds kSpfCheckTimeout{20};  // RFC 7208 4.6.4: at least 20 s

std::shared_ptr<filter::Stage> make_spf_stage(const config::Config& cfg, FilterRuntime& rt);

}  // namespace carrier::server
