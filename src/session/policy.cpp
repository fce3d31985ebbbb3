// carrier session: the RCPT TO decision. See policy.hpp. Handles UNTRUSTED input.
#include "session/policy.hpp"

#include <arpa/inet.h>

#include <cstring>

namespace carrier::session {

std::optional<Cidr> Cidr::parse(std::string_view s) {
  if (s.find('\0') != std::string_view::npos) return std::nullopt;
  Cidr c;
  std::string addr(s);
  int bits = -1;
  if (auto slash = s.find('/'); slash != std::string_view::npos) {
    addr.assign(s.substr(0, slash));
    auto b = s.substr(slash + 1);
    if (b.empty() || b.size() > 3) return std::nullopt;
    bits = 0;
    for (char ch : b) {
      if (ch < '0' || ch > '9') return std::nullopt;
      bits = bits * 10 + (ch - '0');
    }
  }
  if (inet_pton(AF_INET, addr.c_str(), c.addr_.data()) == 1) {
    c.v6_ = false;
    if (bits < 0) bits = 32;
    if (bits > 32) return std::nullopt;
  } else if (inet_pton(AF_INET6, addr.c_str(), c.addr_.data()) == 1) {
    c.v6_ = true;
    if (bits < 0) bits = 128;
    if (bits > 128) return std::nullopt;
  } else {
    return std::nullopt;
  }
  c.bits_ = bits;
  return c;
}

namespace {
bool prefix_equal(const std::uint8_t* a, const std::uint8_t* b, int bits) {
  int full = bits / 8;
  if (std::memcmp(a, b, full) != 0) return false;
  int rest = bits % 8;
  if (rest == 0) return true;
  std::uint8_t mask = static_cast<std::uint8_t>(0xff << (8 - rest));
  return (a[full] & mask) == (b[full] & mask);
}
}  // namespace

bool Cidr::contains(std::string_view ip) const {
  if (ip.find('\0') != std::string_view::npos) return false;
  std::string s(ip);
  std::uint8_t buf[16];
  if (inet_pton(AF_INET, s.c_str(), buf) == 1) {
    return !v6_ && prefix_equal(buf, addr_.data(), bits_);
  }
  if (inet_pton(AF_INET6, s.c_str(), buf) != 1) return false;
  if (v6_) return prefix_equal(buf, addr_.data(), bits_);
  // ::ffff:a.b.c.d against an IPv4 network
  static const std::uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  return std::memcmp(buf, mapped, 12) == 0 && prefix_equal(buf + 12, addr_.data(), bits_);
}

namespace {
std::string lower_ascii(std::string_view s) {
  std::string r(s);
  for (auto& ch : r)
    if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch - 'A' + 'a');
  return r;
}
}  // namespace

LocalPolicy::LocalPolicy(const LocalPolicyData& d) : delimiter_(d.recipient_delimiter) {
  for (const auto& x : d.domains) domains_.insert(proto::normalize_domain(x));
  for (const auto& x : d.mailboxes) mailboxes_.insert(lower_ascii(x));
  for (const auto& [k, v] : d.aliases) aliases_.emplace(lower_ascii(k), v);
  for (const auto& n : d.trusted_networks)
    if (auto c = Cidr::parse(n)) trusted_.push_back(*c);
  for (const auto& vd : d.virtual_domains) {
    Virtual v;
    for (const auto& m : vd.mailboxes) v.mailboxes.insert(lower_ascii(m));
    for (const auto& [k, t] : vd.aliases) v.aliases.emplace(lower_ascii(k), t);
    v.catch_all = vd.catch_all;
    virtual_.emplace(proto::normalize_domain(vd.domain), std::move(v));
  }
}

bool LocalPolicy::is_virtual_domain(std::string_view domain) const {
  return virtual_.count(proto::normalize_domain(domain)) > 0;
}

bool LocalPolicy::is_local_domain(std::string_view domain) const {
  const std::string d = proto::normalize_domain(domain);
  return domains_.count(d) > 0 || virtual_.count(d) > 0;
}

bool LocalPolicy::expand_address(const proto::Mailbox& target, const proto::Mailbox& rcpt,
                                 std::vector<proto::EnvelopeRecipient>& out, int depth) const {
  if (depth > 16) return false;
  if (!target.is_address_literal()) {
    const std::string d = proto::normalize_domain(target.domain);
    if (domains_.count(d)) return expand(lower_ascii(target.unquoted_local()), rcpt, out, depth + 1);
    if (auto v = virtual_.find(d); v != virtual_.end())
      return expand_virtual(d, v->second, lower_ascii(target.unquoted_local()), rcpt, out, depth + 1);
  }
  proto::EnvelopeRecipient er;
  er.address = target;
  er.original = rcpt;
  er.route = proto::RcptRoute::Relay;
  out.push_back(std::move(er));
  return true;
}

bool LocalPolicy::expand_virtual(const std::string& domain, const Virtual& v,
                                 const std::string& name, const proto::Mailbox& rcpt,
                                 std::vector<proto::EnvelopeRecipient>& out, int depth) const {
  if (depth > 16) return false;
  if (auto a = v.aliases.find(name); a != v.aliases.end()) {
    for (const auto& target : a->second) {
      if (target.find('@') == std::string::npos) {
        if (!expand_virtual(domain, v, lower_ascii(target), rcpt, out, depth + 1)) return false;
        continue;
      }
      auto mb = proto::parse_mailbox(target, true);
      if (!mb || !expand_address(*mb, rcpt, out, depth + 1)) return false;
    }
    return true;
  }
  if (v.mailboxes.count(name)) {
    proto::EnvelopeRecipient er;
    er.address = rcpt;
    er.original = rcpt;
    er.route = proto::RcptRoute::Local;
    er.mailbox = name + "@" + domain;
    out.push_back(std::move(er));
    return true;
  }
  // RFC 5321 4.5.1: postmaster exists in every domain; unless defined here, it is the
  // [local] postmaster.
  if (name == "postmaster") return expand("postmaster", rcpt, out, depth + 1);
  return false;
}

bool LocalPolicy::is_trusted(std::string_view ip) const {
  for (const auto& c : trusted_)
    if (c.contains(ip)) return true;
  return false;
}

bool LocalPolicy::expand(const std::string& name, const proto::Mailbox& rcpt,
                         std::vector<proto::EnvelopeRecipient>& out, int depth) const {
  if (depth > 16) return false;  // alias chains are bounded (config rejects cycles anyway)
  if (auto a = aliases_.find(name); a != aliases_.end()) {
    for (const auto& target : a->second) {
      auto at = target.rfind('@');
      if (at == std::string::npos) {
        if (!expand(lower_ascii(target), rcpt, out, depth + 1)) return false;
        continue;
      }
      auto mb = proto::parse_mailbox(target, true);
      if (!mb || !expand_address(*mb, rcpt, out, depth + 1)) return false;
    }
    return true;
  }
  if (mailboxes_.count(name) || name == "postmaster") {
    proto::EnvelopeRecipient er;
    er.address = rcpt;
    er.original = rcpt;
    er.route = proto::RcptRoute::Local;
    er.mailbox = name;
    out.push_back(std::move(er));
    return true;
  }
  return false;
}

bool LocalPolicy::lookup(const proto::Mailbox& rcpt, std::vector<proto::EnvelopeRecipient>& out,
                         const std::function<bool(const std::string&)>& expand_name) const {
  // The whole local part, then (user+tag) the part before the recipient delimiter.
  const std::string local = lower_ascii(rcpt.unquoted_local());
  if (expand_name(local)) return true;
  if (delimiter_.empty()) return false;
  auto pos = local.find(delimiter_);
  if (pos == std::string::npos || pos == 0) return false;
  out.clear();
  return expand_name(local.substr(0, pos));
}

RcptDecision LocalPolicy::found_or_unknown(bool found, std::vector<proto::EnvelopeRecipient>& out,
                                           const std::string& addr) {
  RcptDecision d;
  if (found && !out.empty()) {
    d.accept = true;
    d.recipients = std::move(out);
    return d;
  }
  d.reply = proto::Reply(550, "5.1.1", "<" + addr + ">: Recipient address rejected: User unknown");
  return d;
}

RcptDecision LocalPolicy::check(const proto::Mailbox& rcpt, const ClientInfo& client) const {
  RcptDecision d;
  const std::string addr = rcpt.str();
  if (!rcpt.is_address_literal() && is_virtual_domain(rcpt.domain)) {
    const std::string dom = proto::normalize_domain(rcpt.domain);
    const Virtual& v = virtual_.at(dom);
    std::vector<proto::EnvelopeRecipient> out;
    bool found = lookup(rcpt, out, [&](const std::string& name) {
      return expand_virtual(dom, v, name, rcpt, out, 0);
    });
    if (!found && !v.catch_all.empty()) {  // every other local part of the domain
      out.clear();
      if (v.catch_all.find('@') == std::string::npos) {
        found = expand_virtual(dom, v, v.catch_all, rcpt, out, 0);
      } else if (auto mb = proto::parse_mailbox(v.catch_all, true)) {
        found = expand_address(*mb, rcpt, out, 0);
      }
    }
    return found_or_unknown(found, out, addr);
  }
  if (!rcpt.is_address_literal() && domains_.count(proto::normalize_domain(rcpt.domain))) {
    std::vector<proto::EnvelopeRecipient> out;
    bool found = lookup(rcpt, out, [&](const std::string& name) {
      return expand(name, rcpt, out, 0);
    });
    return found_or_unknown(found, out, addr);
  }
  // Relaying: clients in the trusted networks, and users who authenticated (RFC 4954 6,
  // RFC 6409 4.3).
  if (is_trusted(client.ip) || !client.auth_user.empty()) {
    proto::EnvelopeRecipient er;
    er.address = rcpt;
    er.original = rcpt;
    er.route = proto::RcptRoute::Relay;
    d.accept = true;
    d.recipients.push_back(std::move(er));
    return d;
  }
  d.reply = proto::Reply(554, "5.7.1", "<" + addr + ">: Relay access denied");
  return d;
}

}  // namespace carrier::session
