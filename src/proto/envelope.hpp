// carrier proto: the envelope of one message as accepted by the SMTP server and kept in the
// spool: sender, recipients (with DSN parameters, RFC 3461), and how it arrived. Pure data.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "proto/address.hpp"
#include "proto/command.hpp"

namespace carrier::proto {

enum class RcptRoute {
  Local,  // delivered here (mailbox named by `mailbox`)
  Relay,  // forwarded to another MTA (issue: relay)
};

struct EnvelopeRecipient {
  Mailbox address;       // where it goes: Relay: the remote address (after alias expansion);
                         // Local: the address as given (mailbox names the destination)
  Mailbox original;      // as given in RCPT TO (for logs, Delivered-To:, DSN Original-Recipient)
  RcptRoute route = RcptRoute::Local;
  std::string mailbox;   // Local: the mailbox name (e.g. "demo"), lower case
  unsigned notify = kNotifyNone;  // RCPT NOTIFY= bits
  std::string orcpt_type;         // RCPT ORCPT= type ("rfc822"), empty when not given
  std::string orcpt;              // RCPT ORCPT= address (decoded)
};

struct Envelope {
  Mailbox sender;  // empty: null reverse-path <>
  MailParams params;
  std::vector<EnvelopeRecipient> recipients;
  // How it arrived (for Received:, logs and later the queue trace)
  std::string helo;            // EHLO/HELO argument
  std::string client_ip;       // textual IP, e.g. "127.0.0.1" or "::1"
  std::string client_rdns;     // reverse DNS name if known, else empty
  std::string protocol;        // "SMTP", "ESMTP", "ESMTPS", "UTF8SMTP", ... (RFC 3848)
  std::int64_t received_at_ms = 0;  // Unix ms when the transaction began
  std::string auth_user;       // who authenticated (RFC 4954), empty: nobody (DKIM signing)
};

}  // namespace carrier::proto
