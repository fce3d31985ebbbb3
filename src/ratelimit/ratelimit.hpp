// carrier ratelimit: messages and recipients per time window, per client IP, per authenticated
// user and per sender domain ([rate_limit] rules), as a session::Gate: MAIL is refused when a
// message would go over a limit, RCPT when a recipient would. Token buckets (capacity = the
// limit, refilled evenly over the window), so a client that stops sending is back to its full
// allowance one window later. Messages and recipients are counted when a message is committed
// (a refused or abandoned transaction costs nothing). Bounces and DSNs (null reverse-path) are
// never counted against users or sender domains (RFC 5321 4.5.5, RFC 3464).
// Memory is bounded: at most max_keys buckets per rule; full buckets are forgotten first.
// Handles untrusted input only as map keys (IP text, user name, sender domain), bounded.
#pragma once
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "session/server_session.hpp"

namespace carrier::ratelimit {

enum class Key { Ip, User, SenderDomain };

struct Rule {
  Key key = Key::Ip;
  std::uint64_t messages = 0;    // per window; 0: no message limit
  std::uint64_t recipients = 0;  // per window; 0: no recipient limit
  std::chrono::seconds window{3600};
};

// One token bucket per key. Pure: time comes from the caller.
class Buckets {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  Buckets(std::uint64_t capacity, std::chrono::seconds window, std::size_t max_keys);
  // Tokens available for `key` at `now` (capacity for an unknown key).
  double available(const std::string& key, TimePoint now);
  // Takes n tokens (may go below zero: a message with more recipients than left still counts).
  void take(const std::string& key, double n, TimePoint now);
  std::size_t size() const { return map_.size(); }

 private:
  struct Bucket {
    double tokens;
    TimePoint at;
  };
  void refill(Bucket& b, TimePoint now) const;
  void make_room(TimePoint now);
  double capacity_;
  double per_second_;
  std::size_t max_keys_;
  std::unordered_map<std::string, Bucket> map_;
};

class RateGate final : public session::Gate {
 public:
  using Now = std::function<std::chrono::steady_clock::time_point()>;
  static constexpr std::size_t kMaxKeys = 100000;
  explicit RateGate(std::vector<Rule> rules, Now now = {}, std::size_t max_keys = kMaxKeys);
  std::optional<proto::Reply> on_mail(const session::ClientInfo& client, const proto::Mailbox& sender,
                                      const proto::MailParams& params) override;
  std::optional<proto::Reply> on_rcpt(const session::ClientInfo& client, const proto::Envelope& env,
                                      const proto::Mailbox& rcpt) override;
  void on_accepted(const session::ClientInfo& client, const proto::Envelope& env) override;
  std::uint64_t refusals() const;

 private:
  struct Limiter {
    Rule rule;
    Buckets messages;
    Buckets recipients;
  };
  // The bucket key of `r` for this client/sender; empty: the rule does not apply.
  static std::string key_of(const Rule& r, const session::ClientInfo& c, const proto::Mailbox& sender);
  std::vector<Limiter> limiters_;
  Now now_;
  mutable std::mutex mu_;
  std::uint64_t refusals_ = 0;
};

const char* key_name(Key k);

}  // namespace carrier::ratelimit
