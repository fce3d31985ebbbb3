// carrier transport/pipe: final delivery to a command (as Postfix's pipe(8) with flags=RD).
// One process per recipient, started with posix_spawn (no shell; argv[0] an absolute path) in
// its own process group, working directory "/", a fixed environment (SENDER, RECIPIENT, USER,
// EXTENSION, DOMAIN, ORIGINAL_RECIPIENT, HOME=/, PATH=/usr/bin:/bin; nothing inherited) and
// default signal dispositions. Its standard input is "Return-Path: <sender>\n" (RFC 5321 4.4),
// "Delivered-To: rcpt\n", then the spool content with CRLF converted to LF (as Postfix feeds
// commands). Standard output and error share one pipe, drained with poll() while the input is
// written, so a command that writes a lot never deadlocks us; the first 1 KiB is kept for the
// result detail. The exit status is mapped as Postfix does with sysexits.h:
//   0                                        → Delivered "2.0.0 delivered to command X"
//   75 EX_TEMPFAIL, 71 EX_OSERR, 74 EX_IOERR → Deferred  "4.3.0 command X exited 75 (EX_TEMPFAIL): out"
//   any other status                         → Failed    "5.3.0 command X exited 67 (EX_NOUSER): out"
//   killed by a signal (not ours)            → Deferred  "4.3.0 command X killed by signal ..."
//   over the time limit                      → Deferred  "4.3.0 command X: time limit exceeded"
//                                              (SIGKILL to the whole process group)
//   cannot start (exec failure)              → Deferred  "4.3.0 command X: cannot execute: ..."
// deliver() returns at most about timeout + 1 s after it starts a command (a command that
// exits but leaves children holding its output open gets 1 s, then its group is killed).
// Placeholders in any argv element: {sender} {recipient} {user} {extension} {domain}
// {mailbox} {original_recipient} (unknown "{...}" text is left as it is). An expanded value
// that starts with '-' at the start of an argument (it would be taken as an option) fails
// the recipient (5.1.3) — defence in depth; RFC 5321 allows such local parts.
// Input: addresses from the envelope (untrusted, but already parsed) and the command's output
// (untrusted; sanitised to printable ASCII in the detail).
#pragma once
#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "proto/envelope.hpp"
#include "transport/transport.hpp"

namespace carrier::transport {

struct PipeOptions {
  std::vector<std::string> argv;   // argv[0] absolute path; placeholders in any element
  std::chrono::seconds timeout{60};
  std::string hostname;            // for logs
  std::string recipient_delimiter = "+";  // splits {user} / {extension}; "" disables
  std::size_t chunk_size = 64 * 1024;     // bytes read from the spool per pread
};

// The values the placeholders and the environment take for one recipient.
struct PipeVars {
  std::string sender;              // "" for the null sender
  std::string recipient;           // recipient address (after alias expansion), local@domain
  std::string user;                // its local part (unquoted) before the delimiter
  std::string extension;           // after the first delimiter, "" when none
  std::string domain;              // its domain
  std::string mailbox;             // carrier's mailbox name (EnvelopeRecipient::mailbox), or user
  std::string original_recipient;  // as given in RCPT TO (or recipient)
};

class PipeTransport final : public Transport {
 public:
  explicit PipeTransport(PipeOptions opts);
  const char* name() const override { return "pipe"; }
  // One Result per requested recipient; one command run per recipient, one after the other.
  std::vector<Result> deliver(const Request& req) override;

  static PipeVars vars_for(const proto::Mailbox& sender, const proto::EnvelopeRecipient& rcpt,
                           std::string_view delimiter);
  // Expands the placeholders in every element. nullopt (with *why) when a value would start an
  // argument with '-'.
  static std::optional<std::vector<std::string>> expand(const std::vector<std::string>& argv,
                                                        const PipeVars& vars, std::string* why);
  // "EX_NOUSER" for 67, ... (sysexits.h, 64..78); "" for other values.
  static const char* exit_name(int status);
  // The Result for a command that exited with `status` and wrote `output` (already captured).
  static Result classify_exit(std::size_t index, std::string_view command, int status,
                              std::string_view output, bool truncated);
  // Output for a detail: printable ASCII, whitespace runs folded to one space, trimmed.
  static std::string clean_output(std::string_view raw, bool truncated);

  static constexpr std::size_t kMaxOutput = 1024;

 private:
  PipeOptions opts_;
};

}  // namespace carrier::transport
