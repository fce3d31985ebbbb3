// Fuzz target: how carrier interprets UNTRUSTED DNS answers (src/dns/answer.hpp, rdata.hpp)
// beyond the RDATA parsers of fuzz_dns_rdata: the whole MX pipeline of the resolver (an MX
// answer -> plan_mx -> per-host A/AAAA answers -> combine_addresses -> finish_mx, RFC 5321 5.1,
// RFC 7505), TXT (RFC 1035 3.3.14, RFC 7208 3.3) and PTR answers (RFC 1035 3.3.12), RCODE
// classification (RFC 1035 4.1.1) and reverse names (RFC 1035 3.5, RFC 3596 2.5).
// Input: a sequence of answers, each [kind octet][record count octet] then records as
// [length octet][octets]; the first is the MX answer, the next two per host A and AAAA.
// Checks:
//  - the MX result: Ok iff some host has an address; hosts sorted by preference, capped,
//    never "."; a null MX only from a lone "0 ."; every non-Ok result says why; the reason is
//    printable ASCII (it goes to logs and DSN diagnostics: no line can be injected);
//  - TXT: each record is exactly the concatenation of its character-strings (reference model
//    here), capped at kMaxTxtRecords; PTR: exactly parse_mx_rdata's exchange rule minus the
//    root name, lower case, no duplicates, capped;
//  - classify_rcode / rcode_name are total; reverse_name of a parsed literal is a valid
//    query name under in-addr.arpa / ip6.arpa.
#include <arpa/inet.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "dns/answer.hpp"
#include "dns/rdata.hpp"
#include "fuzz_common.hpp"

using namespace carrier::dns;

namespace {

struct Reader {
  std::string_view in;
  std::uint8_t byte() {
    if (in.empty()) return 0;
    auto b = static_cast<std::uint8_t>(in[0]);
    in.remove_prefix(1);
    return b;
  }
  Answer answer() {
    Answer a;
    const std::uint8_t k = byte();
    a.kind = static_cast<Answer::Kind>(k % 4);
    if (a.kind == Answer::Kind::TempFail) a.error = "SERVFAIL";
    const std::size_t n = byte() % 24;
    for (std::size_t i = 0; i < n && !in.empty(); ++i) {
      std::size_t len = std::min<std::size_t>(byte(), in.size());
      a.rdata.emplace_back(in.substr(0, len));
      in.remove_prefix(len);
    }
    if (a.kind == Answer::Kind::Data && a.rdata.empty()) a.kind = Answer::Kind::NoData;
    return a;
  }
};

void printable(const std::string& s) {
  for (unsigned char c : s) FUZZ_CHECK(c >= 32 && c < 127);
}

// The resolver's on_mx_answer / on_host_addresses, run synchronously.
void mx_pipeline(Reader& r, bool prefer_v6) {
  const std::string domain = "example.test";
  Answer mx = r.answer();
  MxResult res;
  switch (mx.kind) {
    case Answer::Kind::NxDomain:
    case Answer::Kind::TempFail:
      return;  // decided by the kind alone
    case Answer::Kind::NoData:
      res.implicit = true;
      res.hosts.push_back(Host{domain, 0, {}, Status::Ok, {}});
      break;
    case Answer::Kind::Data: {
      std::mt19937_64 rng(mx.rdata.size());
      MxPlan plan = plan_mx(mx.rdata, rng);
      if (plan.status != Status::Ok) {
        FUZZ_CHECK(plan.hosts.empty() && !plan.error.empty());
        printable(plan.error);
        if (plan.status == Status::NullMx) {
          std::size_t usable = 0, root = 0;
          for (const auto& rd : mx.rdata)
            if (auto p = parse_mx_rdata(rd)) {
              ++usable;
              if (p->second == "." && p->first == 0) ++root;
            }
          FUZZ_CHECK(usable == 1 && root == 1);
        }
        return;
      }
      for (auto& [pref, host] : plan.hosts) res.hosts.push_back(Host{host, pref, {}, Status::Ok, {}});
      break;
    }
  }
  FUZZ_CHECK(!res.hosts.empty() && res.hosts.size() <= kMaxMxHosts);
  bool any_addr = false;
  for (std::size_t i = 0; i < res.hosts.size(); ++i) {
    Host& h = res.hosts[i];
    FUZZ_CHECK(h.name != "." && !h.name.empty());
    if (i > 0) FUZZ_CHECK(res.hosts[i - 1].preference <= h.preference);
    const Answer a = r.answer();
    const Answer aaaa = r.answer();
    AddrResult ar = combine_addresses(h.name, &a, &aaaa, prefer_v6);
    FUZZ_CHECK(ar.status != Status::NullMx);
    FUZZ_CHECK((ar.status == Status::Ok) == !ar.addresses.empty());
    FUZZ_CHECK(ar.addresses.size() <= kMaxAddresses);
    for (const auto& ip : ar.addresses) {
      unsigned char buf[16];
      FUZZ_CHECK(::inet_pton(AF_INET, ip.c_str(), buf) == 1 || ::inet_pton(AF_INET6, ip.c_str(), buf) == 1);
    }
    if (ar.status != Status::Ok) FUZZ_CHECK(!ar.error.empty());
    printable(ar.error);
    any_addr |= !ar.addresses.empty();
    h.addresses = std::move(ar.addresses);
    h.status = ar.status;
    h.error = std::move(ar.error);
  }
  finish_mx(res);
  FUZZ_CHECK((res.status == Status::Ok) == any_addr);
  FUZZ_CHECK(res.status != Status::NullMx);
  if (res.status == Status::Ok) FUZZ_CHECK(res.error.empty());
  else FUZZ_CHECK(!res.error.empty());
  printable(res.error);
}

std::optional<std::string> txt_reference(std::string_view rd) {
  if (rd.empty()) return std::nullopt;
  std::string out;
  while (!rd.empty()) {
    const std::size_t len = static_cast<unsigned char>(rd[0]);
    if (len + 1 > rd.size()) return std::nullopt;
    out.append(rd.substr(1, len));
    rd.remove_prefix(len + 1);
  }
  return out;
}

void txt_ptr(const Answer& a) {
  TxtResult t = make_txt_result("t.example.test", a);
  FUZZ_CHECK(t.records.size() <= kMaxTxtRecords);
  FUZZ_CHECK((t.status == Status::Ok) == !t.records.empty());
  if (t.status != Status::Ok) FUZZ_CHECK(!t.error.empty());
  if (a.kind == Answer::Kind::Data) {
    std::vector<std::string> expect;
    for (const auto& rd : a.rdata) {
      if (expect.size() >= kMaxTxtRecords) break;
      if (auto x = txt_reference(rd)) expect.push_back(*x);
    }
    FUZZ_CHECK(t.records == expect);
  } else {
    FUZZ_CHECK(t.records.empty());
    FUZZ_CHECK(t.status == (a.kind == Answer::Kind::TempFail ? Status::TempFail : Status::NotFound));
  }

  PtrResult p = make_ptr_result("1.0.0.127.in-addr.arpa", a);
  FUZZ_CHECK(p.names.size() <= kMaxPtrNames);
  FUZZ_CHECK((p.status == Status::Ok) == !p.names.empty());
  std::set<std::string> seen;
  for (const auto& n : p.names) {
    FUZZ_CHECK(seen.insert(n).second);
    FUZZ_CHECK(normalize_domain(n).ok() && normalize_domain(n).value() == n);
  }
  printable(p.error);
  for (const auto& rd : a.rdata) {
    std::string as_mx = std::string("\0\0", 2) + rd;
    auto mx = parse_mx_rdata(as_mx);
    auto ptr = parse_ptr_rdata(rd);
    if (mx && mx->second != ".") FUZZ_CHECK(ptr && *ptr == mx->second);
    else FUZZ_CHECK(!ptr);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  if (size >= 2) {
    const int rcode = data[0] | ((data[1] & 0x0f) << 8);
    const Answer::Kind k0 = classify_rcode(rcode, false), k1 = classify_rcode(rcode, true);
    if (rcode == 0) FUZZ_CHECK(k0 == Answer::Kind::NoData && k1 == Answer::Kind::Data);
    else if (rcode == 3) FUZZ_CHECK(k0 == Answer::Kind::NxDomain);
    else FUZZ_CHECK(k0 == Answer::Kind::TempFail);
    FUZZ_CHECK(!rcode_name(rcode).empty());
  }
  for (bool v6 : {false, true}) {
    Reader r{in};
    mx_pipeline(r, v6);
  }
  {
    Reader r{in};
    txt_ptr(r.answer());
  }
  auto rev = reverse_name(in);
  if (rev) {
    const std::string& n = rev.value();
    FUZZ_CHECK(n.ends_with(".in-addr.arpa") || n.ends_with(".ip6.arpa"));
    FUZZ_CHECK(normalize_domain(n).ok());
    unsigned char buf[16];
    const std::string s(in);
    FUZZ_CHECK(::inet_pton(AF_INET, s.c_str(), buf) == 1 || ::inet_pton(AF_INET6, s.c_str(), buf) == 1);
  }
  return 0;
}
