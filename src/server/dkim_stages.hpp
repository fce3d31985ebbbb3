// carrier server: the two DKIM stages of the message checks (docs/defence.md "DKIM").
//   - "dkim-sign" (Kind::Content, the LAST stage): signs mail of authenticated users and
//     trusted networks with the [[dkim.key]] of the From: domain (else of the envelope sender's
//     domain); the body is streamed from the spool file; the field goes on top of ctx.head.
//     Mail that must be signed and cannot be is refused with 451 4.7.5 (rule in the .cpp).
//   - "dkim" (Kind::Auth, [dkim] verify = true): verifies up to kMaxSignatures DKIM-Signature
//     fields of mail from other clients; keys are looked up asynchronously on the checks'
//     resolver; results go to Authentication-Results.
#pragma once
#include <memory>

#include "base/result.hpp"
#include "config/config.hpp"
#include "filter/filter.hpp"

namespace carrier::server {

class FilterRuntime;

inline constexpr std::size_t kMaxDkimSignatures = 5;  // checked per message; more are ignored

// Null when [dkim] has neither keys nor sign_domains.
Result<std::shared_ptr<filter::Stage>> make_dkim_sign_stage(const config::Config& cfg);
// Null when [dkim] verify is off.
std::shared_ptr<filter::Stage> make_dkim_verify_stage(const config::Config& cfg, FilterRuntime& rt);

// The domain of the first mailbox of a From: field value, lowercase; empty when there is none
// or it is not a valid domain name. (For the signing key choice; bounded by the value.)
std::string from_domain(std::string_view from_value);

}  // namespace carrier::server
