// carrier server: the "dmarc" message check (RFC 7489; docs/defence.md "DMARC"). Runs after
// the "spf" and "dkim" stages and uses their results: the SPF result of MAIL FROM (or HELO for
// the null sender) from the log notes (present whatever [spf] action is), and the d= of every
// DKIM signature that passed from ctx.auth. Looks up _dmarc.<From: domain>, else
// _dmarc.<organizational domain> (Public Suffix List), asynchronously on FilterRuntime's
// resolver (each query bounded by its timeout; no thread waits). Result in
// Authentication-Results (dmarc=pass|fail|none|temperror|permerror header.from=...).
// action = "enforce": p=reject → 550 5.7.1, p=quarantine → held in the queue (pct honoured);
// "tag": the header only; "none": the log only. Authenticated and trusted clients: skipped.
#pragma once
#include <memory>

#include "base/result.hpp"
#include "config/config.hpp"
#include "filter/filter.hpp"

namespace carrier::server {

class FilterRuntime;

// Null when [dmarc] is not enabled; an error when the public suffix list cannot be loaded.
Result<std::shared_ptr<filter::Stage>> make_dmarc_stage(const config::Config& cfg, FilterRuntime& rt);

}  // namespace carrier::server
