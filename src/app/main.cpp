// carrier: the command line. `carrier serve`, `carrier check-config FILE`, `carrier passwd`,
// `carrier reload`, `carrier doctor`, `carrier dkim`, `--version`.
#include <CLI/CLI.hpp>
#include <malloc.h>
#include <signal.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>

#include "app/sendmail.hpp"
#include "admin/admin.hpp"
#include "app/dkim_cmd.hpp"
#include "app/queue_cmd.hpp"
#include "auth/password.hpp"
#include "config/config.hpp"
#include "doctor/doctor.hpp"
#include "server/server.hpp"

namespace {

// glibc gives the free memory at the top of a heap back to the kernel once it exceeds the trim
// threshold (128 KiB, raised on the fly by large frees). With one session at a time, each
// message's 64 KiB buffers were freed at the top of the main heap, so every message shrank the
// heap with brk and grew it again: 2.1 brk calls per message, each a TLB shootdown of the other
// threads' CPUs, then page faults to refill it (3.4 % of carrier's CPU, bench/profile.sh -c 1).
// Keeping up to 1 MiB free per heap removes them (strace: 0 brk per message, 1 or 20 sessions);
// it also fixes the mmap threshold at 128 KiB, so the large buffers of big messages are still
// returned as soon as they are freed.
void tune_malloc() { mallopt(M_TRIM_THRESHOLD, 1 << 20); }

int print_diags(const std::vector<carrier::config::Diagnostic>& diags) {
  for (const auto& d : diags) std::cerr << d.str() << "\n";
  return diags.empty() ? 0 : 1;
}

// Reads one line from the terminal without echo (prompt on stderr), or from stdin.
bool read_secret(const char* prompt, bool tty, std::string& out) {
  termios old{};
  if (tty) {
    std::fprintf(stderr, "%s", prompt);
    std::fflush(stderr);
    tcgetattr(STDIN_FILENO, &old);
    termios quiet = old;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
  }
  bool ok = static_cast<bool>(std::getline(std::cin, out));
  if (tty) {
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
    std::fprintf(stderr, "\n");
  }
  if (!out.empty() && out.back() == '\r') out.pop_back();
  return ok;
}

// `carrier passwd`: a yescrypt hash for a password file line.
int cmd_passwd(const std::string& user) {
  const bool tty = ::isatty(STDIN_FILENO) == 1;
  std::string pw, again;
  if (!read_secret("Password: ", tty, pw)) {
    std::cerr << "carrier passwd: no password given\n";
    return 1;
  }
  if (tty && (!read_secret("Again: ", tty, again) || again != pw)) {
    std::cerr << "carrier passwd: the passwords do not match\n";
    return 1;
  }
  auto h = carrier::auth::hash_password(pw);
  std::fill(pw.begin(), pw.end(), '\0');
  std::fill(again.begin(), again.end(), '\0');
  if (!h) {
    std::cerr << "carrier passwd: " << h.error().message << "\n";
    return 1;
  }
  if (user.empty()) std::cout << h.value() << "\n";
  else std::cout << user << ":" << h.value() << "\n";
  return 0;
}

// Loads --config (or the built-in default) and applies --data-dir.
std::optional<carrier::config::Config> load_config(const std::string& file, const std::string& data_dir) {
  using namespace carrier;
  config::Config cfg;
  if (!file.empty()) {
    std::vector<config::Diagnostic> diags;
    auto loaded = config::load_file(file, diags);
    if (!loaded) {
      print_diags(diags);
      return std::nullopt;
    }
    cfg = std::move(*loaded);
  } else {
    cfg = config::defaults();
  }
  if (!data_dir.empty()) config::apply_data_dir(cfg, data_dir);
  return cfg;
}

// `carrier reload`: asks the running daemon (admin socket) to read its configuration again.
// The daemon validates it in full first; errors come back as file:line and nothing changes.
int cmd_reload(const std::string& file, const std::string& data_dir) {
  auto cfg = load_config(file, data_dir);
  if (!cfg) {  // the daemon would refuse it too: it validates the same way
    std::cerr << "carrier reload: the configuration was not applied; the running one stays\n";
    return 1;
  }
  const auto sock = cfg->data_dir / "admin.sock";
  auto r = carrier::admin::call(sock, nlohmann::json{{"cmd", "reload"}});
  if (!r) {
    std::cerr << "carrier reload: " << r.error().message << "\n";
    return 69;  // EX_UNAVAILABLE
  }
  if (!r.value().value("ok", false)) {
    std::cerr << r.value().value("error", std::string("reload failed")) << "\n"
              << "carrier reload: the configuration was not applied; the running one stays\n";
    return 1;
  }
  std::cout << "carrier reload: done (see the daemon's log for what changed)\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // `carrier sendmail ...` or run as "sendmail": sendmail(8) options, not CLI11 ones.
  if (int rc = carrier::app::sendmail_dispatch(argc, argv); rc >= 0) return rc;
  CLI::App app{"carrier — a mail transfer agent: receives mail over SMTP, stores it durably, "
               "delivers it to Maildir mailboxes and relays it to other MTAs."};
  app.set_version_flag("--version", std::string("carrier ") + CARRIER_VERSION);
  app.require_subcommand(1);

  std::string config_file, listen, data_dir;
  auto* serve = app.add_subcommand("serve", "Run the MTA (built-in default configuration when "
                                            "no --config is given)");
  serve->add_option("-c,--config", config_file, "TOML configuration file")->check(CLI::ExistingFile);
  serve->add_option("-l,--listen", listen,
                    "Listen on ADDR:PORT instead of the configured listeners "
                    "(e.g. 127.0.0.1:2525, [::1]:25)");
  serve->add_option("-d,--data-dir", data_dir,
                    "Data directory (spool in DIR/spool, mailboxes in DIR/mail)");

  std::string check_file;
  auto* check = app.add_subcommand("check-config", "Validate a configuration file; print every "
                                                   "error as file:line:column: message");
  check->add_option("file", check_file, "TOML configuration file")->required();

  std::string passwd_user;
  auto* passwd = app.add_subcommand(
      "passwd", "Print a yescrypt hash of a password for the [auth] password_file (read from the "
                "terminal without echo, or one line from standard input)");
  passwd->add_option("user", passwd_user, "Print a whole line USER:HASH");

  carrier::app::QueueCli* queue_cli = carrier::app::add_queue_commands(app);
  carrier::app::DkimCli* dkim_cli = carrier::app::add_dkim_commands(app);

  std::string reload_config, reload_data;
  auto* reload = app.add_subcommand(
      "reload", "Make the running carrier read its configuration again (validated first; "
                "same as SIGHUP); sessions in progress go on");
  reload->add_option("-c,--config", reload_config, "The configuration the daemon runs with")
      ->check(CLI::ExistingFile);
  reload->add_option("-d,--data-dir", reload_data, "Its data directory (holds carrier.pid)");

  std::string doctor_config;
  std::vector<std::string> doctor_domains;
  auto* doctor = app.add_subcommand(
      "doctor", "Check this host's DNS (A/AAAA, PTR, MX, SPF), TLS certificate, listeners and "
                "spool: one line per check with a fix for each failure; exit status 1 if any failed");
  doctor->add_option("-c,--config", doctor_config, "TOML configuration file")->check(CLI::ExistingFile);
  doctor->add_option("domains", doctor_domains, "Domains to check (default: the [local] and [[virtual]] domains)");

  CLI11_PARSE(app, argc, argv);

  using namespace carrier;
  if (*passwd) return cmd_passwd(passwd_user);
  if (*reload) return cmd_reload(reload_config, reload_data);
  if (*doctor) return carrier::doctor::run_doctor(doctor_config, doctor_domains, std::cout, std::cerr);
  if (int rc = carrier::app::run_queue(queue_cli); rc >= 0) return rc;
  if (int rc = carrier::app::run_dkim(dkim_cli); rc >= 0) return rc;
  if (*check) {
    std::vector<config::Diagnostic> diags;
    auto cfg = config::load_file(check_file, diags);
    if (!cfg) {
      print_diags(diags);
      return 1;
    }
    auto rt = config::validate_runtime(*cfg);
    auto files = server::check_files(*cfg);
    rt.insert(rt.end(), files.begin(), files.end());
    if (!rt.empty()) return print_diags(rt);
    std::cout << check_file << ": OK\n";
    return 0;
  }

  auto cfg = load_config(config_file, data_dir);
  if (!cfg) {
    std::cerr << "carrier: configuration not valid, not starting\n";
    return 1;
  }
  if (!listen.empty()) {
    std::string why;
    auto hp = config::parse_host_port(listen, why);
    if (!hp) {
      std::cerr << "carrier: --listen " << listen << ": " << why << "\n";
      return 2;
    }
    cfg->listeners = {config::Listener{hp->first, hp->second, "smtp"}};
    cfg->listeners_from_command_line = true;
  }
  auto rt = config::validate_runtime(*cfg);
  if (!rt.empty()) {
    print_diags(rt);
    std::cerr << "carrier: configuration not valid, not starting\n";
    return 1;
  }
  server::setup_logging(*cfg);
  tune_malloc();
  return server::serve(*cfg);
}
