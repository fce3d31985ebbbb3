// carrier transport/pipe: delivery to a command (see pipe_transport.hpp for the contract).
// posix_spawn (vfork-like, safe in a threaded process: nothing runs between fork and exec
// but the file actions) with its own process group; non-blocking pipes and poll() on stdin,
// the merged stdout/stderr and a pidfd for the exit (a 50 ms tick when pidfd_open is not
// available). Exit statuses follow sysexits.h as Postfix's pipe(8) maps them.
// Handles untrusted input: the command's output (bounded to 1 KiB, sanitised) and addresses
// (checked so none can start an option argument).
#include "transport/pipe/pipe_transport.hpp"
#include "transport/local_text.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace carrier::transport {

namespace {

using Status = spool::RecipientResult::Status;
using Clock = std::chrono::steady_clock;

struct Fd {
  int fd = -1;
  Fd() = default;
  explicit Fd(int f) : fd(f) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }
  void reset() {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
};



// The command's standard input: prefix, then the spool content converted, chunk by chunk.
class InputFeeder {
 public:
  InputFeeder(std::string prefix, int spool_fd, std::uint64_t off, std::uint64_t size,
              std::size_t chunk)
      : buf_(std::move(prefix)), spool_fd_(spool_fd), off_(off), left_(size), chunk_(chunk) {}

  // Bytes ready to write (refilled from the spool when empty). Empty view: nothing left.
  // Sets *err (errno, or -1 for a truncated spool file) on a read failure.
  std::string_view pending(int* err) {
    if (pos_ < buf_.size()) return std::string_view(buf_).substr(pos_);
    buf_.clear();
    pos_ = 0;
    while (buf_.empty() && left_ > 0) {
      std::string in(static_cast<std::size_t>(std::min<std::uint64_t>(left_, chunk_)), '\0');
      ssize_t r = ::pread(spool_fd_, in.data(), in.size(), static_cast<off_t>(off_));
      if (r < 0) {
        if (errno == EINTR) continue;
        *err = errno;
        return {};
      }
      if (r == 0) {
        *err = -1;
        return {};
      }
      conv_.feed(std::string_view(in.data(), static_cast<std::size_t>(r)), buf_);
      off_ += static_cast<std::uint64_t>(r);
      left_ -= static_cast<std::uint64_t>(r);
    }
    if (buf_.empty() && !finished_) {
      finished_ = true;
      conv_.finish(buf_);
    }
    return std::string_view(buf_);
  }
  void consumed(std::size_t n) { pos_ += n; }

 private:
  std::string buf_;
  std::size_t pos_ = 0;
  int spool_fd_;
  std::uint64_t off_, left_;
  std::size_t chunk_;
  CrlfToLf conv_;
  bool finished_ = false;
};

struct Outcome {
  enum Kind { Exited, Signaled, TimedOut, SpawnFailed, InputFailed } kind = SpawnFailed;
  int code = 0;  // exit status, signal number or errno (-1: spool file truncated)
  std::string output;
  bool truncated = false;
};

// Blocks SIGPIPE for this thread while we write to a command that may have exited; a pending
// SIGPIPE raised by our writes is consumed before the mask is restored.
class SigpipeGuard {
 public:
  SigpipeGuard() {
    sigemptyset(&set_);
    sigaddset(&set_, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set_, &old_);
  }
  ~SigpipeGuard() {
    timespec zero{0, 0};
    while (sigtimedwait(&set_, nullptr, &zero) == SIGPIPE) {
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }

 private:
  sigset_t set_{}, old_{};
};

int pidfd_open_compat(pid_t pid) {
#ifdef SYS_pidfd_open
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
#else
  (void)pid;
  errno = ENOSYS;
  return -1;
#endif
}

void set_cloexec_nonblock(int fd, bool nonblock) {
  ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  if (nonblock) ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
}

Outcome run(const std::vector<std::string>& argv, const std::vector<std::string>& env,
            InputFeeder& input, std::chrono::seconds timeout) {
  Outcome oc;
  int in_pipe[2], out_pipe[2];
  if (::pipe2(in_pipe, O_CLOEXEC) != 0) {
    oc.code = errno;
    return oc;
  }
  Fd in_r(in_pipe[0]), in_w(in_pipe[1]);
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) {
    oc.code = errno;
    return oc;
  }
  Fd out_r(out_pipe[0]), out_w(out_pipe[1]);
  set_cloexec_nonblock(in_w.fd, true);
  set_cloexec_nonblock(out_r.fd, true);

  std::vector<char*> args, envp;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  for (const auto& e : env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);

  posix_spawn_file_actions_t fa;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&fa);
  posix_spawnattr_init(&attr);
  posix_spawn_file_actions_adddup2(&fa, in_r.fd, 0);
  posix_spawn_file_actions_adddup2(&fa, out_w.fd, 1);
  posix_spawn_file_actions_adddup2(&fa, out_w.fd, 2);
  posix_spawn_file_actions_addclosefrom_np(&fa, 3);
  posix_spawn_file_actions_addchdir_np(&fa, "/");
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                      POSIX_SPAWN_SETSIGDEF);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  pid_t pid = -1;
  int rc = ::posix_spawn(&pid, args[0], &fa, &attr, args.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    oc.code = rc;
    return oc;
  }
  in_r.reset();
  out_w.reset();

  SigpipeGuard guard;
  Fd pidfd(pidfd_open_compat(pid));
  const auto deadline = Clock::now() + timeout;
  auto limit = deadline;  // moves to exit + 1 s once the command has exited
  bool exited = false, timed_out = false, input_failed = false;
  int wstatus = 0;
  constexpr std::size_t kWriteMax = 64 * 1024;
  char rbuf[16 * 1024];

  auto reap = [&](int flags) {
    for (;;) {
      pid_t w = ::waitpid(pid, &wstatus, flags);
      if (w == pid) return true;
      if (w < 0 && errno == EINTR) continue;
      return false;
    }
  };

  while (!exited || out_r.fd >= 0) {
    auto now = Clock::now();
    if (now >= limit) {
      if (!exited) timed_out = true;
      break;
    }
    pollfd p[3];
    int n = 0, ii = -1, io = -1, ip = -1;
    if (in_w.fd >= 0) {
      ii = n;
      p[n++] = {in_w.fd, POLLOUT, 0};
    }
    if (out_r.fd >= 0) {
      io = n;
      p[n++] = {out_r.fd, POLLIN, 0};
    }
    if (!exited && pidfd.fd >= 0) {
      ip = n;
      p[n++] = {pidfd.fd, POLLIN, 0};
    }
    auto wait_ms = std::chrono::duration_cast<std::chrono::milliseconds>(limit - now).count() + 1;
    if (!exited && pidfd.fd < 0) wait_ms = std::min<long long>(wait_ms, 50);
    int r = ::poll(p, static_cast<nfds_t>(n), static_cast<int>(wait_ms));
    if (r < 0 && errno != EINTR) break;
    if (r > 0 && ii >= 0 && p[ii].revents) {
      if (p[ii].revents & (POLLERR | POLLHUP)) {
        in_w.reset();  // the command closed its input: it takes what it read
      } else {
        int err = 0;
        auto chunk = input.pending(&err);
        if (err != 0) {
          oc.code = err;
          input_failed = true;
          break;
        }
        if (chunk.empty()) {
          in_w.reset();  // end of input
        } else {
          ssize_t w = ::write(in_w.fd, chunk.data(), std::min(chunk.size(), kWriteMax));
          if (w > 0) input.consumed(static_cast<std::size_t>(w));
          else if (w < 0 && errno != EAGAIN && errno != EINTR) in_w.reset();  // EPIPE
        }
      }
    }
    if (r > 0 && io >= 0 && p[io].revents) {
      ssize_t got = ::read(out_r.fd, rbuf, sizeof rbuf);
      if (got > 0) {
        std::size_t room = PipeTransport::kMaxOutput - std::min(oc.output.size(), PipeTransport::kMaxOutput);
        oc.output.append(rbuf, std::min(room, static_cast<std::size_t>(got)));
        if (static_cast<std::size_t>(got) > room) oc.truncated = true;
      } else if (got == 0 || (errno != EAGAIN && errno != EINTR)) {
        out_r.reset();
      }
    }
    if (!exited && (pidfd.fd < 0 || (ip >= 0 && p[ip].revents))) {
      if (reap(WNOHANG)) {
        exited = true;
        in_w.reset();
        limit = std::min(deadline, Clock::now() + std::chrono::seconds(1));
        limit = std::max(limit, Clock::now() + std::chrono::milliseconds(100));
      }
    }
  }

  // Whatever is left of the group is killed: everything on a time limit or an input failure,
  // children still holding the output open 1 s after the command exited.
  if (!exited || out_r.fd >= 0) ::kill(-pid, SIGKILL);
  if (!exited) {
    ::kill(pid, SIGKILL);
    reap(0);
  }
  if (input_failed) {
    oc.kind = Outcome::InputFailed;
  } else if (timed_out) {
    oc.kind = Outcome::TimedOut;
  } else if (WIFEXITED(wstatus)) {
    oc.kind = Outcome::Exited;
    oc.code = WEXITSTATUS(wstatus);
  } else {
    oc.kind = Outcome::Signaled;
    oc.code = WIFSIGNALED(wstatus) ? WTERMSIG(wstatus) : 0;
  }
  return oc;
}

}  // namespace

PipeTransport::PipeTransport(PipeOptions opts) : opts_(std::move(opts)) {
  if (opts_.chunk_size == 0) opts_.chunk_size = 1;
}

const char* PipeTransport::exit_name(int status) {
  static const char* const names[] = {
      "EX_USAGE",  "EX_DATAERR", "EX_NOINPUT",   "EX_NOUSER", "EX_NOHOST",
      "EX_UNAVAILABLE", "EX_SOFTWARE", "EX_OSERR", "EX_OSFILE", "EX_CANTCREAT",
      "EX_IOERR",  "EX_TEMPFAIL", "EX_PROTOCOL", "EX_NOPERM", "EX_CONFIG"};
  if (status < 64 || status > 78) return "";
  return names[status - 64];
}

std::string PipeTransport::clean_output(std::string_view raw, bool truncated) {
  std::string out;
  bool space = false;
  for (char c : raw) {
    auto u = static_cast<unsigned char>(c);
    if (u == ' ' || u == '\t' || u == '\r' || u == '\n') {
      space = true;
      continue;
    }
    if (space && !out.empty()) out.push_back(' ');
    space = false;
    out.push_back(u < 0x20 || u >= 0x7F ? '?' : c);
  }
  if (truncated) out += "...";
  return out;
}

Result PipeTransport::classify_exit(std::size_t index, std::string_view command, int status,
                                    std::string_view output, bool truncated) {
  if (status == 0) return {index, Status::Delivered, "2.0.0 delivered to command " + std::string(command)};
  std::string text = "command " + std::string(command) + " exited " + std::to_string(status);
  if (*exit_name(status)) text += std::string(" (") + exit_name(status) + ")";
  std::string out = clean_output(output, truncated);
  if (!out.empty()) text += ": " + out;
  // sysexits.h: EX_TEMPFAIL, EX_OSERR and EX_IOERR are temporary (as Postfix's pipe(8)).
  if (status == 75 || status == 71 || status == 74) return {index, Status::Deferred, "4.3.0 " + text};
  return {index, Status::Failed, "5.3.0 " + text};
}

PipeVars PipeTransport::vars_for(const proto::Mailbox& sender, const proto::EnvelopeRecipient& rcpt,
                                 std::string_view delimiter) {
  PipeVars v;
  v.sender = sender.str();
  v.recipient = rcpt.address.str();
  const std::string local = rcpt.address.unquoted_local();
  std::size_t cut = delimiter.empty() ? std::string::npos : local.find(delimiter);
  v.user = local.substr(0, cut);
  if (cut != std::string::npos) v.extension = local.substr(cut + delimiter.size());
  v.domain = rcpt.address.domain;
  v.mailbox = rcpt.mailbox.empty() ? v.user : rcpt.mailbox;
  v.original_recipient = rcpt.original.empty() ? v.recipient : rcpt.original.str();
  return v;
}

std::optional<std::vector<std::string>> PipeTransport::expand(const std::vector<std::string>& argv,
                                                              const PipeVars& v, std::string* why) {
  const std::pair<const char*, const std::string*> table[] = {
      {"sender", &v.sender},       {"recipient", &v.recipient}, {"user", &v.user},
      {"extension", &v.extension}, {"domain", &v.domain},       {"mailbox", &v.mailbox},
      {"original_recipient", &v.original_recipient}};
  std::vector<std::string> out;
  out.reserve(argv.size());
  for (const auto& arg : argv) {
    std::string s;
    std::size_t i = 0;
    while (i < arg.size()) {
      const std::string* value = nullptr;
      std::size_t len = 0;
      if (arg[i] == '{') {
        for (const auto& [name, val] : table) {
          std::string_view n(name);
          if (arg.compare(i + 1, n.size(), n) == 0 && i + 1 + n.size() < arg.size() &&
              arg[i + 1 + n.size()] == '}') {
            value = val;
            len = n.size() + 2;
            break;
          }
        }
      }
      if (!value) {
        s.push_back(arg[i++]);
        continue;
      }
      if (s.empty() && !value->empty() && value->front() == '-') {
        if (why) *why = "address \"" + header_safe(*value) + "\" would start an argument with '-'";
        return std::nullopt;
      }
      s += *value;
      i += len;
    }
    out.push_back(std::move(s));
  }
  return out;
}

std::vector<Result> PipeTransport::deliver(const Request& req) {
  std::vector<Result> out;
  out.reserve(req.recipients.size());
  const std::string command = opts_.argv.empty() ? std::string("(none)") : opts_.argv[0];
  auto all = [&](Status st, const std::string& text) {
    for (auto i : req.recipients) out.push_back({i, st, text});
    return out;
  };
  if (!req.message) return all(Status::Deferred, "4.3.0 pipe: no message given");
  if (opts_.argv.empty() || opts_.argv[0].empty() || opts_.argv[0].front() != '/')
    return all(Status::Deferred, "4.3.5 pipe: command " + command + " is not an absolute path");
  const spool::Stored& msg = *req.message;
  Fd spool_file(::open(msg.path.c_str(), O_RDONLY | O_CLOEXEC));
  if (spool_file.fd < 0)
    return all(Status::Deferred, "4.3.0 pipe read spool " + msg.id + ": " + std::strerror(errno));

  for (auto i : req.recipients) {
    if (i >= msg.envelope.recipients.size()) {
      out.push_back({i, Status::Deferred, "4.3.0 pipe: no such recipient index"});
      continue;
    }
    const auto& rcpt = msg.envelope.recipients[i];
    PipeVars vars = vars_for(msg.envelope.sender, rcpt, opts_.recipient_delimiter);
    std::string why;
    auto argv = expand(opts_.argv, vars, &why);
    if (!argv) {
      out.push_back({i, Status::Failed, "5.1.3 pipe: " + why});
      continue;
    }
    std::vector<std::string> env = {
        "SENDER=" + vars.sender, "RECIPIENT=" + vars.recipient, "USER=" + vars.user,
        "EXTENSION=" + vars.extension, "DOMAIN=" + vars.domain,
        "ORIGINAL_RECIPIENT=" + vars.original_recipient, "HOME=/", "PATH=/usr/bin:/bin"};
    const auto& shown = rcpt.original.empty() ? rcpt.address : rcpt.original;
    std::string prefix = "Return-Path: <" + header_safe(vars.sender) + ">\nDelivered-To: " +
                         header_safe(shown.str()) + "\n";
    InputFeeder input(std::move(prefix), spool_file.fd, msg.content_offset, msg.content_size,
                      opts_.chunk_size);
    Outcome oc = run(*argv, env, input, opts_.timeout);
    switch (oc.kind) {
      case Outcome::Exited:
        out.push_back(classify_exit(i, command, oc.code, oc.output, oc.truncated));
        break;
      case Outcome::Signaled: {
        const char* sig = sigabbrev_np(oc.code);
        std::string text = "4.3.0 command " + command + " killed by signal " +
                           std::to_string(oc.code) + (sig ? std::string(" (SIG") + sig + ")" : "");
        std::string o = clean_output(oc.output, oc.truncated);
        if (!o.empty()) text += ": " + o;
        out.push_back({i, Status::Deferred, text});
        break;
      }
      case Outcome::TimedOut:
        out.push_back({i, Status::Deferred, "4.3.0 command " + command + ": time limit exceeded (" +
                                                std::to_string(opts_.timeout.count()) + "s)"});
        break;
      case Outcome::SpawnFailed:
        out.push_back({i, Status::Deferred, "4.3.0 command " + command + ": cannot execute: " +
                                                std::strerror(oc.code)});
        break;
      case Outcome::InputFailed:
        out.push_back({i, Status::Deferred,
                       "4.3.0 pipe read spool " + msg.id + ": " +
                           (oc.code > 0 ? std::string(std::strerror(oc.code)) : "file is truncated")});
        break;
    }
  }
  return out;
}

}  // namespace carrier::transport
