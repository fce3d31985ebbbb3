// Fuzz target: the configuration loader (src/config): TOML text -> Config with strict
// validation (load_string, toml++ underneath), map files (parse_map), and the value parsers
// (durations, sizes, host:port, next hops). Configuration is operator input, but it is also
// written by tools and templating and must never crash carrier: every problem is a diagnostic.
// Input: the text itself. Checks:
//  - load_string returns a Config iff it reports no diagnostic; every diagnostic has a message
//    and a line within the text; none is "internal error" (an exception escaped a check);
//  - a loaded Config has only the documented values for its enumerated settings, at least one
//    listener, and loads identically twice (no hidden state);
//  - parse_map: a result iff no new diagnostic, names lower case and valid, no alias without
//    targets; parse_duration / parse_size stay in range (no overflow) and round-trip through
//    their canonical forms; parse_host_port / parse_next_hop give back a non-empty host.
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/config.hpp"
#include "fuzz_common.hpp"

using namespace carrier::config;

namespace {

bool one_of(const std::string& v, std::initializer_list<std::string_view> allowed) {
  for (auto a : allowed)
    if (v == a) return true;
  return false;
}

void check_diags(const std::vector<Diagnostic>& d, std::string_view text) {
  int lines = 1;
  for (char c : text) lines += c == '\n';
  for (const auto& x : d) {
    FUZZ_CHECK(!x.message.empty());
    FUZZ_CHECK(x.line >= 0 && x.line <= lines + 1);
    FUZZ_CHECK(x.message.rfind("internal error: ", 0) != 0);  // load_string caught an exception
    FUZZ_CHECK(!x.str().empty());
  }
}

void check_config(const Config& c) {
  FUZZ_CHECK(!c.listeners.empty());
  for (const auto& l : c.listeners) FUZZ_CHECK(one_of(l.tls, {"starttls", "implicit", "none"}));
  for (const auto& r : c.routes) {
    FUZZ_CHECK(one_of(r.tls, {"none", "may", "encrypt", "verify"}));
    FUZZ_CHECK(!r.domain.empty() && !r.host.empty());
  }
  FUZZ_CHECK(one_of(c.log_format, {"text", "json"}));
  FUZZ_CHECK(one_of(c.bare_newline, {"reject", "normalize"}));
  FUZZ_CHECK(one_of(c.sync_mode, {"file", "filesystem"}));
  FUZZ_CHECK(one_of(c.local_delivery.method, {"maildir", "lmtp", "pipe"}));
  for (const auto& v : c.virtual_domains) FUZZ_CHECK(one_of(v.delivery.method, {"maildir", "lmtp", "pipe"}));
  FUZZ_CHECK(c.delivery_threads > 0);
  FUZZ_CHECK(c.limits.max_command_line > 0);
}

void check_map(std::string_view text) {
  std::vector<Diagnostic> d{Diagnostic{"x", 0, 0, "sentinel"}};
  auto m = parse_map(text, "fuzz.map", d);
  FUZZ_CHECK(m.has_value() == (d.size() == 1));
  std::vector<Diagnostic> rest(d.begin() + 1, d.end());
  check_diags(rest, text);
  if (!m) return;
  auto lower = [](const std::string& s) {
    for (char ch : s)
      if (ch >= 'A' && ch <= 'Z') return false;
    return !s.empty();
  };
  for (const auto& n : m->mailboxes) FUZZ_CHECK(lower(n));
  for (const auto& [k, v] : m->aliases) {
    FUZZ_CHECK(lower(k));
    FUZZ_CHECK(!v.empty());
    for (const auto& t : v) FUZZ_CHECK(!t.empty());
  }
}

void check_values(std::string_view text) {
  if (auto d = parse_duration(text)) {
    // A count of at most 2^40 of any unit: no overflow. Round trip through the smallest unit
    // that expresses it within that count (a valid "Nh" or "Nd" may exceed 2^40 seconds).
    const std::int64_t secs = d->count(), max_count = std::int64_t{1} << 40;
    FUZZ_CHECK(secs >= 0 && secs <= max_count * 86400);
    std::string canon;
    for (auto [unit, suffix] : {std::pair{1, 's'}, {60, 'm'}, {3600, 'h'}, {86400, 'd'}}) {
      if (secs % unit == 0 && secs / unit <= max_count) {
        canon = std::to_string(secs / unit) + suffix;
        break;
      }
    }
    FUZZ_CHECK(!canon.empty());
    auto again = parse_duration(canon);
    FUZZ_CHECK(again && *again == *d);
  }
  if (auto s = parse_size(text)) {
    FUZZ_CHECK(*s <= (std::uint64_t{1} << 40));
    if (*s % 1024 == 0 && *s / 1024 > 0) {
      auto again = parse_size(std::to_string(*s / 1024) + "K");
      FUZZ_CHECK(again && *again == *s);
    }
  }
  std::string why;
  if (auto hp = parse_host_port(text, why)) FUZZ_CHECK(!hp->first.empty());
  else FUZZ_CHECK(!why.empty());
  std::string why2;
  if (auto r = parse_next_hop(text, why2)) FUZZ_CHECK(!r->host.empty());
  else FUZZ_CHECK(!why2.empty());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  std::vector<Diagnostic> d;
  auto c = load_string(in, "fuzz.toml", d);
  FUZZ_CHECK(c.has_value() == d.empty());
  check_diags(d, in);
  if (c) {
    check_config(*c);
    std::vector<Diagnostic> d2;
    auto c2 = load_string(in, "fuzz.toml", d2);
    FUZZ_CHECK(c2 && d2.empty());
    FUZZ_CHECK(c2->listeners.size() == c->listeners.size() && c2->routes.size() == c->routes.size());
    FUZZ_CHECK(c2->mailboxes == c->mailboxes && c2->aliases == c->aliases);
    FUZZ_CHECK(c2->limits.max_message_size == c->limits.max_message_size);
  }
  check_map(in);
  check_values(in);
  return 0;
}
