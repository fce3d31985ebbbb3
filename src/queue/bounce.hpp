// carrier queue: the parts of delivery status notifications (bounces and delay warnings) that
// the delivery queue needs: which recipients ask for which notice (RFC 3461 4.1 NOTIFY), the
// RFC 3463 status code at the start of a transport's detail text, the expiry text (RFC 3463
// 4.4.7), a token bucket that caps how many notices are generated (backscatter defence), and
// writing a DSN built by proto/dsn.hpp into the spool as a new message with the null
// reverse-path (RFC 5321 4.5.5, 6.1; RFC 3461 6.1; RFC 3464).
// The detail texts may hold a remote server's reply (untrusted): they are only scanned here
// and handed to the DSN builder, which sanitises them.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.hpp"
#include "proto/dsn.hpp"
#include "proto/envelope.hpp"
#include "spool/spool.hpp"

namespace carrier::queue {

// RFC 3461 4.1: a failure notice is wanted when NOTIFY was not given (the default is to report
// failures) or it names FAILURE; never with NOTIFY=NEVER.
bool wants_failure_notice(unsigned notify);
// RFC 3461 4.1: a delay notice is wanted when NOTIFY was not given (the MTA may report delays)
// or it names DELAY; not for NOTIFY=NEVER, FAILURE only, SUCCESS only or SUCCESS,FAILURE.
bool wants_delay_notice(unsigned notify);

// The RFC 3463 status code ("5.1.1") a detail text starts with: either directly ("5.1.1 user
// unknown") or after an SMTP reply code ("550 5.1.1 ...", "550-5.1.1 ..."). "" when there is
// none. Only the first 24 octets are looked at.
std::string leading_status(std::string_view detail);

// True when the detail text starts with an SMTP reply code ("550 ...", "451-...", "250"): it is
// a reply from an SMTP peer (Diagnostic-Code type "smtp", RFC 3464 2.3.6).
bool is_smtp_reply(std::string_view detail);

// What a DSN says about one recipient's detail text (RFC 3464 2.3.5 Remote-MTA, 2.3.6
// Diagnostic-Code). The SMTP relay transport writes
//   "<status> host NAME[IP]:PORT said: <reply> (in reply to <COMMAND>)"
// (with "carrier: " before "host" when carrier made the reply up itself): then remote_mta =
// NAME and the diagnostic is the peer's reply, type "smtp" (a made-up reply: the whole detail,
// type "X-Carrier"). A detail that starts with a reply code is type "smtp"; anything else
// (a local transport's reason) is "X-Carrier" with the whole detail.
struct Diagnostic {
  std::string remote_mta;  // empty: unknown
  std::string type;        // "smtp" or "X-Carrier"
  std::string text;
};
Diagnostic split_diagnostic(std::string_view detail);

// "1 second", "30 minutes", "1 day", "5 days": the largest whole unit (days, hours, minutes,
// seconds) that fits, rounded down.
std::string describe_duration(std::chrono::seconds d);

// "4.4.7 message expired in the queue after <age>: <last error>" (RFC 3463 4.4.7: delivery
// time expired).
std::string expiry_detail(std::chrono::seconds age, std::string_view last_error);

// A token bucket: at most `per_minute` takes in any burst, refilled continuously at
// per_minute / 60 per second, on times given by the caller (an injected clock). Not
// thread-safe. per_minute <= 0: every take fails.
class RateLimiter {
 public:
  explicit RateLimiter(int per_minute);
  bool take(std::chrono::system_clock::time_point now);

 private:
  double capacity_;
  double tokens_;
  std::chrono::system_clock::time_point last_{};
  bool started_ = false;
};

// How big the chunks are that the original is copied in.
constexpr std::size_t kDsnCopyChunk = 64 * 1024;

// Writes one DSN into the spool as a new message and waits until it is durable: envelope with
// the null sender, the given recipients (the original sender, routed) and BODY=/SMTPUTF8 as
// dsn_layout(in) requires; content dsn_head(in), then the original's content read from its
// spool file in chunks (all of it when dsn_layout(in).full_message, else its header section),
// then dsn_tail(in). Returns the new message's queue id. Errors: dsn_head's, I/O errors reading
// the original or writing the spool (the new message is then not created).
Result<std::string> write_dsn(spool::Spool& spool, const spool::Stored& original,
                              const proto::DsnInput& in,
                              std::vector<proto::EnvelopeRecipient> recipients);

}  // namespace carrier::queue
