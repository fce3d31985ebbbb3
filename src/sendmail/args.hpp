// carrier sendmail: the command line of /usr/sbin/sendmail as programs use it (the options of
// Sendmail 8 and Postfix's sendmail(1) that matter for submission). getopt-like: flags may be
// bundled ("-ti"), an option's value may be glued ("-falice@x") or the next argument
// ("-f alice@x"), options may follow recipients, "--" ends the options.
//   -t              recipients from To:/Cc:/Bcc: (added to those given as arguments)
//   -i, -oi         a line with a single "." does not end the input
//   -f ADDR, -r ADDR  envelope sender ("<>" or "" for the null sender)
//   -F NAME         full name for a From: header added when the message has none
//   -bm             read a message from standard input (default);  -bs  SMTP on stdin/stdout
//   -C FILE, --config FILE    carrier configuration (default: the built-in one)
//   --data-dir DIR  data directory (pickup in DIR/pickup)
//   --help          usage
// Accepted and ignored (sendmail users pass them): -o<anything> other than -oi, -O X, -B X,
// -N X, -R X, -V X, -L X, -X X, -h N, -v, -m, -n, -G, -U, -e<anything>.
// Rejected with a usage error: other -b modes (-bp, -bd, -bi, -bv, ...), -q, -d, -I, unknown
// options. Pure; UNTRUSTED input (arguments); never throws.
#pragma once
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace carrier::sendmail {

enum class Mode { Message /* -bm */, Smtp /* -bs */ };

struct Args {
  Mode mode = Mode::Message;
  bool extract_recipients = false;       // -t
  bool ignore_dots = false;              // -i / -oi
  std::optional<std::string> sender;     // -f / -r, as given
  std::optional<std::string> full_name;  // -F
  std::string config_file;               // -C / --config
  std::string data_dir;                  // --data-dir
  std::vector<std::string> recipients;   // arguments, each an address list
  bool help = false;
};

struct ArgsError {
  std::string message;
};

// args: everything after the program name (or after "carrier sendmail").
std::variant<Args, ArgsError> parse_args(const std::vector<std::string>& args);

// The --help text.
const char* usage();

}  // namespace carrier::sendmail
