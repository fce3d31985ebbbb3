// carrier spool: durable storage of accepted messages (see spool.hpp for the layout and the
// durability protocol). Implements the 250 promise: commit() reports success only after
// fdatasync(file) → renameat2(tmp/ID or free/F<old ID> → queue/ID, RENAME_NOREPLACE) →
// fsync(queue/), the last step shared by every commit waiting at the same moment (group commit).
// Input: message bytes are stored opaquely; spool files read back at startup are treated as
// untrusted (strict header and JSON checks, size limits); a file that does not parse is moved
// to corrupt/, never deleted.
#include "base/fs.hpp"
#include "base/thread_name.hpp"
#include "spool/spool.hpp"

#include <fcntl.h>
#include <dirent.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_set>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

namespace carrier::spool {

namespace {

using json = nlohmann::json;

constexpr std::size_t kWriteBuffer = 64 * 1024;       // Writer buffer before a write()
constexpr std::size_t kMaxHeaderLine = 64;            // "CARRIER-SPOOL 1 <n>\n"
constexpr std::uint64_t kMaxEnvelopeBytes = 64 << 20;  // envelope JSON limit when loading
constexpr std::size_t kMaxStateLine = 64 * 1024;      // longer state lines are ignored
constexpr char kMagic[] = "CARRIER-SPOOL 1 ";

// ---- small system helpers -------------------------------------------------------------

Result<void> write_all(int fd, const char* p, std::size_t n, const std::string& what) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return sys_error(what);
    }
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return {};
}

// Writes a then b with as few system calls as possible (writev, partial writes continued).
Result<void> write_two(int fd, std::string_view a, std::string_view b, const std::string& what) {
  iovec iov[2];
  iov[0] = {const_cast<char*>(a.data()), a.size()};
  iov[1] = {const_cast<char*>(b.data()), b.size()};
  int first = 0;
  while (first < 2) {
    if (iov[first].iov_len == 0) {
      ++first;
      continue;
    }
    ssize_t w = ::writev(fd, iov + first, 2 - first);
    if (w < 0) {
      if (errno == EINTR) continue;
      return sys_error(what);
    }
    auto left = static_cast<std::size_t>(w);
    while (first < 2 && left >= iov[first].iov_len) {
      left -= iov[first].iov_len;
      iov[first].iov_len = 0;
      ++first;
    }
    if (first < 2) {
      iov[first].iov_base = static_cast<char*>(iov[first].iov_base) + left;
      iov[first].iov_len -= left;
    }
  }
  return {};
}

// Reads exactly n bytes at off unless the file ends first; returns bytes read or an Error.
Result<std::size_t> pread_full(int fd, char* p, std::size_t n, std::uint64_t off,
                               const std::string& what) {
  std::size_t got = 0;
  while (got < n) {
    ssize_t r = ::pread(fd, p + got, n - got, static_cast<off_t>(off + got));
    if (r < 0) {
      if (errno == EINTR) continue;
      return sys_error(what);
    }
    if (r == 0) break;
    got += static_cast<std::size_t>(r);
  }
  return got;
}


int fsync_retry(int fd) {
  int rc;
  do rc = ::fsync(fd);
  while (rc != 0 && errno == EINTR);
  return rc;
}

int fdatasync_retry(int fd) {
  int rc;
  do rc = ::fdatasync(fd);
  while (rc != 0 && errno == EINTR);
  return rc;
}

// mkdir 0700; *created tells whether it was made now. An existing non-directory is an error.
Result<void> make_dir(const std::filesystem::path& p, bool* created) {
  *created = false;
  if (::mkdir(p.c_str(), 0700) == 0) {
    *created = true;
    return {};
  }
  if (errno != EEXIST) return sys_error("spool mkdir " + p.string());
  struct stat st {};
  if (::stat(p.c_str(), &st) != 0) return sys_error("spool stat " + p.string());
  if (!S_ISDIR(st.st_mode)) return Error{"spool: " + p.string() + " is not a directory", ENOTDIR};
  return {};
}

Result<void> fsync_path(const std::filesystem::path& p) {
  int fd = ::open(p.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return sys_error("spool open " + p.string());
  int rc = fsync_retry(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) return sys_error("spool fsync " + p.string(), err);
  return {};
}

// Names of the entries of a directory (given by descriptor; "." and ".." skipped), without
// exceptions. Returns 0 or an errno value.
int list_names(int dir_fd, std::vector<std::string>& out) {
  int fd = ::openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return errno;
  DIR* d = ::fdopendir(fd);
  if (!d) {
    int err = errno;
    ::close(fd);
    return err;
  }
  int err = 0;
  for (;;) {
    errno = 0;
    dirent* e = ::readdir(d);
    if (!e) {
      err = errno;
      break;
    }
    std::string_view n(e->d_name);
    if (n == "." || n == "..") continue;
    out.emplace_back(n);
  }
  ::closedir(d);
  return err;
}

// ---- envelope <-> JSON -----------------------------------------------------------------

bool valid_utf8(std::string_view s) {
  std::size_t i = 0;
  const auto* u = reinterpret_cast<const unsigned char*>(s.data());
  while (i < s.size()) {
    unsigned c = u[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t len;
    unsigned cp;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
      cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > s.size()) return false;
    for (std::size_t k = 1; k < len; ++k) {
      if ((u[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (u[i + k] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    i += len;
  }
  return true;
}

// JSON strings must be UTF-8. A value that is not (e.g. an xtext-decoded ENVID with arbitrary
// octets) is stored as {"hex":"..."} so the round trip is exact.
json jstr(const std::string& s) {
  if (valid_utf8(s)) return s;
  static constexpr char kHex[] = "0123456789abcdef";
  std::string h;
  h.reserve(s.size() * 2);
  for (unsigned char c : s) {
    h.push_back(kHex[c >> 4]);
    h.push_back(kHex[c & 15]);
  }
  return json{{"hex", h}};
}

json jmailbox(const proto::Mailbox& m) {
  return json{{"local", jstr(m.local)}, {"domain", jstr(m.domain)}};
}

const char* body_name(proto::Body b) {
  switch (b) {
    case proto::Body::SevenBit: return "7bit";
    case proto::Body::EightBitMime: return "8bitmime";
    case proto::Body::BinaryMime: return "binarymime";
  }
  return "7bit";
}

const char* ret_name(proto::Ret r) {
  switch (r) {
    case proto::Ret::Unset: return "";
    case proto::Ret::Full: return "full";
    case proto::Ret::Hdrs: return "hdrs";
  }
  return "";
}

std::string envelope_to_json(const proto::Envelope& env) {
  json params{{"size", env.params.size ? json(*env.params.size) : json(nullptr)},
              {"body", body_name(env.params.body)},
              {"body_given", env.params.body_given},
              {"smtputf8", env.params.smtputf8},
              {"ret", ret_name(env.params.ret)},
              {"envid", jstr(env.params.envid)},
              {"auth", jstr(env.params.auth)}};
  json rcpts = json::array();
  for (const auto& r : env.recipients) {
    rcpts.push_back(json{{"address", jmailbox(r.address)},
                         {"original", jmailbox(r.original)},
                         {"route", r.route == proto::RcptRoute::Local ? "local" : "relay"},
                         {"mailbox", jstr(r.mailbox)},
                         {"notify", r.notify},
                         {"orcpt_type", jstr(r.orcpt_type)},
                         {"orcpt", jstr(r.orcpt)}});
  }
  json j{{"sender", jmailbox(env.sender)},
         {"params", std::move(params)},
         {"recipients", std::move(rcpts)},
         {"helo", jstr(env.helo)},
         {"client_ip", jstr(env.client_ip)},
         {"client_rdns", jstr(env.client_rdns)},
         {"protocol", jstr(env.protocol)},
         {"received_at_ms", env.received_at_ms}};
  if (!env.auth_user.empty()) j["auth_user"] = jstr(env.auth_user);  // optional (later format)
  return j.dump();  // one line: control characters are escaped
}

// Strict reader: every key present with its type, no unknown keys. Errors are strings.
class Reader {
 public:
  std::string error;

  bool object(const json& j, std::initializer_list<const char*> keys, const char* what,
              std::initializer_list<const char*> optional = {}) {
    if (!j.is_object()) return fail(std::string(what) + " is not an object");
    std::size_t present = 0;
    for (const char* k : optional) present += j.contains(k) ? 1 : 0;
    if (j.size() != keys.size() + present) return fail(std::string(what) + " has unexpected keys");
    for (const char* k : keys)
      if (!j.contains(k)) return fail(std::string(what) + " lacks \"" + k + "\"");
    return true;
  }

  bool str(const json& j, const char* key, std::string& out) {
    const json& v = j.at(key);
    if (v.is_string()) {
      out = v.get<std::string>();
      return true;
    }
    if (v.is_object() && v.size() == 1 && v.contains("hex") && v.at("hex").is_string()) {
      const auto& h = v.at("hex").get_ref<const std::string&>();
      if (h.size() % 2 != 0) return fail(std::string("bad hex in \"") + key + "\"");
      out.clear();
      for (std::size_t i = 0; i < h.size(); i += 2) {
        int hi = hexval(h[i]), lo = hexval(h[i + 1]);
        if (hi < 0 || lo < 0) return fail(std::string("bad hex in \"") + key + "\"");
        out.push_back(static_cast<char>(hi * 16 + lo));
      }
      return true;
    }
    return fail(std::string("\"") + key + "\" is not a string");
  }

  bool boolean(const json& j, const char* key, bool& out) {
    const json& v = j.at(key);
    if (!v.is_boolean()) return fail(std::string("\"") + key + "\" is not a boolean");
    out = v.get<bool>();
    return true;
  }

  bool mailbox(const json& j, const char* key, proto::Mailbox& out) {
    const json& v = j.at(key);
    return object(v, {"local", "domain"}, key) && str(v, "local", out.local) &&
           str(v, "domain", out.domain);
  }

  bool fail(std::string e) {
    if (error.empty()) error = std::move(e);
    return false;
  }

 private:
  static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  }
};

bool envelope_from_json(std::string_view text, proto::Envelope& env, std::string& err) {
  json j = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    err = "envelope is not valid JSON";
    return false;
  }
  Reader r;
  auto done = [&](bool ok) {
    if (!ok) err = r.error.empty() ? "invalid envelope" : r.error;
    return ok;
  };
  if (!r.object(j, {"sender", "params", "recipients", "helo", "client_ip", "client_rdns",
                    "protocol", "received_at_ms"},
                "envelope", {"auth_user"}))
    return done(false);
  if (!r.mailbox(j, "sender", env.sender)) return done(false);

  const json& p = j.at("params");
  if (!r.object(p, {"size", "body", "body_given", "smtputf8", "ret", "envid", "auth"}, "params"))
    return done(false);
  const json& size = p.at("size");
  if (size.is_null()) {
    env.params.size.reset();
  } else if (size.is_number_unsigned()) {
    env.params.size = size.get<std::uint64_t>();
  } else {
    return done(r.fail("\"size\" is neither null nor an unsigned integer"));
  }
  std::string s;
  if (!r.str(p, "body", s)) return done(false);
  if (s == "7bit") env.params.body = proto::Body::SevenBit;
  else if (s == "8bitmime") env.params.body = proto::Body::EightBitMime;
  else if (s == "binarymime") env.params.body = proto::Body::BinaryMime;
  else return done(r.fail("unknown body \"" + s + "\""));
  if (!r.boolean(p, "body_given", env.params.body_given) ||
      !r.boolean(p, "smtputf8", env.params.smtputf8) || !r.str(p, "ret", s))
    return done(false);
  if (s.empty()) env.params.ret = proto::Ret::Unset;
  else if (s == "full") env.params.ret = proto::Ret::Full;
  else if (s == "hdrs") env.params.ret = proto::Ret::Hdrs;
  else return done(r.fail("unknown ret \"" + s + "\""));
  if (!r.str(p, "envid", env.params.envid) || !r.str(p, "auth", env.params.auth))
    return done(false);

  const json& rs = j.at("recipients");
  if (!rs.is_array()) return done(r.fail("\"recipients\" is not an array"));
  env.recipients.clear();
  env.recipients.reserve(rs.size());
  for (const json& rj : rs) {
    proto::EnvelopeRecipient rc;
    if (!r.object(rj, {"address", "original", "route", "mailbox", "notify", "orcpt_type", "orcpt"},
                  "recipient") ||
        !r.mailbox(rj, "address", rc.address) || !r.mailbox(rj, "original", rc.original) ||
        !r.str(rj, "route", s))
      return done(false);
    if (s == "local") rc.route = proto::RcptRoute::Local;
    else if (s == "relay") rc.route = proto::RcptRoute::Relay;
    else return done(r.fail("unknown route \"" + s + "\""));
    if (!r.str(rj, "mailbox", rc.mailbox)) return done(false);
    const json& n = rj.at("notify");
    if (!n.is_number_unsigned() || n.get<std::uint64_t>() > 15)
      return done(r.fail("\"notify\" is not a NOTIFY bit set"));
    rc.notify = static_cast<unsigned>(n.get<std::uint64_t>());
    if (!r.str(rj, "orcpt_type", rc.orcpt_type) || !r.str(rj, "orcpt", rc.orcpt))
      return done(false);
    env.recipients.push_back(std::move(rc));
  }
  if (!r.str(j, "helo", env.helo) || !r.str(j, "client_ip", env.client_ip) ||
      !r.str(j, "client_rdns", env.client_rdns) || !r.str(j, "protocol", env.protocol))
    return done(false);
  const json& at = j.at("received_at_ms");
  if (!at.is_number_integer()) return done(r.fail("\"received_at_ms\" is not an integer"));
  env.received_at_ms = at.get<std::int64_t>();
  env.auth_user.clear();
  if (j.contains("auth_user") && !r.str(j, "auth_user", env.auth_user)) return done(false);
  return true;
}

// ---- state lines --------------------------------------------------------------------------

const char* status_word(RecipientResult::Status s) {
  switch (s) {
    case RecipientResult::Status::Delivered: return "delivered";
    case RecipientResult::Status::Deferred: return "deferred";
    case RecipientResult::Status::Failed: return "failed";
  }
  return "deferred";
}

// "<unix_ms> <index> <status> <detail>" (without the newline). Marks done[index] for final
// results. "<unix_ms> event <text>" lines (record_event) are appended to events (at most
// Stored::kMaxEvents). Malformed lines (e.g. torn by a crash) are ignored: at worst a
// duplicate delivery.
void apply_state_line(std::string_view line, std::vector<bool>& done,
                      std::vector<std::string>& events) {
  auto next_token = [&](std::string_view& tok) {
    auto sp = line.find(' ');
    if (sp == std::string_view::npos) return false;
    tok = line.substr(0, sp);
    line.remove_prefix(sp + 1);
    return true;
  };
  auto all_digits = [](std::string_view t) {
    return !t.empty() && t.size() <= 19 &&
           std::all_of(t.begin(), t.end(), [](char c) { return c >= '0' && c <= '9'; });
  };
  std::string_view ms, idx, status;
  if (!next_token(ms) || !all_digits(ms) || !next_token(idx)) return;
  if (idx == "event") {
    if (events.size() < Stored::kMaxEvents) events.emplace_back(line);
    return;
  }
  if (!next_token(status) || !all_digits(idx)) return;
  std::uint64_t index = 0;
  for (char c : idx) index = index * 10 + static_cast<unsigned>(c - '0');
  if (index >= done.size()) return;
  if (status == "delivered" || status == "failed") done[index] = true;
}

}  // namespace

// ---- the spool ------------------------------------------------------------------------------

namespace {
// One commit on its way through the sync pool and the directory-sync thread.
struct Job {
  std::string id;
  int fd = -1;
  std::int64_t truncate_to = -1;  // recycled file: its final length
  std::string buf;  // unwritten tail of the Writer's buffer
  std::string free_name;  // the file is free/<free_name> (recycled), not tmp/ID
  bool failed = false;
  bool owns_file = true;  // the file is ours to remove on failure
  Error err;
  std::function<void(Result<std::string>)> done;
};

void run_done(Job& j, Result<std::string> r) {
  try {
    j.done(std::move(r));
  } catch (const std::exception& e) {
    spdlog::error("{}: spool commit callback threw: {}", j.id, e.what());
  } catch (...) {
    spdlog::error("{}: spool commit callback threw", j.id);
  }
}
}  // namespace

struct Spool::Impl {
  // Appends lines to state/ID (one write); with sync, fdatasync the file and fsync state/.
  Result<void> append_state(const std::string& id, const std::string& text, bool sync) {
    {
      std::lock_guard lk(smu);
      fresh.erase(id);  // it has (or may have) a state file from now on
    }
    int fd = ::openat(state_fd, id.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return sys_error("spool open state/" + id);
    auto w = write_all(fd, text.data(), text.size(), "spool write state/" + id);
    if (w && sync && fdatasync_retry(fd) != 0) w = sys_error("spool fdatasync state/" + id);
    ::close(fd);
    if (w && sync && fsync_retry(state_fd) != 0) w = sys_error("spool fsync state/");
    return w;
  }

  std::filesystem::path dir;
  dev_t dev = 0;
  Options opts;
  int dir_fd = -1, tmp_fd = -1, queue_fd = -1, state_fd = -1, corrupt_fd = -1, free_fd = -1;
  // Recycled files in free/ (names), at most kMaxFree.
  std::mutex fmu;
  std::vector<std::string> free_names;
  static constexpr std::size_t kMaxFree = 1024;
  QueueIdGenerator ids;
  // Committed by this process and never given a state line: remove() need not unlink a state
  // file that was never created (one failing unlinkat per message finished in one attempt).
  // One process per spool (flock), and state files are only created by append_state().
  std::mutex smu;
  std::unordered_set<std::string> fresh;

  // Back into the pool: a recycled file a writer took but did not commit (content meaningless).
  void give_back(std::string name) {
    std::lock_guard lk(fmu);
    if (free_names.size() < kMaxFree) free_names.push_back(std::move(name));
    else ::unlinkat(free_fd, name.c_str(), 0);
  }
  // Where a writer's file is before commit: free/NAME (recycled) or tmp/ID (new).
  int src_dir(const Job& j) const { return j.free_name.empty() ? tmp_fd : free_fd; }
  const char* src_name(const Job& j) const {
    return j.free_name.empty() ? j.id.c_str() : j.free_name.c_str();
  }
  // The message is durable in queue/: tell the committer.
  void acknowledge(Job& j) {
    {
      std::lock_guard lk(smu);
      fresh.insert(j.id);
    }
    std::string id = j.id;
    run_done(j, std::move(id));
  }

  // fdatasync pool
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Job> jobs;
  bool stopping = false;
  std::vector<std::thread> workers;

  // group commit of queue/
  std::mutex dmu;
  std::condition_variable dcv;
  std::vector<Job> renamed;
  bool dir_leader = false;  // a thread is running directory fsync rounds (group_commit)
  bool dstopping = false;
  std::thread dir_thread;

  // SyncMode::Filesystem: rounds of syncfs(). written = data written, awaiting its data round;
  // named = renamed into queue/, awaiting its name round; barriers = sync_barrier() callers.
  std::vector<Job> written, named;
  struct Barrier {
    bool done = false;
    int err = 0;
  };
  std::vector<Barrier*> barriers;
  std::condition_variable bcv;  // wakes sync_barrier() waiters (with dmu)

  ~Impl() {
    {
      std::lock_guard lk(mu);
      stopping = true;
    }
    cv.notify_all();
    for (auto& t : workers) t.join();  // pending commits are finished, not dropped
    {
      std::lock_guard lk(dmu);
      dstopping = true;
    }
    dcv.notify_all();
    if (dir_thread.joinable()) dir_thread.join();
    for (int fd : {free_fd, corrupt_fd, state_fd, queue_fd, tmp_fd, dir_fd})
      if (fd >= 0) ::close(fd);
  }

  void worker_loop() {
    for (;;) {
      Job j;
      {
        std::unique_lock lk(mu);
        cv.wait(lk, [&] { return stopping || !jobs.empty(); });
        if (jobs.empty()) return;
        j = std::move(jobs.front());
        jobs.pop_front();
      }
      sync_one(j);
    }
  }

  void fail_job(Job& j) {
    if (j.fd >= 0) ::close(j.fd);
    j.fd = -1;
    if (j.owns_file) ::unlinkat(src_dir(j), src_name(j), 0);
    Error e = j.err;
    run_done(j, std::move(e));
  }

  void sync_one(Job& j) {
    if (!j.failed && !j.buf.empty()) {
      auto r = write_all(j.fd, j.buf.data(), j.buf.size(), "spool write " + j.id);
      if (!r) j.failed = true, j.err = r.error();
      std::string().swap(j.buf);
    }
    // A recycled file may be longer than this message: cut what is left of the old one.
    if (!j.failed && j.truncate_to >= 0 && ::ftruncate(j.fd, j.truncate_to) != 0)
      j.failed = true, j.err = sys_error("spool truncate " + j.id);
    if (!j.failed && opts.fsync && opts.sync_mode == SyncMode::Filesystem) {
      {
        std::lock_guard lk(dmu);
        written.push_back(std::move(j));
      }
      dcv.notify_one();
      return;
    }
    if (!j.failed && opts.fsync && fdatasync_retry(j.fd) != 0)
      j.failed = true, j.err = sys_error("spool fdatasync " + j.id);
    if (j.fd >= 0 && ::close(j.fd) != 0 && !j.failed && errno != EINTR)
      j.failed = true, j.err = sys_error("spool close " + j.id);
    j.fd = -1;
    if (j.failed) return fail_job(j);
    if (rename_noreplace(src_dir(j), src_name(j), queue_fd, j.id.c_str()) != 0) {
      int err = errno;
      j.err = err == EEXIST ? Error{"spool commit " + j.id + ": queue/" + j.id +
                                        " already exists (queue id collision)",
                                    EEXIST}
                            : sys_error("spool rename " + j.id + " to queue/", err);
      return fail_job(j);
    }
    if (!opts.fsync) return acknowledge(j);
    group_commit(std::move(j));
  }

  // Leader/follower group commit of queue/: the first thread to arrive while no directory
  // fsync runs becomes the leader and fsyncs queue/ for every rename waiting, round after round,
  // until none is left; the others (followers) just leave their job and go back to work. One
  // fsync completes every rename done before it started; no thread is woken to do it.
  void group_commit(Job j) {
    std::unique_lock lk(dmu);
    renamed.push_back(std::move(j));
    if (dir_leader) return;  // the leader's next round takes it
    dir_leader = true;
    std::vector<Job> batch;
    while (!renamed.empty()) {
      batch.swap(renamed);
      lk.unlock();
      complete_dir_round(batch);
      batch.clear();
      lk.lock();
    }
    dir_leader = false;
  }

  void complete_dir_round(std::vector<Job>& batch) {
    int rc = fsync_retry(queue_fd);
    int err = errno;
    for (auto& j : batch) {
      if (rc == 0) {
        acknowledge(j);
      } else {
        // Durability unknown: take it back so the client's retry cannot duplicate it.
        ::unlinkat(queue_fd, j.id.c_str(), 0);
        run_done(j, sys_error("spool fsync queue/ for " + j.id, err));
      }
    }
  }

  // Group commit of everything (SyncMode::Filesystem), see spool.hpp.
  void round_loop() {
    std::vector<Job> data, names;
    std::vector<Barrier*> waiting;
    for (;;) {
      {
        std::unique_lock lk(dmu);
        dcv.wait(lk, [&] {
          return dstopping || !written.empty() || !named.empty() || !barriers.empty();
        });
        if (written.empty() && named.empty() && barriers.empty()) return;
        data.swap(written);
        names.swap(named);
        waiting.swap(barriers);
      }
      int rc;
      do rc = ::syncfs(dir_fd);
      while (rc != 0 && errno == EINTR);
      int err = rc == 0 ? 0 : errno;
      // Renamed in an earlier round: their names are durable now → acknowledge.
      for (auto& j : names) {
        if (rc == 0) {
          acknowledge(j);
        } else {
          ::unlinkat(queue_fd, j.id.c_str(), 0);
          run_done(j, sys_error("spool syncfs for " + j.id, err));
        }
      }
      names.clear();
      // Written before this round: data durable now → give them their name; next round
      // makes the name durable.
      std::vector<Job> renamed_now;
      for (auto& j : data) {
        if (j.fd >= 0 && ::close(j.fd) != 0 && rc == 0 && errno != EINTR) {
          j.fd = -1;
          j.err = sys_error("spool close " + j.id);
          fail_job(j);
          continue;
        }
        j.fd = -1;
        if (rc != 0) {
          j.err = sys_error("spool syncfs for " + j.id, err);
          fail_job(j);
          continue;
        }
        if (rename_noreplace(src_dir(j), src_name(j), queue_fd, j.id.c_str()) != 0) {
          int e = errno;
          j.err = e == EEXIST ? Error{"spool commit " + j.id + ": queue/" + j.id +
                                          " already exists (queue id collision)",
                                      EEXIST}
                              : sys_error("spool rename " + j.id + " to queue/", e);
          fail_job(j);
          continue;
        }
        renamed_now.push_back(std::move(j));
      }
      data.clear();
      {
        std::lock_guard lk(dmu);
        for (auto* b : waiting) {
          b->done = true;
          b->err = err;
        }
        for (auto& j : renamed_now) named.push_back(std::move(j));
      }
      waiting.clear();
      bcv.notify_all();
    }
  }

  void post(Job j) {
    {
      std::lock_guard lk(mu);
      jobs.push_back(std::move(j));
    }
    cv.notify_one();
  }

  // Moves queue/ID (and state/ID) to corrupt/, never replacing anything there.
  void quarantine(const std::string& id, const std::string& reason) const {
    std::string target = id;
    for (int n = 1; n < 1000; ++n) {
      if (rename_noreplace(queue_fd, id.c_str(), corrupt_fd, target.c_str()) == 0) break;
      if (errno != EEXIST) {
        spdlog::error("{}: corrupt spool file ({}); could not move it to corrupt/: {}", id,
                      reason, std::strerror(errno));
        return;
      }
      target = id + "." + std::to_string(n);
    }
    std::string st = target + ".state";
    if (rename_noreplace(state_fd, id.c_str(), corrupt_fd, st.c_str()) != 0 && errno != ENOENT)
      spdlog::warn("{}: could not move state/{} to corrupt/: {}", id, id, std::strerror(errno));
    fsync_retry(corrupt_fd);
    spdlog::error("{}: corrupt spool file moved to corrupt/{}: {}", id, target, reason);
  }
};

// ---- Writer ---------------------------------------------------------------------------------

Writer::Writer(Writer&& o) noexcept
    : spool_(o.spool_),
      id_(std::move(o.id_)),
      fd_(o.fd_),
      buf_(std::move(o.buf_)),
      content_size_(o.content_size_),
      deferred_error_(std::move(o.deferred_error_)),
      failed_(o.failed_),
      recycled_(o.recycled_),
      free_name_(std::move(o.free_name_)),
      file_bytes_(o.file_bytes_) {
  o.spool_ = nullptr;
  o.fd_ = -1;
}

Writer& Writer::operator=(Writer&& o) noexcept {
  if (this != &o) {
    abort();
    spool_ = o.spool_;
    id_ = std::move(o.id_);
    fd_ = o.fd_;
    buf_ = std::move(o.buf_);
    content_size_ = o.content_size_;
    deferred_error_ = std::move(o.deferred_error_);
    failed_ = o.failed_;
    recycled_ = o.recycled_;
    free_name_ = std::move(o.free_name_);
    file_bytes_ = o.file_bytes_;
    o.spool_ = nullptr;
    o.fd_ = -1;
  }
  return *this;
}

Writer::~Writer() { abort(); }

void Writer::abort() {
  if (fd_ >= 0) ::close(fd_);
  if (spool_ && !free_name_.empty()) spool_->impl_->give_back(std::move(free_name_));
  else if (spool_ && !id_.empty()) ::unlinkat(spool_->impl_->tmp_fd, id_.c_str(), 0);
  free_name_.clear();
  fd_ = -1;
  spool_ = nullptr;
  std::string().swap(buf_);
}

Result<void> Writer::write(std::string_view bytes) {
  if (failed_) return deferred_error_;
  if (fd_ < 0) return Error{"spool writer " + id_ + " is closed", EBADF};
  content_size_ += bytes.size();
  file_bytes_ += bytes.size();
  if (buf_.size() + bytes.size() <= kWriteBuffer) {
    buf_.append(bytes);
    return {};
  }
  auto r = write_two(fd_, buf_, bytes, "spool write " + id_);
  buf_.clear();
  if (!r) {
    failed_ = true;
    deferred_error_ = r.error();
    return r;
  }
  return {};
}

Result<void> Writer::flush() {
  if (failed_) return deferred_error_;
  if (fd_ < 0) return Error{"spool writer " + id_ + " is closed", EBADF};
  if (buf_.empty()) return {};
  auto r = write_two(fd_, buf_, {}, "spool write " + id_);
  buf_.clear();
  if (!r) {
    failed_ = true;
    deferred_error_ = r.error();
  }
  return r;
}

std::filesystem::path Writer::path() const {
  if (!spool_) return {};
  return free_name_.empty() ? spool_->impl_->dir / "tmp" / id_
                            : spool_->impl_->dir / "free" / free_name_;
}

Result<void> Writer::rewrite_head(std::uint64_t old_len, std::string_view new_head) {
  if (auto r = flush(); !r) return r;
  if (old_len > content_size_) return Error{"spool rewrite " + id_ + ": head beyond content", EINVAL};
  const int dir = spool_->impl_->tmp_fd;
  const std::string tmp_name = id_ + ".r";
  int nfd = ::openat(dir, tmp_name.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (nfd < 0) return sys_error("spool create tmp/" + tmp_name);
  auto fail = [&](Error e) -> Result<void> {
    ::close(nfd);
    ::unlinkat(dir, tmp_name.c_str(), 0);
    if (e.no_space()) {  // later writes would fail the same way: the message cannot be kept
      failed_ = true;
      deferred_error_ = e;
    }
    return e;
  };
  // Spool header and envelope, unchanged.
  const std::uint64_t off = content_offset();
  std::string head(off, '\0');
  for (std::size_t got = 0; got < head.size();) {
    ssize_t n = ::pread(fd_, head.data() + got, head.size() - got, static_cast<off_t>(got));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return fail(n < 0 ? sys_error("spool read tmp/" + id_) : Error{"spool read: short file", EIO});
    got += static_cast<std::size_t>(n);
  }
  if (auto r = write_two(nfd, head, new_head, "spool write tmp/" + tmp_name); !r) return fail(r.error());
  // The rest of the content, copied inside the kernel.
  loff_t in = static_cast<loff_t>(off + old_len);
  std::uint64_t left = content_size_ - old_len;
  while (left > 0) {
    ssize_t n = ::copy_file_range(fd_, &in, nfd, nullptr, left, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return fail(n < 0 ? sys_error("spool copy tmp/" + tmp_name) : Error{"spool copy: short file", EIO});
    left -= static_cast<std::uint64_t>(n);
  }
  if (::renameat(dir, tmp_name.c_str(), dir, id_.c_str()) != 0) return fail(sys_error("spool rename tmp/" + tmp_name));
  ::close(fd_);
  fd_ = nfd;
  recycled_ = false;
  // The writer's file is tmp/ID now; a recycled one it came from goes back to the pool.
  if (!free_name_.empty()) spool_->impl_->give_back(std::move(free_name_));
  free_name_.clear();
  content_size_ = content_size_ - old_len + new_head.size();
  file_bytes_ = off + content_size_;
  return {};
}

// ---- Spool ----------------------------------------------------------------------------------

Result<std::unique_ptr<Spool>> Spool::open(const Options& opts) {
  if (opts.dir.empty()) return Error{"spool: no directory configured", EINVAL};
  std::unique_ptr<Spool> sp(new Spool());
  sp->impl_ = std::make_unique<Impl>();
  Impl& im = *sp->impl_;
  im.dir = opts.dir;
  im.opts = opts;

  // The spool directory and any missing parents (0700 each; each new entry fsync'd).
  bool created = false;
  std::vector<std::filesystem::path> missing;
  for (auto p = im.dir; !p.empty(); p = p.parent_path()) {
    struct stat st {};
    if (::stat(p.c_str(), &st) == 0) break;
    if (errno != ENOENT) return sys_error("spool stat " + p.string());
    missing.push_back(p);
    if (!p.has_parent_path() || p.parent_path() == p) break;
  }
  if (missing.empty()) missing.push_back(im.dir);  // exists: make_dir checks it is a directory
  for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
    if (auto r = make_dir(*it, &created); !r) return r.error();
    if (created) {
      auto parent = it->has_parent_path() ? it->parent_path() : std::filesystem::path(".");
      if (auto r = fsync_path(parent); !r) return r.error();
    }
  }
  bool any_created = false;
  for (const char* sub : {"tmp", "queue", "state", "corrupt", "free"}) {
    if (auto r = make_dir(im.dir / sub, &created); !r) return r.error();
    any_created |= created;
  }
  if (any_created)
    if (auto r = fsync_path(im.dir); !r) return r.error();

  auto open_dir = [&](const std::filesystem::path& p, int& fd) -> Result<void> {
    fd = ::open(p.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return sys_error("spool open " + p.string());
    return {};
  };
  if (auto r = open_dir(im.dir, im.dir_fd); !r) return r.error();
  // One process per spool: open() cleans tmp/, which would destroy another instance's work.
  if (::flock(im.dir_fd, LOCK_EX | LOCK_NB) != 0)
    return errno == EWOULDBLOCK
               ? Error{"spool " + im.dir.string() + " is in use by another process", EWOULDBLOCK}
               : sys_error("spool lock " + im.dir.string());
  for (auto [sub, fd] : {std::pair{"tmp", &im.tmp_fd}, std::pair{"queue", &im.queue_fd},
                         std::pair{"state", &im.state_fd}, std::pair{"corrupt", &im.corrupt_fd},
                         std::pair{"free", &im.free_fd}})
    if (auto r = open_dir(im.dir / sub, *fd); !r) return r.error();

  // Recycled files: take them back into the pool (their content is meaningless). Only a file
  // with no other name: after a crash on a file system without a journal, a rename into or
  // out of queue/ may have reached the disk only on the queue/ side (queue/ is fsync'd, free/
  // never is), and fsck then leaves the message with two names, queue/ID and one in free/.
  // Reusing that spare would overwrite a queued message; its extra name is removed instead.
  {
    std::vector<std::string> fr;
    if (int err = list_names(im.free_fd, fr))
      return sys_error("spool list " + (im.dir / "free").string(), err);
    for (auto& name : fr) {
      struct stat st {};
      bool spare = im.free_names.size() < Impl::kMaxFree && !name.empty() && name[0] == 'F' &&
                   ::fstatat(im.free_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
                   S_ISREG(st.st_mode) && st.st_nlink == 1;
      if (spare)
        im.free_names.push_back(std::move(name));
      else
        ::unlinkat(im.free_fd, name.c_str(), 0);
    }
  }

  // Leftovers in tmp/ were never acknowledged: remove them.
  std::vector<std::string> names;
  if (int err = list_names(im.tmp_fd, names))
    return sys_error("spool list " + (im.dir / "tmp").string(), err);
  std::size_t removed = 0;
  for (const auto& name : names) {
    if (::unlinkat(im.tmp_fd, name.c_str(), 0) == 0) ++removed;
    else spdlog::warn("spool: cannot remove tmp/{}: {}", name, std::strerror(errno));
  }
  if (removed) spdlog::info("spool: removed {} unfinished file(s) from tmp/", removed);

  // State files whose message is gone (crash between the two unlinks of remove()).
  names.clear();
  if (int err = list_names(im.state_fd, names))
    return sys_error("spool list " + (im.dir / "state").string(), err);
  for (const auto& name : names) {
    if (!is_valid_queue_id(name)) continue;
    struct stat st {};
    if (::fstatat(im.queue_fd, name.c_str(), &st, 0) != 0 && errno == ENOENT)
      ::unlinkat(im.state_fd, name.c_str(), 0);
  }

  int n = std::clamp(opts.sync_threads, 1, 1024);
  im.workers.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) im.workers.emplace_back([&im] {
      set_thread_name("spool-sync");
      im.worker_loop();
    });
  if (opts.sync_mode == SyncMode::Filesystem)
    im.dir_thread = std::thread([&im] {
      set_thread_name("spool-syncfs");
      im.round_loop();
    });
  struct stat st {};
  if (::fstat(im.dir_fd, &st) == 0) im.dev = st.st_dev;
  return sp;
}

Spool::~Spool() = default;

const std::filesystem::path& Spool::dir() const { return impl_->dir; }
QueueIdGenerator& Spool::ids() { return impl_->ids; }

Stored Writer::stored(const proto::Envelope& env) const {
  Stored s;
  s.id = id_;
  s.envelope = env;
  if (spool_) s.path = spool_->dir() / "queue" / id_;
  s.content_offset = content_offset();
  s.content_size = content_size_;
  s.done.assign(env.recipients.size(), false);
  return s;
}

Result<Writer> Spool::begin(const proto::Envelope& env) {
  std::string header;
  try {
    std::string j = envelope_to_json(env);
    header.reserve(j.size() + 40);
    header = kMagic + std::to_string(j.size()) + "\n";
    header += j;
    header += '\n';
  } catch (const std::exception& e) {
    return Error{std::string("spool: cannot serialise envelope: ") + e.what(), 0};
  }
  Writer w;
  w.file_bytes_ = header.size();
  // A recycled file first (see spool.hpp); any failure falls back to a new file.
  std::string recycled;
  {
    std::lock_guard lk(impl_->fmu);
    if (!impl_->free_names.empty()) {
      recycled = std::move(impl_->free_names.back());
      impl_->free_names.pop_back();
    }
  }
  if (!recycled.empty()) {
    // Written where it is, in free/, and renamed into queue/ at commit (one rename).
    int fd = ::openat(impl_->free_fd, recycled.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (fd >= 0) {
      w.spool_ = this;
      w.id_ = impl_->ids.next();
      w.fd_ = fd;
      w.recycled_ = true;
      w.free_name_ = std::move(recycled);
      w.buf_.reserve(std::max(kWriteBuffer, header.size()));
      w.buf_ = std::move(header);
      return w;
    }
    ::unlinkat(impl_->free_fd, recycled.c_str(), 0);
  }
  for (int attempt = 0;; ++attempt) {
    std::string id = impl_->ids.next();
    int fd = ::openat(impl_->tmp_fd, id.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) {
      w.spool_ = this;
      w.id_ = std::move(id);
      w.fd_ = fd;
      break;
    }
    if (errno != EEXIST || attempt >= 8) return sys_error("spool create tmp/" + id);
  }
  w.buf_.reserve(std::max(kWriteBuffer, header.size()));
  w.buf_ = std::move(header);
  return w;
}

void Spool::commit(Writer&& w, std::function<void(Result<std::string>)> done) {
  Job j;
  j.id = w.id_;
  j.done = std::move(done);
  if (w.spool_ != this || w.fd_ < 0) {
    // Nothing of ours to sync or unlink; still reported on a spool thread.
    j.failed = true;
    j.owns_file = false;
    j.err = Error{"spool commit " + w.id_ + ": writer is not open", EBADF};
    if (w.spool_ == this) w.abort();
  } else {
    j.fd = w.fd_;
    j.buf = std::move(w.buf_);
    if (w.recycled_) j.truncate_to = static_cast<std::int64_t>(w.file_bytes_);
    j.free_name = std::move(w.free_name_);
    w.free_name_.clear();
    j.failed = w.failed_;
    j.err = w.deferred_error_;
    w.fd_ = -1;
    w.spool_ = nullptr;  // the job owns the file now
  }
  impl_->post(std::move(j));
}

std::vector<std::string> Spool::list() const {
  std::vector<std::string> names, out;
  if (int err = list_names(impl_->queue_fd, names))
    spdlog::error("spool: cannot list queue/: {}", std::strerror(err));
  for (auto& n : names)
    if (is_valid_queue_id(n)) out.push_back(std::move(n));
  std::sort(out.begin(), out.end());  // fixed-width ids: lexical order is time order
  return out;
}

Result<Stored> Spool::load(std::string_view id_sv) const {
  std::string id(id_sv);
  if (!is_valid_queue_id(id)) return Error{"spool load: invalid queue id", EINVAL};
  int fd = ::openat(impl_->queue_fd, id.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return sys_error("spool open queue/" + id);
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) return sys_error("spool stat queue/" + id);
  auto size = static_cast<std::uint64_t>(st.st_size);

  auto corrupt = [&](const std::string& reason) -> Error {
    impl_->quarantine(id, reason);
    return Error{"spool " + id + ": corrupt (" + reason + "), moved to corrupt/", 0};
  };

  char head[kMaxHeaderLine];
  auto got = pread_full(fd, head, sizeof head, 0, "spool read queue/" + id);
  if (!got) return got.error();
  std::string_view hv(head, *got);
  auto nl = hv.find('\n');
  constexpr std::size_t kMagicLen = sizeof kMagic - 1;
  if (nl == std::string_view::npos || hv.substr(0, kMagicLen) != kMagic)
    return corrupt("bad header line");
  std::string_view num = hv.substr(kMagicLen, nl - kMagicLen);
  if (num.empty() || num.size() > 10 ||
      !std::all_of(num.begin(), num.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return corrupt("bad envelope length");
  std::uint64_t n = 0;
  for (char c : num) n = n * 10 + static_cast<unsigned>(c - '0');
  if (n == 0 || n > kMaxEnvelopeBytes) return corrupt("envelope length out of range");
  const std::uint64_t env_off = nl + 1;
  if (size < env_off + n + 1) return corrupt("file shorter than its envelope");
  std::string env_text(static_cast<std::size_t>(n) + 1, '\0');
  auto r = pread_full(fd, env_text.data(), env_text.size(), env_off, "spool read queue/" + id);
  if (!r) return r.error();
  if (*r != env_text.size()) return corrupt("file shorter than its envelope");
  if (env_text.back() != '\n') return corrupt("envelope not followed by a newline");
  env_text.pop_back();

  Stored s;
  s.id = id;
  s.path = impl_->dir / "queue" / id;
  std::string err;
  bool ok = false;
  try {
    ok = envelope_from_json(env_text, s.envelope, err);
  } catch (const std::exception& e) {
    ok = false;
    err = e.what();
  }
  if (!ok) return corrupt(err);
  s.content_offset = env_off + n + 1;
  s.content_size = size - s.content_offset;
  s.done.assign(s.envelope.recipients.size(), false);

  // state/ID: complete lines only, read in blocks.
  int sfd = ::openat(impl_->state_fd, id.c_str(), O_RDONLY | O_CLOEXEC);
  if (sfd < 0) {
    if (errno != ENOENT) return sys_error("spool open state/" + id);
    return s;
  }
  Closer sclose{sfd};
  std::string line;
  bool skipping = false;  // inside an over-long line
  char block[16384];
  for (;;) {
    ssize_t k = ::read(sfd, block, sizeof block);
    if (k < 0) {
      if (errno == EINTR) continue;
      return sys_error("spool read state/" + id);
    }
    if (k == 0) break;
    std::string_view b(block, static_cast<std::size_t>(k));
    while (!b.empty()) {
      auto e = b.find('\n');
      auto part = b.substr(0, e);
      if (!skipping) {
        if (line.size() + part.size() > kMaxStateLine) skipping = true, line.clear();
        else line.append(part);
      }
      if (e == std::string_view::npos) break;
      if (!skipping) apply_state_line(line, s.done, s.events);
      line.clear();
      skipping = false;
      b.remove_prefix(e + 1);
    }
  }
  return s;
}

Result<void> Spool::record(std::string_view id_sv, const std::vector<RecipientResult>& results,
                           bool sync) {
  std::string id(id_sv);
  if (!is_valid_queue_id(id)) return Error{"spool record: invalid queue id", EINVAL};
  if (results.empty()) return {};
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                std::chrono::system_clock::now().time_since_epoch())
                .count();
  std::string text;
  for (const auto& r : results) {
    text += std::to_string(ms);
    text += ' ';
    text += std::to_string(r.index);
    text += ' ';
    text += status_word(r.status);
    text += ' ';
    for (char c : r.detail) text += (c == '\r' || c == '\n') ? ' ' : c;
    text += '\n';
  }
  return impl_->append_state(id, text, sync);
}

Result<void> Spool::record_event(std::string_view id_sv, std::string_view event, bool sync) {
  std::string id(id_sv);
  if (!is_valid_queue_id(id)) return Error{"spool record_event: invalid queue id", EINVAL};
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                std::chrono::system_clock::now().time_since_epoch())
                .count();
  std::string text = std::to_string(ms) + " event ";
  const std::size_t room = kMaxStateLine - text.size() - 1;  // the line stays readable
  for (char c : event.substr(0, room)) text += (c == '\r' || c == '\n') ? ' ' : c;
  text += '\n';
  return impl_->append_state(id, text, sync);
}

Result<void> Spool::remove(std::string_view id_sv) {
  std::string id(id_sv);
  if (!is_valid_queue_id(id)) return Error{"spool remove: invalid queue id", EINVAL};
  // queue/ first: a crash in between leaves an orphan state file (cleaned at open), never a
  // message without its delivery record.
  // Recycle the file (see spool.hpp) while the pool has room; else unlink it.
  bool recycled = false;
  {
    std::lock_guard lk(impl_->fmu);
    if (impl_->free_fd >= 0 && impl_->free_names.size() < Impl::kMaxFree) {
      std::string name = "F" + id;
      if (rename_noreplace(impl_->queue_fd, id.c_str(), impl_->free_fd, name.c_str()) == 0) {
        impl_->free_names.push_back(std::move(name));
        recycled = true;
      }
    }
  }
  if (!recycled && ::unlinkat(impl_->queue_fd, id.c_str(), 0) != 0)
    return sys_error("spool unlink queue/" + id);
  {
    std::lock_guard lk(impl_->smu);
    if (impl_->fresh.erase(id) != 0) return {};  // never had a state file
  }
  if (::unlinkat(impl_->state_fd, id.c_str(), 0) != 0 && errno != ENOENT)
    return sys_error("spool unlink state/" + id);
  return {};
}

Result<void> Spool::sync_barrier() {
  auto& im = *impl_;
  if (!im.opts.fsync) return {};
  if (im.opts.sync_mode != SyncMode::Filesystem) {
    if (::syncfs(im.dir_fd) != 0) return sys_error("spool syncfs");
    return {};
  }
  Impl::Barrier b;
  std::unique_lock lk(im.dmu);
  im.barriers.push_back(&b);
  im.dcv.notify_one();
  im.bcv.wait(lk, [&] { return b.done; });
  if (b.err) return sys_error("spool syncfs", b.err);
  return {};
}

bool Spool::same_filesystem(const std::filesystem::path& p) const {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && st.st_dev == impl_->dev;
}

}  // namespace carrier::spool
