// carrier server: wires the modules into a running MTA — configuration, logging, spool,
// delivery queue, SMTP listeners, signals. No protocol logic lives here.
#pragma once
#include <string>
#include <vector>

#include "config/config.hpp"

namespace carrier::server {

// Sets up the process-wide logger (stderr; text or JSON lines) from the configuration.
void setup_logging(const config::Config& cfg);

// Checks the files the configuration names that config::validate_runtime cannot (it has no
// TLS or crypt): certificate/key pairs readable and matching, the password file well formed.
// The self-signed certificate carrier would make is not checked.
std::vector<config::Diagnostic> check_files(const config::Config& cfg);

// Runs carrier until SIGTERM/SIGINT. Prints the listening addresses and a usage hint on
// stdout once ready. Returns the process exit code.
int serve(const config::Config& cfg);

}  // namespace carrier::server
