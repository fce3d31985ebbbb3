// carrier transport/smtp: routing rules. See routing.hpp.
#include "proto/address.hpp"
#include "transport/smtp/routing.hpp"

#include <algorithm>
#include <climits>

namespace carrier::transport {
namespace {
}  // namespace

const SmtpRoute* match_route(const std::vector<SmtpRoute>& routes, std::string_view domain) {
  const std::string d = proto::normalize_domain(domain);
  for (const auto& r : routes) {
    if (r.domain == "*") return &r;
    if (r.domain.size() > 2 && r.domain[0] == '*' && r.domain[1] == '.') {
      std::string_view parent = std::string_view(r.domain).substr(1);  // ".example.com"
      if (d.size() > parent.size() && d.compare(d.size() - parent.size(), parent.size(), parent) == 0)
        return &r;
      continue;
    }
    if (r.domain == d) return &r;
  }
  return nullptr;
}

std::vector<Target> plan_targets(const dns::MxResult& mx, std::uint16_t port,
                                 const SelfIdentity& self, bool& loops) {
  loops = false;
  auto is_self = [&](const dns::Host& h) {
    if (std::find(self.names.begin(), self.names.end(), proto::normalize_domain(h.name)) != self.names.end())
      return true;
    for (const auto& ip : h.addresses)
      for (const auto& [sip, sport] : self.endpoints)
        if (ip == sip && sport == port) return true;
    return false;
  };
  int self_pref = INT_MAX;
  for (const auto& h : mx.hosts)
    if (is_self(h)) self_pref = std::min(self_pref, h.preference);
  std::vector<Target> out;
  bool any_host = false;
  for (const auto& h : mx.hosts) {
    if (h.preference >= self_pref) continue;
    any_host = true;
    for (const auto& ip : h.addresses) out.push_back(Target{h.name, ip, port});
  }
  if (self_pref != INT_MAX && !any_host) loops = true;
  return out;
}

std::chrono::nanoseconds RatePacer::reserve(std::chrono::steady_clock::time_point now) {
  if (per_second_ <= 0) return std::chrono::nanoseconds{0};
  const auto interval = std::chrono::nanoseconds(static_cast<std::int64_t>(1e9 / per_second_));
  const auto slot = std::max(now, next_);
  next_ = slot + interval;
  return slot - now;
}


}  // namespace carrier::transport
