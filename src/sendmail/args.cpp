// carrier sendmail: command line parsing (see args.hpp), getopt-like with bundling and
// permutation, as sendmail(8) and Postfix's sendmail(1) accept it. Pure; never throws.
#include "sendmail/args.hpp"

#include <string_view>

namespace carrier::sendmail {

const char* usage() {
  return "usage: carrier sendmail [options] [recipient ...]\n"
         "  -t             read recipients from To:, Cc: and Bcc: (Bcc: is removed)\n"
         "  -i, -oi        a line with a single '.' does not end the message\n"
         "  -f ADDR        envelope sender (default: your login name at this host)\n"
         "  -F NAME        full name for the From: header added when there is none\n"
         "  -bm            read the message from standard input (default)\n"
         "  -bs            speak SMTP on standard input and output\n"
         "  -C, --config FILE   carrier configuration file (default: built-in)\n"
         "  --data-dir DIR      data directory (messages go to DIR/pickup)\n"
         "Ignored for compatibility: -o*, -O, -B, -N, -R, -V, -L, -X, -h, -v, -m, -n, -G, -U, -e*.\n"
         "Exit status: 0, or a sysexits.h code (64 usage, 65 data, 67 bad address, 73/74/75/77/78).\n";
}

std::variant<Args, ArgsError> parse_args(const std::vector<std::string>& argv) {
  Args a;
  auto err = [](std::string m) { return ArgsError{std::move(m)}; };
  for (std::size_t i = 0; i < argv.size(); ++i) {
    std::string_view arg = argv[i];
    if (arg == "--") {
      for (++i; i < argv.size(); ++i) a.recipients.push_back(argv[i]);
      break;
    }
    if (arg.size() < 2 || arg[0] != '-') {
      a.recipients.emplace_back(arg);
      continue;
    }
    if (arg.substr(0, 2) == "--") {
      std::string_view name = arg.substr(2), value;
      bool has_value = false;
      if (auto eq = name.find('='); eq != std::string_view::npos) {
        value = name.substr(eq + 1);
        name = name.substr(0, eq);
        has_value = true;
      }
      if (name == "help" && !has_value) {
        a.help = true;
        continue;
      }
      if (name != "config" && name != "data-dir") return err("unknown option --" + std::string(name));
      if (!has_value) {
        if (i + 1 >= argv.size()) return err("option --" + std::string(name) + " needs a value");
        value = argv[++i];
      }
      (name == "config" ? a.config_file : a.data_dir) = std::string(value);
      continue;
    }
    // A bundle of one-letter options: "-ti", "-falice@x", "-oi", "-bs".
    for (std::size_t j = 1; j < arg.size(); ++j) {
      const char c = arg[j];
      switch (c) {
        case 't': a.extract_recipients = true; continue;
        case 'i': a.ignore_dots = true; continue;
        case 'v': case 'm': case 'n': case 'G': case 'U': continue;
        default: break;
      }
      // Options with a value: the rest of this argument, or the next one.
      const std::string_view takes = "frFCoObBNRVLXhe";
      if (takes.find(c) == std::string_view::npos) {
        if (c == 'q') return err("-q (queue runs) is not supported: the carrier daemon runs its queue");
        return err(std::string("unknown option -") + c);
      }
      std::string value;
      if (j + 1 < arg.size()) {
        value = std::string(arg.substr(j + 1));
      } else if (c == 'e') {
        value.clear();  // -e alone (old error mode flag without a value)
      } else {
        if (i + 1 >= argv.size()) return err(std::string("option -") + c + " needs a value");
        value = argv[++i];
      }
      switch (c) {
        case 'f': case 'r': a.sender = value; break;
        case 'F': a.full_name = value; break;
        case 'C': a.config_file = value; break;
        case 'o':
          if (value == "i") a.ignore_dots = true;  // -oi; every other -o option is ignored
          break;
        case 'b':
          if (value == "m") a.mode = Mode::Message;
          else if (value == "s") a.mode = Mode::Smtp;
          else return err("-b" + value + " is not supported (only -bm and -bs)");
          break;
        default: break;  // O B N R V L X h e: accepted and ignored
      }
      break;  // the value took the rest of the bundle
    }
  }
  return a;
}

}  // namespace carrier::sendmail
