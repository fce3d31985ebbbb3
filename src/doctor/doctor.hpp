// carrier doctor: `carrier doctor [--config FILE] [DOMAIN...]` -- checks what a new operator
// gets wrong, with the configured resolver ([dns] upstream): the host name's A/AAAA and
// forward-confirmed reverse DNS, each domain's MX (RFC 5321 5.1, RFC 7505) and SPF (RFC 7208,
// simplified: see spf.hpp), the TLS certificate, the listeners, the spool and its disk space.
// Prints one line per check with ✓ or ✗ and, under each ✗, a one-line fix. The checks are pure
// (checks.hpp, spf.hpp); this is the thin runner doing the lookups and probes.
// Handles UNTRUSTED input: DNS answers (through carrier::dns) and a listener's greeting.
#pragma once
#include <filesystem>
#include <iosfwd>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "doctor/checks.hpp"

namespace carrier::doctor {

// The domains checked when none are given: [local] domains except "localhost", then the
// [[virtual]] domains, without duplicates, in configuration order.
std::vector<std::string> default_domains(const config::Config& c);

// Runs every check for `domains` (empty: default_domains) and prints each as it completes.
// Returns the checks.
std::vector<Check> run_checks(const config::Config& c, std::vector<std::string> domains, std::ostream& out);

// The command: loads config_file (empty: the built-in defaults; errors as file:line on err),
// runs the checks, prints a summary line. Exit status: 0 all passed, 1 otherwise (also for a
// broken configuration).
int run_doctor(const std::filesystem::path& config_file, const std::vector<std::string>& domains,
               std::ostream& out, std::ostream& err);

}  // namespace carrier::doctor
