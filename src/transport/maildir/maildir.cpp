// carrier transport: Maildir delivery (https://cr.yp.to/proto/maildir.html). For each local
// recipient: tmp/<unique> is written (Return-Path: per RFC 5321 4.4, Delivered-To:, then the
// message with CRLF converted to LF, streamed from the spool in chunks), fsync'd, renamed to
// new/<unique>,S=<size> without replacing anything, and new/ is fsync'd (one fsync shared by
// the deliveries into the same new/ at the same time: DirSync). On any error the
// temporary file is removed and the recipient is deferred; new/ never holds a partial file.
// Input: spool content (ours) and the mailbox name, re-validated here; header values are
// sanitised so an address can never split a header line.
#include "base/fs.hpp"
#include "transport/maildir/maildir.hpp"
#include "transport/local_text.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <variant>

namespace carrier::transport {

namespace {

using Status = spool::RecipientResult::Status;

// Closes a descriptor on scope exit.
struct Fd {
  int fd = -1;
  Fd() = default;
  explicit Fd(int f) : fd(f) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
  int release() {
    int f = fd;
    fd = -1;
    return f;
  }
};

// A failed step: which operation, and errno (0 when not a system call failure).
struct Failure {
  std::string op;
  int err = 0;
  std::string text;  // used when err == 0
};



std::optional<Failure> write_all(int fd, const char* p, std::size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return Failure{"write", errno, {}};
    }
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return std::nullopt;
}

// Who owns what the transport creates (Maildir shared with a mailbox server), if anyone.
struct Owner {
  bool set = false;
  uid_t uid = 0;
  gid_t gid = 0;
};

// mkdir 0700 (0750 for an owner) if missing; *created when made now.
std::optional<Failure> ensure_dir(const std::filesystem::path& p, bool* created,
                                  const Owner& owner = {}) {
  *created = false;
  if (::mkdir(p.c_str(), owner.set ? 0750 : 0700) == 0) {
    *created = true;
    if (owner.set && ::chown(p.c_str(), owner.uid, owner.gid) != 0) return Failure{"chown", errno, {}};
    return std::nullopt;
  }
  if (errno != EEXIST) return Failure{"mkdir", errno, {}};
  struct stat st {};
  if (::stat(p.c_str(), &st) != 0) return Failure{"mkdir", errno, {}};
  if (!S_ISDIR(st.st_mode)) return Failure{"mkdir", ENOTDIR, {}};
  return std::nullopt;
}

std::optional<Failure> fsync_dir(const std::filesystem::path& p) {
  Fd d(::open(p.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (d.fd < 0) return Failure{"open", errno, {}};
  if (::fsync(d.fd) != 0) return Failure{"fsync", errno, {}};
  return std::nullopt;
}


// Group commit of one directory (a mailbox's new/): deliveries running at the same time share
// one fsync of the directory. A caller's rename is done before it calls sync(), so the fsync
// of any round that starts after that call covers it. One thread (the leader) runs a round
// for every call made so far; the others wait for the round that covers their call and get
// its result. Directories are told apart by device and inode; at most kMaxDirs are tracked
// (idle entries are dropped beyond that).
class DirSync {
 public:
  // 0 or the errno of the fsync that covered this call.
  int sync(int dir_fd) {
    std::unique_lock lk(mu_);
    const std::uint64_t mine = ++requested_;
    while (done_ < mine) {
      if (running_) {
        cv_.wait(lk);
        continue;
      }
      running_ = true;
      const std::uint64_t upto = requested_;
      lk.unlock();
      const int err = ::fsync(dir_fd) == 0 ? 0 : errno;
      lk.lock();
      if (err != 0) {
        failed_.push_back({done_ + 1, upto, err});
        if (failed_.size() > 64) failed_.pop_front();
      }
      done_ = upto;
      running_ = false;
      cv_.notify_all();
    }
    for (const auto& f : failed_)
      if (mine >= f.lo && mine <= f.hi) return f.err;
    return 0;
  }

  static std::shared_ptr<DirSync> of(int dir_fd) {
    struct stat st {};
    if (::fstat(dir_fd, &st) != 0) return std::make_shared<DirSync>();  // unshared
    static std::mutex mu;
    static std::map<std::pair<dev_t, ino_t>, std::shared_ptr<DirSync>> dirs;
    std::lock_guard lk(mu);
    if (dirs.size() >= kMaxDirs)
      for (auto it = dirs.begin(); it != dirs.end();)
        it = it->second.use_count() == 1 ? dirs.erase(it) : std::next(it);
    auto& d = dirs[{st.st_dev, st.st_ino}];
    if (!d) d = std::make_shared<DirSync>();
    return d;
  }

 private:
  static constexpr std::size_t kMaxDirs = 4096;
  struct Failed {
    std::uint64_t lo, hi;
    int err;
  };
  std::mutex mu_;
  std::condition_variable cv_;
  std::uint64_t requested_ = 0, done_ = 0;
  bool running_ = false;
  std::deque<Failed> failed_;
};

std::int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

MaildirTransport::MaildirTransport(std::filesystem::path mail_dir, std::string hostname,
                                   std::size_t chunk_size)
    : mail_dir_(std::move(mail_dir)),
      hostname_(hostname.empty() ? std::string("localhost") : std::move(hostname)),
      chunk_size_(chunk_size == 0 ? 1 : chunk_size) {}

bool MaildirTransport::valid_mailbox_name(std::string_view m) {
  return !m.empty() && m.front() != '.' && m.find('/') == std::string_view::npos &&
         m.find('\0') == std::string_view::npos;
}

std::string MaildirTransport::unique_name(std::int64_t unix_us, long pid,
                                          std::string_view queue_id, std::size_t rcpt_index,
                                          std::string_view hostname) {
  std::string s = std::to_string(unix_us / 1000000) + ".M" + std::to_string(unix_us % 1000000) +
                  "P" + std::to_string(pid) + "Q" + std::string(queue_id) + "R" +
                  std::to_string(rcpt_index) + ".";
  for (char c : hostname) {
    if (c == '/') s += "\\057";
    else if (c == ':') s += "\\072";
    else s += c;
  }
  return s;
}

namespace {

// Everything needed to deliver one recipient; returns the final file name or a Failure.
struct OneDelivery {
  const std::filesystem::path& mail_dir;
  const std::string& hostname;
  std::size_t chunk;
  const spool::Stored& msg;
  int spool_fd;
  const std::function<int()>* barrier = nullptr;  // shared group commit instead of fsync
  Owner owner;

  std::variant<std::string, Failure> run(std::size_t index) {
    const auto& rcpt = msg.envelope.recipients[index];
    const std::filesystem::path box = mail_dir / rcpt.mailbox;
    bool created = false;
    if (auto f = ensure_dir(mail_dir, &created, owner)) return *f;
    if (created) {
      auto parent = mail_dir.has_parent_path() ? mail_dir.parent_path() : std::filesystem::path(".");
      if (auto f = fsync_dir(parent)) return *f;
    }
    if (auto f = ensure_dir(box, &created, owner)) return *f;
    if (created)
      if (auto f = fsync_dir(mail_dir)) return *f;
    bool any = false;
    for (const char* sub : {"tmp", "new", "cur"}) {
      if (auto f = ensure_dir(box / sub, &created, owner)) return *f;
      any |= created;
    }
    if (any)
      if (auto f = fsync_dir(box)) return *f;

    Fd tmp_dir(::open((box / "tmp").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (tmp_dir.fd < 0) return Failure{"open", errno, {}};
    Fd new_dir(::open((box / "new").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (new_dir.fd < 0) return Failure{"open", errno, {}};

    std::string base;
    Fd file;
    for (int attempt = 0;; ++attempt) {
      base = MaildirTransport::unique_name(now_us(), static_cast<long>(::getpid()), msg.id, index,
                                           hostname);
      file.fd = ::openat(tmp_dir.fd, base.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
                         owner.set ? 0640 : 0600);
      if (file.fd >= 0) {
        if (owner.set && ::fchown(file.fd, owner.uid, owner.gid) != 0) {
          const int e = errno;
          ::close(file.release());
          ::unlinkat(tmp_dir.fd, base.c_str(), 0);
          return Failure{"chown", e, {}};
        }
        break;
      }
      if (errno != EEXIST || attempt >= 5) return Failure{"open", errno, {}};
    }
    auto failed = [&](Failure f) {
      ::close(file.release());
      ::unlinkat(tmp_dir.fd, base.c_str(), 0);
      return f;
    };

    std::string out;
    out.reserve(chunk + 1024);
    out += "Return-Path: <" + header_safe(msg.envelope.sender.str()) + ">\n";
    const auto& shown = rcpt.original.empty() ? rcpt.address : rcpt.original;
    out += "Delivered-To: " + header_safe(shown.str()) + "\n";
    std::uint64_t written = 0;
    auto flush = [&]() -> std::optional<Failure> {
      if (auto f = write_all(file.fd, out.data(), out.size())) return f;
      written += out.size();
      out.clear();
      return std::nullopt;
    };

    CrlfToLf conv;
    std::string in(chunk, '\0');
    std::uint64_t off = msg.content_offset, left = msg.content_size;
    while (left > 0) {
      std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(left, chunk));
      ssize_t r = ::pread(spool_fd, in.data(), want, static_cast<off_t>(off));
      if (r < 0) {
        if (errno == EINTR) continue;
        return failed(Failure{"read spool", errno, {}});
      }
      if (r == 0) return failed(Failure{"read spool", 0, "spool file " + msg.id + " is truncated"});
      conv.feed(std::string_view(in.data(), static_cast<std::size_t>(r)), out);
      off += static_cast<std::uint64_t>(r);
      left -= static_cast<std::uint64_t>(r);
      if (out.size() >= chunk)
        if (auto f = flush()) return failed(*f);
    }
    conv.finish(out);
    if (!out.empty())
      if (auto f = flush()) return failed(*f);
    if (barrier) {
      if (int e = (*barrier)()) return failed(Failure{"sync", e, {}});
    } else if (::fsync(file.fd) != 0) {
      return failed(Failure{"fsync", errno, {}});
    }
    if (::close(file.release()) != 0) {
      int err = errno;
      ::unlinkat(tmp_dir.fd, base.c_str(), 0);
      return Failure{"close", err, {}};
    }

    std::string final_name = base + ",S=" + std::to_string(written);
    if (rename_noreplace(tmp_dir.fd, base.c_str(), new_dir.fd, final_name.c_str()) != 0) {
      int err = errno;
      ::unlinkat(tmp_dir.fd, base.c_str(), 0);
      return Failure{"rename", err, {}};
    }
    if (barrier ? (errno = (*barrier)()) != 0 : (errno = DirSync::of(new_dir.fd)->sync(new_dir.fd)) != 0) {
      // Not known to be durable: take it back so the retry cannot produce a duplicate.
      int err = errno;
      ::unlinkat(new_dir.fd, final_name.c_str(), 0);
      return Failure{"fsync", err, {}};
    }
    return final_name;
  }
};

}  // namespace

std::vector<Result> MaildirTransport::deliver(const Request& req) {
  std::vector<Result> out;
  out.reserve(req.recipients.size());
  if (!req.message) {
    for (auto i : req.recipients)
      out.push_back({i, Status::Deferred, "4.3.0 maildir: no message given"});
    return out;
  }
  const spool::Stored& msg = *req.message;
  Fd spool_file(::open(msg.path.c_str(), O_RDONLY | O_CLOEXEC));
  int open_err = spool_file.fd < 0 ? errno : 0;
  OneDelivery d{mail_dir_, hostname_, chunk_size_, msg, spool_file.fd,
                barrier_ ? &barrier_ : nullptr, Owner{owned_, owner_uid_, owner_gid_}};

  for (auto i : req.recipients) {
    if (i >= msg.envelope.recipients.size()) {
      out.push_back({i, Status::Deferred, "4.3.0 maildir: no such recipient index"});
      continue;
    }
    const auto& rcpt = msg.envelope.recipients[i];
    if (rcpt.route != proto::RcptRoute::Local) {
      out.push_back({i, Status::Deferred, "4.3.0 maildir: recipient is not local"});
      continue;
    }
    if (!valid_mailbox_name(rcpt.mailbox)) {
      out.push_back({i, Status::Failed,
                     "5.1.1 maildir: invalid mailbox name \"" + header_safe(rcpt.mailbox) + "\""});
      continue;
    }
    const std::string shown = header_safe(rcpt.mailbox);
    if (open_err) {
      out.push_back({i, Status::Deferred,
                     "4.3.0 maildir read spool " + msg.id + ": " + std::strerror(open_err)});
      continue;
    }
    auto r = d.run(i);
    if (auto* name = std::get_if<std::string>(&r)) {
      out.push_back({i, Status::Delivered, "delivered to maildir " + shown + "/new/" + *name});
      continue;
    }
    const Failure& f = std::get<Failure>(r);
    const char* code = (f.err == ENOSPC || f.err == EDQUOT) ? "4.2.2" : "4.3.0";
    std::string why = f.err ? std::strerror(f.err) : f.text;
    out.push_back({i, Status::Deferred, std::string(code) + " maildir " + f.op + " " + shown +
                                            ": " + why});
  }
  return out;
}

}  // namespace carrier::transport
