// carrier: `carrier queue ...` and `carrier reload` talk to the running daemon over its admin
// socket (src/admin). Adds the subcommands to the CLI11 app; run_queue() runs the one given.
#pragma once
#include <CLI/CLI.hpp>

namespace carrier::app {

struct QueueCli;
// Registers `queue` (list, summary, show, retry, hold, release, delete, bounce, trace).
QueueCli* add_queue_commands(CLI::App& app);
// When the queue subcommand was given: runs it and returns the exit status; else -1.
int run_queue(QueueCli* q);

}  // namespace carrier::app
