// carrier doctor: the pure checks (RFC 5321 5.1, RFC 7505, RFC 1912 2.1, RFC 7208 via spf.cpp).
// No I/O. Data from DNS answers is only compared and quoted (bounded by the resolver's caps).
#include "doctor/checks.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <ctime>
#include <cstring>

namespace carrier::doctor {

namespace {

std::string join(const std::vector<std::string>& v, const char* sep = ", ") {
  std::string out;
  for (const auto& s : v) {
    if (!out.empty()) out += sep;
    out += s;
  }
  return out;
}

bool same_name(std::string a, std::string b) {
  for (auto* s : {&a, &b}) {
    if (!s->empty() && s->back() == '.') s->pop_back();
    for (auto& c : *s) c = (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c;
  }
  return a == b;
}

// The records an operator would add for `host`'s addresses, e.g. "A 192.0.2.1".
std::string record_hint(const std::string& ip) {
  return (ip.find(':') != std::string::npos ? "AAAA " : "A ") + ip;
}

std::string date(std::int64_t t) {
  std::time_t tt = static_cast<std::time_t>(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M UTC", &tm);
  return buf;
}

Check ok(std::string what, std::string detail) { return Check{true, std::move(what), std::move(detail), {}}; }
Check bad(std::string what, std::string detail, std::string fix) {
  return Check{false, std::move(what), std::move(detail), std::move(fix)};
}

}  // namespace

std::string format(const Check& c) {
  std::string out = (c.ok ? "\u2713 " : "\u2717 ") + c.what + ": " + c.detail;
  if (!c.ok && !c.fix.empty()) out += "\n    fix: " + c.fix;
  return out;
}

std::string human_bytes(std::uint64_t n) {
  static const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  double v = static_cast<double>(n);
  int u = 0;
  while (v >= 1024 && u < 6) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  if (u == 0) std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(n));
  else std::snprintf(buf, sizeof buf, v < 10 ? "%.1f %s" : "%.0f %s", v, units[u]);
  return buf;
}

Check check_host_addresses(const std::string& host, const dns::AddrResult& a) {
  const std::string what = "host name " + host;
  switch (a.status) {
    case dns::Status::Ok:
      return ok(what, "A/AAAA " + join(a.addresses));
    case dns::Status::TempFail:
      return bad(what, "lookup failed: " + a.error,
                 "check that the resolver in [dns] upstream (or /etc/resolv.conf) answers, then run again");
    default:
      return bad(what, "no A or AAAA record" + (a.error.empty() ? std::string() : " (" + a.error + ")"),
                 "publish \"" + host + ". A <this host's public IPv4>\" (and AAAA for IPv6), or set [server] hostname to the name that has them");
  }
}

Check check_reverse(const std::string& host, const std::string& ip, const dns::PtrResult& p) {
  const std::string what = "reverse DNS " + ip;
  const std::string fix = "ask whoever runs " + ip + " (your hosting provider / ISP) to set its PTR record to " + host;
  switch (p.status) {
    case dns::Status::Ok:
      for (const auto& n : p.names) {
        if (same_name(n, host)) return ok(what, "PTR " + n + ", forward-confirmed (" + host + " has " + record_hint(ip) + ")");
      }
      return bad(what, "PTR " + join(p.names) + ", not " + host + " (receivers check that the names match)", fix);
    case dns::Status::TempFail:
      return bad(what, "PTR lookup failed: " + p.error,
                 "check that the resolver in [dns] upstream (or /etc/resolv.conf) answers, then run again");
    default:
      return bad(what, "no PTR record (many receivers reject mail from addresses without one)", fix);
  }
}

Check check_mx(const std::string& domain, const std::string& host, const std::vector<std::string>& host_addrs,
               const dns::MxResult& mx) {
  const std::string what = "MX " + domain;
  const std::string want = "publish \"" + domain + ". MX 10 " + host + ".\"";
  auto points_here = [&](const dns::Host& h) {
    if (same_name(h.name, host)) return true;
    return std::any_of(h.addresses.begin(), h.addresses.end(), [&](const std::string& a) {
      return std::find(host_addrs.begin(), host_addrs.end(), a) != host_addrs.end();
    });
  };
  switch (mx.status) {
    case dns::Status::NullMx:
      return bad(what, "null MX \"MX 0 .\" (RFC 7505): the domain says it accepts no mail",
                 "remove the null MX and " + want);
    case dns::Status::TempFail:
      return bad(what, "lookup failed: " + mx.error,
                 "check that the resolver in [dns] upstream (or /etc/resolv.conf) answers, then run again");
    case dns::Status::NotFound:
      if (mx.hosts.empty()) {
        return bad(what, (mx.error.empty() ? domain + " has no MX" : mx.error), want);
      }
      break;  // MX present but no host has an address: report the hosts below
    case dns::Status::Ok:
      break;
  }
  auto describe = [](const dns::Host& h) {
    std::string s = std::to_string(h.preference) + " " + h.name;
    if (!h.addresses.empty()) s += " (" + join(h.addresses) + ")";
    else s += " (no address)";
    return s;
  };
  if (mx.implicit) {
    const dns::Host& h = mx.hosts.front();
    if (points_here(h)) {
      return ok(what, "no MX record; the implicit MX (RFC 5321 5.1) is " + h.name + ", this host");
    }
    return bad(what, "no MX record, and the implicit MX (the domain's own A/AAAA, RFC 5321 5.1) is not this host", want);
  }
  std::vector<std::string> all;
  for (const auto& h : mx.hosts) all.push_back(describe(h));
  for (std::size_t i = 0; i < mx.hosts.size(); ++i) {
    if (!points_here(mx.hosts[i])) continue;
    std::string d = describe(mx.hosts[i]) + " is this host";
    if (mx.hosts[i].preference > mx.hosts.front().preference) {
      d += " (a backup: the most preferred is " + mx.hosts.front().name + ")";
    }
    return ok(what, d);
  }
  return bad(what, "points elsewhere: " + join(all) + "; none is " + host + " or has its addresses",
             "replace the MX records: " + want);
}

Check check_spf(const std::string& domain, const std::string& host,
                const std::vector<std::pair<std::string, SpfResult>>& results) {
  const std::string what = "SPF " + domain;
  if (results.empty()) {
    return bad(what, "not evaluated: " + host + " has no address", "fix the host name's A/AAAA records first");
  }
  std::string mech;
  std::vector<std::string> parts;
  bool all_pass = true;
  const SpfResult* first_bad = nullptr;
  std::string first_bad_ip;
  for (const auto& [ip, r] : results) {
    std::string p = std::string(to_string(r.verdict)) + " for " + ip;
    if (!r.matched.empty()) p += " (" + r.matched + ")";
    else if (!r.reason.empty() && r.verdict != SpfVerdict::Pass) p += " (" + r.reason + ")";
    parts.push_back(std::move(p));
    if (r.verdict != SpfVerdict::Pass) {
      all_pass = false;
      if (!first_bad) {
        first_bad = &r;
        first_bad_ip = ip;
      }
    }
  }
  std::string detail = join(parts, "; ");
  std::vector<std::string> notes;
  for (const auto& [ip, r] : results) {
    for (const auto& n : r.notes) {
      if (std::find(notes.begin(), notes.end(), n) == notes.end()) notes.push_back(n);
    }
  }
  if (!notes.empty()) detail += " [" + join(notes, "; ") + "]";
  if (all_pass) return ok(what, detail);
  const std::string mechanism = (first_bad_ip.find(':') != std::string::npos ? "ip6:" : "ip4:") + first_bad_ip;
  std::string fix;
  switch (first_bad->verdict) {
    case SpfVerdict::None:
      fix = "publish \"" + domain + ". TXT \\\"v=spf1 a:" + host + " -all\\\"\"";
      break;
    case SpfVerdict::TempError:
      fix = "check that the resolver in [dns] upstream answers, then run again";
      break;
    case SpfVerdict::PermError:
      fix = "correct the SPF record of " + domain + " (" + first_bad->reason + ")";
      break;
    default:
      fix = "add \"" + mechanism + "\" (or \"a:" + host + "\") before the \"all\" of " + domain +
            "'s SPF record \"" + first_bad->record.substr(0, 200) + "\"";
      break;
  }
  return bad(what, detail, fix);
}

std::vector<Check> check_certificate(const CertInfo& c, const std::string& host, std::int64_t now, bool check_name,
                                     std::chrono::seconds warn) {
  std::vector<Check> out;
  const std::string what = "TLS certificate " + c.cert_file;
  const std::string get_one = "get a certificate (e.g. Let's Encrypt) and set [tls] cert_file";
  if (c.generated && !c.exists) {
    out.push_back(bad("TLS certificate", "none configured; carrier serve makes a self-signed one in " + c.cert_file, get_one));
    return out;
  }
  if (!c.loaded) {
    out.push_back(bad(what, c.load_error,
                      c.generated ? "remove " + c.cert_file + " and " + c.key_file + " (carrier serve makes a new pair), or " + get_one
                                  : "point [tls] cert_file and key_file at a readable PEM certificate chain and its key"));
    return out;
  }
  out.push_back(ok(what, "loads, and " + c.key_file + " is its key"));
  const auto left = c.not_after - now;
  const std::string renew = "renew the certificate and replace " + c.cert_file + ", then run carrier reload";
  if (now < c.not_before) {
    out.push_back(bad("TLS certificate validity", "not valid before " + date(c.not_before), "check the system clock, or use a certificate that is valid now"));
  } else if (left <= 0) {
    out.push_back(bad("TLS certificate validity", "expired on " + date(c.not_after), renew));
  } else if (left < warn.count()) {
    out.push_back(bad("TLS certificate validity",
                      "expires on " + date(c.not_after) + ", in " + std::to_string(left / 86400) + " days (less than " +
                          std::to_string(warn.count() / 86400) + ")",
                      renew));
  } else {
    out.push_back(ok("TLS certificate validity", "valid until " + date(c.not_after) + " (" + std::to_string(left / 86400) + " days)"));
  }
  if (c.self_signed) {
    out.push_back(bad("TLS certificate issuer",
                      std::string("self-signed") + (c.generated ? " (made by carrier: no [tls] cert_file is configured)" : "") +
                          "; senders that verify certificates will not trust it",
                      get_one));
  } else {
    out.push_back(ok("TLS certificate issuer", "not self-signed"));
  }
  if (check_name) {
    if (c.names_host) {
      out.push_back(ok("TLS certificate name", "names " + host));
    } else {
      out.push_back(bad("TLS certificate name", "names " + (c.names.empty() ? std::string("nothing") : join(c.names)) + ", not " + host,
                        "get a certificate for " + host + " (subjectAltName DNS:" + host + ") and set [tls] cert_file"));
    }
  }
  return out;
}

Check check_listener(const ListenerProbe& p) {
  const bool v6 = p.address.find(':') != std::string::npos;
  const std::string where = (v6 ? "[" + p.address + "]" : p.address) + ":" + std::to_string(p.port);
  const std::string what = "listener " + p.name + " " + where;
  if (p.connected) {
    if (p.greeting.rfind("220", 0) == 0) {
      return ok(what, "in use by a running SMTP server (carrier?) that greets \"" + p.greeting.substr(0, 120) + "\"");
    }
    return bad(what,
               "in use by something that does not greet with 220" +
                   (p.greeting.empty() ? std::string(" (no greeting)") : " (\"" + p.greeting.substr(0, 120) + "\")"),
               "stop the program using " + where + " (ss -ltnp 'sport = :" + std::to_string(p.port) + "'), or change this [[listener]] address");
  }
  if (!p.bind_tried || p.bind_errno == 0) {
    return ok(what, "free: carrier can listen there");
  }
  switch (p.bind_errno) {
    case EACCES:
      return bad(what, "cannot bind: permission denied (ports below 1024 need privileges)",
                 "run carrier as root or give it CAP_NET_BIND_SERVICE (systemd AmbientCapabilities=CAP_NET_BIND_SERVICE)");
    case EADDRINUSE:
      return bad(what, "cannot bind: address already in use, and nothing answered a connection",
                 "stop the program using " + where + " (ss -ltnp 'sport = :" + std::to_string(p.port) + "'), or change this [[listener]] address");
    case EADDRNOTAVAIL:
      return bad(what, "cannot bind: " + p.address + " is not an address of this machine",
                 "set this [[listener]] address to one of this machine's addresses (ip addr), or 0.0.0.0");
    default:
      return bad(what, "cannot bind: " + std::string(std::strerror(p.bind_errno)),
                 "change this [[listener]] address or port");
  }
}

std::vector<Check> check_spool(const SpoolProbe& p) {
  std::vector<Check> out;
  const std::string what = "spool " + p.dir;
  if (!p.exists) {
    out.push_back(bad(what, "does not exist", "create it: mkdir -p " + p.dir + " (carrier serve also creates it at start), or check [server] spool_dir"));
  } else if (!p.writable) {
    out.push_back(bad(what, "not writable: " + p.write_error,
                      "give the user carrier runs as write access to " + p.dir + " (chown), or check that its file system is not read-only"));
  } else {
    out.push_back(ok(what, "writable"));
  }
  const std::string dwhat = "disk space for " + p.dir;
  if (!p.statvfs_ok) {
    out.push_back(bad(dwhat, "unknown: " + p.statvfs_error, "make " + p.dir + " exist and be readable, then run again"));
    return out;
  }
  const int percent = p.total_bytes == 0 ? 0 : static_cast<int>((p.free_bytes * 100.0) / static_cast<double>(p.total_bytes));
  const std::string detail = human_bytes(p.free_bytes) + " free of " + human_bytes(p.total_bytes) + " (" + std::to_string(percent) + " %)";
  const bool enough = p.free_bytes >= kMinFreeBytes ||
                      (p.total_bytes > 0 && p.free_bytes * 100.0 >= kMinFreePercent * static_cast<double>(p.total_bytes));
  if (enough) {
    out.push_back(ok(dwhat, detail));
  } else {
    out.push_back(bad(dwhat, detail + ": less than " + human_bytes(kMinFreeBytes) + " and less than " + std::to_string(kMinFreePercent) + " %",
                      "free space on that file system, or move [server] spool_dir to a larger one"));
  }
  return out;
}

}  // namespace carrier::doctor
