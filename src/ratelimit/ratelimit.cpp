// carrier ratelimit: token buckets and the rate-limit gate (see ratelimit.hpp).
#include "ratelimit/ratelimit.hpp"

#include <algorithm>

#include "proto/address.hpp"

namespace carrier::ratelimit {

const char* key_name(Key k) {
  switch (k) {
    case Key::Ip: return "ip";
    case Key::User: return "user";
    case Key::SenderDomain: return "sender_domain";
  }
  return "?";
}

Buckets::Buckets(std::uint64_t capacity, std::chrono::seconds window, std::size_t max_keys)
    : capacity_(static_cast<double>(capacity)),
      per_second_(window.count() > 0 ? static_cast<double>(capacity) / static_cast<double>(window.count())
                                     : static_cast<double>(capacity)),
      max_keys_(std::max<std::size_t>(max_keys, 1)) {}

void Buckets::refill(Bucket& b, TimePoint now) const {
  if (now <= b.at) return;
  const double secs = std::chrono::duration<double>(now - b.at).count();
  b.tokens = std::min(capacity_, b.tokens + secs * per_second_);
  b.at = now;
}

double Buckets::available(const std::string& key, TimePoint now) {
  auto it = map_.find(key);
  if (it == map_.end()) return capacity_;
  refill(it->second, now);
  return it->second.tokens;
}

void Buckets::make_room(TimePoint now) {
  // Full buckets carry no information: forget them first.
  for (auto it = map_.begin(); it != map_.end();) {
    refill(it->second, now);
    it = it->second.tokens >= capacity_ ? map_.erase(it) : std::next(it);
  }
  // Still full: forget the fullest (closest to their allowance) down to 90 %.
  if (map_.size() < max_keys_) return;
  std::vector<std::pair<double, std::string>> v;
  v.reserve(map_.size());
  for (const auto& [k, b] : map_) v.emplace_back(b.tokens, k);
  const std::size_t drop = map_.size() - max_keys_ * 9 / 10;
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(drop - 1), v.end(),
                   [](const auto& a, const auto& b) { return a.first > b.first; });
  for (std::size_t i = 0; i < drop; ++i) map_.erase(v[i].second);
}

void Buckets::take(const std::string& key, double n, TimePoint now) {
  auto it = map_.find(key);
  if (it == map_.end()) {
    if (map_.size() >= max_keys_) make_room(now);
    it = map_.emplace(key, Bucket{capacity_, now}).first;
  }
  refill(it->second, now);
  it->second.tokens -= n;
}

RateGate::RateGate(std::vector<Rule> rules, Now now, std::size_t max_keys)
    : now_(now ? std::move(now) : Now([] { return std::chrono::steady_clock::now(); })) {
  for (auto& r : rules)
    limiters_.push_back(Limiter{r, Buckets(r.messages, r.window, max_keys),
                                Buckets(r.recipients, r.window, max_keys)});
}

std::string RateGate::key_of(const Rule& r, const session::ClientInfo& c, const proto::Mailbox& sender) {
  switch (r.key) {
    case Key::Ip: return c.ip;
    case Key::User:
      // Bounces and DSNs are not held against anyone's allowance.
      if (sender.empty()) return {};
      return c.auth_user;
    case Key::SenderDomain:
      if (sender.empty()) return {};
      return proto::normalize_domain(sender.domain);
  }
  return {};
}

namespace {
std::string who(const Rule& r, const std::string& key) {
  switch (r.key) {
    case Key::Ip: return "[" + key + "]";
    case Key::User: return "user " + key;
    case Key::SenderDomain: return "sender domain " + key;
  }
  return key;
}
std::string window_text(std::chrono::seconds w) {
  auto s = w.count();
  if (s % 3600 == 0) return std::to_string(s / 3600) + "h";
  if (s % 60 == 0) return std::to_string(s / 60) + "m";
  return std::to_string(s) + "s";
}
}  // namespace

std::optional<proto::Reply> RateGate::on_mail(const session::ClientInfo& client,
                                              const proto::Mailbox& sender,
                                              const proto::MailParams&) {
  std::lock_guard lk(mu_);
  const auto now = now_();
  for (auto& l : limiters_) {
    if (l.rule.messages == 0) continue;
    const std::string key = key_of(l.rule, client, sender);
    if (key.empty()) continue;
    if (l.messages.available(key, now) < 1.0) {
      ++refusals_;
      const std::string text = "Error: too many messages from " + who(l.rule, key) + " (limit " +
                               std::to_string(l.rule.messages) + " per " +
                               window_text(l.rule.window) + "), try again later";
      // A client over its own connection's allowance is told to go away (RFC 5321 3.8);
      // a user or sender domain may still send other mail in this session.
      if (l.rule.key == Key::Ip) return proto::Reply(421, "4.7.0", text);
      return proto::Reply(450, "4.7.1", text);
    }
  }
  return std::nullopt;
}

std::optional<proto::Reply> RateGate::on_rcpt(const session::ClientInfo& client,
                                              const proto::Envelope& env, const proto::Mailbox&) {
  std::lock_guard lk(mu_);
  const auto now = now_();
  // Recipients already accepted in this transaction are counted at commit: they must fit too.
  const double pending = static_cast<double>(env.recipients.size());
  for (auto& l : limiters_) {
    if (l.rule.recipients == 0) continue;
    const std::string key = key_of(l.rule, client, env.sender);
    if (key.empty()) continue;
    if (l.recipients.available(key, now) < pending + 1.0) {
      ++refusals_;
      return proto::Reply(450, "4.7.1",
                          "Error: too many recipients from " + who(l.rule, key) + " (limit " +
                              std::to_string(l.rule.recipients) + " per " +
                              window_text(l.rule.window) + "), try again later");
    }
  }
  return std::nullopt;
}

void RateGate::on_accepted(const session::ClientInfo& client, const proto::Envelope& env) {
  std::lock_guard lk(mu_);
  const auto now = now_();
  for (auto& l : limiters_) {
    const std::string key = key_of(l.rule, client, env.sender);
    if (key.empty()) continue;
    if (l.rule.messages) l.messages.take(key, 1.0, now);
    if (l.rule.recipients) l.recipients.take(key, static_cast<double>(env.recipients.size()), now);
  }
}

std::uint64_t RateGate::refusals() const {
  std::lock_guard lk(mu_);
  return refusals_;
}

}  // namespace carrier::ratelimit
