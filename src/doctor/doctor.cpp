// carrier doctor: the runner -- blocking lookups through carrier::dns::Resolver on a private
// io_context, the probes, and the pure checks in order; prints as it goes.
// Handles UNTRUSTED input only through carrier::dns and the probes.
#include "doctor/doctor.hpp"

#include <algorithm>
#include <asio/io_context.hpp>
#include <chrono>
#include <ctime>
#include <map>
#include <optional>
#include <ostream>

#include "dns/rdata.hpp"
#include "dns/resolver.hpp"
#include "doctor/probes.hpp"
#include "doctor/spf.hpp"

namespace carrier::doctor {

namespace {

using namespace std::chrono_literals;

constexpr auto kQueryTimeout = 5000ms;

// Blocking wrappers around the asynchronous Resolver, with a small cache (SPF includes and the
// MX checks ask for the same names again). Also the SpfDns of the evaluator.
class Lookups : public SpfDns {
 public:
  Lookups(const config::Config& c) {
    dns::ResolverOptions o;
    o.upstream = c.dns_upstream;
    o.ipv4 = c.dns_ipv4;
    o.ipv6 = c.dns_ipv6;
    o.prefer_ipv6 = c.dns_prefer_ipv6;
    // Reverse lookups of loopback addresses go to the upstream too (test setups; libunbound
    // would answer "localhost" itself).
    o.transparent_zones = {"test.", "127.in-addr.arpa."};
    o.query_timeout = kQueryTimeout;
    resolver_.emplace(io_, o);
    if (auto r = resolver_->init(); !r) init_error_ = r.error().message;
  }
  ~Lookups() override {
    resolver_.reset();
    io_.restart();
    io_.poll();  // run the posted "shut down" callbacks, if any
  }

  dns::TxtResult txt(const std::string& name) override {
    return cached(txt_, name, [&](auto cb) { resolver_->resolve_txt(name, std::move(cb)); });
  }
  dns::AddrResult addresses(const std::string& name) override {
    return cached(addr_, name, [&](auto cb) { resolver_->resolve_addresses(name, std::move(cb)); });
  }
  dns::MxResult mx(const std::string& name) override {
    return cached(mx_, name, [&](auto cb) { resolver_->resolve_mx(name, std::move(cb)); });
  }
  dns::PtrResult ptr(const std::string& ip) {
    return cached(ptr_, ip, [&](auto cb) { resolver_->resolve_ptr(ip, std::move(cb)); });
  }

 private:
  template <class R, class Start>
  R cached(std::map<std::string, R>& cache, const std::string& key, Start start) {
    if (auto it = cache.find(key); it != cache.end()) return it->second;
    R r;
    if (!init_error_.empty()) {
      r.status = dns::Status::TempFail;
      r.error = init_error_;
      return r;
    }
    std::optional<R> got;
    start([&got](R x) { got = std::move(x); });
    io_.restart();
    // Each query has its own deadline inside the resolver; this bounds the whole lookup anyway.
    const auto deadline = std::chrono::steady_clock::now() + 4 * kQueryTimeout;
    while (!got && std::chrono::steady_clock::now() < deadline) {
      io_.run_for(50ms);
      io_.restart();
    }
    if (!got) {
      r.status = dns::Status::TempFail;
      r.error = "no answer in time";
      return r;
    }
    cache.emplace(key, *got);
    return std::move(*got);
  }

  asio::io_context io_;
  std::optional<dns::Resolver> resolver_;
  std::string init_error_;
  std::map<std::string, dns::TxtResult> txt_;
  std::map<std::string, dns::AddrResult> addr_;
  std::map<std::string, dns::MxResult> mx_;
  std::map<std::string, dns::PtrResult> ptr_;
};

void emit(std::vector<Check>& all, Check c, std::ostream& out) {
  out << format(c) << "\n" << std::flush;
  all.push_back(std::move(c));
}

}  // namespace

std::vector<std::string> default_domains(const config::Config& c) {
  std::vector<std::string> out;
  auto add = [&](const std::string& d) {
    if (d.empty() || d == "localhost" || std::find(out.begin(), out.end(), d) != out.end()) return;
    out.push_back(d);
  };
  for (const auto& d : c.local_domains) add(d);
  for (const auto& v : c.virtual_domains) add(v.domain);
  return out;
}

std::vector<Check> run_checks(const config::Config& c, std::vector<std::string> domains, std::ostream& out) {
  std::vector<Check> all;
  if (domains.empty()) domains = default_domains(c);
  Lookups dns(c);
  const std::string host = c.hostname;

  // The host name: A/AAAA, then each address's PTR.
  std::vector<std::string> host_addrs;
  auto norm_host = dns::normalize_domain(host);
  if (!norm_host) {
    emit(all, Check{false, "host name " + host, "not a valid host name: " + norm_host.error().message,
                    "set [server] hostname to this host's fully qualified name (e.g. mx.example.com)"}, out);
  } else {
    if (norm_host->find('.') == std::string::npos) {
      emit(all, Check{false, "host name " + host, "not fully qualified (RFC 5321 2.3.5)",
                      "set [server] hostname to this host's fully qualified name (e.g. mx.example.com)"}, out);
    }
    auto a = dns.addresses(*norm_host);
    emit(all, check_host_addresses(host, a), out);
    host_addrs = a.addresses;
    for (const auto& ip : host_addrs) emit(all, check_reverse(*norm_host, ip, dns.ptr(ip)), out);
  }

  // Each domain: MX and SPF.
  for (const auto& d : domains) {
    emit(all, check_mx(d, host, host_addrs, dns.mx(d)), out);
    std::vector<std::pair<std::string, SpfResult>> spf;
    for (const auto& ip : host_addrs) spf.emplace_back(ip, evaluate_spf(ip, d, dns));
    emit(all, check_spf(d, host, spf), out);
  }

  // TLS: the default certificate must name the host; the others are chosen by SNI.
  const auto files = config::tls_files(c);
  const auto now = static_cast<std::int64_t>(std::time(nullptr));
  for (std::size_t i = 0; i < files.certs.size(); ++i) {
    const auto info = inspect_certificate(files.certs[i].cert_file, files.certs[i].key_file, files.self_signed, host);
    for (auto& ch : check_certificate(info, host, now, i == 0)) emit(all, std::move(ch), out);
  }

  for (const auto& l : c.listeners) emit(all, check_listener(probe_listener(l)), out);

  for (auto& ch : check_spool(probe_spool(c.spool_dir))) emit(all, std::move(ch), out);
  return all;
}

int run_doctor(const std::filesystem::path& config_file, const std::vector<std::string>& domains, std::ostream& out,
               std::ostream& err) {
  config::Config cfg;
  if (!config_file.empty()) {
    std::vector<config::Diagnostic> diags;
    auto loaded = config::load_file(config_file, diags);
    if (!loaded) {
      for (const auto& d : diags) err << d.str() << "\n";
      err << "carrier doctor: the configuration is not valid; fix it first (carrier check-config)\n";
      return 1;
    }
    cfg = std::move(*loaded);
  } else {
    cfg = config::defaults();
  }
  const auto checks = run_checks(cfg, domains, out);
  const auto failed = std::count_if(checks.begin(), checks.end(), [](const Check& c) { return !c.ok; });
  if (failed == 0) {
    out << "all " << checks.size() << " checks passed\n";
    return 0;
  }
  out << failed << " of " << checks.size() << " checks failed\n";
  return 1;
}

}  // namespace carrier::doctor
