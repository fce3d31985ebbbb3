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

  // The same without holding the caller's thread: starts the delivery and returns; `done` is
  // called exactly once, on any thread (never inside this call for an asynchronous transport),
  // with one Result per recipient. req.message must stay alive until then. A transport that
  // waits on the network (SMTP relay) overrides this so that a stalled next hop holds no
  // delivery thread; the default delivers synchronously and calls `done` before returning.
  using Done = std::function<void(std::vector<Result>)>;
  virtual void deliver_async(const Request& req, Done done) { done(deliver(req)); }
};

}  // namespace carrier::transport
