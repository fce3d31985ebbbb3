// carrier server: the "milter" message check, one stage per [[milter]] (docs/defence.md
// "Milters"). The dialogue is the sans-I/O filter::milter::Client; this file only moves its
// bytes over a TCP or unix socket on FilterRuntime's I/O thread (asynchronously: no thread
// waits for the milter) and streams the body from the spool file in chunks of at most 64 KiB.
//
// One connection per message. Each connect, write and wait for a reply is bounded by the
// entry's timeout (progress replies restart it); all checks together by the pipeline's 120 s.
// Verdicts: reject -> the milter's reply (default 550 5.7.1), tempfail -> 451 4.7.1 (or the
// milter's 4xx reply), discard -> Discard, quarantine -> Hold with the reason, header edits ->
// ctx.head. A milter that cannot be reached, times out, closes early or breaks the protocol
// gives 451 4.7.1 with on_failure = "tempfail", or lets the message go on unchanged with
// on_failure = "accept"; either way a warning is logged.
#pragma once
#include <memory>

#include "config/config.hpp"
#include "filter/filter.hpp"

namespace carrier::server {

class FilterRuntime;

std::shared_ptr<filter::Stage> make_milter_stage(const config::Config::Milter& m,
                                                 const config::Config& cfg, FilterRuntime& rt);

}  // namespace carrier::server
