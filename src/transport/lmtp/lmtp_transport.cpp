// carrier transport/lmtp: the LMTP transport's I/O (see lmtp_transport.hpp): endpoint parsing,
// a blocking socket with poll() deadlines, the spool content read with pread in 64 KiB pieces
// and fed through session::ClientSession in LMTP mode (RFC 2033 4.1-4.2), and the mapping of
// each recipient's outcome to a transport::Result. Handles UNTRUSTED input (the server's bytes)
// only through ClientSession; reply text copied into results is cleaned and length-limited.
#include "transport/lmtp/lmtp_transport.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <exception>
#include <map>

#include "session/client_session.hpp"

namespace carrier::transport {

namespace {

using Status = spool::RecipientResult::Status;
using Clock = std::chrono::steady_clock;

constexpr std::size_t kContentPiece = 64 * 1024;  // spool read / write unit
constexpr std::size_t kReadBuffer = 16 * 1024;
constexpr std::size_t kMaxReplyInDetail = 1000;    // server text kept in a result detail
constexpr std::chrono::seconds kQuitTimeout{5};    // flushing the final QUIT

struct Endpoint {
  sockaddr_storage addr{};
  socklen_t len = 0;
  bool tcp = false;
};

carrier::Result<std::uint16_t> parse_port(std::string_view s) {
  if (s.empty() || s.size() > 5) return Error{"bad port \"" + std::string(s) + "\""};
  unsigned v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return Error{"bad port \"" + std::string(s) + "\""};
    v = v * 10 + static_cast<unsigned>(c - '0');
  }
  if (v == 0 || v > 65535) return Error{"port out of range: " + std::string(s)};
  return static_cast<std::uint16_t>(v);
}

carrier::Result<Endpoint> parse_endpoint(std::string_view ep) {
  Endpoint out;
  if (ep.substr(0, 5) == "unix:") {
    const std::string_view path = ep.substr(5);
    sockaddr_un un{};
    if (path.empty() || path.front() != '/')
      return Error{"unix socket path must be absolute: \"" + std::string(path) + "\""};
    if (path.size() >= sizeof(un.sun_path))
      return Error{"unix socket path too long (at most " + std::to_string(sizeof(un.sun_path) - 1) +
                   " octets)"};
    if (path.find('\0') != std::string_view::npos) return Error{"unix socket path holds NUL"};
    un.sun_family = AF_UNIX;
    std::memcpy(un.sun_path, path.data(), path.size());
    std::memcpy(&out.addr, &un, sizeof(un));
    out.len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + 1);
    return out;
  }
  out.tcp = true;
  std::string host;
  std::string_view port;
  bool v6 = false;
  if (!ep.empty() && ep.front() == '[') {
    const std::size_t close = ep.find("]:");
    if (close == std::string_view::npos) return Error{"expected \"[IPv6]:port\""};
    host.assign(ep.substr(1, close - 1));
    port = ep.substr(close + 2);
    v6 = true;
  } else {
    const std::size_t colon = ep.rfind(':');
    if (colon == std::string_view::npos)
      return Error{"expected \"unix:/path\", \"IPv4:port\" or \"[IPv6]:port\""};
    host.assign(ep.substr(0, colon));
    port = ep.substr(colon + 1);
  }
  auto p = parse_port(port);
  if (!p) return p.error();
  if (v6) {
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    a.sin6_port = htons(*p);
    if (::inet_pton(AF_INET6, host.c_str(), &a.sin6_addr) != 1)
      return Error{"not an IPv6 address: \"" + host + "\""};
    std::memcpy(&out.addr, &a, sizeof(a));
    out.len = sizeof(a);
  } else {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(*p);
    if (::inet_pton(AF_INET, host.c_str(), &a.sin_addr) != 1)
      return Error{"not an IPv4 address (host names are not resolved): \"" + host + "\""};
    std::memcpy(&out.addr, &a, sizeof(a));
    out.len = sizeof(a);
  }
  return out;
}

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

enum class Io { Ok, Timeout, Error };

// Waits for `events` on fd until the deadline.
Io wait_for(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return Io::Timeout;
    pollfd p{fd, events, 0};
    const int rc = ::poll(&p, 1, static_cast<int>(std::min<long long>(left, INT_MAX)));
    if (rc < 0) {
      if (errno == EINTR) continue;
      return Io::Error;
    }
    if (rc == 0) return Io::Timeout;
    return Io::Ok;  // readable/writable, or an error/hangup the next call reports
  }
}

Io write_all(int fd, std::string_view data, std::chrono::seconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n > 0) {
      data.remove_prefix(static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (Io w = wait_for(fd, POLLOUT, deadline); w != Io::Ok) return w;
      continue;
    }
    return Io::Error;
  }
  return Io::Ok;
}

// Reads what is there (at least one octet) before the deadline; got == 0: the peer closed.
Io read_some(int fd, char* buf, std::size_t size, std::chrono::seconds timeout, std::size_t& got) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    const ssize_t n = ::recv(fd, buf, size, 0);
    if (n >= 0) {
      got = static_cast<std::size_t>(n);
      return Io::Ok;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (Io w = wait_for(fd, POLLIN, deadline); w != Io::Ok) return w;
      continue;
    }
    return Io::Error;
  }
}

// A connected non-blocking socket, or why not ("connect: Connection refused").
carrier::Result<int> connect_to(const Endpoint& ep, std::chrono::seconds timeout) {
  const int fd = ::socket(ep.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return Error{std::string("socket: ") + std::strerror(errno), errno};
  auto fail = [fd](const std::string& what, int err) -> carrier::Result<int> {
    ::close(fd);
    return Error{"connect: " + (what.empty() ? std::string(std::strerror(err)) : what), err};
  };
  int rc;
  do {
    rc = ::connect(fd, reinterpret_cast<const sockaddr*>(&ep.addr), ep.len);
  } while (rc < 0 && errno == EINTR);
  if (rc < 0) {
    if (errno != EINPROGRESS) return fail("", errno);
    if (Io w = wait_for(fd, POLLOUT, Clock::now() + timeout); w != Io::Ok)
      return fail(w == Io::Timeout ? "timed out" : "", errno);
    int err = 0;
    socklen_t len = sizeof(err);
    if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) return fail("", errno);
    if (err != 0) return fail("", err);
  }
  if (ep.tcp) {
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  }
  return fd;
}

// Printable ASCII only, at most kMaxReplyInDetail octets.
void append_clean(std::string& out, std::string_view s) {
  for (unsigned char c : s) {
    if (out.size() >= kMaxReplyInDetail) return;
    out += (c >= 0x20 && c < 0x7F) ? static_cast<char>(c) : '?';
  }
}

std::string reply_text(const proto::Reply& r, bool with_code) {
  std::string s;
  if (with_code) {
    s = std::to_string(r.code);
    if (!r.status.empty()) s += " " + r.status;
  }
  for (const auto& l : r.lines) {
    if (!s.empty()) s += ' ';
    append_clean(s, l);
  }
  return s;
}

// The enhanced status code for a result: the reply's own when it has the result's class.
std::string status_for(Status st, const proto::Reply& r) {
  const char cls = st == Status::Delivered ? '2' : st == Status::Deferred ? '4' : '5';
  if (r.status.size() >= 5 && r.status.front() == cls) {
    std::string s;
    append_clean(s, r.status);
    return s;
  }
  return std::string(1, cls) + ".0.0";
}

}  // namespace

carrier::Result<void> LmtpTransport::check_endpoint(std::string_view endpoint) {
  auto ep = parse_endpoint(endpoint);
  if (!ep) return ep.error();
  return {};
}

LmtpTransport::LmtpTransport(LmtpOptions opts) : opts_(std::move(opts)) {}

std::vector<Result> LmtpTransport::deliver(const Request& req) {
  std::vector<Result> out;
  auto fail_all = [&](Status st, const std::string& detail) {
    out.clear();
    for (std::size_t idx : req.recipients) out.push_back(Result{idx, st, detail, false});
  };
  try {
    if (!req.message) {
      fail_all(Status::Deferred, "4.3.0 lmtp: no message");
      return out;
    }
    const spool::Stored& msg = *req.message;
    const std::string where = "lmtp " + opts_.endpoint;
    auto ep = parse_endpoint(opts_.endpoint);
    if (!ep) {
      // RFC 3463 X.3.5: system incorrectly configured. The operator fixes it; mail waits.
      fail_all(Status::Deferred, "4.3.5 lmtp: bad endpoint \"" + opts_.endpoint +
                                     "\": " + ep.error().message);
      return out;
    }

    // The envelope as sent: RCPT addresses mapped by the configuration.
    proto::Envelope env = msg.envelope;
    std::vector<std::size_t> valid;
    for (std::size_t idx : req.recipients) {
      if (idx >= env.recipients.size()) continue;
      if (opts_.rcpt_address) env.recipients[idx].address = opts_.rcpt_address(env.recipients[idx]);
      valid.push_back(idx);
    }

    std::map<std::size_t, session::RcptOutcome> outcomes;
    std::string conn_failure;  // set when no transaction could be attempted at all
    bool conn_refused = false;  // the server refused the connection (greeting/LHLO)
    proto::Reply refusal;
    std::string refusal_stage;

    if (!valid.empty()) {
      Fd file(::open(msg.path.c_str(), O_RDONLY | O_CLOEXEC));
      if (file.get() < 0) {
        fail_all(Status::Deferred,
                 "4.3.0 lmtp: cannot open spool file: " + std::string(std::strerror(errno)));
        return out;
      }
      auto fd = connect_to(*ep, opts_.connect_timeout);
      if (!fd) {
        conn_failure = "4.4.1 " + where + ": " + fd.error().message;
      } else {
        Fd sock(*fd);
        session::ClientConfig cfg;
        cfg.helo_name = opts_.lhlo_name;
        cfg.lmtp = true;
        cfg.max_rcpts_per_transaction = std::max<std::size_t>(1, opts_.max_rcpts_per_transaction);
        cfg.timeouts.greeting = opts_.command_timeout;
        cfg.timeouts.command = opts_.command_timeout;
        cfg.timeouts.mail = opts_.command_timeout;
        cfg.timeouts.rcpt = opts_.command_timeout;
        cfg.timeouts.data_init = opts_.command_timeout;
        cfg.timeouts.data_block = opts_.data_timeout;
        cfg.timeouts.data_end = opts_.data_timeout;
        session::ClientSession s(cfg);

        std::vector<std::size_t> left = valid;  // recipients not yet in a transaction
        std::uint64_t sent = 0;
        std::string inbuf(kReadBuffer, '\0');
        std::string chunk;
        auto take_outcomes = [&] {
          for (auto& o : s.outcomes()) outcomes[o.index] = o;
          s.outcomes().clear();
        };
        auto start_next = [&] {
          if (left.empty()) return false;
          sent = 0;
          const std::size_t n = s.begin_message(env, left, msg.content_size);
          if (n == 0) return false;
          left.erase(left.begin(), left.begin() + static_cast<std::ptrdiff_t>(n));
          return true;
        };
        start_next();
        bool done = false;
        while (!done) {
          if (!s.out().empty()) {
            const bool closing = s.want() == session::ClientWant::Close;
            const Io w = write_all(sock.get(), s.out(), closing ? kQuitTimeout : s.timeout());
            s.out().clear();
            if (w == Io::Timeout) {
              s.on_timeout();
              continue;
            }
            if (w == Io::Error) {
              s.on_closed();
              continue;
            }
          }
          switch (s.want()) {
            case session::ClientWant::Reply: {
              std::size_t got = 0;
              const Io r = read_some(sock.get(), inbuf.data(), inbuf.size(), s.timeout(), got);
              if (r == Io::Timeout) s.on_timeout();
              else if (r == Io::Error || got == 0) s.on_closed();
              else s.on_input(std::string_view(inbuf.data(), got));
              break;
            }
            case session::ClientWant::StartTls:  // never asked in LMTP mode
              s.on_tls_failed("no TLS over LMTP");
              break;
            case session::ClientWant::SendContent: {
              const std::uint64_t want =
                  std::min<std::uint64_t>(kContentPiece, msg.content_size - sent);
              chunk.resize(want);
              std::size_t have = 0;
              bool ok = true;
              while (have < want) {
                const ssize_t n = ::pread(file.get(), chunk.data() + have, want - have,
                                          static_cast<off_t>(msg.content_offset + sent + have));
                if (n < 0 && errno == EINTR) continue;
                if (n <= 0) {
                  ok = false;
                  break;
                }
                have += static_cast<std::size_t>(n);
              }
              if (!ok) {
                s.on_local_error("spool read failed");
                break;
              }
              sent += want;
              s.content_chunk(std::string_view(chunk.data(), want), sent >= msg.content_size);
              break;
            }
            case session::ClientWant::Message:
              take_outcomes();
              if (!start_next()) s.quit();
              break;
            case session::ClientWant::Close:
              take_outcomes();
              if (s.connection_failed()) {
                conn_refused = true;
                refusal = s.failure_reply();
                refusal_stage = s.failure_stage();
              }
              done = true;
              break;
          }
        }
      }
    }

    for (std::size_t idx : req.recipients) {
      Result res;
      res.index = idx;
      res.status = Status::Deferred;
      if (idx >= msg.envelope.recipients.size()) {
        res.detail = "4.3.0 lmtp: no such recipient index";
      } else if (!conn_failure.empty()) {
        res.detail = conn_failure;
      } else if (auto it = outcomes.find(idx); it == outcomes.end()) {
        res.detail = "4.4.2 " + where + ": connection ended before this recipient was sent";
      } else {
        const session::RcptOutcome& o = it->second;
        res.status = o.kind == session::RcptOutcome::Delivered  ? Status::Delivered
                     : o.kind == session::RcptOutcome::PermFail ? Status::Failed
                                                                : Status::Deferred;
        if (conn_refused && res.status == Status::Deferred && !o.generated) {
          // Greeting or LHLO refused (even with 5xx): the mailbox server is not usable now.
          res.detail = "4.4.1 " + where + " refused the connection: " + reply_text(refusal, true) +
                       " (in reply to " + refusal_stage + ")";
        } else if (res.status == Status::Delivered) {
          res.detail = status_for(res.status, o.reply) + " delivered via " + where + ": " +
                       reply_text(o.reply, true);
        } else if (o.generated) {
          res.detail = status_for(res.status, o.reply) + " " + where + ": " +
                       reply_text(o.reply, false) + " (at " + o.stage + ")";
        } else {
          res.detail = status_for(res.status, o.reply) + " lmtp said: " +
                       reply_text(o.reply, true) + " (in reply to " + o.stage + ")";
        }
      }
      out.push_back(std::move(res));
    }
    return out;
  } catch (const std::exception& e) {
    fail_all(Status::Deferred, std::string("4.3.0 lmtp: internal error: ") + e.what());
  } catch (...) {
    fail_all(Status::Deferred, "4.3.0 lmtp: internal error");
  }
  return out;
}

}  // namespace carrier::transport
