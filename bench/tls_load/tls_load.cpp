// carrier-tls-load: SMTP load generator for bench/tls.sh and bench/suite.py (a benchmark client,
// not part of carrier); plain SMTP with --plain. SESSIONS threads, each with one blocking socket, send MESSAGES messages in total to
// one server on 127.0.0.0/8 over STARTTLS (RFC 3207) or implicit TLS (RFC 8314 3.3): one message
// per connection (EHLO, STARTTLS, handshake, EHLO, MAIL, RCPT, DATA, QUIT; RFC 5321 4.1.1), or
// with --reuse all of a session's messages over one connection (the next MAIL follows the 250
// after the data). Prints one line of key=value pairs: messages, seconds, msgs/s, failures,
// handshake and per-message latency percentiles, time-to-250 percentiles (from sending the
// final "." line to reading the whole 250: the server's "it is on disk" latency), the
// negotiated TLS version/cipher/group. --duration S stops starting new messages after S seconds
// (time-bounded runs); --per-conn K sends K messages per connection; --sources N spreads the
// connections over the source addresses 127.0.0.1 .. 127.0.0.N.
// Exit status: 0 if every message got 250 after its data, 1 if not, 2 on a usage error.
// Replies come from the server under test and are treated as untrusted: line length, lines per
// reply and every read/write are bounded (--timeout), malformed replies count as failures.
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <csignal>
#include <ctime>
#include <latch>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

constexpr std::size_t kMaxReplyLine = 2048;  // RFC 5321 4.5.3.1.5 says 512; be lenient
constexpr int kMaxReplyLines = 100;
constexpr int kMaxSessions = 1000;
constexpr long kMaxMessages = 100'000'000;
constexpr std::size_t kMaxSize = 64 * 1024 * 1024;
constexpr int kMaxErrorsShown = 5;

struct Options {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;
  sockaddr_in addr{};
  int sessions = 10;
  long messages = 2000;
  std::size_t size = 4096;
  bool reuse = false;
  long per_conn = 1;        // messages per connection (--reuse: all of a session's)
  bool plain = false;       // no TLS at all
  bool quit_wait = true;    // wait for the 221 to QUIT before closing
  double duration_s = 0;    // > 0: stop starting messages after this many seconds
  int sources = 1;          // source addresses 127.0.0.1 .. 127.0.0.N
  bool implicit = false;
  bool resume = false;
  std::string ca;
  std::string name = "bench.test";
  std::string tls_max;  // "", "1.2" or "1.3"
  int timeout_s = 30;
  std::string helo = "load.bench.test";
  std::string from = "load@source.bench.test";
  std::string to = "rcpt@sink.bench.test";
};

void usage(FILE* f) {
  std::fputs(
      "usage: carrier-tls-load --target 127.x.x.x:PORT [options]\n"
      "  --sessions N     concurrent sessions (threads), default 10\n"
      "  --messages M     messages in total, split over the sessions, default 2000\n"
      "  --size BYTES     message size (headers + body), default 4096\n"
      "  --reuse          all messages of a session over one connection (next MAIL after 250)\n"
      "                   default: one message per connection\n"
      "  --per-conn K     K messages per connection (default 1; --reuse: all)\n"
      "  --duration S     start no new message after S seconds (then --messages is a cap)\n"
      "  --plain          plain SMTP, no STARTTLS\n"
      "  --no-quit-wait   send QUIT and close without waiting for the 221\n"
      "  --sources N      bind connections to 127.0.0.1 .. 127.0.0.N in turn (default 1)\n"
      "  --implicit       TLS from the first byte (RFC 8314) instead of STARTTLS\n"
      "  --ca FILE        verify the server certificate against FILE and --name\n"
      "                   default: no verification\n"
      "  --name NAME      SNI and name to verify, default bench.test\n"
      "  --resume         resume TLS sessions (tickets) on later connections of a session\n"
      "  --tls-max 1.2|1.3  highest TLS version offered (lowest is always 1.2)\n"
      "  --timeout S      limit for every connect/read/write, default 30\n"
      "  --from ADDR --to ADDR --helo NAME   envelope and EHLO name\n",
      f);
}

template <typename T>
bool parse_num(std::string_view s, T& out, T lo, T hi) {
  T v{};
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || p != s.data() + s.size() || v < lo || v > hi) return false;
  out = v;
  return true;
}

bool parse_args(int argc, char** argv, Options& o, std::string& err) {
  bool have_target = false;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    auto value = [&](std::string_view& v) {
      if (i + 1 >= argc) {
        err = std::string(a) + " needs a value";
        return false;
      }
      v = argv[++i];
      return true;
    };
    std::string_view v;
    if (a == "--reuse") {
      o.reuse = true;
    } else if (a == "--plain") {
      o.plain = true;
    } else if (a == "--no-quit-wait") {
      o.quit_wait = false;
    } else if (a == "--per-conn") {
      if (!value(v) || !parse_num(v, o.per_conn, 1L, kMaxMessages)) {
        err = "--per-conn: 1.." + std::to_string(kMaxMessages);
        return false;
      }
    } else if (a == "--duration") {
      int d = 0;
      if (!value(v) || !parse_num(v, d, 1, 3600)) {
        err = "--duration: 1..3600 seconds";
        return false;
      }
      o.duration_s = d;
    } else if (a == "--sources") {
      if (!value(v) || !parse_num(v, o.sources, 1, 254)) {
        err = "--sources: 1..254";
        return false;
      }
    } else if (a == "--implicit") {
      o.implicit = true;
    } else if (a == "--resume") {
      o.resume = true;
    } else if (a == "-h" || a == "--help") {
      usage(stdout);
      std::exit(0);
    } else if (a == "--target") {
      if (!value(v)) return false;
      auto colon = v.rfind(':');
      if (colon == std::string_view::npos) {
        err = "--target must be HOST:PORT";
        return false;
      }
      o.host = std::string(v.substr(0, colon));
      if (!parse_num<std::uint16_t>(v.substr(colon + 1), o.port, 1, 65535)) {
        err = "--target: bad port";
        return false;
      }
      o.addr.sin_family = AF_INET;
      o.addr.sin_port = htons(o.port);
      if (inet_pton(AF_INET, o.host.c_str(), &o.addr.sin_addr) != 1 ||
          (ntohl(o.addr.sin_addr.s_addr) >> 24) != 127) {
        err = "--target must be an IPv4 address in 127.0.0.0/8 (loopback only)";
        return false;
      }
      have_target = true;
    } else if (a == "--sessions") {
      if (!value(v) || !parse_num(v, o.sessions, 1, kMaxSessions)) {
        err = "--sessions: 1.." + std::to_string(kMaxSessions);
        return false;
      }
    } else if (a == "--messages") {
      if (!value(v) || !parse_num(v, o.messages, 1L, kMaxMessages)) {
        err = "--messages: 1.." + std::to_string(kMaxMessages);
        return false;
      }
    } else if (a == "--size") {
      if (!value(v) || !parse_num<std::size_t>(v, o.size, 0, kMaxSize)) {
        err = "--size: 0.." + std::to_string(kMaxSize);
        return false;
      }
    } else if (a == "--timeout") {
      if (!value(v) || !parse_num(v, o.timeout_s, 1, 3600)) {
        err = "--timeout: 1..3600 seconds";
        return false;
      }
    } else if (a == "--tls-max") {
      if (!value(v) || (v != "1.2" && v != "1.3")) {
        err = "--tls-max: 1.2 or 1.3";
        return false;
      }
      o.tls_max = v;
    } else if (a == "--ca" || a == "--name" || a == "--from" || a == "--to" || a == "--helo") {
      if (!value(v)) return false;
      if (v.empty() || v.find_first_of("\r\n<> ") != std::string_view::npos) {
        err = std::string(a) + ": empty or contains CR, LF, '<', '>' or space";
        return false;
      }
      (a == "--ca" ? o.ca : a == "--name" ? o.name : a == "--from" ? o.from
                                       : a == "--to"   ? o.to
                                                       : o.helo) = std::string(v);
    } else {
      err = "unknown option " + std::string(a);
      return false;
    }
  }
  if (!have_target) {
    err = "--target is required";
    return false;
  }
  if (o.messages < o.sessions) o.sessions = static_cast<int>(o.messages);
  if (o.reuse) o.per_conn = kMaxMessages;
  if (o.plain && o.implicit) {
    err = "--plain and --implicit exclude each other";
    return false;
  }
  return true;
}

std::string ssl_errors() {
  std::string s;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!s.empty()) s += "; ";
    s += buf;
  }
  return s;
}

// One SMTP connection, plain until start_tls(), then over TLS.
class Conn {
 public:
  Conn() = default;
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;
  ~Conn() { close(); }

  bool connect(const Options& o, int source, std::string& err) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return fail(err, "socket");
    if (o.sources > 1) {
      sockaddr_in src{};
      src.sin_family = AF_INET;
      src.sin_addr.s_addr = htonl((127u << 24) | static_cast<std::uint32_t>(1 + source % o.sources));
      if (::bind(fd_, reinterpret_cast<const sockaddr*>(&src), sizeof src) != 0)
        return fail(err, "bind source address");
    }
    timeval tv{o.timeout_s, 0};
    int one = 1;
    // SO_SNDTIMEO also bounds connect() on Linux.
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (::connect(fd_, reinterpret_cast<const sockaddr*>(&o.addr), sizeof o.addr) != 0)
      return fail(err, "connect");
    return true;
  }

  // Handshake as a client; `session` (may be null) is offered for resumption.
  bool start_tls(SSL_CTX* ctx, const Options& o, SSL_SESSION* session, std::string& err) {
    if (pos_ < buf_.size()) {
      err = "server sent bytes after its 220 to STARTTLS (RFC 3207 5)";
      return false;
    }
    buf_.clear();
    pos_ = 0;
    ssl_ = SSL_new(ctx);
    if (!ssl_ || SSL_set_fd(ssl_, fd_) != 1 || SSL_set_tlsext_host_name(ssl_, o.name.c_str()) != 1) {
      err = "SSL setup: " + ssl_errors();
      return false;
    }
    if (!o.ca.empty() && SSL_set1_host(ssl_, o.name.c_str()) != 1) {
      err = "SSL_set1_host: " + ssl_errors();
      return false;
    }
    if (session) SSL_set_session(ssl_, session);
    int r = SSL_connect(ssl_);
    if (r != 1) {
      int e = SSL_get_error(ssl_, r);
      tls_failed_ = true;
      int saved = errno;
      err = "TLS handshake failed (SSL error " + std::to_string(e) + ")";
      long vr = SSL_get_verify_result(ssl_);
      if (vr != X509_V_OK) err += ": certificate: " + std::string(X509_verify_cert_error_string(vr));
      std::string q = ssl_errors();
      if (!q.empty()) err += ": " + q;
      if (e == SSL_ERROR_SYSCALL && saved) err += ": " + std::string(std::strerror(saved));
      return false;
    }
    return true;
  }

  SSL* ssl() const { return ssl_; }

  bool send(std::string_view data, std::string& err) {
    while (!data.empty()) {
      if (ssl_) {
        int n = SSL_write(ssl_, data.data(), static_cast<int>(std::min<std::size_t>(data.size(), 1 << 30)));
        if (n <= 0) return ssl_fail(err, "write", n);
        data.remove_prefix(static_cast<std::size_t>(n));
      } else {
        ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return fail(err, "send");
        data.remove_prefix(static_cast<std::size_t>(n));
      }
    }
    return true;
  }

  // Reads one (possibly multi-line) reply. Returns its code, or -1 with `err` set. `lines`
  // gets the text of every line (after the code and separator) when not null.
  int reply(std::string& err, std::vector<std::string>* lines = nullptr) {
    int code = -1;
    for (int n = 0; n < kMaxReplyLines; ++n) {
      std::string line;
      if (!read_line(line, err)) return -1;
      auto digit = [](char ch) { return ch >= '0' && ch <= '9'; };
      if (line.size() < 3 || !std::all_of(line.begin(), line.begin() + 3, digit) ||
          (line.size() > 3 && line[3] != ' ' && line[3] != '-')) {
        err = "malformed reply line: " + line.substr(0, 80);
        return -1;
      }
      int c = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
      if (code != -1 && c != code) {
        err = "reply codes differ between lines: " + line.substr(0, 80);
        return -1;
      }
      code = c;
      if (lines) lines->push_back(line.size() > 4 ? line.substr(4) : std::string());
      if (line.size() == 3 || line[3] == ' ') {
        last_ = std::move(line);
        return code;
      }
    }
    err = "reply has more than " + std::to_string(kMaxReplyLines) + " lines";
    return -1;
  }

  const std::string& last_line() const { return last_; }

  // Sends close_notify (not waiting for the peer's; not after a TLS error) and closes.
  void close() {
    if (ssl_) {
      if (!tls_failed_) SSL_shutdown(ssl_);
      SSL_free(ssl_);
      ssl_ = nullptr;
    }
    tls_failed_ = false;
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    buf_.clear();
    pos_ = 0;
  }

 private:
  bool fail(std::string& err, const char* what) {
    int e = errno;
    err = std::string(what) + ": " + (e == EAGAIN ? "timed out" : std::strerror(e));
    return false;
  }
  bool ssl_fail(std::string& err, const char* what, int r) {
    int e = SSL_get_error(ssl_, r);
    tls_failed_ = true;
    int saved = errno;
    err = std::string("TLS ") + what + " failed (SSL error " + std::to_string(e) + ")";
    if (e == SSL_ERROR_ZERO_RETURN) err = std::string("TLS ") + what + ": peer closed (close_notify)";
    if (e == SSL_ERROR_SYSCALL)
      err += saved == EAGAIN ? ": timed out" : saved ? ": " + std::string(std::strerror(saved)) : ": EOF";
    std::string q = ssl_errors();
    if (!q.empty()) err += ": " + q;
    return false;
  }

  bool read_line(std::string& line, std::string& err) {
    for (;;) {
      auto nl = buf_.find('\n', pos_);
      if (nl != std::string::npos) {
        std::size_t end = nl;
        if (end > pos_ && buf_[end - 1] == '\r') --end;
        line.assign(buf_, pos_, end - pos_);
        pos_ = nl + 1;
        if (pos_ == buf_.size()) {
          buf_.clear();
          pos_ = 0;
        }
        return true;
      }
      if (buf_.size() - pos_ > kMaxReplyLine) {
        err = "reply line longer than " + std::to_string(kMaxReplyLine) + " bytes";
        return false;
      }
      if (pos_ > 0) {
        buf_.erase(0, pos_);
        pos_ = 0;
      }
      char tmp[4096];
      int n;
      if (ssl_) {
        n = SSL_read(ssl_, tmp, sizeof tmp);
        if (n <= 0) return ssl_fail(err, "read", n);
      } else {
        ssize_t r = ::recv(fd_, tmp, sizeof tmp, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return fail(err, "recv");
        if (r == 0) {
          err = "connection closed by the server";
          return false;
        }
        n = static_cast<int>(r);
      }
      buf_.append(tmp, static_cast<std::size_t>(n));
    }
  }

  int fd_ = -1;
  SSL* ssl_ = nullptr;
  bool tls_failed_ = false;
  std::string buf_;
  std::size_t pos_ = 0;
  std::string last_;
};

struct TlsInfo {
  std::string version, cipher, group, cert;
};

struct Stats {
  long ok = 0, failed = 0, connections = 0, resumed = 0, quit_errors = 0;
  std::vector<double> handshake_ms, message_ms, t250_ms;
  std::vector<std::string> errors;  // the first few
  long errors_total = 0;
};

std::mutex info_mu;
TlsInfo tls_info;
bool tls_info_set = false;

void record_tls_info(SSL* ssl) {
  std::lock_guard lk(info_mu);
  if (tls_info_set) return;
  tls_info_set = true;
  tls_info.version = SSL_get_version(ssl);
  tls_info.cipher = SSL_get_cipher_name(ssl);
  int nid = SSL_get_negotiated_group(ssl);
  const char* g = nid > 0 ? SSL_group_to_name(ssl, nid) : nullptr;
  tls_info.group = g ? g : "-";
  if (X509* x = SSL_get0_peer_certificate(ssl)) {
    if (EVP_PKEY* k = X509_get0_pubkey(x)) {
      const char* t = EVP_PKEY_get0_type_name(k);
      tls_info.cert = std::string(t ? t : "?") + "-" + std::to_string(EVP_PKEY_get_bits(k));
    }
  }
}

bool ehlo(Conn& c, const Options& o, bool want_starttls, std::string& err) {
  std::vector<std::string> lines;
  if (!c.send("EHLO " + o.helo + "\r\n", err)) return false;
  int code = c.reply(err, &lines);
  if (code < 0) return false;
  if (code != 250) {
    err = "EHLO: " + c.last_line();
    return false;
  }
  if (want_starttls) {
    bool found = false;
    for (std::size_t i = 1; i < lines.size(); ++i) {
      std::string k = lines[i].substr(0, lines[i].find(' '));
      std::transform(k.begin(), k.end(), k.begin(),
                     [](char ch) { return static_cast<char>(std::toupper(static_cast<unsigned char>(ch))); });
      if (k == "STARTTLS") found = true;
    }
    if (!found) {
      err = "EHLO reply does not offer STARTTLS";
      return false;
    }
  }
  return true;
}

bool expect(Conn& c, std::string_view cmd, int want, std::string& err) {
  int code = c.reply(err);
  if (code < 0) {
    err = std::string(cmd) + ": " + err;
    return false;
  }
  if (code != want && !(want == 250 && code == 251)) {
    err = std::string(cmd) + ": " + c.last_line();
    return false;
  }
  return true;
}

// Connects and brings the connection to "EHLO done over TLS".
bool open_session(Conn& c, SSL_CTX* ctx, const Options& o, int id, SSL_SESSION*& session,
                  Stats& st, std::string& err) {
  ++st.connections;
  if (!c.connect(o, id, err)) return false;
  auto handshake = [&]() {
    auto t0 = Clock::now();
    if (!c.start_tls(ctx, o, session, err)) return false;
    st.handshake_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    if (SSL_session_reused(c.ssl())) ++st.resumed;
    record_tls_info(c.ssl());
    return true;
  };
  if (o.implicit && !handshake()) return false;
  if (!expect(c, "greeting", 220, err)) return false;
  if (o.plain) return ehlo(c, o, false, err);
  if (!o.implicit) {
    if (!ehlo(c, o, true, err)) return false;
    if (!c.send("STARTTLS\r\n", err) || !expect(c, "STARTTLS", 220, err)) return false;
    if (!handshake()) return false;
  }
  return ehlo(c, o, false, err);
}

// Keeps the session of a finished connection for the next one (--resume).
void keep_session(Conn& c, const Options& o, SSL_SESSION*& session) {
  if (!o.resume || !c.ssl()) return;
  SSL_SESSION* s = SSL_get1_session(c.ssl());
  if (s && SSL_SESSION_is_resumable(s)) {
    if (session) SSL_SESSION_free(session);
    session = s;
  } else if (s) {
    SSL_SESSION_free(s);
  }
}

void quit(Conn& c, const Options& o, SSL_SESSION*& session, Stats& st) {
  std::string err;
  if (!c.send("QUIT\r\n", err) || (o.quit_wait && !expect(c, "QUIT", 221, err))) ++st.quit_errors;
  keep_session(c, o, session);
  c.close();
}

std::string message_head(const Options& o, const std::string& date, int sess, long seq) {
  return "From: <" + o.from + ">\r\nTo: <" + o.to + ">\r\nSubject: carrier-tls-load " +
                  std::to_string(sess) + "." + std::to_string(seq) + "\r\nDate: " + date +
                  "\r\nMessage-ID: <" + std::to_string(::getpid()) + "." + std::to_string(sess) +
                  "." + std::to_string(seq) + "@" + o.helo + ">\r\n\r\n";
}

// Body: lines of 'x' (76 + CRLF) up to `bytes`, never starting with '.'; built once and shared.
std::string message_body(std::size_t bytes) {
  std::string m;
  m.reserve(bytes);
  while (m.size() + 3 <= bytes) {
    std::size_t n = std::min<std::size_t>(76, bytes - m.size() - 2);
    m.append(n, 'x');
    m += "\r\n";
  }
  return m;
}

void run_session(int id, long count, SSL_CTX* ctx, const Options& o, const std::string& date,
                 const std::string& body, Clock::time_point& deadline, std::latch& go, Stats& st) {
  go.wait();
  Conn c;
  bool open = false;
  SSL_SESSION* session = nullptr;
  std::string err;
  const std::string mail = "MAIL FROM:<" + o.from + ">\r\n";
  const std::string rcpt = "RCPT TO:<" + o.to + ">\r\n";
  long on_conn = 0;
  for (long i = 0; i < count; ++i) {
    if (o.duration_s > 0 && Clock::now() >= deadline) {
      if (open) quit(c, o, session, st);
      open = false;
      break;
    }
    std::string head = message_head(o, date, id, i);
    auto t0 = Clock::now();
    Clock::time_point t1{};
    bool ok = (open || ((open = open_session(c, ctx, o, id, session, st, err)) && ((on_conn = 0), true))) &&
              c.send(mail, err) && expect(c, "MAIL", 250, err) &&
              c.send(rcpt, err) && expect(c, "RCPT", 250, err) &&
              c.send("DATA\r\n", err) && expect(c, "DATA", 354, err) &&
              c.send(head, err) && c.send(body, err) && ((t1 = Clock::now()), true) &&
              c.send(".\r\n", err) && expect(c, "end of data", 250, err);
    if (ok) {
      ++st.ok;
      auto t2 = Clock::now();
      st.message_ms.push_back(std::chrono::duration<double, std::milli>(t2 - t0).count());
      st.t250_ms.push_back(std::chrono::duration<double, std::milli>(t2 - t1).count());
      if (++on_conn >= o.per_conn || i + 1 == count) {
        quit(c, o, session, st);
        open = false;
      }
    } else {
      ++st.failed;
      ++st.errors_total;
      if (st.errors.size() < kMaxErrorsShown) st.errors.push_back(err);
      c.close();
      open = false;
    }
  }
  if (session) SSL_SESSION_free(session);
}

double percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  std::size_t k = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  std::nth_element(v.begin(), v.begin() + static_cast<long>(k), v.end());
  return v[k];
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  std::string err;
  std::signal(SIGPIPE, SIG_IGN);  // a server that closes early is an error value, not a signal
  if (!parse_args(argc, argv, o, err)) {
    std::fprintf(stderr, "carrier-tls-load: %s\n", err.c_str());
    usage(stderr);
    return 2;
  }
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (!ctx) {
    std::fprintf(stderr, "carrier-tls-load: SSL_CTX_new: %s\n", ssl_errors().c_str());
    return 2;
  }
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  if (o.tls_max == "1.2") SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);
  if (o.tls_max == "1.3") SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
  if (!o.ca.empty()) {
    if (SSL_CTX_load_verify_locations(ctx, o.ca.c_str(), nullptr) != 1) {
      std::fprintf(stderr, "carrier-tls-load: cannot load CA file %s: %s\n", o.ca.c_str(),
                   ssl_errors().c_str());
      return 2;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  } else {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  }
  // Sessions are kept by hand (--resume); never by OpenSSL's client cache.
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);

  char date[64];
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  std::strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S +0000", &tm);

  std::vector<Stats> stats(static_cast<std::size_t>(o.sessions));
  std::vector<std::thread> threads;
  std::latch go(1);
  // Header lines are ~200 bytes; the body makes up the rest of --size.
  const std::string body = message_body(o.size > 200 ? o.size - 200 : 0);
  Clock::time_point deadline{};
  for (int i = 0; i < o.sessions; ++i) {
    long count = o.messages / o.sessions + (i < o.messages % o.sessions ? 1 : 0);
    threads.emplace_back(run_session, i, count, ctx, std::cref(o), std::string(date),
                         std::cref(body), std::ref(deadline), std::ref(go),
                         std::ref(stats[static_cast<std::size_t>(i)]));
  }
  auto t0 = Clock::now();
  deadline = t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.duration_s));
  go.count_down();
  for (auto& t : threads) t.join();
  double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  SSL_CTX_free(ctx);

  Stats all;
  for (auto& s : stats) {
    all.ok += s.ok;
    all.failed += s.failed;
    all.connections += s.connections;
    all.resumed += s.resumed;
    all.quit_errors += s.quit_errors;
    all.errors_total += s.errors_total;
    all.handshake_ms.insert(all.handshake_ms.end(), s.handshake_ms.begin(), s.handshake_ms.end());
    all.message_ms.insert(all.message_ms.end(), s.message_ms.begin(), s.message_ms.end());
    all.t250_ms.insert(all.t250_ms.end(), s.t250_ms.begin(), s.t250_ms.end());
    for (auto& e : s.errors)
      if (all.errors.size() < kMaxErrorsShown) all.errors.push_back(e);
  }
  for (auto& e : all.errors) std::fprintf(stderr, "carrier-tls-load: error: %s\n", e.c_str());
  if (all.errors_total > static_cast<long>(all.errors.size()))
    std::fprintf(stderr, "carrier-tls-load: ... %ld errors in all\n", all.errors_total);

  std::printf(
      "target=%s:%u mode=%s reuse=%d sessions=%d size=%zu messages=%ld ok=%ld failures=%ld "
      "seconds=%.3f msgs_per_s=%.1f connections=%ld resumed=%ld quit_errors=%ld "
      "hs_p50_ms=%.2f hs_p99_ms=%.2f msg_p50_ms=%.2f msg_p99_ms=%.2f t250_p50_ms=%.2f "
      "t250_p99_ms=%.2f tls=%s cipher=%s group=%s cert=%s\n",
      o.host.c_str(), o.port, o.plain ? "plain" : o.implicit ? "implicit" : "starttls",
      o.reuse ? 1 : 0, o.sessions,
      o.size, o.messages, all.ok, all.failed, secs, static_cast<double>(all.ok) / secs,
      all.connections, all.resumed, all.quit_errors, percentile(all.handshake_ms, 0.50),
      percentile(all.handshake_ms, 0.99), percentile(all.message_ms, 0.50),
      percentile(all.message_ms, 0.99), percentile(all.t250_ms, 0.50),
      percentile(all.t250_ms, 0.99), tls_info_set ? tls_info.version.c_str() : "-",
      tls_info_set ? tls_info.cipher.c_str() : "-", tls_info_set ? tls_info.group.c_str() : "-",
      tls_info_set && !tls_info.cert.empty() ? tls_info.cert.c_str() : "-");
  if (o.duration_s > 0) return all.failed == 0 && all.ok > 0 ? 0 : 1;
  return all.ok == o.messages ? 0 : 1;
}
