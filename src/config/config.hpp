// carrier config: the whole configuration as plain data, its built-in defaults, and the TOML
// loader with strict validation (unknown keys, wrong types, bad addresses, missing
// directories, each reported as file:line: message). Parses UNTRUSTED-ish input (operator
// files): every error is reported, nothing is silently ignored.
#pragma once
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/rate.hpp"

namespace carrier::dkim {
class PrivateKey;  // [dkim]
}

namespace carrier::config {

struct Listener {
  std::string address = "127.0.0.1";  // IPv4 or IPv6 literal (no brackets)
  std::uint16_t port = 2525;          // 0: any free port (tests)
  std::string name = "smtp";          // shown in logs
  std::string tls = "starttls";       // "starttls" | "implicit" (RFC 8314) | "none"
  bool submission = false;            // RFC 6409: AUTH required before MAIL
};

struct CertPair {
  std::filesystem::path cert_file, key_file;
};

struct Limits {  // defaults mirror session::Limits; see docs/configuration.md
  std::size_t max_command_line = 512;
  std::uint64_t max_message_size = 50ull << 20;
  std::size_t max_recipients = 1000;
  int max_errors = 20;
  int max_received_headers = 100;
  int max_connections = 1000;          // all clients together; more → 421 4.7.0
  int max_connections_per_ip = 100;    // one client address; more → 421 4.7.0
  std::chrono::seconds command_timeout{300};  // RFC 5321 4.5.3.2.7 (server timeout: 5 min)
  std::chrono::seconds data_timeout{600};     // whole DATA/BDAT transfer; 4.5.3.2.6 (10 min)
  // Free space the spool's file system keeps: MAIL is refused with 452 4.3.1 when less than
  // this (plus the SIZE= the client announced) is free (RFC 1870 6.1). 0: only SIZE= counts.
  std::uint64_t min_free_space = 0;
};

// A relay route (RFC 5321 5.1 overridden): mail for `domain` goes to `host` instead of the
// domain's own MX. domain: "example.com" (exact), "*.example.com" (subdomains only) or "*".
struct Route {
  std::string domain;
  std::string host;        // a host name or an IP literal (no brackets)
  std::uint16_t port = 0;  // 0: [relay] port
  bool mx = true;          // true: look up the MX of `host`; false ("[host]"): connect directly
  std::string tls = "may"; // "none" | "may" | "encrypt" | "verify"
  std::string tls_name;    // "verify": the name the certificate must match (default: host)
  double rate = 0;         // messages per second to this next hop (0: [relay] rate_per_destination)
  int line = 0;            // where it was configured (diagnostics)
};

struct Diagnostic {
  std::string file;  // path as given
  int line = 0;      // 1-based, 0 when not about one line
  int column = 0;
  std::string message;
  std::string str() const;  // "file:line:col: message" (or "file: message")
};

// How mail for local mailboxes is delivered ([local] and each [[virtual]] domain).
struct DeliveryMethod {
  std::string method = "maildir";          // "maildir" | "lmtp" | "pipe"
  std::string lmtp;                        // "unix:/path" or "IP:port" / "[IPv6]:port"
  std::vector<std::string> pipe_command;   // argv; argv[0] an absolute path
  std::chrono::seconds pipe_timeout{60};
  std::string maildir_owner;               // Maildir: give new files to this user ("" keep)
};

// A map file: one entry per line, "name" (a mailbox) or "name: target, target" (an alias);
// '#' comments. Errors as "FILE:LINE: message", all of them.
struct MapData {
  std::vector<std::string> mailboxes;
  std::map<std::string, std::vector<std::string>> aliases;
};
std::optional<MapData> parse_map(std::string_view text, const std::string& name,
                                 std::vector<Diagnostic>& diags);
std::optional<MapData> load_map(const std::filesystem::path& file, std::vector<Diagnostic>& diags);

// A hosted domain with its own mailboxes (RFC 5321 2.3.5 "domain"; users NAME@DOMAIN).
struct VirtualDomain {
  std::string domain;                      // lower case
  std::vector<std::string> mailboxes;      // from the config and the map file
  std::map<std::string, std::vector<std::string>> aliases;
  std::string catch_all;                   // a mailbox, alias or address; "" none
  std::filesystem::path map_file;          // "" none; re-read on reload / change
  MapData map;                             // what map_file held when last read
  std::int64_t map_stamp = 0;              // its modification time then (reload checks)
  DeliveryMethod delivery;
  int line = 0;
};


// "[host]:port" / "[host]" (no MX lookup) or "host:port" / "host" (MX lookup of host).
std::optional<Route> parse_next_hop(std::string_view text, std::string& why);

struct Config {
  // [server]
  std::string hostname;                   // default: the system host name
  std::filesystem::path data_dir = "var"; // spool = data_dir/spool, mail = data_dir/mail
  std::filesystem::path spool_dir;        // default data_dir/spool
  std::string log_format = "text";        // "text" | "json"
  std::string log_level = "info";         // trace debug info warn error
  std::string bare_newline = "reject";    // "reject" | "normalize" (see proto/data.hpp)
  std::string sync_mode = "file";         // "file" | "filesystem" (see spool/spool.hpp SyncMode)
  int delivery_threads = 4;
  std::chrono::seconds retry_initial{300};  // delivery temp-failure retry (doubles)
  std::chrono::seconds retry_max{3600};
  std::chrono::seconds max_queue_lifetime{5 * 24 * 3600};  // then bounced (4.4.7)
  std::chrono::seconds delay_warning{4 * 3600};  // one delay DSN after this; 0: none
  int max_bounces_per_minute = 60;               // DSNs generated per minute at most
  std::chrono::seconds trace_retention{7 * 24 * 3600};  // carrier queue trace history
  // Started as root: after binding the listeners and reading keys, carrier gives its data
  // directories to this user and group and switches to them. "" stays as started.
  std::string user, group;
  // Started as root without `user`: refuse to run unless this says root is intended (the
  // built-in demo configuration on loopback ports sets it).
  bool run_as_root = false;
  std::vector<Listener> listeners;        // [[listener]]; default one on 127.0.0.1:2525
  bool listeners_from_command_line = false;  // --listen replaced them (a reload keeps it)
  Limits limits;                          // [limits]

  // [local]
  std::vector<std::string> local_domains;     // default: "localhost" and hostname
  std::filesystem::path mail_dir;             // default data_dir/mail; Maildir = mail_dir/USER/
  std::vector<std::string> mailboxes;         // default: "postmaster", "demo"
  std::map<std::string, std::vector<std::string>> aliases;  // name → local names / addresses
  std::string recipient_delimiter = "+";      // user+tag → user; "" disables
  DeliveryMethod local_delivery;              // [local] delivery, lmtp, pipe_command, pipe_timeout

  // [[virtual]] hosted domains with their own users
  std::vector<VirtualDomain> virtual_domains;

  // [relay]
  std::vector<std::string> trusted_networks;  // CIDRs allowed to relay; default none
  std::uint16_t relay_port = 25;              // port for MX deliveries
  std::optional<Route> smarthost;             // all relayed mail (after [[route]]s)
  std::vector<Route> routes;                  // [[route]], first match wins
  int relay_max_connections = 100;            // outgoing SMTP connections in total
  int relay_max_per_destination = 10;         // ... to one next hop
  double relay_rate_per_destination = 0;      // messages per second per next hop; 0: unlimited
  std::chrono::seconds connect_timeout{30};
  // Waits for the next hop's replies (RFC 5321 4.5.3.2): greeting, EHLO, MAIL, RCPT and DATA
  // (default 5 min; 2 min for DATA's 354), and for each piece of the content and the reply
  // after it (default 3 min / 10 min). Unset: the RFC's values.
  std::optional<std::chrono::seconds> relay_command_timeout;
  std::optional<std::chrono::seconds> relay_data_timeout;

  std::filesystem::path relay_tls_ca_file;    // CA bundle for tls = "verify"; empty: system store

  // [tls] server certificates; none configured: a self-signed one in data_dir/tls
  std::optional<CertPair> tls_cert;           // cert_file + key_file
  std::vector<CertPair> tls_extra;            // chosen by SNI

  // [auth] SMTP AUTH on submission listeners (RFC 4954, RFC 6409)
  std::filesystem::path auth_password_file;   // "user:hash[:senders]" lines; empty: no users
  bool auth_plaintext_on_loopback = false;
  std::chrono::seconds auth_failure_delay{2};
  int auth_max_failures = 5;
  std::chrono::seconds auth_failure_window{900};
  bool auth_received_user = false;

  // [admin] the operator API: always DATA_DIR/admin.sock; optionally loopback TCP + token
  std::string admin_listen;   // "127.0.0.1:9926"; "" none
  std::string admin_token;    // required with admin_listen

  // [metrics] GET /metrics (Prometheus) and /healthz on a loopback address; "" off
  std::string metrics_listen;

  // [rate_limit] rules: messages and recipients per window, per key (docs/defence.md)
  struct RateRule {
    std::string key = "ip";          // "ip" | "user" | "sender_domain"
    std::uint64_t messages = 0;      // 0: no message limit
    std::uint64_t recipients = 0;    // 0: no recipient limit
    std::chrono::seconds window{3600};
  };
  std::vector<RateRule> rate_rules;

  // [dnsbl] DNS block/allow lists of client IPs (RFC 5782; docs/defence.md "DNSBL")
  struct DnsblList {
    std::string zone;
    double weight = 1.0;               // negative: allow list
    std::vector<std::string> returns;  // answer codes that count; empty: any 127.0.0.0/8
    std::string message;               // reply text template ($ip, $zone, $text)
    bool check_helo = true, check_sender = true;  // domain lists: which names are looked up
  };
  std::vector<DnsblList> dnsbl_lists;  // [[dnsbl.list]]; none: no lookups
  std::vector<DnsblList> dnsbl_domain_lists;  // [[dnsbl.domain_list]] (RHSBL): HELO, sender domain
  double dnsbl_threshold = 1.0;
  std::string dnsbl_action = "reject";  // "reject" (554 5.7.1 at RCPT) | "tag" (header)

  // ---- [dkim] (docs/defence.md "DKIM") ----
  // Signing keys, loaded and checked when the configuration is loaded (check-config, reload).
  struct DkimKey {
    std::string domain;    // d=, lowercase: signs mail whose From: domain is this or below it
    std::string selector;  // s=
    std::filesystem::path key_file;
    std::shared_ptr<const dkim::PrivateKey> key;
  };
  std::vector<DkimKey> dkim_keys;               // [[dkim.key]]
  std::vector<std::string> dkim_sign_domains;   // mail from these (and below) must be signed
  bool dkim_verify = false;                     // check signatures of incoming mail
  // ---- end [dkim] ----

  // ---- [spf] SPF check of MAIL FROM (HELO for the null sender) before the commit (RFC 7208;
  // docs/defence.md "SPF"). action: "none" (log only) | "tag" (Authentication-Results:) |
  // "quarantine" (also: a fail is held in the queue) | "reject" (also 550 5.7.23 on fail,
  // 451 4.7.24 on temperror, RFC 7372)
  bool spf_enabled = false;
  std::string spf_action = "tag";
  // ---- end [spf] ----

  // ---- [dmarc] DMARC policy check of the From: domain, from the spf and dkim results
  // (RFC 7489; docs/defence.md "DMARC"). action: "none" (log only) | "tag"
  // (Authentication-Results:) | "enforce" (also p=reject → 550 5.7.1, p=quarantine → held)
  bool dmarc_enabled = false;
  std::string dmarc_action = "tag";
  std::filesystem::path dmarc_public_suffix_list = "/usr/share/publicsuffix/public_suffix_list.dat";
  // ---- end [dmarc] ----

  // ---- [[milter]] (docs/defence.md "Milters"): Content stages, in the order given ----
  struct Milter {
    std::string name;                       // for logs; default: the address
    std::string address;                    // "inet:IP:PORT", "inet:[IPv6]:PORT" or "unix:/path"
    std::string host;                       // inet: the IP address; unix: the socket path
    std::uint16_t port = 0;                 // inet only
    bool accept_on_failure = false;         // on_failure = "accept" | "tempfail" (default)
    std::chrono::seconds timeout{30};       // connect and each reply; 1 s to 100 s
  };
  std::vector<Milter> milters;
  // ---- end [[milter]] ----

  // [dns]
  std::string dns_upstream;   // "127.0.0.1@5353" forwarder; empty: /etc/resolv.conf
  bool dns_ipv4 = true, dns_ipv6 = true, dns_prefer_ipv6 = false;

  std::optional<std::filesystem::path> source;  // file it came from, if any

  // True when the file set spool_dir / mail_dir itself; otherwise they follow data_dir
  // (see apply_data_dir).
  bool spool_dir_explicit = false;
  bool mail_dir_explicit = false;
};


// The built-in default configuration (used when no file is given). hostname = system name.
Config defaults();

// Loads and validates a TOML file on top of defaults(). On success diags is empty. On failure,
// every error found is in diags (not just the first) and the result is nullopt.
std::optional<Config> load_file(const std::filesystem::path& file, std::vector<Diagnostic>& diags);
// Same for text already in memory (tests); `name` is used in diagnostics.
std::optional<Config> load_string(std::string_view toml, const std::string& name,
                                  std::vector<Diagnostic>& diags);
// Checks that make sense only after command-line overrides (directories creatable, ports).
std::vector<Diagnostic> validate_runtime(const Config& c);

// The server certificates to load: [tls] cert_file/key_file and extra_certificates, or the
// self-signed pair in data_dir/tls (self_signed = true) when none is configured.
struct TlsFiles {
  std::vector<CertPair> certs;
  bool self_signed = false;
};
TlsFiles tls_files(const Config& c);
// True when some listener uses TLS (starttls or implicit).
bool tls_wanted(const Config& c);

// Sets data_dir (e.g. from --data-dir) and recomputes spool_dir = data_dir/spool and
// mail_dir = data_dir/mail unless the file set them explicitly.
void apply_data_dir(Config& c, std::filesystem::path data_dir);

// "IPv4:port" or "[IPv6]:port" (port 0..65535) → {address without brackets, port}. The address
// must be an IP literal. nullopt when malformed; the second overload also says why.
std::optional<std::pair<std::string, std::uint16_t>> parse_host_port(std::string_view text);
std::optional<std::pair<std::string, std::uint16_t>> parse_host_port(std::string_view text,
                                                                     std::string& why);

// Integer seconds followed by a unit: "90s", "5m", "1h", "2d". nullopt when malformed or out of
// range (no overflow).
std::optional<std::chrono::seconds> parse_duration(std::string_view text);
// Integer bytes followed by K, M or G (powers of 1024; lower case accepted): "64K", "50M".
// nullopt when malformed or larger than 1 TiB.
std::optional<std::uint64_t> parse_size(std::string_view text);

}  // namespace carrier::config
