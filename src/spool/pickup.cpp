// carrier spool/pickup: the durable drop directory for `carrier sendmail` (format and rules in
// pickup.hpp). Addresses are checked as RFC 5321 4.1.2 mailboxes (RFC 6531 UTF-8 allowed).
// Handles UNTRUSTED input in read(): files on disk are parsed strictly with bounded reads and
// moved to corrupt/ when they do not parse.
#include "spool/pickup.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <random>

#include "base/fs.hpp"

namespace carrier::spool {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view kMagic = "CARRIER-PICKUP 1\n";
constexpr std::size_t kSizeDigits = 20;

Result<void> fsync_path(const fs::path& p) {
  int d = ::open(p.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (d < 0) return sys_error("open " + p.string());
  int rc = ::fsync(d);
  int e = errno;
  ::close(d);
  if (rc != 0) return sys_error("fsync " + p.string(), e);
  return {};
}

// mkdir 0700 when missing; *created tells whether it was made now.
Result<void> ensure_dir(const fs::path& p, bool* created) {
  *created = false;
  if (::mkdir(p.c_str(), 0700) == 0) {
    *created = true;
    return {};
  }
  if (errno != EEXIST) return sys_error("mkdir " + p.string());
  struct stat st {};
  if (::stat(p.c_str(), &st) != 0) return sys_error("stat " + p.string());
  if (!S_ISDIR(st.st_mode)) return sys_error("mkdir " + p.string(), ENOTDIR);
  return {};
}

Result<void> write_all(int fd, std::string_view data, const char* what) {
  while (!data.empty()) {
    ssize_t w = ::write(fd, data.data(), data.size());
    if (w < 0) {
      if (errno == EINTR) continue;
      return sys_error(what);
    }
    data.remove_prefix(static_cast<std::size_t>(w));
  }
  return {};
}

bool valid_address(const proto::Mailbox& m) {
  const std::string s = m.str();
  auto parsed = proto::parse_mailbox(s, true);
  return parsed && *parsed == m;
}

std::string new_name() {
  using namespace std::chrono;
  const auto us = duration_cast<microseconds>(system_clock::now().time_since_epoch()).count();
  static thread_local std::mt19937 rng{std::random_device{}()};
  char buf[64];
  std::snprintf(buf, sizeof buf, "%016lld.%ld.%08x", static_cast<long long>(us),
                static_cast<long>(::getpid()), static_cast<unsigned>(rng()));
  return buf;
}

template <class T>
bool parse_uint(std::string_view s, T& out) {
  if (s.empty() || s.size() > 20) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

}  // namespace

// ---- PickupWriter ----

PickupWriter::PickupWriter(PickupWriter&& o) noexcept { *this = std::move(o); }

PickupWriter& PickupWriter::operator=(PickupWriter&& o) noexcept {
  if (this != &o) {
    discard();
    dir_ = std::move(o.dir_);
    name_ = std::move(o.name_);
    fd_ = std::exchange(o.fd_, -1);
    tmp_dir_fd_ = std::exchange(o.tmp_dir_fd_, -1);
    buf_ = std::move(o.buf_);
    size_ = o.size_;
    max_size_ = o.max_size_;
    size_field_offset_ = o.size_field_offset_;
    last_ = o.last_;
    any_ = o.any_;
    fsync_ = o.fsync_;
  }
  return *this;
}

PickupWriter::~PickupWriter() { discard(); }

void PickupWriter::discard() {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
    if (tmp_dir_fd_ >= 0) ::unlinkat(tmp_dir_fd_, name_.c_str(), 0);
  }
  if (tmp_dir_fd_ >= 0) ::close(tmp_dir_fd_);
  tmp_dir_fd_ = -1;
}

Result<void> PickupWriter::flush() {
  auto r = write_all(fd_, buf_, "write pickup file");
  buf_.clear();
  return r;
}

Result<void> PickupWriter::write(std::string_view bytes) {
  if (fd_ < 0) return Error{"pickup writer is closed", EBADF};
  for (char c : bytes) {
    if (c == '\n' && last_ != '\r') {
      buf_.push_back('\r');
      ++size_;
    }
    buf_.push_back(c);
    ++size_;
    last_ = c;
    any_ = true;
  }
  if (size_ > max_size_) {
    discard();
    return Error{"message too large (limit " + std::to_string(max_size_) + " bytes)", EFBIG};
  }
  if (buf_.size() >= 64 * 1024) {
    if (auto r = flush(); !r) {
      discard();
      return r;
    }
  }
  return {};
}

Result<std::string> PickupWriter::commit() {
  if (fd_ < 0) return Error{"pickup writer is closed", EBADF};
  if (any_ && last_ != '\n') {
    // The last line gets its line end (a trailing CR is completed to CRLF).
    if (last_ != '\r') {
      buf_.push_back('\r');
      ++size_;
    }
    buf_.push_back('\n');
    ++size_;
    last_ = '\n';
  }
  auto fail = [&](Error e) -> Result<std::string> {
    discard();
    return e;
  };
  if (size_ > max_size_)
    return fail(Error{"message too large (limit " + std::to_string(max_size_) + " bytes)", EFBIG});
  if (auto r = flush(); !r) return fail(r.error());
  char digits[kSizeDigits + 1];
  std::snprintf(digits, sizeof digits, "%020llu", static_cast<unsigned long long>(size_));
  if (::pwrite(fd_, digits, kSizeDigits, static_cast<off_t>(size_field_offset_)) !=
      static_cast<ssize_t>(kSizeDigits))
    return fail(sys_error("write pickup file"));
  if (fsync_ && ::fsync(fd_) != 0) return fail(sys_error("fsync pickup file"));
  int fd = std::exchange(fd_, -1);
  if (::close(fd) != 0) {
    Error e = sys_error("close pickup file");
    ::unlinkat(tmp_dir_fd_, name_.c_str(), 0);
    return fail(e);
  }
  int dir_fd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) {
    Error e = sys_error("open " + dir_.string());
    ::unlinkat(tmp_dir_fd_, name_.c_str(), 0);
    return fail(e);
  }
  if (rename_noreplace(tmp_dir_fd_, name_.c_str(), dir_fd, name_.c_str()) != 0) {
    Error e = sys_error("rename pickup file " + name_);
    ::unlinkat(tmp_dir_fd_, name_.c_str(), 0);
    ::close(dir_fd);
    return fail(e);
  }
  if (fsync_ && ::fsync(dir_fd) != 0) {
    // Not known to be durable: take it back rather than report success.
    Error e = sys_error("fsync " + dir_.string());
    ::unlinkat(dir_fd, name_.c_str(), 0);
    ::close(dir_fd);
    return fail(e);
  }
  ::close(dir_fd);
  discard();
  return name_;
}

// ---- Pickup ----

Result<Pickup> Pickup::open(PickupOptions opts) {
  if (opts.dir.empty()) return Error{"pickup directory not set", EINVAL};
  std::error_code ec;
  const fs::path parent = opts.dir.has_parent_path() ? opts.dir.parent_path() : fs::path(".");
  if (!fs::exists(parent, ec)) {
    fs::create_directories(parent, ec);
    if (ec) return Error{"create " + parent.string() + ": " + ec.message(), ec.value()};
  }
  bool created = false;
  if (auto r = ensure_dir(opts.dir, &created); !r) return r.error();
  if (created && opts.fsync)
    if (auto r = fsync_path(parent); !r) return r.error();
  bool any = false;
  for (const char* sub : {"tmp", "corrupt"}) {
    if (auto r = ensure_dir(opts.dir / sub, &created); !r) return r.error();
    any |= created;
  }
  if (any && opts.fsync)
    if (auto r = fsync_path(opts.dir); !r) return r.error();
  return Pickup(std::move(opts));
}

bool Pickup::valid_name(std::string_view n) {
  if (n.empty() || n.size() > 128 || n.front() == '.') return false;
  return std::all_of(n.begin(), n.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == '-';
  });
}

Result<PickupWriter> Pickup::begin(const proto::Mailbox& sender,
                                   const std::vector<proto::Mailbox>& recipients, uid_t uid) {
  if (recipients.empty()) return Error{"no recipients", EINVAL};
  if (recipients.size() > opts_.max_recipients)
    return Error{"too many recipients (limit " + std::to_string(opts_.max_recipients) + ")", EINVAL};
  if (!sender.empty() && !valid_address(sender))
    return Error{"invalid sender address \"" + sender.str() + "\"", EINVAL};
  std::string head(kMagic);
  head += "uid " + std::to_string(uid) + "\n";
  head += "sender " + sender.str() + "\n";
  for (const auto& r : recipients) {
    if (r.empty() || !valid_address(r))
      return Error{"invalid recipient address \"" + r.str() + "\"", EINVAL};
    head += "rcpt " + r.str() + "\n";
  }
  head += "size ";

  PickupWriter w;
  w.dir_ = opts_.dir;
  w.max_size_ = opts_.max_size;
  w.fsync_ = opts_.fsync;
  w.size_field_offset_ = head.size();
  head += std::string(kSizeDigits, '0') + "\n\n";
  w.tmp_dir_fd_ = ::open((opts_.dir / "tmp").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (w.tmp_dir_fd_ < 0) return sys_error("open " + (opts_.dir / "tmp").string());
  for (int attempt = 0;; ++attempt) {
    w.name_ = new_name();
    w.fd_ = ::openat(w.tmp_dir_fd_, w.name_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (w.fd_ >= 0) break;
    if (errno != EEXIST || attempt >= 10)
      return sys_error("create " + (opts_.dir / "tmp" / w.name_).string());
  }
  if (auto r = write_all(w.fd_, head, "write pickup file"); !r) return r.error();
  return w;
}

Result<std::string> Pickup::write(const proto::Mailbox& sender,
                                  const std::vector<proto::Mailbox>& recipients,
                                  std::istream& content, uid_t uid) {
  auto w = begin(sender, recipients, uid);
  if (!w) return w.error();
  std::string chunk(64 * 1024, '\0');
  while (content) {
    content.read(chunk.data(), static_cast<std::streamsize>(chunk.size()));
    auto got = content.gcount();
    if (got > 0)
      if (auto r = w->write(std::string_view(chunk.data(), static_cast<std::size_t>(got))); !r)
        return r.error();
  }
  if (content.bad()) return Error{"read message: input error", EIO};
  return w->commit();
}

Result<std::string> Pickup::write(const proto::Mailbox& sender,
                                  const std::vector<proto::Mailbox>& recipients,
                                  std::string_view content, uid_t uid) {
  auto w = begin(sender, recipients, uid);
  if (!w) return w.error();
  if (auto r = w->write(content); !r) return r.error();
  return w->commit();
}

std::vector<std::string> Pickup::list() const {
  std::vector<std::string> names;
  DIR* d = ::opendir(opts_.dir.c_str());
  if (!d) return names;
  while (dirent* e = ::readdir(d)) {
    std::string_view n(e->d_name);
    if (!valid_name(n) || n == "tmp" || n == "corrupt") continue;
    if (e->d_type != DT_REG && e->d_type != DT_UNKNOWN) continue;
    names.emplace_back(n);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

Error Pickup::corrupt(std::string_view name, std::string why) {
  const std::string n(name);
  int from = ::open(opts_.dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  int to = ::open((opts_.dir / "corrupt").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  std::string target = n;
  bool moved = false;
  if (from >= 0 && to >= 0) {
    for (int i = 0; i < 100 && !moved; ++i) {
      if (i > 0) target = n + "." + std::to_string(i);
      if (rename_noreplace(from, n.c_str(), to, target.c_str()) == 0) moved = true;
      else if (errno != EEXIST) break;
    }
    if (moved && opts_.fsync) {
      ::fsync(to);
      ::fsync(from);
    }
  }
  if (from >= 0) ::close(from);
  if (to >= 0) ::close(to);
  std::string where = moved ? "moved to " + (opts_.dir / "corrupt" / target).string()
                            : std::string("could not be moved to corrupt/: ") + std::strerror(errno);
  return Error{"pickup file " + n + ": " + why + " (" + where + ")", EBADMSG};
}

Result<PickupMessage> Pickup::read(std::string_view name) {
  if (!valid_name(name)) return Error{"invalid pickup file name", EINVAL};
  const fs::path path = opts_.dir / std::string(name);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    if (errno == ELOOP) return corrupt(name, "is a symbolic link");
    return sys_error("open " + path.string());
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    Error e = sys_error("stat " + path.string());
    ::close(fd);
    return e;
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return corrupt(name, "not a regular file");
  }
  const std::uint64_t max_head =
      kMagic.size() + (opts_.max_recipients + 4) * (kMaxLine + 1) + 2;
  const std::uint64_t max_file = max_head + opts_.max_size;
  if (static_cast<std::uint64_t>(st.st_size) > max_file) {
    ::close(fd);
    return corrupt(name, "larger than the size limit");
  }
  std::string data(static_cast<std::size_t>(st.st_size), '\0');
  std::size_t got = 0;
  while (got < data.size()) {
    ssize_t r = ::read(fd, data.data() + got, data.size() - got);
    if (r < 0) {
      if (errno == EINTR) continue;
      Error e = sys_error("read " + path.string());
      ::close(fd);
      return e;
    }
    if (r == 0) break;
    got += static_cast<std::size_t>(r);
  }
  ::close(fd);
  data.resize(got);

  PickupMessage m;
  m.name = std::string(name);
  m.owner_uid = st.st_uid;
  m.mtime_ms = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000 + st.st_mtim.tv_nsec / 1000000;

  std::string_view rest(data);
  auto next_line = [&](std::string_view& line) {
    auto nl = rest.find('\n');
    if (nl == std::string_view::npos || nl > kMaxLine) return false;
    line = rest.substr(0, nl);
    rest.remove_prefix(nl + 1);
    return true;
  };
  auto field = [](std::string_view line, std::string_view key, std::string_view& value) {
    if (line.size() < key.size() + 1 || line.substr(0, key.size()) != key || line[key.size()] != ' ')
      return false;
    value = line.substr(key.size() + 1);
    return true;
  };
  if (rest.substr(0, kMagic.size()) != kMagic) return corrupt(name, "not a pickup file");
  rest.remove_prefix(kMagic.size());
  std::string_view line, value;
  if (!next_line(line) || !field(line, "uid", value) || !parse_uint(value, m.uid))
    return corrupt(name, "bad uid line");
  if (!next_line(line) || !field(line, "sender", value)) return corrupt(name, "bad sender line");
  if (!value.empty()) {
    auto s = proto::parse_mailbox(value, true);
    if (!s) return corrupt(name, "invalid sender address");
    m.sender = *s;
  }
  std::uint64_t size = 0;
  for (;;) {
    if (!next_line(line)) return corrupt(name, "header line missing or too long");
    if (field(line, "rcpt", value)) {
      if (m.recipients.size() >= opts_.max_recipients) return corrupt(name, "too many recipients");
      auto r = proto::parse_mailbox(value, true);
      if (!r) return corrupt(name, "invalid recipient address");
      m.recipients.push_back(*r);
      continue;
    }
    if (!field(line, "size", value) || value.size() != kSizeDigits || !parse_uint(value, size))
      return corrupt(name, "bad size line");
    break;
  }
  if (m.recipients.empty()) return corrupt(name, "no recipients");
  if (!next_line(line) || !line.empty()) return corrupt(name, "no empty line after the header");
  if (size > opts_.max_size) return corrupt(name, "content larger than the size limit");
  if (rest.size() != size)
    return corrupt(name, "content is " + std::to_string(rest.size()) + " bytes, header says " +
                             std::to_string(size));
  m.content.assign(rest);
  return m;
}

Result<void> Pickup::remove(std::string_view name) {
  if (!valid_name(name)) return Error{"invalid pickup file name", EINVAL};
  const fs::path path = opts_.dir / std::string(name);
  if (::unlink(path.c_str()) != 0) return sys_error("remove " + path.string());
  if (opts_.fsync) return fsync_path(opts_.dir);
  return {};
}

std::size_t Pickup::clean_tmp(std::chrono::seconds age) {
  std::size_t removed = 0;
  const fs::path tmp = opts_.dir / "tmp";
  DIR* d = ::opendir(tmp.c_str());
  if (!d) return 0;
  const auto now = std::chrono::system_clock::now();
  while (dirent* e = ::readdir(d)) {
    std::string_view n(e->d_name);
    if (!valid_name(n)) continue;
    struct stat st {};
    if (::fstatat(::dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode))
      continue;
    const auto mtime = std::chrono::system_clock::from_time_t(st.st_mtim.tv_sec);
    if (now - mtime < age) continue;
    if (::unlinkat(::dirfd(d), e->d_name, 0) == 0) ++removed;
  }
  ::closedir(d);
  return removed;
}

}  // namespace carrier::spool
