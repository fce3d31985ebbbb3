// carrier DNS: pure rules from DNS answers to MX/address/TXT/PTR results (RFC 5321 5.1,
// RFC 7505 3, RFC 1035 4.1.1, 3.3.12, 3.3.14). Handles UNTRUSTED input (RDATA) through rdata.cpp; no I/O.
#include "dns/answer.hpp"

#include <algorithm>
#include <unordered_set>

#include "dns/rdata.hpp"

namespace carrier::dns {

std::string_view to_string(Status s) {
  switch (s) {
    case Status::Ok: return "ok";
    case Status::NullMx: return "null MX";
    case Status::NotFound: return "not found";
    case Status::TempFail: return "temporary failure";
  }
  return "?";
}

Answer::Kind classify_rcode(int rcode, bool havedata) {
  if (rcode == 0) return havedata ? Answer::Kind::Data : Answer::Kind::NoData;
  if (rcode == 3) return Answer::Kind::NxDomain;
  return Answer::Kind::TempFail;
}

std::string rcode_name(int rcode) {
  switch (rcode) {
    case 0: return "NOERROR";
    case 1: return "FORMERR";
    case 2: return "SERVFAIL";
    case 3: return "NXDOMAIN";
    case 4: return "NOTIMP";
    case 5: return "REFUSED";
    default: return "RCODE " + std::to_string(rcode);
  }
}

MxPlan plan_mx(const std::vector<std::string>& rdata, std::mt19937_64& rng) {
  MxPlan plan;
  std::vector<std::pair<int, std::string>> recs;
  std::size_t malformed = 0;
  for (const auto& rd : rdata) {
    if (auto mx = parse_mx_rdata(rd)) {
      recs.push_back(std::move(*mx));
    } else {
      ++malformed;
    }
  }
  const std::string bad_note =
      malformed ? " (" + std::to_string(malformed) + " malformed MX record(s) ignored)" : "";
  if (recs.size() == 1 && recs[0].first == 0 && recs[0].second == ".") {
    plan.status = Status::NullMx;
    plan.error = "domain accepts no mail (null MX, RFC 7505)";
    return plan;
  }
  std::erase_if(recs, [](const auto& r) { return r.second == "."; });
  if (recs.empty()) {
    plan.status = Status::NotFound;
    plan.error = "MX records present but none usable" + bad_note;
    return plan;
  }
  // A uniform shuffle followed by a stable sort leaves equal preferences in random order.
  std::shuffle(recs.begin(), recs.end(), rng);
  std::stable_sort(recs.begin(), recs.end(),
                   [](const auto& x, const auto& y) { return x.first < y.first; });
  std::unordered_set<std::string> seen;
  for (auto& r : recs) {
    if (plan.hosts.size() == kMaxMxHosts) break;
    if (seen.insert(r.second).second) plan.hosts.push_back(std::move(r));
  }
  plan.status = Status::Ok;
  return plan;
}

namespace {

// Addresses of one family from an answer (none for nullptr); notes a temporary failure
// (`tempfail`, with its reason appended to `why`) or an NXDOMAIN.
std::vector<std::string> family_addresses(const Answer* ans, bool v6, std::string_view host,
                                          bool& tempfail, bool& nxdomain, std::string& why) {
  std::vector<std::string> out;
  if (!ans) return out;
  const char* type = v6 ? "AAAA" : "A";
  switch (ans->kind) {
    case Answer::Kind::Data:
      for (const auto& rd : ans->rdata) {
        auto a = v6 ? parse_aaaa_rdata(rd) : parse_a_rdata(rd);
        if (a && std::find(out.begin(), out.end(), *a) == out.end()) out.push_back(std::move(*a));
      }
      break;
    case Answer::Kind::NoData:
      break;
    case Answer::Kind::NxDomain:
      nxdomain = true;
      break;
    case Answer::Kind::TempFail:
      tempfail = true;
      if (!why.empty()) why += "; ";
      why += std::string(type) + " lookup of " + std::string(host) + " failed: " + ans->error;
      break;
  }
  return out;
}

}  // namespace

AddrResult combine_addresses(std::string_view host, const Answer* a, const Answer* aaaa,
                             bool prefer_ipv6) {
  AddrResult r;
  bool tempfail = false, nxdomain = false;
  std::string why;
  auto v4 = family_addresses(a, false, host, tempfail, nxdomain, why);
  auto v6 = family_addresses(aaaa, true, host, tempfail, nxdomain, why);
  auto& first = prefer_ipv6 ? v6 : v4;
  auto& second = prefer_ipv6 ? v4 : v6;
  constexpr std::size_t kHalf = kMaxAddresses / 2;
  const std::size_t n_first =
      std::min(first.size(), kMaxAddresses - std::min(second.size(), kHalf));
  const std::size_t n_second = std::min(second.size(), kMaxAddresses - n_first);
  r.addresses.assign(first.begin(), first.begin() + static_cast<std::ptrdiff_t>(n_first));
  r.addresses.insert(r.addresses.end(), second.begin(),
                     second.begin() + static_cast<std::ptrdiff_t>(n_second));
  if (!r.addresses.empty()) {
    r.status = Status::Ok;
  } else if (tempfail) {
    r.status = Status::TempFail;
    r.error = std::move(why);
  } else {
    r.status = Status::NotFound;
    r.error = nxdomain ? std::string(host) + " does not exist (NXDOMAIN)"
                       : std::string(host) + " has no address record";
  }
  return r;
}

void finish_mx(MxResult& r) {
  if (r.status == Status::NullMx) return;
  bool any_ok = false, any_temp = false;
  std::string why;
  for (const auto& h : r.hosts) {
    if (h.status == Status::Ok && !h.addresses.empty()) any_ok = true;
    if (h.status == Status::TempFail) any_temp = true;
    if (h.status != Status::Ok && !h.error.empty()) {
      if (!why.empty()) why += "; ";
      why += h.error;
    }
  }
  if (any_ok) {
    r.status = Status::Ok;
    r.error.clear();
  } else if (any_temp) {
    r.status = Status::TempFail;
    r.error = (r.implicit ? "no MX; address lookup failed: " : "no MX host has an address yet: ") + why;
  } else {
    r.status = Status::NotFound;
    if (r.hosts.empty()) {
      r.error = "no mail host";
    } else {
      r.error = (r.implicit ? "no MX and no address record: " : "no MX host has an address: ") + why;
    }
  }
}

namespace {

// The common part of TXT and PTR: status and error from the answer kind.
template <class R>
bool classify_single(R& r, std::string_view type, std::string_view name, const Answer& a) {
  switch (a.kind) {
    case Answer::Kind::Data:
      return true;
    case Answer::Kind::NoData:
      r.status = Status::NotFound;
      r.error = std::string(name) + " has no " + std::string(type) + " records";
      return false;
    case Answer::Kind::NxDomain:
      r.status = Status::NotFound;
      r.error = std::string(name) + " does not exist (NXDOMAIN)";
      return false;
    case Answer::Kind::TempFail:
      break;
  }
  r.status = Status::TempFail;
  r.error = std::string(type) + " lookup of " + std::string(name) + " failed: " + a.error;
  return false;
}

}  // namespace

TxtResult make_txt_result(std::string_view name, const Answer& a) {
  TxtResult r;
  if (!classify_single(r, "TXT", name, a)) return r;
  for (const auto& rd : a.rdata) {
    if (r.records.size() >= kMaxTxtRecords) break;
    if (auto t = parse_txt_rdata(rd)) r.records.push_back(std::move(*t));
  }
  r.status = r.records.empty() ? Status::NotFound : Status::Ok;
  if (r.records.empty()) r.error = std::string(name) + ": no well-formed TXT record";
  return r;
}

PtrResult make_ptr_result(std::string_view name, const Answer& a) {
  PtrResult r;
  if (!classify_single(r, "PTR", name, a)) return r;
  for (const auto& rd : a.rdata) {
    if (r.names.size() >= kMaxPtrNames) break;
    auto n = parse_ptr_rdata(rd);
    if (n && std::find(r.names.begin(), r.names.end(), *n) == r.names.end()) r.names.push_back(std::move(*n));
  }
  r.status = r.names.empty() ? Status::NotFound : Status::Ok;
  if (r.names.empty()) r.error = std::string(name) + ": no well-formed PTR record";
  return r;
}

}  // namespace carrier::dns
