// carrier transport: the one contract every delivery method implements (Maildir now; LMTP,
// SMTP relay and pipe later): a delivery request in, one result per recipient out.
#pragma once
#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "spool/spool.hpp"

namespace carrier::transport {

struct Request {
  const spool::Stored* message = nullptr;  // envelope + where the content is
  std::vector<std::size_t> recipients;     // indexes into message->envelope.recipients
};

struct Result {
  std::size_t index = 0;
  spool::RecipientResult::Status status = spool::RecipientResult::Status::Deferred;
  std::string detail;  // reply or reason; with an enhanced status code where one applies
  // Delivered to a next hop that does not support DSN although the recipient asked for
  // NOTIFY=SUCCESS: carrier itself owes the sender a "relayed" notice (RFC 3461 5.2.2).
  bool relayed = false;
};

class Transport {
 public:
  virtual ~Transport() = default;
  virtual const char* name() const = 0;
  // May block (runs on a delivery worker thread). Returns exactly one Result per recipient.
  virtual std::vector<Result> deliver(const Request& req) = 0;
};

}  // namespace carrier::transport
