// carrier config: built-in defaults, the strict TOML loader (toml++ v3) and the runtime checks.
// Reads operator files (UNTRUSTED-ish input): unknown keys, wrong types and bad values are all
// reported as Diagnostics with file:line:column, every error is collected, and nothing throws
// out of this module. Limits enforced here follow RFC 5321 4.5.3.1.4 (command line >= 512),
// 4.5.3.1.8 (>= 100 recipients), 4.5.3.2 (timeouts) and 4.5.1 (postmaster always exists).
#include "config/config.hpp"
#include "dkim/key.hpp"  // [dkim]
#include "dnsbl/dnsbl.hpp"

#include <arpa/inet.h>  // [[milter]]
#include <grp.h>
#include <pwd.h>

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <fstream>
#include <functional>
#include <initializer_list>
#include <set>
#include <system_error>

#include <toml++/toml.h>

#include "config/syntax.hpp"

namespace carrier::config {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::string Diagnostic::str() const {
  if (line <= 0) return file + ": " + message;
  return file + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " + message;
}

namespace {

// Largest configuration file accepted (an explicit input limit; real files are a few KiB).
constexpr std::size_t kMaxFileSize = 1u << 20;

std::string system_hostname() {
  char buf[256];
  if (gethostname(buf, sizeof buf - 1) != 0) return "localhost";
  buf[sizeof buf - 1] = '\0';
  std::string h(buf);
  return h.empty() ? "localhost" : h;
}

std::vector<std::string> default_domains(const std::string& hostname) {
  std::vector<std::string> d{"localhost"};
  std::string h = syntax::to_lower(hostname);
  if (!h.empty() && h != "localhost") d.push_back(h);
  return d;
}

const char* type_name(toml::node_type t) {
  switch (t) {
    case toml::node_type::table: return "a table";
    case toml::node_type::array: return "an array";
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a floating-point number";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::date: return "a date";
    case toml::node_type::time: return "a time";
    case toml::node_type::date_time: return "a date-time";
    case toml::node_type::none: break;
  }
  return "nothing";
}

std::string fmt_duration(std::chrono::seconds s) {
  auto n = s.count();
  if (n != 0 && n % 86400 == 0) return std::to_string(n / 86400) + "d";
  if (n != 0 && n % 3600 == 0) return std::to_string(n / 3600) + "h";
  if (n != 0 && n % 60 == 0) return std::to_string(n / 60) + "m";
  return std::to_string(n) + "s";
}

std::string fmt_size(std::uint64_t b) {
  if (b != 0 && b % (1ull << 30) == 0) return std::to_string(b >> 30) + "G";
  if (b != 0 && b % (1ull << 20) == 0) return std::to_string(b >> 20) + "M";
  if (b != 0 && b % (1ull << 10) == 0) return std::to_string(b >> 10) + "K";
  return std::to_string(b) + " bytes";
}

std::string quoted_list(std::initializer_list<const char*> items) {
  std::string out;
  for (const char* i : items) {
    if (!out.empty()) out += ", ";
    out += '"';
    out += i;
    out += '"';
  }
  return out;
}

// Loads one TOML document into a Config. One instance per load.
class Loader {
 public:
  Loader(std::string name, fs::path base, std::vector<Diagnostic>& diags)
      : name_(std::move(name)), base_(std::move(base)), diags_(diags) {}

  std::optional<Config> run(std::string_view text);

 private:
  struct AliasSrc {
    const toml::key* key;
    std::vector<std::pair<std::string, const toml::node*>> targets;
  };

  void error(const toml::source_region& r, std::string msg) {
    diags_.push_back(Diagnostic{name_, static_cast<int>(r.begin.line),
                                static_cast<int>(r.begin.column), std::move(msg)});
  }
  void error(const toml::node& n, const std::string& ctx, const std::string& msg) {
    error(n.source(), ctx + ": " + msg);
  }
  void wrong_type(const toml::node& n, const std::string& ctx, const char* expected) {
    error(n, ctx, std::string("expected ") + expected + ", got " + type_name(n.type()));
  }
  void unknown_key(const toml::key& k, const std::string& section) {
    error(k.source(), "unknown key '" + std::string(k.str()) + "' in " + section);
  }

  std::optional<std::string> get_string(const toml::node& n, const std::string& ctx);
  std::optional<std::int64_t> get_int(const toml::node& n, const std::string& ctx,
                                      std::int64_t lo, std::int64_t hi, const char* why = nullptr);
  std::optional<std::chrono::seconds> get_duration(const toml::node& n, const std::string& ctx,
                                                   std::chrono::seconds lo, std::chrono::seconds hi);
  std::optional<std::uint64_t> get_size(const toml::node& n, const std::string& ctx,
                                        std::uint64_t lo, std::uint64_t hi);
  std::optional<std::string> get_enum(const toml::node& n, const std::string& ctx,
                                      std::initializer_list<const char*> allowed);
  std::optional<fs::path> get_path(const toml::node& n, const std::string& ctx);
  std::optional<bool> get_bool(const toml::node& n, const std::string& ctx);
  // "IP:port" on 127.0.0.0/8 or [::1] (admin and metrics endpoints are never public).
  std::optional<std::string> get_loopback_address(const toml::node& n, const std::string& ctx,
                                                  const char* why);
  std::optional<std::vector<std::pair<std::string, const toml::node*>>> get_string_array(
      const toml::node& n, const std::string& ctx);
  const toml::table* get_table(const toml::node& n, const std::string& ctx);

  void server(const toml::table& t);
  void listeners(const toml::node& n);
  void routes(const toml::node& n);
  void dns(const toml::table& t);
  void listener(const toml::table& t);
  void limits(const toml::table& t);
  void local(const toml::table& t);
  void aliases(const toml::table& t);
  void relay(const toml::table& t);
  void tls(const toml::table& t);
  bool delivery_key(const std::string& key, const toml::node& v, const std::string& ctx,
                    DeliveryMethod& d);
  void check_delivery(const DeliveryMethod& d, const toml::source_region& where,
                      const std::string& ctx);
  void virtuals(const toml::node& n);
  void virtual_domain(const toml::table& t);
  void auth(const toml::table& t);
  void admin(const toml::table& t);
  void rate_limit(const toml::table& t);
  void dnsbl(const toml::table& t);
  void spf(const toml::table& t);  // [spf]
  void dmarc(const toml::table& t);  // [dmarc]
  void dkim(const toml::table& t);  // [dkim]
  void milters(const toml::node& n);  // [[milter]]
  std::optional<double> get_number(const toml::node& n, const std::string& ctx, double lo, double hi);
  void metrics(const toml::table& t);
  std::optional<CertPair> cert_pair(const toml::table& t, const std::string& ctx);
  void resolve_aliases();

  std::string name_;
  fs::path base_;
  std::vector<Diagnostic>& diags_;
  Config c_ = defaults();

  bool hostname_set_ = false;
  bool domains_set_ = false;
  const toml::node* retry_initial_node_ = nullptr;
  const toml::node* retry_max_node_ = nullptr;
  std::map<std::pair<std::string, std::uint16_t>, int> listener_lines_;  // for duplicates
  std::map<std::string, AliasSrc> alias_src_;
};

std::optional<std::string> Loader::get_string(const toml::node& n, const std::string& ctx) {
  const auto* s = n.as_string();
  if (!s) {
    wrong_type(n, ctx, "a string");
    return std::nullopt;
  }
  const std::string& v = s->get();
  for (char ch : v) {
    if (static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f) {
      error(n, ctx, "must not contain control characters");
      return std::nullopt;
    }
  }
  return v;
}

std::optional<std::int64_t> Loader::get_int(const toml::node& n, const std::string& ctx,
                                            std::int64_t lo, std::int64_t hi, const char* why) {
  const auto* i = n.as_integer();
  if (!i) {
    wrong_type(n, ctx, "an integer");
    return std::nullopt;
  }
  std::int64_t v = i->get();
  std::string cite = why ? std::string(" (") + why + ")" : std::string();
  if (v < lo) {
    error(n, ctx, "must be at least " + std::to_string(lo) + cite + ", got " + std::to_string(v));
    return std::nullopt;
  }
  if (v > hi) {
    error(n, ctx, "must be at most " + std::to_string(hi) + ", got " + std::to_string(v));
    return std::nullopt;
  }
  return v;
}

std::optional<std::chrono::seconds> Loader::get_duration(const toml::node& n,
                                                         const std::string& ctx,
                                                         std::chrono::seconds lo,
                                                         std::chrono::seconds hi) {
  std::optional<std::chrono::seconds> d;
  if (const auto* i = n.as_integer()) {
    if (i->get() < 0) {
      error(n, ctx, "must not be negative, got " + std::to_string(i->get()));
      return std::nullopt;
    }
    // Anything above hi is rejected below; clamp first so the conversion cannot overflow.
    d = std::chrono::seconds(std::min<std::int64_t>(i->get(), hi.count() + 1));
    if (i->get() > hi.count()) {
      error(n, ctx, "must be at most " + fmt_duration(hi) + ", got " + std::to_string(i->get()) +
                        " seconds");
      return std::nullopt;
    }
  } else if (const auto* s = n.as_string()) {
    d = parse_duration(s->get());
    if (!d) {
      error(n, ctx, "invalid duration \"" + s->get() +
                        "\": expected a whole number followed by s, m, h or d (e.g. \"90s\", "
                        "\"5m\", \"1h\", \"2d\"), or an integer number of seconds");
      return std::nullopt;
    }
  } else {
    wrong_type(n, ctx, "a duration (integer seconds or a string like \"5m\")");
    return std::nullopt;
  }
  if (*d < lo) {
    error(n, ctx, "must be at least " + fmt_duration(lo) + ", got " + fmt_duration(*d));
    return std::nullopt;
  }
  if (*d > hi) {
    error(n, ctx, "must be at most " + fmt_duration(hi) + ", got " + fmt_duration(*d));
    return std::nullopt;
  }
  return d;
}

std::optional<std::uint64_t> Loader::get_size(const toml::node& n, const std::string& ctx,
                                              std::uint64_t lo, std::uint64_t hi) {
  std::uint64_t v = 0;
  if (const auto* i = n.as_integer()) {
    if (i->get() < 0) {
      error(n, ctx, "must not be negative, got " + std::to_string(i->get()));
      return std::nullopt;
    }
    v = static_cast<std::uint64_t>(i->get());
  } else if (const auto* s = n.as_string()) {
    auto p = parse_size(s->get());
    if (!p) {
      error(n, ctx, "invalid size \"" + s->get() +
                        "\": expected a whole number followed by K, M or G (e.g. \"64K\", "
                        "\"50M\", \"1G\"), or an integer number of bytes");
      return std::nullopt;
    }
    v = *p;
  } else {
    wrong_type(n, ctx, "a size (integer bytes or a string like \"50M\")");
    return std::nullopt;
  }
  if (v < lo) {
    error(n, ctx, "must be at least " + fmt_size(lo) + ", got " + fmt_size(v));
    return std::nullopt;
  }
  if (v > hi) {
    error(n, ctx, "must be at most " + fmt_size(hi) + ", got " + fmt_size(v));
    return std::nullopt;
  }
  return v;
}

std::optional<std::string> Loader::get_enum(const toml::node& n, const std::string& ctx,
                                            std::initializer_list<const char*> allowed) {
  const auto* s = n.as_string();
  if (!s) {
    wrong_type(n, ctx, ("one of " + quoted_list(allowed) + " (a string)").c_str());
    return std::nullopt;
  }
  for (const char* a : allowed)
    if (s->get() == a) return s->get();
  error(n, ctx, "must be one of " + quoted_list(allowed) + ", got \"" + s->get() + "\"");
  return std::nullopt;
}

std::optional<bool> Loader::get_bool(const toml::node& n, const std::string& ctx) {
  auto b = n.as_boolean();
  if (!b) {
    wrong_type(n, ctx, "a boolean (true or false)");
    return std::nullopt;
  }
  return b->get();
}

std::optional<std::string> Loader::get_loopback_address(const toml::node& n,
                                                        const std::string& ctx, const char* why) {
  auto str = get_string(n, ctx);
  if (!str) return std::nullopt;
  std::string err;
  auto hp = parse_host_port(*str, err);
  if (!hp) {
    error(n, ctx, "invalid address \"" + *str + "\": " + err);
    return std::nullopt;
  }
  auto ip = syntax::canonical_ip(hp->first).value_or("");
  if (ip.rfind("127.", 0) != 0 && ip != "::1") {
    error(n, ctx, std::string("must be a loopback address (127.0.0.0/8 or [::1])") + why +
                      ", got \"" + *str + "\"");
    return std::nullopt;
  }
  return *str;
}

std::optional<fs::path> Loader::get_path(const toml::node& n, const std::string& ctx) {
  auto s = get_string(n, ctx);
  if (!s) return std::nullopt;
  if (s->empty()) {
    error(n, ctx, "must not be empty (expected a directory path)");
    return std::nullopt;
  }
  fs::path p(*s);
  if (p.is_relative() && !base_.empty()) p = base_ / p;
  return p.lexically_normal();
}

std::optional<std::vector<std::pair<std::string, const toml::node*>>> Loader::get_string_array(
    const toml::node& n, const std::string& ctx) {
  const auto* a = n.as_array();
  if (!a) {
    wrong_type(n, ctx, "an array of strings");
    return std::nullopt;
  }
  std::vector<std::pair<std::string, const toml::node*>> out;
  bool ok = true;
  for (const toml::node& e : *a) {
    auto s = get_string(e, ctx);
    if (!s) {
      ok = false;
      continue;
    }
    out.emplace_back(std::move(*s), &e);
  }
  if (!ok) return std::nullopt;
  return out;
}

const toml::table* Loader::get_table(const toml::node& n, const std::string& ctx) {
  const auto* t = n.as_table();
  if (!t) wrong_type(n, ctx, "a table");
  return t;
}

void Loader::server(const toml::table& t) {
  const std::string sec = "[server]";
  for (auto&& [k, v] : t) {
    const std::string key(k.str());
    const std::string ctx = sec + " " + key;
    if (key == "hostname") {
      if (auto s = get_string(v, ctx)) {
        if (auto p = syntax::check_domain(*s)) {
          error(v, ctx, "\"" + *s + "\" is not a valid host name: " + *p);
        } else {
          c_.hostname = *s;
          hostname_set_ = true;
        }
      }
    } else if (key == "data_dir") {
      if (auto p = get_path(v, ctx)) c_.data_dir = *p;
    } else if (key == "spool_dir") {
      if (auto p = get_path(v, ctx)) {
        c_.spool_dir = *p;
        c_.spool_dir_explicit = true;
      }
    } else if (key == "log_format") {
      if (auto e = get_enum(v, ctx, {"text", "json"})) c_.log_format = *e;
    } else if (key == "log_level") {
      if (auto e = get_enum(v, ctx, {"trace", "debug", "info", "warn", "error"})) c_.log_level = *e;
    } else if (key == "bare_newline") {
      if (auto e = get_enum(v, ctx, {"reject", "normalize"})) c_.bare_newline = *e;
    } else if (key == "sync_mode") {
      if (auto e = get_enum(v, ctx, {"file", "filesystem"})) c_.sync_mode = *e;
    } else if (key == "delivery_threads") {
      if (auto i = get_int(v, ctx, 1, 256)) c_.delivery_threads = static_cast<int>(*i);
    } else if (key == "retry_initial") {
      if (auto d = get_duration(v, ctx, 1s, 24h)) {
        c_.retry_initial = *d;
        retry_initial_node_ = &v;
      }
    } else if (key == "retry_max") {
      if (auto d = get_duration(v, ctx, 1s, 24h * 30)) {
        c_.retry_max = *d;
        retry_max_node_ = &v;
      }
    } else if (key == "max_queue_lifetime") {
      if (auto d = get_duration(v, ctx, 1s, 24h * 365)) c_.max_queue_lifetime = *d;
    } else if (key == "delay_warning") {
      if (auto d = get_duration(v, ctx, 0s, 24h * 365)) c_.delay_warning = *d;
    } else if (key == "max_bounces_per_minute") {
      if (auto i = get_int(v, ctx, 1, 100000)) c_.max_bounces_per_minute = static_cast<int>(*i);
    } else if (key == "run_as_root") {
      if (auto b = get_bool(v, ctx)) c_.run_as_root = *b;
    } else if (key == "user" || key == "group") {
      auto str = get_string(v, ctx);
      if (!str) continue;
      const bool ok = key == "user" ? ::getpwnam(str->c_str()) != nullptr
                                    : ::getgrnam(str->c_str()) != nullptr;
      if (str->empty() || !ok) {
        error(v, ctx, "no such " + key + " \"" + *str + "\" on this system");
        continue;
      }
      (key == "user" ? c_.user : c_.group) = *str;
    } else if (key == "trace_retention") {
      if (auto d = get_duration(v, ctx, 3600s, 365 * 24h)) c_.trace_retention = *d;
    } else {
      unknown_key(k, sec);
    }
  }
}

void Loader::listeners(const toml::node& n) {
  const auto* a = n.as_array();
  if (!a) {
    if (n.is_table())
      error(n, "listener", "must be an array of tables: write [[listener]], not [listener]");
    else
      wrong_type(n, "listener", "an array of tables ([[listener]])");
    return;
  }
  if (a->empty()) return;  // no listeners given: keep the default 127.0.0.1:2525
  c_.listeners.clear();
  for (const toml::node& e : *a) {
    if (const auto* t = e.as_table())
      listener(*t);
    else
      wrong_type(e, "[[listener]]", "a table");
  }
}

void Loader::listener(const toml::table& t) {
  const std::string sec = "[[listener]]";
  Listener l;
  bool have_address = false;
  bool ok = true;
  for (auto&& [k, v] : t) {
    const std::string key(k.str());
    const std::string ctx = sec + " " + key;
    if (key == "address") {
      have_address = true;
      auto s = get_string(v, ctx);
      if (!s) {
        ok = false;
        continue;
      }
      std::string why;
      auto hp = parse_host_port(*s, why);
      if (!hp) {
        error(v, ctx, "invalid address \"" + *s + "\": " + why);
        ok = false;
        continue;
      }
      l.address = hp->first;
      l.port = hp->second;
      if (l.port != 0) {  // port 0 = a fresh free port each time, never a clash
        auto canon = syntax::canonical_ip(l.address).value_or(l.address);
        auto [it, inserted] = listener_lines_.emplace(std::pair{canon, l.port},
                                                      static_cast<int>(v.source().begin.line));
        if (!inserted) {
          error(v, ctx, "duplicate listener address \"" + *s + "\" (already used on line " +
                            std::to_string(it->second) + ")");
          ok = false;
        }
      }
    } else if (key == "name") {
      auto s = get_string(v, ctx);
      if (!s) {
        ok = false;
        continue;
      }
      bool good = !s->empty() && s->size() <= 64;
      for (char ch : *s)
        good = good && ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                        (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-');
      if (!good) {
        error(v, ctx, "must be 1 to 64 letters, digits, '.', '_' or '-', got \"" + *s + "\"");
        ok = false;
        continue;
      }
      l.name = *s;
    } else if (key == "tls") {
      if (auto e = get_enum(v, ctx, {"starttls", "implicit", "none"})) l.tls = *e;
      else ok = false;
    } else if (key == "submission") {
      auto b = get_bool(v, ctx);
      if (!b) {
        ok = false;
        continue;
      }
      l.submission = *b;
    } else {
      unknown_key(k, sec);
      ok = false;
    }
  }
  if (!have_address) {
    error(t.source(), sec + ": missing required key 'address' (e.g. address = \"127.0.0.1:2525\")");
    ok = false;
  }
  if (ok) c_.listeners.push_back(std::move(l));
}

void Loader::limits(const toml::table& t) {
  const std::string sec = "[limits]";
  auto& L = c_.limits;
  for (auto&& [k, v] : t) {
    const std::string key(k.str());
    const std::string ctx = sec + " " + key;
    if (key == "max_command_line") {
      if (auto i = get_int(v, ctx, 512, 65536, "RFC 5321 4.5.3.1.4"))
        L.max_command_line = static_cast<std::size_t>(*i);
    } else if (key == "max_message_size") {
      if (auto s = get_size(v, ctx, 1024, 64ull << 30)) L.max_message_size = *s;
    } else if (key == "max_recipients") {
      if (auto i = get_int(v, ctx, 100, 1000000, "RFC 5321 4.5.3.1.8"))
        L.max_recipients = static_cast<std::size_t>(*i);
    } else if (key == "max_errors") {
      if (auto i = get_int(v, ctx, 1, 10000)) L.max_errors = static_cast<int>(*i);
    } else if (key == "max_received_headers") {
      if (auto i = get_int(v, ctx, 1, 10000)) L.max_received_headers = static_cast<int>(*i);
    } else if (key == "max_connections") {
      if (auto i = get_int(v, ctx, 1, 1000000)) L.max_connections = static_cast<int>(*i);
    } else if (key == "max_connections_per_ip") {
      if (auto i = get_int(v, ctx, 1, 1000000)) L.max_connections_per_ip = static_cast<int>(*i);
    } else if (key == "command_timeout") {
      if (auto d = get_duration(v, ctx, 1s, 24h)) L.command_timeout = *d;
    } else if (key == "data_timeout") {
      if (auto d = get_duration(v, ctx, 1s, 24h)) L.data_timeout = *d;
    } else if (key == "min_free_space") {
      if (auto s = get_size(v, ctx, 0, 1ull << 50)) L.min_free_space = *s;
    } else {
      unknown_key(k, sec);
    }
  }
}

void Loader::local(const toml::table& t) {
  const std::string sec = "[local]";
  for (auto&& [k, v] : t) {
    const std::string key(k.str());
    const std::string ctx = sec + " " + key;
    if (key == "domains") {
      auto arr = get_string_array(v, ctx);
      if (!arr) continue;
      std::vector<std::string> out;
      bool ok = true;
      for (auto& [s, node] : *arr) {
        std::string d = syntax::to_lower(s);
        if (auto p = syntax::check_domain(d)) {
          error(*node, ctx, "\"" + s + "\" is not a valid domain name: " + *p);
          ok = false;
        } else if (std::find(out.begin(), out.end(), d) != out.end()) {
          error(*node, ctx, "domain \"" + s + "\" is listed twice");
          ok = false;
        } else {
          out.push_back(std::move(d));
        }
      }
      if (ok) {
        c_.local_domains = std::move(out);
        domains_set_ = true;
      }
    } else if (key == "mail_dir") {
      if (auto p = get_path(v, ctx)) {
        c_.mail_dir = *p;
        c_.mail_dir_explicit = true;
      }
    } else if (key == "mailboxes") {
      auto arr = get_string_array(v, ctx);
      if (!arr) continue;
      std::vector<std::string> out;
      bool ok = true;
      for (auto& [s, node] : *arr) {
        std::string m = syntax::to_lower(s);
        if (auto p = syntax::check_mailbox_name(m)) {
          error(*node, ctx, "\"" + s + "\" is not a valid mailbox name: " + *p);
          ok = false;
        } else if (std::find(out.begin(), out.end(), m) != out.end()) {
          error(*node, ctx, "mailbox \"" + s + "\" is listed twice");
          ok = false;
        } else {
          out.push_back(std::move(m));
        }
      }
      if (ok) c_.mailboxes = std::move(out);
    } else if (key == "recipient_delimiter") {
      auto s = get_string(v, ctx);
      if (!s) continue;
      if (s->empty() || (s->size() == 1 && std::strchr("+-_=", (*s)[0]) != nullptr))
        c_.recipient_delimiter = *s;
      else
        error(v, ctx, "must be one of \"+\", \"-\", \"_\", \"=\" or \"\" (disabled), got \"" +
                          *s + "\"");
    } else if (key == "aliases") {
      if (const auto* a = get_table(v, "[local] aliases")) aliases(*a);
    } else if (delivery_key(key, v, ctx, c_.local_delivery)) {
    } else {
      unknown_key(k, sec);
    }
  }
  check_delivery(c_.local_delivery, t.source(), sec);
}

// delivery, lmtp, pipe_command, pipe_timeout: shared by [local] and [[virtual]]. Returns false
// when key is none of them.
bool Loader::delivery_key(const std::string& key, const toml::node& v, const std::string& ctx,
                          DeliveryMethod& d) {
  if (key == "delivery") {
    if (auto e = get_enum(v, ctx, {"maildir", "lmtp", "pipe"})) d.method = *e;
  } else if (key == "lmtp") {
    auto str = get_string(v, ctx);
    if (!str) return true;
    bool ok = false;
    if (str->rfind("unix:/", 0) == 0) ok = str->size() > 6 && str->size() < 100;
    else ok = parse_host_port(*str).has_value();
    if (!ok)
      error(v, ctx, "must be \"unix:/path/to/socket\" or \"IP:port\" (\"[IPv6]:port\"), got \"" +
                        *str + "\"");
    else
      d.lmtp = *str;
  } else if (key == "pipe_command") {
    auto arr = get_string_array(v, ctx);
    if (!arr) return true;
    std::vector<std::string> argv;
    for (auto& [x, node] : *arr) argv.push_back(x);
    if (argv.empty() || argv[0].empty() || argv[0][0] != '/')
      error(v, ctx, "must be a command as an array, the program with an absolute path first "
                    "([\"/usr/bin/procmail\", \"-d\", \"{user}\"])");
    else
      d.pipe_command = std::move(argv);
  } else if (key == "pipe_timeout") {
    if (auto x = get_duration(v, ctx, 1s, 24h)) d.pipe_timeout = *x;
  } else if (key == "maildir_owner") {
    auto str = get_string(v, ctx);
    if (!str) return true;
    if (str->empty() || ::getpwnam(str->c_str()) == nullptr)
      error(v, ctx, "no such user \"" + *str + "\" on this system");
    else
      d.maildir_owner = *str;
  } else {
    return false;
  }
  return true;
}

void Loader::check_delivery(const DeliveryMethod& d, const toml::source_region& where,
                            const std::string& ctx) {
  if (d.method == "lmtp" && d.lmtp.empty())
    error(where, ctx + ": delivery = \"lmtp\" needs lmtp = \"unix:/path\" or \"IP:port\"");
  if (d.method == "pipe" && d.pipe_command.empty())
    error(where, ctx + ": delivery = \"pipe\" needs pipe_command = [\"/path/to/program\", ...]");
}

void Loader::virtuals(const toml::node& n) {
  const auto* a = n.as_array();
  if (!a || !a->is_array_of_tables()) {
    wrong_type(n, "virtual", "an array of tables ([[virtual]])");
    return;
  }
  for (const toml::node& e : *a)
    if (const auto* t = e.as_table()) virtual_domain(*t);
}

void Loader::virtual_domain(const toml::table& t) {
  const std::string sec = "[[virtual]]";
  VirtualDomain vd;
  vd.line = static_cast<int>(t.source().begin.line);
  bool ok = true;
  std::vector<std::pair<std::string, const toml::node*>> catch_all;
  for (auto&& [k, v] : t) {
    const std::string key(k.str());
    const std::string ctx = sec + " " + key;
    if (key == "domain") {
      auto str = get_string(v, ctx);
      if (!str) { ok = false; continue; }
      std::string d = syntax::to_lower(*str);
      if (auto p = syntax::check_domain(d)) {
        error(v, ctx, "\"" + *str + "\" is not a valid domain name: " + *p);
        ok = false;
        continue;
      }
      vd.domain = d;
    } else if (key == "mailboxes") {
      auto arr = get_string_array(v, ctx);
      if (!arr) { ok = false; continue; }
      for (auto& [x, node] : *arr) {
        std::string m = syntax::to_lower(x);
        if (auto p = syntax::check_mailbox_name(m)) {
          error(*node, ctx, "\"" + x + "\" is not a valid mailbox name: " + *p);
          ok = false;
        } else {
          vd.mailboxes.push_back(m);
        }
      }
    } else if (key == "aliases") {
      const auto* at = get_table(v, ctx);
      if (!at) { ok = false; continue; }
      for (auto&& [ak, av] : *at) {
        std::string name = syntax::to_lower(std::string(ak.str()));
        auto arr = get_string_array(av, ctx + "." + name);
        if (!arr) { ok = false; continue; }
        std::vector<std::string> targets;
        for (auto& [x, node] : *arr) {
          auto p = x.find('@') != std::string::npos ? syntax::check_address(x)
                                                    : syntax::check_mailbox_name(syntax::to_lower(x));
          if (p) {
            error(*node, ctx, "target \"" + x + "\" is neither a name nor an address: " + *p);
            ok = false;
          } else {
            targets.push_back(x.find('@') != std::string::npos ? x : syntax::to_lower(x));
          }
        }
        if (targets.empty()) {
          error(av, ctx, "alias \"" + name + "\" must list at least one target");
          ok = false;
          continue;
        }
        vd.aliases[name] = std::move(targets);
      }
    } else if (key == "catch_all") {
      auto str = get_string(v, ctx);
      if (!str) { ok = false; continue; }
      auto p = str->find('@') != std::string::npos ? syntax::check_address(*str)
                                                   : syntax::check_mailbox_name(syntax::to_lower(*str));
      if (p) {
        error(v, ctx, "must be a name in this domain or an address, got \"" + *str + "\"");
        ok = false;
        continue;
      }
      vd.catch_all = str->find('@') != std::string::npos ? *str : syntax::to_lower(*str);
    } else if (key == "map_file") {
      if (auto p = get_path(v, ctx)) vd.map_file = *p;
    } else if (delivery_key(key, v, ctx, vd.delivery)) {
    } else {
      unknown_key(k, sec);
      ok = false;
    }
  }
  if (vd.domain.empty()) {
    error(t.source(), sec + ": missing required key 'domain'");
    return;
  }
  check_delivery(vd.delivery, t.source(), sec + " " + vd.domain);
  if (std::find(c_.local_domains.begin(), c_.local_domains.end(), vd.domain) != c_.local_domains.end() &&
      domains_set_) {
    error(t.source(), sec + ": " + vd.domain + " is also in [local] domains; a domain is one or the other");
    ok = false;
  }
  for (const auto& o : c_.virtual_domains)
    if (o.domain == vd.domain) {
      error(t.source(), sec + ": domain " + vd.domain + " is defined twice (line " +
                            std::to_string(o.line) + ")");
      ok = false;
    }
  if (!vd.map_file.empty()) {
    std::vector<Diagnostic> md;
    if (auto m = load_map(vd.map_file, md)) {
      vd.map = std::move(*m);
    } else {
      for (auto& d : md) diags_.push_back(d);
      ok = false;
    }
  }
  if (ok) c_.virtual_domains.push_back(std::move(vd));
}

void Loader::aliases(const toml::table& t) {
  for (auto&& [k, v] : t) {
    const std::string raw(k.str());
    const std::string ctx = "[local.aliases] " + raw;
    std::string name = syntax::to_lower(raw);
    if (auto p = syntax::check_mailbox_name(name)) {
      error(k.source(), ctx + ": \"" + raw + "\" is not a valid alias name: " + *p);
      continue;
    }
    if (alias_src_.count(name)) {
      error(k.source(), ctx + ": alias \"" + name + "\" is defined twice (names are case-insensitive)");
      continue;
    }
    auto arr = get_string_array(v, ctx);
    if (!arr) continue;
    if (arr->empty()) {
      error(v, ctx, "must list at least one target");
      continue;
    }
    alias_src_.emplace(name, AliasSrc{&k, std::move(*arr)});
  }
}

void Loader::relay(const toml::table& t) {
  const std::string sec = "[relay]";
  for (auto&& [k, v] : t) {
    const std::string key(k.str());
    const std::string ctx = sec + " " + key;
    if (key == "port") {
      if (auto i = get_int(v, ctx, 1, 65535)) c_.relay_port = static_cast<std::uint16_t>(*i);
    } else if (key == "smarthost") {
      auto str = get_string(v, ctx);
      if (!str) continue;
      if (str->empty()) {
        c_.smarthost.reset();
        continue;
      }
      std::string why;
      auto r = parse_next_hop(*str, why);
      if (!r) {
        error(v, ctx, "invalid next hop \"" + *str + "\": " + why);
        continue;
      }
      r->domain = "*";
      r->line = static_cast<int>(v.source().begin.line);
      c_.smarthost = *r;
    } else if (key == "max_connections") {
      if (auto i = get_int(v, ctx, 1, 100000)) c_.relay_max_connections = static_cast<int>(*i);
    } else if (key == "max_per_destination") {
      if (auto i = get_int(v, ctx, 1, 100000)) c_.relay_max_per_destination = static_cast<int>(*i);
    } else if (key == "connect_timeout") {
      if (auto d = get_duration(v, ctx, 1s, 24h)) c_.connect_timeout = *d;
    } else if (key == "command_timeout") {
      if (auto d = get_duration(v, ctx, 1s, 24h)) c_.relay_command_timeout = *d;
    } else if (key == "data_timeout") {
      if (auto d = get_duration(v, ctx, 1s, 24h)) c_.relay_data_timeout = *d;
    } else if (key == "rate_per_destination") {
      auto str = get_string(v, ctx);
      if (!str) continue;
      if (auto r = parse_rate(*str)) c_.relay_rate_per_destination = *r;
      else error(v, ctx, "must be a rate like \"10/s\", \"600/m\" or \"3600/h\" (or \"0\"), got \"" + *str + "\"");
    } else if (key == "trusted_networks") {
      auto arr = get_string_array(v, ctx);
      if (!arr) continue;
      std::vector<std::string> out;
      bool ok = true;
      for (auto& [s, node] : *arr) {
        if (auto p = syntax::check_cidr(s)) {
          error(*node, ctx, "invalid network \"" + s + "\": " + *p);
          ok = false;
        } else {
          out.push_back(s);
        }
      }
      if (ok) c_.trusted_networks = std::move(out);
    } else if (key == "tls_ca_file") {
      if (auto p = get_path(v, ctx)) c_.relay_tls_ca_file = *p;
    } else {
      unknown_key(k, sec);
    }
  }
}

std::optional<CertPair> Loader::cert_pair(const toml::table& t, const std::string& ctx) {
  CertPair p;
  bool have_cert = false, have_key = false;
  for (auto&& [k, v] : t) {
    const std::string key(k.str());
    if (key == "cert_file") {
      if (auto x = get_path(v, ctx + " cert_file")) {
        p.cert_file = *x;
        have_cert = true;
      }
    } else if (key == "key_file") {
      if (auto x = get_path(v, ctx + " key_file")) {
        p.key_file = *x;
        have_key = true;
      }
    } else if (key != "extra_certificates") {
      unknown_key(k, ctx);
    }
  }
  if (have_cert != have_key) {
    error(t.source(), ctx + ": cert_file and key_file go together (set both)");
    return std::nullopt;
  }
  if (!have_cert) return std::nullopt;
  return p;
}

void Loader::tls(const toml::table& t) {
  c_.tls_cert = cert_pair(t, "[tls]");
  if (const toml::node* extra = t.get("extra_certificates")) {
    const auto* a = extra->as_array();
    if (!a) {
      wrong_type(*extra, "[tls] extra_certificates",
                 "an array of tables ([{ cert_file = \"...\", key_file = \"...\" }])");
      return;
    }
    for (const toml::node& e : *a) {
      const auto* et = e.as_table();
      if (!et) {
        wrong_type(e, "[tls] extra_certificates", "a table { cert_file, key_file }");
        continue;
      }
      auto p = cert_pair(*et, "[tls] extra_certificates");
      if (!p) {
        if (!et->get("cert_file"))
          error(e, "[tls] extra_certificates", "each entry needs cert_file and key_file");
        continue;
      }
      c_.tls_extra.push_back(*p);
    }
    if (!c_.tls_extra.empty() && !c_.tls_cert)
      error(t.source(), "[tls]: extra_certificates need a default cert_file/key_file first");
  }
}

void Loader::admin(const toml::table& t) {
  for (auto&& [k, v] : t) {
    const std::string key(k.str());
    const std::string ctx = "[admin] " + key;
    if (key == "listen") {
      if (auto a = get_loopback_address(v, ctx, "")) c_.admin_listen = *a;
    } else if (key == "token") {
      auto str = get_string(v, ctx);
      if (!str) continue;
      if (str->size() < 16) {
        error(v, ctx, "must be at least 16 characters");
        continue;
      }
      c_.admin_token = *str;
    } else {
      unknown_key(k, "[admin]");
    }
  }
  if (!c_.admin_listen.empty() && c_.admin_token.empty())
    error(t.source(), "[admin]: listen needs a token (16 characters or more)");
}

std::optional<double> Loader::get_number(const toml::node& n, const std::string& ctx, double lo,
                                         double hi) {
  double v = 0;
  if (const auto* i = n.as_integer()) v = static_cast<double>(i->get());
  else if (const auto* f = n.as_floating_point()) v = f->get();
  else {
    wrong_type(n, ctx, "a number");
    return std::nullopt;
  }
  if (!(v >= lo && v <= hi)) {
    error(n, ctx, "must be between " + std::to_string(lo) + " and " + std::to_string(hi));
    return std::nullopt;
  }
  return v;
}

void Loader::dnsbl(const toml::table& t) {
  for (auto&& [k, v] : t) {
    const std::string key(k.str());
    const std::string ctx = "[dnsbl] " + key;
    if (key == "threshold") {
      if (auto d = get_number(v, ctx, 0.001, 1000)) c_.dnsbl_threshold = *d;
    } else if (key == "action") {
      if (auto e = get_enum(v, ctx, {"reject", "tag"})) c_.dnsbl_action = *e;
    } else if (key == "list" || key == "domain_list") {
      // [[dnsbl.list]]: client IPs; [[dnsbl.domain_list]]: HELO names and sender domains
      // (RHSBL, RFC 5782 2.3).
      const bool domain = key == "domain_list";
      const std::string what = domain ? "[[dnsbl.domain_list]]" : "[[dnsbl.list]]";
      const auto* a = v.as_array();
      if (!a || !a->is_array_of_tables()) {
        wrong_type(v, "[dnsbl] " + key, domain ? "an array of tables ([[dnsbl.domain_list]])" : "an array of tables ([[dnsbl.list]])");
        continue;
      }
      for (const toml::node& e : *a) {
        const auto* lt = e.as_table();
        if (!lt) continue;
        Config::DnsblList l;
        bool ok = true;
        for (auto&& [lk, lv] : *lt) {
          const std::string lkey(lk.str());
          const std::string lctx = what + " " + lkey;
          if (lkey == "zone") {
            auto z = get_string(lv, lctx);
            if (!z) { ok = false; continue; }
            std::string zone = syntax::to_lower(*z);
            if (!zone.empty() && zone.back() == '.') zone.pop_back();
            if (!dnsbl::valid_zone(zone)) {
              error(lv, lctx, "must be a DNS zone like \"zen.spamhaus.org\", got \"" + *z + "\"");
              ok = false;
              continue;
            }
            l.zone = zone;
          } else if (lkey == "weight") {
            if (auto d = get_number(lv, lctx, -1000, 1000)) l.weight = *d;
            else ok = false;
          } else if (lkey == "returns") {
            auto arr = get_string_array(lv, lctx);
            if (!arr) { ok = false; continue; }
            for (auto& [r, node] : *arr) {
              if (!dnsbl::valid_return(r)) {
                error(*node, lctx, "must be an address or network in 127.0.0.0/8 like \"127.0.0.2\" or \"127.0.0.0/24\", got \"" + r + "\"");
                ok = false;
                continue;
              }
              l.returns.push_back(r);
            }
          } else if (lkey == "message") {
            auto m = get_string(lv, lctx);
            if (!m) { ok = false; continue; }
            l.message = *m;
          } else if (domain && lkey == "check") {
            auto arr = get_string_array(lv, lctx);
            if (!arr) { ok = false; continue; }
            l.check_helo = l.check_sender = false;
            for (auto& [c, node] : *arr) {
              if (c == "helo") l.check_helo = true;
              else if (c == "sender") l.check_sender = true;
              else {
                error(*node, lctx, "must be \"helo\" or \"sender\", got \"" + c + "\"");
                ok = false;
              }
            }
          } else {
            unknown_key(lk, what);
            ok = false;
          }
        }
        if (ok && l.zone.empty()) {
          error(e, what, "missing required key 'zone'");
          ok = false;
        }
        if (ok) (domain ? c_.dnsbl_domain_lists : c_.dnsbl_lists).push_back(std::move(l));
      }
    } else {
      unknown_key(k, "[dnsbl]");
    }
  }
}

// ---- [dkim] --------------------------------------------------------------------------------
void Loader::dkim(const toml::table& t) {
  for (auto&& [k, v] : t) {
    const std::string key(k.str());
    const std::string ctx = "[dkim] " + key;
    if (key == "verify") {
      if (auto b = get_bool(v, ctx)) c_.dkim_verify = *b;
    } else if (key == "sign_domains") {
      auto arr = get_string_array(v, ctx);
      if (!arr) continue;
      for (auto& [d, node] : *arr) {
        std::string dom = syntax::to_lower(d);
        if (auto e = dkim::domain_syntax_error(dom); !e.empty()) {
          error(*node, ctx, e + ", got \"" + d + "\"");
          continue;
        }
        c_.dkim_sign_domains.push_back(dom);
      }
    } else if (key == "key") {
      const auto* a = v.as_array();
      if (!a || !a->is_array_of_tables()) {
        wrong_type(v, "[dkim] key", "an array of tables ([[dkim.key]])");
        continue;
      }
      for (const toml::node& e : *a) {
        const auto* kt = e.as_table();
        if (!kt) continue;
        Config::DkimKey dk;
        const toml::node* file_node = nullptr;
        bool ok = true;
        for (auto&& [kk, kv] : *kt) {
          const std::string kkey(kk.str());
          const std::string kctx = "[[dkim.key]] " + kkey;
          if (kkey == "domain" || kkey == "selector") {
            auto s = get_string(kv, kctx);
            if (!s) { ok = false; continue; }
            std::string val = syntax::to_lower(*s);
            auto err = kkey == "domain" ? dkim::domain_syntax_error(val) : dkim::selector_syntax_error(val);
            if (!err.empty()) {
              error(kv, kctx, err + ", got \"" + *s + "\"");
              ok = false;
              continue;
            }
            (kkey == "domain" ? dk.domain : dk.selector) = val;
          } else if (kkey == "key_file") {
            auto p = get_path(kv, kctx);
            if (!p) { ok = false; continue; }
            dk.key_file = *p;
            file_node = &kv;
          } else {
            unknown_key(kk, "[[dkim.key]]");
            ok = false;
          }
        }
        if (!ok) continue;
        for (const char* req : {"domain", "selector", "key_file"}) {
          const bool missing = std::string(req) == "domain" ? dk.domain.empty()
                               : std::string(req) == "selector" ? dk.selector.empty()
                                                                : dk.key_file.empty();
          if (missing) {
            error(e, "[[dkim.key]]", std::string("missing required key '") + req + "'");
            ok = false;
          }
        }
        if (!ok) continue;
        for (const auto& other : c_.dkim_keys)
          if (other.domain == dk.domain && other.selector == dk.selector) {
            error(e, "[[dkim.key]]", "a second key for " + dk.selector + "._domainkey." + dk.domain);
            ok = false;
          }
        if (!ok) continue;
        // Load and check the key now: a key that does not load must stop the start (or the
        // reload), not surface as refused mail later. PEM keys are small: 64 KiB at most.
        const std::string kctx = "[[dkim.key]] key_file";
        std::ifstream in(dk.key_file, std::ios::binary);
        if (!in) {
          error(*file_node, kctx, "cannot read " + dk.key_file.string() + ": " + std::strerror(errno));
          continue;
        }
        std::string pem(64 * 1024 + 1, '\0');
        in.read(pem.data(), static_cast<std::streamsize>(pem.size()));
        if (in.bad()) {
          error(*file_node, kctx, "cannot read " + dk.key_file.string() + ": " + std::strerror(errno));
          continue;
        }
        pem.resize(static_cast<std::size_t>(in.gcount()));
        if (pem.size() > 64 * 1024) {
          error(*file_node, kctx, dk.key_file.string() + " is larger than 64 KiB: not a DKIM key");
          continue;
        }
        auto pk = dkim::PrivateKey::from_pem(pem);
        if (!pk) {
          error(*file_node, kctx, dk.key_file.string() + ": " + pk.error().message);
          continue;
        }
        dk.key = std::make_shared<const dkim::PrivateKey>(std::move(*pk));
        c_.dkim_keys.push_back(std::move(dk));
      }
    } else {
      unknown_key(k, "[dkim]");
    }
  }
}
// ---- end [dkim] ----------------------------------------------------------------------------

// ---- [[milter]] ------------------------------------------------------------------------------
namespace {
// "inet:IP:PORT", "inet:[IPv6]:PORT" (an IP literal: milters are local services, no DNS) or
// "unix:/absolute/path". Empty `why` on success.
std::string parse_milter_address(const std::string& a, Config::Milter& m) {
  if (a.rfind("unix:", 0) == 0) {
    std::string p = a.substr(5);
    if (p.empty() || p.front() != '/') return "a unix socket needs an absolute path (\"unix:/run/milter.sock\")";
    if (p.size() > 107) return "the unix socket path is longer than 107 bytes";
    m.host = p;
    return {};
  }
  if (a.rfind("inet:", 0) != 0 && a.rfind("inet6:", 0) != 0)
    return "expected \"inet:IP:PORT\" or \"unix:/path\"";
  std::string rest = a.substr(a.find(':') + 1);
  std::string host, port;
  if (!rest.empty() && rest.front() == '[') {
    auto e = rest.find("]:");
    if (e == std::string::npos) return "expected \"inet:[IPv6]:PORT\"";
    host = rest.substr(1, e - 1);
    port = rest.substr(e + 2);
  } else {
    auto c = rest.rfind(':');
    if (c == std::string::npos) return "expected \"inet:IP:PORT\"";
    host = rest.substr(0, c);
    port = rest.substr(c + 1);
  }
  unsigned char buf[16];
  if (::inet_pton(AF_INET, host.c_str(), buf) != 1 && ::inet_pton(AF_INET6, host.c_str(), buf) != 1)
    return "the host must be an IP address, got \"" + host + "\"";
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
      std::stoul(port) == 0 || std::stoul(port) > 65535)
    return "the port must be 1 to 65535, got \"" + port + "\"";
  m.host = host;
  m.port = static_cast<std::uint16_t>(std::stoul(port));
  return {};
}
}  // namespace

void Loader::milters(const toml::node& n) {
  const auto* a = n.as_array();
  if (!a || !a->is_array_of_tables()) {
    wrong_type(n, "milter", "an array of tables ([[milter]])");
    return;
  }
  for (const toml::node& e : *a) {
    const auto* t = e.as_table();
    if (!t) continue;
    Config::Milter m;
    bool ok = true;
    for (auto&& [k, v] : *t) {
      const std::string key(k.str());
      const std::string ctx = "[[milter]] " + key;
      if (key == "address") {
        auto s = get_string(v, ctx);
        if (!s) { ok = false; continue; }
        if (auto why = parse_milter_address(*s, m); !why.empty()) {
          error(v, ctx, why);
          ok = false;
          continue;
        }
        m.address = *s;
      } else if (key == "name") {
        auto s = get_string(v, ctx);
        if (!s || s->empty() || s->size() > 64) {
          if (s) error(v, ctx, "must be 1 to 64 characters");
          ok = false;
          continue;
        }
        m.name = *s;
      } else if (key == "on_failure") {
        if (auto x = get_enum(v, ctx, {"tempfail", "accept"})) m.accept_on_failure = *x == "accept";
        else ok = false;
      } else if (key == "timeout") {
        if (auto d = get_duration(v, ctx, std::chrono::seconds(1), std::chrono::seconds(100))) m.timeout = *d;
        else ok = false;
      } else {
        unknown_key(k, "[[milter]]");
        ok = false;
      }
    }
    if (ok && m.address.empty()) {
      error(e, "[[milter]]", "missing required key 'address'");
      ok = false;
    }
    if (m.name.empty()) m.name = m.address;
    if (ok) c_.milters.push_back(std::move(m));
  }
}
// ---- end [[milter]] --------------------------------------------------------------------------

// ---- [spf] ---------------------------------------------------------------------------------
// ---- [dmarc] -------------------------------------------------------------------------------
void Loader::dmarc(const toml::table& t) {
  for (auto&& [k, v] : t) {
    const std::string key(k.str());
    const std::string ctx = "[dmarc] " + key;
    if (key == "enabled") {
      if (auto b = get_bool(v, ctx)) c_.dmarc_enabled = *b;
    } else if (key == "action") {
      if (auto e = get_enum(v, ctx, {"none", "tag", "enforce"})) c_.dmarc_action = *e;
    } else if (key == "public_suffix_list") {
      if (auto p = get_path(v, ctx)) {
        std::error_code ec;
        if (!fs::is_regular_file(*p, ec))
          error(v, ctx, "no such file: " + p->string() + " (Debian package publicsuffix)");
        else
          c_.dmarc_public_suffix_list = *p;
      }
    } else {
      unknown_key(k, "[dmarc]");
    }
  }
}

void Loader::spf(const toml::table& t) {
  for (auto&& [k, v] : t) {
    const std::string key(k.str());
    const std::string ctx = "[spf] " + key;
    if (key == "enabled") {
      if (auto b = get_bool(v, ctx)) c_.spf_enabled = *b;
    } else if (key == "action") {
      if (auto e = get_enum(v, ctx, {"none", "tag", "quarantine", "reject"})) c_.spf_action = *e;
    } else {
      unknown_key(k, "[spf]");
    }
  }
}
// ---- end [spf] -----------------------------------------------------------------------------

void Loader::rate_limit(const toml::table& t) {
  for (auto&& [k, v] : t) {
    const std::string key(k.str());
    if (key != "rule") {
      unknown_key(k, "[rate_limit]");
      continue;
    }
    const auto* a = v.as_array();
    if (!a || !a->is_array_of_tables()) {
      wrong_type(v, "[rate_limit] rule", "an array of tables ([[rate_limit.rule]])");
      continue;
    }
    for (const toml::node& e : *a) {
      const auto* rt = e.as_table();
      if (!rt) continue;
      Config::RateRule r;
      bool ok = true;
      for (auto&& [rk, rv] : *rt) {
        const std::string rkey(rk.str());
        const std::string ctx = "[[rate_limit.rule]] " + rkey;
        if (rkey == "key") {
          if (auto e2 = get_enum(rv, ctx, {"ip", "user", "sender_domain"})) r.key = *e2;
          else ok = false;
        } else if (rkey == "messages") {
          if (auto i = get_int(rv, ctx, 0, 100000000)) r.messages = static_cast<std::uint64_t>(*i);
          else ok = false;
        } else if (rkey == "recipients") {
          if (auto i = get_int(rv, ctx, 0, 100000000)) r.recipients = static_cast<std::uint64_t>(*i);
          else ok = false;
        } else if (rkey == "window") {
          if (auto d = get_duration(rv, ctx, 1s, 24h * 31)) r.window = *d;
          else ok = false;
        } else {
          unknown_key(rk, "[[rate_limit.rule]]");
          ok = false;
        }
      }
      if (ok && r.messages == 0 && r.recipients == 0) {
        error(e, "[[rate_limit.rule]]", "needs messages or recipients (a limit above 0)");
        ok = false;
      }
      if (ok) c_.rate_rules.push_back(r);
    }
  }
}

void Loader::metrics(const toml::table& t) {
  for (auto&& [k, v] : t) {
    const std::string key(k.str());
    const std::string ctx = "[metrics] " + key;
    if (key != "listen") {
      unknown_key(k, "[metrics]");
      continue;
    }
    if (auto a = get_loopback_address(
            v, ctx, ": metrics are not for the world; put a proxy in front if they must travel"))
      c_.metrics_listen = *a;
  }
}

void Loader::auth(const toml::table& t) {
  const std::string sec = "[auth]";
  for (auto&& [k, v] : t) {
    const std::string key(k.str());
    const std::string ctx = sec + " " + key;
    if (key == "password_file") {
      if (auto p = get_path(v, ctx)) c_.auth_password_file = *p;
    } else if (key == "plaintext_on_loopback" || key == "received_user") {
      if (auto b = get_bool(v, ctx))
        (key == "received_user" ? c_.auth_received_user : c_.auth_plaintext_on_loopback) = *b;
    } else if (key == "failure_delay") {
      if (auto d = get_duration(v, ctx, 0s, 60s)) c_.auth_failure_delay = *d;
    } else if (key == "failure_window") {
      if (auto d = get_duration(v, ctx, 1s, 24h)) c_.auth_failure_window = *d;
    } else if (key == "max_failures") {
      if (auto i = get_int(v, ctx, 1, 1000)) c_.auth_max_failures = static_cast<int>(*i);
    } else {
      unknown_key(k, sec);
    }
  }
}

void Loader::routes(const toml::node& n) {
  const auto* a = n.as_array();
  if (!a || !a->is_array_of_tables()) {
    wrong_type(n, "route", "an array of tables ([[route]])");
    return;
  }
  for (const toml::node& e : *a) {
    const auto* t = e.as_table();
    if (!t) continue;
    Route r;
    bool have_domain = false, have_hop = false, ok = true;
    std::string tls = "may";
    for (auto&& [k, v] : *t) {
      const std::string key(k.str());
      const std::string ctx = "[[route]] " + key;
      if (key == "domain") {
        auto str = get_string(v, ctx);
        if (!str) { ok = false; continue; }
        std::string d = syntax::to_lower(*str);
        std::string bare = d.rfind("*.", 0) == 0 ? d.substr(2) : d;
        if (d != "*" && syntax::check_domain(bare)) {
          error(v, ctx, "must be a domain, \"*.domain\" or \"*\", got \"" + *str + "\"");
          ok = false;
          continue;
        }
        r.domain = d;
        have_domain = true;
      } else if (key == "next_hop") {
        auto str = get_string(v, ctx);
        if (!str) { ok = false; continue; }
        std::string why;
        auto hop = parse_next_hop(*str, why);
        if (!hop) {
          error(v, ctx, "invalid next hop \"" + *str + "\": " + why);
          ok = false;
          continue;
        }
        r.host = hop->host;
        r.port = hop->port;
        r.mx = hop->mx;
        r.line = static_cast<int>(v.source().begin.line);
        have_hop = true;
      } else if (key == "tls") {
        if (auto e2 = get_enum(v, ctx, {"none", "may", "encrypt", "verify"})) tls = *e2;
        else ok = false;
      } else if (key == "tls_name") {
        auto str = get_string(v, ctx);
        if (!str) { ok = false; continue; }
        std::string d = syntax::to_lower(*str);
        if (syntax::check_domain(d) && !syntax::canonical_ip(d)) {
          error(v, ctx, "must be a host name or an IP address, got \"" + *str + "\"");
          ok = false;
          continue;
        }
        r.tls_name = d;
      } else if (key == "rate") {
        auto str = get_string(v, ctx);
        if (!str) { ok = false; continue; }
        if (auto rt = parse_rate(*str)) r.rate = *rt;
        else {
          error(v, ctx, "must be a rate like \"10/s\", \"600/m\" or \"3600/h\", got \"" + *str + "\"");
          ok = false;
        }
      } else {
        unknown_key(k, "[[route]]");
        ok = false;
      }
    }
    if (!have_domain || !have_hop) {
      error(e, "[[route]]", std::string("needs ") + (!have_domain ? "domain" : "next_hop"));
      continue;
    }
    r.tls = tls;
    if (ok) c_.routes.push_back(std::move(r));
  }
}

void Loader::dns(const toml::table& t) {
  for (auto&& [k, v] : t) {
    const std::string key(k.str());
    const std::string ctx = "[dns] " + key;
    if (key == "upstream") {
      auto str = get_string(v, ctx);
      if (!str) continue;
      // "IP@port", "IP:port" (IPv4) or "IP"
      std::string ip = *str, port;
      if (auto at = str->find('@'); at != std::string::npos) {
        ip = str->substr(0, at);
        port = str->substr(at + 1);
      } else if (auto hp = parse_host_port(*str)) {
        ip = hp->first;
        port = std::to_string(hp->second);
      }
      bool ok = syntax::canonical_ip(ip).has_value();
      if (!port.empty()) {
        for (char ch : port) ok = ok && ch >= '0' && ch <= '9';
        ok = ok && port.size() <= 5 && std::stoi(port) > 0 && std::stoi(port) < 65536;
      }
      if (!ok) {
        error(v, ctx, "must be an IP address with an optional port (\"127.0.0.1@5353\"), got \"" +
                          *str + "\"");
        continue;
      }
      c_.dns_upstream = port.empty() ? ip : ip + "@" + port;
    } else if (key == "ipv4" || key == "ipv6" || key == "prefer_ipv6") {
      if (auto b = get_bool(v, ctx))
        (key == "ipv4" ? c_.dns_ipv4 : key == "ipv6" ? c_.dns_ipv6 : c_.dns_prefer_ipv6) = *b;
    } else {
      unknown_key(k, "[dns]");
    }
  }
  if (!c_.dns_ipv4 && !c_.dns_ipv6) error(t.source(), "[dns]: ipv4 and ipv6 cannot both be false");
}

// Checks every alias target and looks for loops; fills c_.aliases.
void Loader::resolve_aliases() {
  std::set<std::string> boxes(c_.mailboxes.begin(), c_.mailboxes.end());
  std::map<std::string, std::vector<std::string>> out;
  for (auto& [name, src] : alias_src_) {
    const std::string ctx = "[local.aliases] " + std::string(src.key->str());
    if (boxes.count(name)) {
      error(src.key->source(), ctx + ": \"" + name +
                                   "\" is both a mailbox and an alias; remove one of them");
      continue;
    }
    std::vector<std::string> targets;
    for (auto& [t, node] : src.targets) {
      if (t.find('@') != std::string::npos) {
        if (auto p = syntax::check_address(t)) {
          error(*node, ctx, "target \"" + t + "\" is not a valid address: " + *p);
          continue;
        }
        auto at = t.rfind('@');
        targets.push_back(t.substr(0, at + 1) + syntax::to_lower(t.substr(at + 1)));
        continue;
      }
      std::string lower = syntax::to_lower(t);
      if (lower == "postmaster" || boxes.count(lower) || alias_src_.count(lower)) {
        targets.push_back(lower);
      } else {
        error(*node, ctx, "target \"" + t +
                              "\" is neither a mailbox, an alias nor an address user@domain");
      }
    }
    out.emplace(name, std::move(targets));
  }

  // Loop detection: depth-first search over alias → alias edges (white/grey/black).
  std::map<std::string, int> color;  // 0 unvisited, 1 on the stack, 2 done
  std::vector<std::string> stack;
  std::function<void(const std::string&)> visit = [&](const std::string& a) {
    color[a] = 1;
    stack.push_back(a);
    auto it = out.find(a);
    if (it != out.end()) {
      for (const std::string& t : it->second) {
        if (!out.count(t)) continue;  // mailbox, postmaster or address
        if (color[t] == 1) {
          std::string path;
          auto from = std::find(stack.begin(), stack.end(), t);
          for (auto s = from; s != stack.end(); ++s) path += *s + " -> ";
          path += t;
          const AliasSrc& src = alias_src_.at(a);
          error(src.key->source(),
                "[local.aliases] " + std::string(src.key->str()) + ": alias loop " + path);
        } else if (color[t] == 0) {
          visit(t);
        }
      }
    }
    stack.pop_back();
    color[a] = 2;
  };
  for (auto& [name, targets] : out)
    if (color[name] == 0) visit(name);

  c_.aliases = std::move(out);
}

std::optional<Config> Loader::run(std::string_view text) {
  std::size_t before = diags_.size();
  if (text.size() > kMaxFileSize) {
    diags_.push_back(Diagnostic{name_, 0, 0,
                                "file is larger than " + std::to_string(kMaxFileSize) + " bytes"});
    return std::nullopt;
  }
  toml::table root;
  try {
    root = toml::parse(text, name_);
  } catch (const toml::parse_error& e) {
    diags_.push_back(Diagnostic{name_, static_cast<int>(e.source().begin.line),
                                static_cast<int>(e.source().begin.column),
                                std::string(e.description())});
    return std::nullopt;
  }

  for (auto&& [k, v] : root) {
    const std::string key(k.str());
    if (key == "server") {
      if (const auto* t = get_table(v, "[server]")) server(*t);
    } else if (key == "listener") {
      listeners(v);
    } else if (key == "limits") {
      if (const auto* t = get_table(v, "[limits]")) limits(*t);
    } else if (key == "local") {
      if (const auto* t = get_table(v, "[local]")) local(*t);
    } else if (key == "relay") {
      if (const auto* t = get_table(v, "[relay]")) relay(*t);
    } else if (key == "route") {
      routes(v);
    } else if (key == "dns") {
      if (const auto* t = get_table(v, "[dns]")) dns(*t);
    } else if (key == "virtual") {
      virtuals(v);
    } else if (key == "tls") {
      if (const auto* t = get_table(v, "[tls]")) tls(*t);
    } else if (key == "auth") {
      if (const auto* t = get_table(v, "[auth]")) auth(*t);
    } else if (key == "admin") {
      if (const auto* t = get_table(v, "[admin]")) admin(*t);
    } else if (key == "metrics") {
      if (const auto* t = get_table(v, "[metrics]")) metrics(*t);
    } else if (key == "dnsbl") {
      if (const auto* t = get_table(v, "[dnsbl]")) dnsbl(*t);
    } else if (key == "spf") {  // [spf]
      if (const auto* t = get_table(v, "[spf]")) spf(*t);
    } else if (key == "dmarc") {  // [dmarc]
      if (const auto* t = get_table(v, "[dmarc]")) dmarc(*t);
    } else if (key == "rate_limit") {
      if (const auto* t = get_table(v, "[rate_limit]")) rate_limit(*t);
    } else if (key == "dkim") {  // [dkim]
      if (const auto* t = get_table(v, "[dkim]")) dkim(*t);
    } else if (key == "milter") {  // [[milter]]
      milters(v);
    } else if (v.is_table() || v.is_array_of_tables()) {
      error(k.source(), "unknown section [" + key +
                            "] (known: [server], [[listener]], [limits], [local], [relay], "
                            "[[route]], [dns], [tls], [auth], [[virtual]], [admin], [metrics], [dnsbl], [rate_limit], [dkim], [spf], [dmarc], [[milter]])");
    } else {
      error(k.source(), "unknown key '" + key + "' at top level (keys belong in a [section])");
    }
  }

  resolve_aliases();

  if (c_.retry_initial > c_.retry_max) {
    const toml::node* n = retry_max_node_ ? retry_max_node_ : retry_initial_node_;
    if (n)
      error(*n, "[server] retry_max", "must not be smaller than retry_initial (" +
                                          fmt_duration(c_.retry_initial) + " > " +
                                          fmt_duration(c_.retry_max) + ")");
  }
  if (hostname_set_ && !domains_set_) c_.local_domains = default_domains(c_.hostname);
  apply_data_dir(c_, c_.data_dir);

  if (diags_.size() != before) {
    std::stable_sort(diags_.begin() + static_cast<std::ptrdiff_t>(before), diags_.end(),
                     [](const Diagnostic& a, const Diagnostic& b) {
                       return std::pair(a.line, a.column) < std::pair(b.line, b.column);
                     });
    return std::nullopt;
  }
  return std::move(c_);
}

}  // namespace

Config defaults() {
  Config c;
  c.hostname = system_hostname();
  c.local_domains = default_domains(c.hostname);
  c.mailboxes = {"postmaster", "demo"};
  // SMTP (STARTTLS), submission (STARTTLS, RFC 6409) and submissions (implicit TLS, RFC 8314)
  // on loopback ports anyone may use; production configs use 25, 587 and 465.
  c.listeners = {Listener{},
                 Listener{"127.0.0.1", 5870, "submission", "starttls", true},
                 Listener{"127.0.0.1", 4650, "submissions", "implicit", true}};
  // The demo configuration (make run) may run as root: it listens on loopback ports only.
  c.run_as_root = true;
  apply_data_dir(c, "var");
  return c;
}

std::optional<MapData> parse_map(std::string_view text, const std::string& name,
                                 std::vector<Diagnostic>& diags) {
  MapData m;
  const std::size_t before = diags.size();
  int lineno = 0;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t nl = text.find('\n', pos);
    std::string_view line = text.substr(pos, nl == std::string_view::npos ? text.size() - pos : nl - pos);
    pos = nl == std::string_view::npos ? text.size() : nl + 1;
    ++lineno;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    auto trim = [](std::string_view x) {
      while (!x.empty() && (x.front() == ' ' || x.front() == '\t')) x.remove_prefix(1);
      while (!x.empty() && (x.back() == ' ' || x.back() == '\t')) x.remove_suffix(1);
      return x;
    };
    line = trim(line);
    if (line.empty() || line.front() == '#') continue;
    if (line.size() > 4096) {
      diags.push_back(Diagnostic{name, lineno, 0, "line longer than 4096 characters"});
      continue;
    }
    auto colon = line.find(':');
    std::string key = syntax::to_lower(std::string(trim(line.substr(0, colon))));
    if (auto p = syntax::check_mailbox_name(key)) {
      diags.push_back(Diagnostic{name, lineno, 0, "\"" + key + "\" is not a valid name: " + *p});
      continue;
    }
    if (colon == std::string_view::npos) {
      m.mailboxes.push_back(key);
      continue;
    }
    std::vector<std::string> targets;
    std::string_view rest = line.substr(colon + 1);
    bool good = true;
    while (!rest.empty()) {
      auto comma = rest.find(',');
      std::string tgt(trim(rest.substr(0, comma)));
      rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
      if (tgt.empty()) continue;
      auto p = tgt.find('@') != std::string::npos ? syntax::check_address(tgt)
                                                  : syntax::check_mailbox_name(syntax::to_lower(tgt));
      if (p) {
        diags.push_back(Diagnostic{name, lineno, 0, "target \"" + tgt + "\": " + *p});
        good = false;
        break;
      }
      targets.push_back(tgt.find('@') != std::string::npos ? tgt : syntax::to_lower(tgt));
    }
    if (!good) continue;
    if (targets.empty()) {
      diags.push_back(Diagnostic{name, lineno, 0, "alias \"" + key + "\" has no targets"});
      continue;
    }
    m.aliases[key] = std::move(targets);
  }
  if (diags.size() != before) return std::nullopt;
  return m;
}

std::optional<MapData> load_map(const std::filesystem::path& file, std::vector<Diagnostic>& diags) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    diags.push_back(Diagnostic{file.string(), 0, 0, "cannot read map file"});
    return std::nullopt;
  }
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (text.size() > kMaxFileSize) {
    diags.push_back(Diagnostic{file.string(), 0, 0, "map file is too large"});
    return std::nullopt;
  }
  return parse_map(text, file.string(), diags);
}

TlsFiles tls_files(const Config& c) {
  TlsFiles f;
  if (c.tls_cert) {
    f.certs.push_back(*c.tls_cert);
    for (const auto& e : c.tls_extra) f.certs.push_back(e);
    return f;
  }
  f.self_signed = true;
  f.certs.push_back(CertPair{c.data_dir / "tls" / "self-signed.crt", c.data_dir / "tls" / "self-signed.key"});
  return f;
}

bool tls_wanted(const Config& c) {
  for (const auto& l : c.listeners)
    if (l.tls != "none") return true;
  return false;
}

void apply_data_dir(Config& c, std::filesystem::path data_dir) {
  c.data_dir = std::move(data_dir);
  if (!c.spool_dir_explicit) c.spool_dir = c.data_dir / "spool";
  if (!c.mail_dir_explicit) c.mail_dir = c.data_dir / "mail";
}

std::optional<Config> load_string(std::string_view toml, const std::string& name,
                                  std::vector<Diagnostic>& diags) {
  try {
    Loader l(name, fs::path(), diags);
    return l.run(toml);
  } catch (const std::exception& e) {  // allocation failure and the like: never escape
    diags.push_back(Diagnostic{name, 0, 0, std::string("internal error: ") + e.what()});
    return std::nullopt;
  }
}

std::optional<Config> load_file(const std::filesystem::path& file,
                                std::vector<Diagnostic>& diags) {
  const std::string name = file.string();
  std::error_code ec;
  auto st = fs::status(file, ec);
  if (ec) {
    diags.push_back(Diagnostic{name, 0, 0, "cannot read: " + ec.message()});
    return std::nullopt;
  }
  if (!fs::is_regular_file(st)) {
    diags.push_back(Diagnostic{name, 0, 0, "cannot read: not a regular file"});
    return std::nullopt;
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    diags.push_back(Diagnostic{name, 0, 0, std::string("cannot read: ") + std::strerror(errno)});
    return std::nullopt;
  }
  std::string text;
  char buf[8192];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    text.append(buf, static_cast<std::size_t>(in.gcount()));
    if (text.size() > kMaxFileSize) {
      diags.push_back(Diagnostic{
          name, 0, 0, "file is larger than " + std::to_string(kMaxFileSize) + " bytes"});
      return std::nullopt;
    }
  }
  if (in.bad()) {
    diags.push_back(Diagnostic{name, 0, 0, "cannot read: I/O error"});
    return std::nullopt;
  }
  fs::path abs = fs::absolute(file, ec);
  if (ec) {
    diags.push_back(Diagnostic{name, 0, 0, "cannot resolve path: " + ec.message()});
    return std::nullopt;
  }
  try {
    Loader l(name, abs.parent_path(), diags);
    auto c = l.run(text);
    if (c) c->source = file;
    return c;
  } catch (const std::exception& e) {
    diags.push_back(Diagnostic{name, 0, 0, std::string("internal error: ") + e.what()});
    return std::nullopt;
  }
}

namespace {

// Whether `dir` can serve as a directory carrier creates or uses. `will_exist` is a directory
// that is known to be created first (data_dir for the derived spool_dir/mail_dir).
void check_dir(const std::string& file, const std::string& key, const fs::path& dir,
               const std::optional<fs::path>& will_exist, std::vector<Diagnostic>& out) {
  auto bad = [&](std::string msg) {
    out.push_back(Diagnostic{file, 0, 0, key + ": " + msg});
  };
  if (dir.empty()) {
    bad("is empty");
    return;
  }
  std::error_code ec;
  fs::path abs = fs::absolute(dir, ec).lexically_normal();
  if (ec) {
    bad("cannot resolve '" + dir.string() + "': " + ec.message());
    return;
  }
  auto st = fs::status(abs, ec);
  if (!ec && fs::exists(st)) {
    if (!fs::is_directory(st)) {
      bad("'" + dir.string() + "' exists but is not a directory");
    } else if (access(abs.c_str(), W_OK | X_OK) != 0) {
      bad("directory '" + dir.string() + "' is not writable: " + std::strerror(errno));
    }
    return;
  }
  if (ec && ec != std::errc::no_such_file_or_directory) {
    bad("cannot check '" + dir.string() + "': " + ec.message());
    return;
  }
  fs::path parent = abs.parent_path();
  if (abs.has_filename() == false) parent = abs.parent_path().parent_path();
  if (will_exist && parent == *will_exist) return;  // created just before
  auto pst = fs::status(parent, ec);
  if (ec || !fs::exists(pst)) {
    bad("parent directory '" + parent.string() + "' of '" + dir.string() + "' does not exist");
  } else if (!fs::is_directory(pst)) {
    bad("parent '" + parent.string() + "' of '" + dir.string() + "' is not a directory");
  } else if (access(parent.c_str(), W_OK | X_OK) != 0) {
    bad("cannot create '" + dir.string() + "': parent directory '" + parent.string() +
        "' is not writable: " + std::strerror(errno));
  }
}

}  // namespace

std::vector<Diagnostic> validate_runtime(const Config& c) {
  std::vector<Diagnostic> out;
  const std::string file = c.source ? c.source->string() : std::string("(built-in configuration)");
  check_dir(file, "[server] data_dir", c.data_dir, std::nullopt, out);
  std::optional<fs::path> data_abs;
  if (out.empty()) {
    std::error_code ec;
    fs::path a = fs::absolute(c.data_dir, ec).lexically_normal();
    if (!ec) {
      if (!a.has_filename()) a = a.parent_path();
      data_abs = a;
    }
  }
  check_dir(file, "[server] spool_dir", c.spool_dir, data_abs, out);
  check_dir(file, "[local] mail_dir", c.mail_dir, data_abs, out);

  if (c.listeners.empty())
    out.push_back(Diagnostic{file, 0, 0, "no listener configured"});
  std::set<std::pair<std::string, std::uint16_t>> seen;
  for (const Listener& l : c.listeners) {
    auto canon = syntax::canonical_ip(l.address);
    if (!canon) {
      out.push_back(Diagnostic{file, 0, 0, "listener address '" + l.address +
                                               "' is not an IP address"});
      continue;
    }
    if (l.port != 0 && !seen.emplace(*canon, l.port).second) {
      std::string shown = canon->find(':') != std::string::npos ? "[" + *canon + "]" : *canon;
      out.push_back(Diagnostic{file, 0, 0, "duplicate listener " + shown + ":" +
                                               std::to_string(l.port)});
    }
  }
  if (c.hostname.empty()) out.push_back(Diagnostic{file, 0, 0, "[server] hostname is empty"});
  return out;
}

std::optional<Route> parse_next_hop(std::string_view text, std::string& why) {
  Route r;
  std::string_view t = text;
  if (!t.empty() && t.front() == '[') {
    auto close = t.find(']');
    if (close == std::string_view::npos) {
      why = "missing ']'";
      return std::nullopt;
    }
    r.host.assign(t.substr(1, close - 1));
    r.mx = false;
    t.remove_prefix(close + 1);
  } else {
    auto colon = t.rfind(':');
    if (colon != std::string_view::npos && t.find(':') != colon) colon = std::string_view::npos;
    r.host.assign(t.substr(0, colon == std::string_view::npos ? t.size() : colon));
    t.remove_prefix(colon == std::string_view::npos ? t.size() : colon);
  }
  if (!t.empty()) {
    if (t.front() != ':' || t.size() < 2 || t.size() > 6) {
      why = "expected :port after the host";
      return std::nullopt;
    }
    unsigned port = 0;
    for (char ch : t.substr(1)) {
      if (ch < '0' || ch > '9') {
        why = "the port must be a number";
        return std::nullopt;
      }
      port = port * 10 + static_cast<unsigned>(ch - '0');
    }
    if (port == 0 || port > 65535) {
      why = "the port must be 1..65535";
      return std::nullopt;
    }
    r.port = static_cast<std::uint16_t>(port);
  }
  r.host = syntax::to_lower(r.host);
  if (r.host.empty()) {
    why = "no host";
    return std::nullopt;
  }
  if (!syntax::canonical_ip(r.host) && syntax::check_domain(r.host)) {
    why = "\"" + r.host + "\" is neither an IP address nor a host name";
    return std::nullopt;
  }
  return r;
}


}  // namespace carrier::config
