// carrier app: `carrier sendmail` (also run as "sendmail" through a symlink) — the
// /usr/sbin/sendmail interface for local programs. Reads a message from standard input (or
// speaks SMTP there with -bs) and writes it durably to DATA_DIR/pickup (spool/pickup.hpp), from
// where the daemon imports it into the spool, whether it runs now or starts later.
// The pure parts (arguments, address lists, message input, -bs session) are in src/sendmail;
// this file does the I/O. Exit codes are those of sysexits.h:
//   0 ok; 64 EX_USAGE bad option / no recipients; 65 EX_DATAERR bad message (header section
//   too long, bad address in a header, too large); 67 EX_NOUSER bad recipient address;
//   73 EX_CANTCREAT cannot create the pickup file; 74 EX_IOERR read/write/fsync failure;
//   75 EX_TEMPFAIL disk full; 77 EX_NOPERM no permission on the pickup directory;
//   78 EX_CONFIG the configuration file is not valid.
// Handles UNTRUSTED input (arguments, standard input) through the pure parsers.
#pragma once
#include <string>
#include <vector>

namespace carrier::app {

// Runs sendmail when argv is a sendmail invocation (argv[0]'s base name is "sendmail", or
// argv[1] is "sendmail"); returns its exit status. Returns -1 otherwise.
int sendmail_dispatch(int argc, char** argv);

// args: the arguments after the program name / the "sendmail" subcommand. in_fd/out_fd:
// standard input and output (the message, or the -bs session).
int sendmail_main(const std::vector<std::string>& args, int in_fd, int out_fd);

}  // namespace carrier::app
