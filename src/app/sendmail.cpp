// carrier app: `carrier sendmail` — the I/O around the pure sendmail parsers (src/sendmail):
// configuration, the pickup directory (spool/pickup.hpp), standard input and output, exit
// codes (sysexits.h). Handles UNTRUSTED input (arguments and standard input) only through the
// bounded parsers in src/sendmail and proto.
#include "app/sendmail.hpp"

#include <pwd.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <chrono>
#include <iostream>
#include <optional>
#include <string_view>

#include "base/queue_id.hpp"
#include "config/config.hpp"
#include "proto/address.hpp"
#include "proto/headers.hpp"
#include "sendmail/address_list.hpp"
#include "sendmail/args.hpp"
#include "sendmail/message.hpp"
#include "sendmail/smtp.hpp"
#include "spool/pickup.hpp"

namespace carrier::app {

namespace {

// sysexits.h
constexpr int kOk = 0, kUsage = 64, kDataErr = 65, kNoUser = 67, kCantCreat = 73,
              kIoErr = 74, kTempFail = 75, kNoPerm = 77, kConfig = 78;

int fail(int code, const std::string& message) {
  std::cerr << "sendmail: " << message << "\n";
  return code;
}

// Exit status for a pickup error. creating: while opening/creating (not writing).
int exit_for(const Error& e, bool creating) {
  switch (e.sys_errno) {
    case EACCES: case EPERM: return kNoPerm;
    case ENOSPC: case EDQUOT: return kTempFail;
    case EFBIG: case EINVAL: return kDataErr;
    default: return creating ? kCantCreat : kIoErr;
  }
}

// "root" → "root@HOST"; addresses with a domain are left alone.
std::string qualify(const std::string& a, const std::string& host) {
  std::size_t from = 0;
  if (!a.empty() && a.front() == '"') {
    auto close = a.find('"', 1);
    while (close != std::string::npos && a[close - 1] == '\\') close = a.find('"', close + 1);
    from = close == std::string::npos ? a.size() : close;
  }
  return a.find('@', from) == std::string::npos ? a + "@" + host : a;
}

std::optional<proto::Mailbox> to_mailbox(const std::string& text, const std::string& host) {
  return proto::parse_mailbox(qualify(text, host), /*allow_utf8=*/true);
}

// Adds addresses (addr-specs as written) to rcpts, qualified and checked; skips duplicates.
bool add_recipients(const std::vector<std::string>& specs, const std::string& host,
                    std::vector<proto::Mailbox>& rcpts, std::string& bad) {
  for (const auto& s : specs) {
    auto m = to_mailbox(s, host);
    if (!m) {
      bad = s;
      return false;
    }
    bool dup = false;
    for (const auto& r : rcpts)
      dup |= r.local == m->local && proto::normalize_domain(r.domain) == proto::normalize_domain(m->domain);
    if (!dup) rcpts.push_back(*m);
  }
  return true;
}

std::string login_name() {
  struct passwd pw {};
  struct passwd* res = nullptr;
  char buf[4096];
  if (::getpwuid_r(::getuid(), &pw, buf, sizeof buf, &res) == 0 && res && res->pw_name &&
      *res->pw_name)
    return res->pw_name;
  return "uid" + std::to_string(::getuid());
}

bool write_out(int fd, std::string_view s) {
  while (!s.empty()) {
    ssize_t w = ::write(fd, s.data(), s.size());
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    s.remove_prefix(static_cast<std::size_t>(w));
  }
  return true;
}

// Reads up to n bytes; 0 at EOF; -1 on error.
ssize_t read_in(int fd, char* buf, std::size_t n) {
  for (;;) {
    ssize_t r = ::read(fd, buf, n);
    if (r < 0 && errno == EINTR) continue;
    return r;
  }
}

struct Context {
  config::Config cfg;
  std::string host;
  proto::Mailbox sender;
  std::string from_address;  // for an added From:
  QueueIdGenerator ids;
  std::string message_id() {
    return proto::message_id_header(ids.next() + "." + std::to_string(::getpid()), host,
                                    std::chrono::system_clock::now());
  }
};

int run_smtp(Context& ctx, spool::Pickup& pickup, int in_fd, int out_fd) {
  sendmail::SmtpOptions so;
  so.hostname = ctx.host;
  so.max_size = ctx.cfg.limits.max_message_size;
  so.max_recipients = ctx.cfg.limits.max_recipients;
  so.build.remove_bcc = false;  // as for any SMTP submission
  sendmail::SmtpSubmit session(so);
  if (!write_out(out_fd, session.greeting())) return kIoErr;
  std::string buf;
  char chunk[64 * 1024];
  for (;;) {
    if (buf.empty()) {
      ssize_t r = read_in(in_fd, chunk, sizeof chunk);
      if (r < 0) return fail(kIoErr, std::string("read standard input: ") + std::strerror(errno));
      if (r == 0) return kOk;  // EOF: an unfinished transaction is dropped (never acknowledged)
      buf.assign(chunk, static_cast<std::size_t>(r));
    }
    auto& b = session.message_options();
    b.date_field = proto::date_header(std::chrono::system_clock::now());
    b.message_id_field = ctx.message_id();
    auto st = session.feed(buf);
    buf.erase(0, st.consumed);
    std::string reply = st.reply;
    if (st.message_ready) {
      auto name = pickup.write(session.sender(), session.recipients(), session.content(), ::getuid());
      reply += name ? session.stored(true, *name) : session.stored(false, name.error().message);
    }
    if (!reply.empty() && !write_out(out_fd, reply)) return kIoErr;
    if (st.quit) return kOk;
  }
}

int run_message(Context& ctx, const sendmail::Args& args, spool::Pickup& pickup, int in_fd) {
  std::vector<proto::Mailbox> rcpts;
  for (const auto& arg : args.recipients) {
    std::vector<std::string> specs;
    std::string why, bad;
    if (!sendmail::parse_address_list(arg, specs, &why))
      return fail(kNoUser, "bad recipient \"" + arg + "\": " + why);
    if (!add_recipients(specs, ctx.host, rcpts, bad))
      return fail(kNoUser, "bad recipient address \"" + bad + "\"");
  }
  if (rcpts.empty() && !args.extract_recipients)
    return fail(kUsage, "no recipients given (name them as arguments, or use -t)");

  sendmail::BuildOptions bo;
  bo.ignore_dots = args.ignore_dots;
  bo.extract_recipients = args.extract_recipients;
  bo.from_address = ctx.from_address;
  bo.full_name = args.full_name.value_or("");
  bo.date_field = proto::date_header(std::chrono::system_clock::now());
  bo.message_id_field = ctx.message_id();
  bo.max_recipients = ctx.cfg.limits.max_recipients;
  sendmail::MessageBuilder builder(bo);

  std::optional<spool::PickupWriter> writer;
  auto start = [&]() -> int {
    std::string bad;
    if (!add_recipients(builder.header_recipients(), ctx.host, rcpts, bad))
      return fail(kNoUser, "bad recipient address \"" + bad + "\" in the message header");
    if (rcpts.empty()) return fail(kUsage, "no recipients found in To:, Cc: or Bcc:");
    auto w = pickup.begin(ctx.sender, rcpts, ::getuid());
    if (!w) return fail(exit_for(w.error(), true), w.error().message);
    writer.emplace(std::move(*w));
    return kOk;
  };
  std::string out;
  char chunk[64 * 1024];
  while (!builder.ended()) {
    ssize_t r = read_in(in_fd, chunk, sizeof chunk);
    if (r < 0) return fail(kIoErr, std::string("read standard input: ") + std::strerror(errno));
    if (r == 0) break;
    builder.feed(std::string_view(chunk, static_cast<std::size_t>(r)), out);
    if (builder.failed()) return fail(kDataErr, builder.error());
    if (builder.header_done() && !writer)
      if (int rc = start()) return rc;
    if (writer && !out.empty()) {
      if (auto w = writer->write(out); !w) return fail(exit_for(w.error(), false), w.error().message);
      out.clear();
    }
  }
  if (!builder.finish(out)) return fail(kDataErr, builder.error());
  if (!writer)
    if (int rc = start()) return rc;
  if (auto w = writer->write(out); !w) return fail(exit_for(w.error(), false), w.error().message);
  auto name = writer->commit();
  if (!name) return fail(exit_for(name.error(), false), name.error().message);
  return kOk;
}

}  // namespace

int sendmail_main(const std::vector<std::string>& argv, int in_fd, int out_fd) {
  ::signal(SIGPIPE, SIG_IGN);  // a closed output is an EPIPE error, not a silent death
  auto parsed = sendmail::parse_args(argv);
  if (auto* e = std::get_if<sendmail::ArgsError>(&parsed)) {
    std::cerr << "sendmail: " << e->message << "\n" << sendmail::usage();
    return kUsage;
  }
  const auto& args = std::get<sendmail::Args>(parsed);
  if (args.help) {
    std::cout << sendmail::usage();
    return kOk;
  }

  Context ctx;
  if (!args.config_file.empty()) {
    std::vector<config::Diagnostic> diags;
    auto loaded = config::load_file(args.config_file, diags);
    if (!loaded) {
      for (const auto& d : diags) std::cerr << d.str() << "\n";
      return fail(kConfig, "configuration not valid: " + args.config_file);
    }
    ctx.cfg = std::move(*loaded);
  } else {
    ctx.cfg = config::defaults();
  }
  if (!args.data_dir.empty()) config::apply_data_dir(ctx.cfg, args.data_dir);
  ctx.host = ctx.cfg.hostname.empty() ? std::string("localhost") : ctx.cfg.hostname;

  const std::string user_address = login_name() + "@" + ctx.host;
  ctx.from_address = user_address;
  if (args.sender) {
    std::string s = *args.sender;
    if (s.size() >= 2 && s.front() == '<' && s.back() == '>') s = s.substr(1, s.size() - 2);
    if (!s.empty()) {
      auto m = to_mailbox(s, ctx.host);
      if (!m) return fail(kUsage, "bad sender address \"" + *args.sender + "\"");
      ctx.sender = *m;
      ctx.from_address = m->str();
    }
  } else {
    auto m = proto::parse_mailbox(user_address, true);
    if (!m) return fail(kUsage, "cannot make a sender address from \"" + user_address + "\" (use -f)");
    ctx.sender = *m;
  }

  spool::PickupOptions po;
  po.dir = ctx.cfg.data_dir / "pickup";
  po.max_size = ctx.cfg.limits.max_message_size;
  po.max_recipients = ctx.cfg.limits.max_recipients;
  auto pickup = spool::Pickup::open(po);
  if (!pickup) return fail(exit_for(pickup.error(), true), pickup.error().message);

  if (args.mode == sendmail::Mode::Smtp) return run_smtp(ctx, *pickup, in_fd, out_fd);
  return run_message(ctx, args, *pickup, in_fd);
}

int sendmail_dispatch(int argc, char** argv) {
  if (argc < 1 || !argv[0]) return -1;
  std::string_view prog(argv[0]);
  if (auto slash = prog.rfind('/'); slash != std::string_view::npos) prog.remove_prefix(slash + 1);
  int first;
  if (prog == "sendmail") first = 1;
  else if (argc >= 2 && std::string_view(argv[1]) == "sendmail") first = 2;
  else return -1;
  std::vector<std::string> args(argv + first, argv + argc);
  return sendmail_main(args, STDIN_FILENO, STDOUT_FILENO);
}

}  // namespace carrier::app
