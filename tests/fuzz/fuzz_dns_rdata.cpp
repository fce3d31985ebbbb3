// Fuzz target: the pure DNS code (src/dns, library carrier_dns_rdata) that reads UNTRUSTED
// answers: MX RDATA (RFC 1035 3.3.9, RFC 7505), A/AAAA RDATA (RFC 1035 3.4.1, RFC 3596 2.2),
// domain name checks (RFC 1035 2.3.4), and the MX/address rules (RFC 5321 5.1). Checks:
// an accepted MX re-encodes to exactly its input (modulo case) within the size limits; A/AAAA
// parse iff 4/16 octets and inet_pton gives the octets back; normalize_domain is idempotent and
// only lower-cases / drops one final dot; plan_mx and combine_addresses stay within their caps,
// sorted, without duplicates.
#include <arpa/inet.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "dns/answer.hpp"
#include "dns/rdata.hpp"
#include "fuzz_common.hpp"

using namespace carrier::dns;

namespace {

bool host_char(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
  }
  return out;
}

// Text name (no final dot, or "." for the root) -> uncompressed wire labels.
std::string to_wire(const std::string& name) {
  std::string out;
  if (name != ".") {
    std::size_t start = 0;
    for (;;) {
      const auto dot = name.find('.', start);
      const auto end = dot == std::string::npos ? name.size() : dot;
      out.push_back(static_cast<char>(end - start));
      out.append(name, start, end - start);
      if (dot == std::string::npos) break;
      start = dot + 1;
    }
  }
  out.push_back('\0');
  return out;
}

void check_mx(std::string_view in) {
  auto r = parse_mx_rdata(in);
  if (!r) return;
  FUZZ_CHECK(r->first >= 0 && r->first <= 65535);
  const std::string& n = r->second;
  FUZZ_CHECK(!n.empty());
  if (n != ".") {
    FUZZ_CHECK(n.size() <= kMaxNameText);
    std::size_t label = 0;
    for (unsigned char c : n) {
      if (c == '.') {
        FUZZ_CHECK(label > 0);
        label = 0;
      } else {
        FUZZ_CHECK(host_char(c));
        FUZZ_CHECK(++label <= kMaxLabelOctets);
      }
    }
    FUZZ_CHECK(label > 0);
    // An accepted exchange is a valid domain to query, unchanged.
    auto again = normalize_domain(n);
    FUZZ_CHECK(again.ok() && again.value() == n);
  }
  std::string wire;
  wire.push_back(static_cast<char>(r->first >> 8));
  wire.push_back(static_cast<char>(r->first & 0xff));
  wire += to_wire(n);
  FUZZ_CHECK(wire.substr(0, 2) == in.substr(0, 2));  // preference octets: exact
  FUZZ_CHECK(wire.substr(2) == lower(in.substr(2)));
}

void check_addresses(std::string_view in) {
  auto a = parse_a_rdata(in);
  FUZZ_CHECK(a.has_value() == (in.size() == 4));
  if (a) {
    unsigned char buf[4];
    FUZZ_CHECK(::inet_pton(AF_INET, a->c_str(), buf) == 1 && std::memcmp(buf, in.data(), 4) == 0);
  }
  auto a6 = parse_aaaa_rdata(in);
  FUZZ_CHECK(a6.has_value() == (in.size() == 16));
  if (a6) {
    unsigned char buf[16];
    FUZZ_CHECK(::inet_pton(AF_INET6, a6->c_str(), buf) == 1 && std::memcmp(buf, in.data(), 16) == 0);
  }
}

void check_name(std::string_view in) {
  auto r = normalize_domain(in);
  if (!r) {
    FUZZ_CHECK(!r.error().message.empty());
    return;
  }
  const std::string& n = r.value();
  FUZZ_CHECK(!n.empty() && n.size() <= kMaxNameText);
  std::string_view expect = in;
  if (!expect.empty() && expect.back() == '.') expect.remove_suffix(1);
  FUZZ_CHECK(n == lower(expect));
  auto again = normalize_domain(n);
  FUZZ_CHECK(again.ok() && again.value() == n);
}

// The input as records: [length octet][that many octets]...
std::vector<std::string> split(std::string_view in) {
  std::vector<std::string> out;
  while (!in.empty()) {
    std::size_t len = static_cast<unsigned char>(in[0]);
    in.remove_prefix(1);
    len = std::min(len, in.size());
    out.emplace_back(in.substr(0, len));
    in.remove_prefix(len);
  }
  return out;
}

void check_rules(std::string_view in) {
  const auto recs = split(in);
  std::mt19937_64 rng(in.size());
  MxPlan p = plan_mx(recs, rng);
  FUZZ_CHECK(p.hosts.size() <= kMaxMxHosts);
  FUZZ_CHECK((p.status == Status::Ok) == !p.hosts.empty());
  FUZZ_CHECK(p.status == Status::Ok || !p.error.empty());
  std::set<std::string> seen;
  for (std::size_t i = 0; i < p.hosts.size(); ++i) {
    FUZZ_CHECK(p.hosts[i].second != ".");
    FUZZ_CHECK(seen.insert(p.hosts[i].second).second);
    if (i > 0) FUZZ_CHECK(p.hosts[i - 1].first <= p.hosts[i].first);
  }
  Answer ans;
  ans.kind = Answer::Kind::Data;
  ans.rdata = recs;
  for (bool v6 : {false, true}) {
    AddrResult r = combine_addresses("h.test", &ans, &ans, v6);
    FUZZ_CHECK(r.addresses.size() <= kMaxAddresses);
    FUZZ_CHECK((r.status == Status::Ok) == !r.addresses.empty());
    FUZZ_CHECK(std::set<std::string>(r.addresses.begin(), r.addresses.end()).size() == r.addresses.size());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  check_mx(in);
  check_addresses(in);
  check_name(in);
  check_rules(in);
  return 0;
}
