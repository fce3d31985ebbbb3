// carrier session: who may send mail to whom — the RCPT TO decision (RFC 5321 3.3, 4.5.1;
// RFC 5321 3.6.2 and 7.9 on relaying). Pure. Handles UNTRUSTED input (the recipient address).
//
// A recipient in a local domain is looked up by its local part, lower-cased, in this order:
//   the whole local part as a mailbox or alias; then, with a recipient delimiter, the part
//   before it (user+tag → user); "postmaster" is always accepted (RFC 5321 4.5.1).
// Anything else in a local domain: 550 5.1.1. The local part is never parsed for routing:
// "user%other@here", "other!user@here" and "\"user@other\"@here" are just unknown local names,
// so the percent hack, bang paths and quoted @ can never open a relay. Source routes were
// already dropped by the address parser (RFC 5321 4.1.2 / Appendix C).
// A recipient in any other domain (or an address literal) is relayed only for clients in the
// trusted networks; everyone else gets 554 5.7.1.
#pragma once
#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "session/server_session.hpp"

namespace carrier::session {

// An IPv4 or IPv6 network in CIDR notation ("192.0.2.0/24", "2001:db8::/32", or a single
// address). IPv4-mapped IPv6 client addresses (::ffff:a.b.c.d) match IPv4 networks.
class Cidr {
 public:
  static std::optional<Cidr> parse(std::string_view s);
  bool contains(std::string_view ip) const;

 private:
  std::array<std::uint8_t, 16> addr_{};
  int bits_ = 0;
  bool v6_ = false;
};

// A hosted ("virtual") domain: its own mailboxes NAME@DOMAIN, aliases and catch-all. A
// recipient there is Local with mailbox "name@domain" (the shared [local] mailboxes have no
// '@'), so the delivery side knows which domain's settings apply.
struct VirtualDomainData {
  std::string domain;
  std::vector<std::string> mailboxes;
  std::map<std::string, std::vector<std::string>> aliases;  // name → names here or addresses
  std::string catch_all;  // name here or address; "" none
};

struct LocalPolicyData {
  std::vector<std::string> domains;    // local domains
  std::vector<std::string> mailboxes;  // mailbox names
  std::map<std::string, std::vector<std::string>> aliases;  // name → names or user@domain
  std::string recipient_delimiter = "+";
  std::vector<std::string> trusted_networks;  // CIDRs
  std::vector<VirtualDomainData> virtual_domains;
};

class LocalPolicy final : public RecipientChecker {
 public:
  explicit LocalPolicy(const LocalPolicyData& d);
  RcptDecision check(const proto::Mailbox& rcpt, const ClientInfo& client) const override;
  bool is_local_domain(std::string_view domain) const;   // [local] or virtual
  bool is_virtual_domain(std::string_view domain) const;
  bool is_trusted(std::string_view ip) const;

 private:
  // Expands a local name into recipients; false when the name is unknown. depth bounds aliases.
  bool expand(const std::string& name, const proto::Mailbox& rcpt,
              std::vector<proto::EnvelopeRecipient>& out, int depth) const;
  struct Virtual {
    std::set<std::string, std::less<>> mailboxes;
    std::map<std::string, std::vector<std::string>, std::less<>> aliases;
    std::string catch_all;
  };
  // A name in virtual domain `domain`; false when unknown there.
  bool expand_virtual(const std::string& domain, const Virtual& v, const std::string& name,
                      const proto::Mailbox& rcpt, std::vector<proto::EnvelopeRecipient>& out,
                      int depth) const;
  // Looks the recipient's local part up with expand_name (then without a +tag).
  bool lookup(const proto::Mailbox& rcpt, std::vector<proto::EnvelopeRecipient>& out,
              const std::function<bool(const std::string&)>& expand_name) const;
  static RcptDecision found_or_unknown(bool found, std::vector<proto::EnvelopeRecipient>& out,
                                       const std::string& addr);
  // Any target address: local, virtual or relay.
  bool expand_address(const proto::Mailbox& target, const proto::Mailbox& rcpt,
                      std::vector<proto::EnvelopeRecipient>& out, int depth) const;

  std::set<std::string, std::less<>> domains_;
  std::set<std::string, std::less<>> mailboxes_;
  std::map<std::string, std::vector<std::string>, std::less<>> aliases_;
  std::string delimiter_;
  std::vector<Cidr> trusted_;
  std::map<std::string, Virtual, std::less<>> virtual_;
};

}  // namespace carrier::session
