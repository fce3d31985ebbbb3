// carrier: the command line. `carrier serve`, `carrier check-config FILE`, `--version`.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <iostream>

#include "config/config.hpp"
#include "server/server.hpp"

namespace {

int print_diags(const std::vector<carrier::config::Diagnostic>& diags) {
  for (const auto& d : diags) std::cerr << d.str() << "\n";
  return diags.empty() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"carrier — a mail transfer agent: receives mail over SMTP, stores it durably, "
               "delivers it to Maildir mailboxes."};
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

  CLI11_PARSE(app, argc, argv);

  using namespace carrier;
  if (*check) {
    std::vector<config::Diagnostic> diags;
    auto cfg = config::load_file(check_file, diags);
    if (!cfg) {
      print_diags(diags);
      return 1;
    }
    auto rt = config::validate_runtime(*cfg);
    if (!rt.empty()) return print_diags(rt);
    std::cout << check_file << ": OK\n";
    return 0;
  }

  config::Config cfg;
  if (!config_file.empty()) {
    std::vector<config::Diagnostic> diags;
    auto loaded = config::load_file(config_file, diags);
    if (!loaded) {
      print_diags(diags);
      std::cerr << "carrier: configuration not valid, not starting\n";
      return 1;
    }
    cfg = std::move(*loaded);
  } else {
    cfg = config::defaults();
  }
  if (!data_dir.empty()) config::apply_data_dir(cfg, data_dir);
  if (!listen.empty()) {
    std::string why;
    auto hp = config::parse_host_port(listen, why);
    if (!hp) {
      std::cerr << "carrier: --listen " << listen << ": " << why << "\n";
      return 2;
    }
    cfg.listeners = {config::Listener{hp->first, hp->second, "smtp"}};
  }
  auto rt = config::validate_runtime(cfg);
  if (!rt.empty()) {
    print_diags(rt);
    std::cerr << "carrier: configuration not valid, not starting\n";
    return 1;
  }
  server::setup_logging(cfg);
  return server::serve(cfg);
}
