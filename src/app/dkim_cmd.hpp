// carrier: `carrier dkim keygen` (a DKIM key and the DNS TXT record to publish) and
// `carrier dkim sign` (prepends a DKIM-Signature to a message on stdin: an operator's tool to
// test a key). Signing at delivery time is configured separately.
#pragma once
#include <CLI/CLI.hpp>

namespace carrier::app {

struct DkimCli;
// Registers `dkim` with `keygen` and `sign`.
DkimCli* add_dkim_commands(CLI::App& app);
// When the dkim subcommand was given: runs it and returns the exit status; else -1.
int run_dkim(DkimCli* d);

}  // namespace carrier::app
