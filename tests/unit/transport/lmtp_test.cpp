// Unit tests of the LMTP transport (transport/lmtp) against a small scripted LMTP server in the
// test (a thread on a loopback TCP port or a unix socket in a temporary directory): connect
// failures, RFC 2033 4.2 per-recipient replies after DATA, 4xx/5xx at RCPT, a server closing
// mid-DATA or never answering, RFC 5321 4.5.2 dot-stuffing, several transactions on one
// connection, endpoint forms. Test-only code; network traffic on 127.0.0.1 only.
#include "transport/lmtp/lmtp_transport.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

using namespace carrier;
using namespace carrier::transport;
namespace fs = std::filesystem;
using Status = spool::RecipientResult::Status;
using TResult = carrier::transport::Result;
using namespace std::chrono_literals;

namespace {

class TempDir {
 public:
  TempDir() {
    std::string t = (fs::temp_directory_path() / "carrier-lmtp-XXXXXX").string();
    if (!::mkdtemp(t.data())) throw std::runtime_error("mkdtemp");
    path_ = t;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

proto::Mailbox mbox(std::string_view s) {
  auto m = proto::parse_mailbox(s, true);
  EXPECT_TRUE(m.has_value()) << s;
  return m.value_or(proto::Mailbox{});
}

// A spool-like file: a header, then the content at content_offset (as spool::Spool stores it).
struct Message {
  spool::Stored stored;
  Message(const fs::path& dir, std::string_view content, std::vector<std::string> rcpts,
          std::string sender = "alice@example.org") {
    stored.id = "0G4X7PN1Q2AB";
    stored.path = dir / "spoolfile";
    const std::string head = "CARRIER-SPOOL 1 2\n{}\n";
    std::ofstream(stored.path, std::ios::binary) << head << content;
    stored.content_offset = head.size();
    stored.content_size = content.size();
    if (!sender.empty()) stored.envelope.sender = mbox(sender);
    for (const auto& r : rcpts) {
      proto::EnvelopeRecipient er;
      er.address = mbox(r);
      er.original = er.address;
      er.route = proto::RcptRoute::Local;
      er.mailbox = er.address.local;
      stored.envelope.recipients.push_back(er);
    }
    stored.done.assign(stored.envelope.recipients.size(), false);
  }
  Request all() const {
    Request r{&stored, {}};
    for (std::size_t i = 0; i < stored.envelope.recipients.size(); ++i) r.recipients.push_back(i);
    return r;
  }
};

// RFC 5321 4.5.2: what the receiver does with the transparency dots.
std::string unstuff(std::string_view wire) {
  std::string out;
  bool line_start = true;
  for (std::size_t i = 0; i < wire.size(); ++i) {
    if (line_start && wire[i] == '.') {
      line_start = false;
      continue;
    }
    out += wire[i];
    line_start = wire[i] == '\n';
  }
  return out;
}

// A scripted LMTP server (RFC 2033): one connection at a time, until destroyed.
class FakeLmtp {
 public:
  std::string greeting = "220 lmtp.test LMTP ready";
  std::string lhlo_reply = "250-lmtp.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES";
  std::function<std::string(const std::string& rcpt)> rcpt_reply = [](const std::string&) {
    return std::string("250 2.1.5 OK");
  };
  // RFC 2033 4.2: the reply after "." for each accepted recipient ("": close the connection).
  std::function<std::string(const std::string& rcpt)> data_reply = [](const std::string& r) {
    return "250 2.0.0 <" + r + "> Saved";
  };
  std::size_t close_after_data_bytes = 0;  // > 0: close the connection mid-DATA
  bool silent = false;                     // never say anything

  // Listens on 127.0.0.1 (port chosen by the kernel) or on the unix socket `unix_path`.
  explicit FakeLmtp(const std::string& unix_path = "") {
    if (unix_path.empty()) {
      lfd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      EXPECT_EQ(::bind(lfd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
      socklen_t len = sizeof(a);
      ::getsockname(lfd_, reinterpret_cast<sockaddr*>(&a), &len);
      endpoint = "127.0.0.1:" + std::to_string(ntohs(a.sin_port));
    } else {
      lfd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_un a{};
      a.sun_family = AF_UNIX;
      std::strncpy(a.sun_path, unix_path.c_str(), sizeof(a.sun_path) - 1);
      EXPECT_EQ(::bind(lfd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
      endpoint = "unix:" + unix_path;
    }
    EXPECT_EQ(::listen(lfd_, 8), 0);
  }
  ~FakeLmtp() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    ::close(lfd_);
  }
  void start() {
    thread_ = std::thread([this] { run(); });
  }

  // Waits (at most 5 s) until n connections were served and closed; then the records below
  // may be read.
  void await(int n) {
    const auto until = std::chrono::steady_clock::now() + 5s;
    while (served_.load() < n && std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(5ms);
    EXPECT_EQ(served_.load(), n);
  }

  std::string endpoint;
  // What the server saw (read after await()).
  std::vector<std::string> commands;   // every command line, in order
  std::vector<std::string> data_wire;  // per transaction: the content as sent (dot-stuffed)
  int connections = 0;

 private:
  void run() {
    while (!stop_) {
      pollfd p{lfd_, POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      const int fd = ::accept4(lfd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      ++connections;
      serve(fd);
      ::close(fd);
      ++served_;
    }
  }
  void say(int fd, const std::string& s) {
    const std::string line = s + "\r\n";
    (void)::send(fd, line.data(), line.size(), MSG_NOSIGNAL);
  }
  // Next line without CRLF; false when the client closed or the test ends.
  bool line(int fd, std::string& buf, std::string& out) {
    for (;;) {
      const std::size_t nl = buf.find("\r\n");
      if (nl != std::string::npos) {
        out = buf.substr(0, nl);
        buf.erase(0, nl + 2);
        return true;
      }
      pollfd p{fd, POLLIN, 0};
      if (stop_) return false;
      if (::poll(&p, 1, 20) <= 0) continue;
      char tmp[4096];
      const ssize_t n = ::recv(fd, tmp, sizeof(tmp), 0);
      if (n <= 0) return false;
      buf.append(tmp, static_cast<std::size_t>(n));
    }
  }
  void serve(int fd) {
    if (silent) {
      std::string buf, l;
      while (line(fd, buf, l)) {
      }
      return;
    }
    say(fd, greeting);
    if (greeting.front() != '2') return;
    std::string buf, l;
    std::vector<std::string> accepted;
    while (line(fd, buf, l)) {
      commands.push_back(l);
      const std::string verb = l.substr(0, 4);
      if (verb == "LHLO") {
        say(fd, lhlo_reply);
      } else if (verb == "MAIL") {
        accepted.clear();
        say(fd, "250 2.1.0 OK");
      } else if (verb == "RCPT") {
        const std::size_t lt = l.find('<'), gt = l.find('>');
        const std::string addr = l.substr(lt + 1, gt - lt - 1);
        const std::string r = rcpt_reply(addr);
        if (r.front() == '2') accepted.push_back(addr);
        say(fd, r);
      } else if (verb == "DATA") {
        if (accepted.empty()) {
          say(fd, "503 5.5.1 No valid recipients");
          continue;
        }
        say(fd, "354 OK");
        std::string wire, dl;
        bool ended = false;
        while (line(fd, buf, dl)) {
          if (dl == ".") {
            ended = true;
            break;
          }
          wire += dl + "\r\n";
          if (close_after_data_bytes && wire.size() >= close_after_data_bytes) break;
        }
        data_wire.push_back(wire);
        if (!ended) return;  // closes the connection mid-DATA
        for (const auto& a : accepted) {
          const std::string r = data_reply(a);
          if (r.empty()) return;
          say(fd, r);
        }
      } else if (verb == "RSET") {
        say(fd, "250 2.0.0 OK");
      } else if (verb == "QUIT") {
        say(fd, "221 2.0.0 Bye");
        return;
      } else {
        say(fd, "500 5.5.1 Unknown command");
      }
    }
  }

  int lfd_ = -1;
  std::atomic<bool> stop_{false};
  std::atomic<int> served_{0};
  std::thread thread_;
};

LmtpOptions options(const std::string& endpoint) {
  LmtpOptions o;
  o.endpoint = endpoint;
  o.lhlo_name = "mx.carrier.test";
  o.connect_timeout = 5s;
  o.command_timeout = 5s;
  o.data_timeout = 5s;
  o.max_rcpts_per_transaction = 100;  // these tests look at multi-recipient transactions
  return o;
}

const TResult* result_for(const std::vector<TResult>& v, std::size_t idx) {
  for (const auto& r : v)
    if (r.index == idx) return &r;
  return nullptr;
}

// A port on 127.0.0.1 nobody listens on (bound, then released).
std::uint16_t closed_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  socklen_t len = sizeof(a);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

const std::string kContent =
    "Received: from x by mx.carrier.test; Mon, 1 Jan 2024 00:00:00 +0000\r\n"
    "Subject: hello\r\n"
    "\r\n"
    ".a line starting with a dot\r\n"
    "..two dots\r\n"
    ".\r\n"
    "last\r\n";

// ---------------------------------------------------------------- connect failures

TEST(LmtpTransport, ConnectionRefusedDefersEveryRecipient) {
  TempDir dir;
  Message m(dir.path(), kContent, {"a@example.org", "b@example.org"});
  const std::string ep = "127.0.0.1:" + std::to_string(closed_port());
  LmtpTransport t(options(ep));
  EXPECT_STREQ(t.name(), "lmtp");
  const auto res = t.deliver(m.all());
  ASSERT_EQ(res.size(), 2u);
  for (const auto& r : res) {
    EXPECT_EQ(r.status, Status::Deferred);
    EXPECT_EQ(r.detail, "4.4.1 lmtp " + ep + ": connect: Connection refused");
  }
}

TEST(LmtpTransport, MissingUnixSocketDefers) {
  TempDir dir;
  Message m(dir.path(), kContent, {"a@example.org"});
  LmtpTransport t(options("unix:" + (dir.path() / "nothing").string()));
  const auto res = t.deliver(m.all());
  ASSERT_EQ(res.size(), 1u);
  EXPECT_EQ(res[0].status, Status::Deferred);
  EXPECT_EQ(res[0].detail, "4.4.1 lmtp unix:" + (dir.path() / "nothing").string() +
                               ": connect: No such file or directory");
}

TEST(LmtpTransport, BadEndpointDefersAsConfigurationError) {
  TempDir dir;
  Message m(dir.path(), kContent, {"a@example.org"});
  LmtpTransport t(options("localhost:24"));  // host names are not resolved
  const auto res = t.deliver(m.all());
  ASSERT_EQ(res.size(), 1u);
  EXPECT_EQ(res[0].status, Status::Deferred);
  EXPECT_EQ(res[0].detail.rfind("4.3.5 lmtp: bad endpoint \"localhost:24\": ", 0), 0u)
      << res[0].detail;
}

TEST(LmtpTransport, EndpointForms) {
  EXPECT_TRUE(LmtpTransport::check_endpoint("unix:/run/dovecot/lmtp"));
  EXPECT_TRUE(LmtpTransport::check_endpoint("127.0.0.1:24"));
  EXPECT_TRUE(LmtpTransport::check_endpoint("[::1]:24"));
  EXPECT_TRUE(LmtpTransport::check_endpoint("[2001:db8::1]:65535"));
  for (const char* bad : {"", "unix:", "unix:relative/path", "127.0.0.1", "127.0.0.1:",
                          "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:24x", "::1:24", "[::1]24",
                          "[127.0.0.1]:24", "dovecot.example:24", "1.2.3:24"}) {
    EXPECT_FALSE(LmtpTransport::check_endpoint(bad)) << bad;
  }
  EXPECT_FALSE(LmtpTransport::check_endpoint("unix:/" + std::string(200, 'x')));  // sun_path
}

TEST(LmtpTransport, ServerThatNeverAnswersTimesOut) {
  TempDir dir;
  Message m(dir.path(), kContent, {"a@example.org"});
  FakeLmtp server;
  server.silent = true;
  server.start();
  LmtpOptions o = options(server.endpoint);
  o.command_timeout = 1s;
  LmtpTransport t(o);
  const auto start = std::chrono::steady_clock::now();
  const auto res = t.deliver(m.all());
  EXPECT_LT(std::chrono::steady_clock::now() - start, 4s);
  ASSERT_EQ(res.size(), 1u);
  EXPECT_EQ(res[0].status, Status::Deferred);
  EXPECT_EQ(res[0].detail,
            "4.4.2 lmtp " + server.endpoint + ": timeout waiting for the server (at connect)");
}

TEST(LmtpTransport, RefusedGreetingDefersEvenWith5xx) {
  TempDir dir;
  Message m(dir.path(), kContent, {"a@example.org"});
  FakeLmtp server;
  server.greeting = "554 5.3.2 not now";
  server.start();
  LmtpTransport t(options(server.endpoint));
  const auto res = t.deliver(m.all());
  ASSERT_EQ(res.size(), 1u);
  EXPECT_EQ(res[0].status, Status::Deferred);
  EXPECT_EQ(res[0].detail, "4.4.1 lmtp " + server.endpoint +
                               " refused the connection: 554 5.3.2 not now (in reply to connect)");
}

// ---------------------------------------------------------------- RFC 2033 transactions

TEST(LmtpTransport, Rfc2033_4_2_PerRecipientRepliesOverUnixSocket) {
  TempDir dir;
  Message m(dir.path(), kContent,
            {"a@example.org", "nobody@example.org", "full@example.org", "b@example.org"});
  m.stored.envelope.params.body = proto::Body::EightBitMime;
  FakeLmtp server((dir.path() / "lmtp").string());
  server.rcpt_reply = [](const std::string& r) {
    return r.rfind("nobody@", 0) == 0 ? "550 5.1.1 <" + r + "> User doesn't exist"
                                      : std::string("250 2.1.5 OK");
  };
  server.data_reply = [](const std::string& r) {
    if (r.rfind("full@", 0) == 0) return "452 4.2.2 <" + r + "> Mailbox is full";
    if (r.rfind("b@", 0) == 0) return "552 5.2.2 <" + r + "> Quota exceeded";
    return "250 2.0.0 <" + r + "> Saved";
  };
  server.start();
  LmtpTransport t(options(server.endpoint));
  Request req{&m.stored, {3, 0, 1, 2}};  // the caller's order is kept in the RCPTs
  const auto res = t.deliver(req);
  ASSERT_EQ(res.size(), 4u);
  const std::string ep = server.endpoint;
  EXPECT_EQ(result_for(res, 0)->status, Status::Delivered);
  EXPECT_EQ(result_for(res, 0)->detail,
            "2.0.0 delivered via lmtp " + ep + ": 250 2.0.0 <a@example.org> Saved");
  EXPECT_EQ(result_for(res, 1)->status, Status::Failed);
  EXPECT_EQ(result_for(res, 1)->detail,
            "5.1.1 lmtp said: 550 5.1.1 <nobody@example.org> User doesn't exist (in reply to "
            "RCPT)");
  EXPECT_EQ(result_for(res, 2)->status, Status::Deferred);
  EXPECT_EQ(result_for(res, 2)->detail,
            "4.2.2 lmtp said: 452 4.2.2 <full@example.org> Mailbox is full (in reply to DATA)");
  EXPECT_EQ(result_for(res, 3)->status, Status::Failed);
  EXPECT_EQ(result_for(res, 3)->detail,
            "5.2.2 lmtp said: 552 5.2.2 <b@example.org> Quota exceeded (in reply to DATA)");
  for (const auto& r : res) EXPECT_FALSE(r.relayed);
  server.await(1);

  const std::vector<std::string> expected = {
      "LHLO mx.carrier.test",
      "MAIL FROM:<alice@example.org> BODY=8BITMIME",  // RFC 6152 3
      "RCPT TO:<b@example.org>",
      "RCPT TO:<a@example.org>",
      "RCPT TO:<nobody@example.org>",
      "RCPT TO:<full@example.org>",
      "DATA",
      "QUIT"};
  EXPECT_EQ(server.commands, expected);
  EXPECT_EQ(server.connections, 1);
  ASSERT_EQ(server.data_wire.size(), 1u);
  // RFC 5321 4.5.2: lines starting with "." went out with one more; the content arrives
  // exactly as stored, with no Return-Path:/Delivered-To: added (the LMTP server adds them).
  EXPECT_NE(server.data_wire[0].find("\r\n..a line starting with a dot\r\n...two dots\r\n..\r\n"),
            std::string::npos);
  EXPECT_EQ(unstuff(server.data_wire[0]), kContent);
}

TEST(LmtpTransport, Rfc2033_4_1_TemporaryRefusalAtRcptOverTcp) {
  TempDir dir;
  Message m(dir.path(), kContent, {"a@example.org", "b@example.org"});
  FakeLmtp server;
  server.rcpt_reply = [](const std::string& r) {
    return r.rfind("a@", 0) == 0 ? "450 4.2.1 <" + r + "> Mailbox busy"
                                 : std::string("250 2.1.5 OK");
  };
  server.start();
  LmtpOptions o = options(server.endpoint);
  // The configured RCPT address (e.g. NAME@first-local-domain) is what the server sees.
  o.rcpt_address = [](const proto::EnvelopeRecipient& er) {
    return proto::Mailbox{er.address.local, "mail.test"};
  };
  LmtpTransport t(o);
  const auto res = t.deliver(m.all());
  ASSERT_EQ(res.size(), 2u);
  EXPECT_EQ(result_for(res, 0)->status, Status::Deferred);
  EXPECT_EQ(result_for(res, 0)->detail,
            "4.2.1 lmtp said: 450 4.2.1 <a@mail.test> Mailbox busy (in reply to RCPT)");
  EXPECT_EQ(result_for(res, 1)->status, Status::Delivered);
  EXPECT_EQ(result_for(res, 1)->detail,
            "2.0.0 delivered via lmtp " + server.endpoint + ": 250 2.0.0 <b@mail.test> Saved");
  server.await(1);
  ASSERT_GE(server.commands.size(), 4u);
  EXPECT_EQ(server.commands[2], "RCPT TO:<a@mail.test>");
  EXPECT_EQ(server.commands[3], "RCPT TO:<b@mail.test>");
}

TEST(LmtpTransport, ServerClosingMidDataDefersEveryRecipient) {
  TempDir dir;
  // Large enough that the client is still writing when the server goes away.
  std::string big = "Subject: big\r\n\r\n";
  while (big.size() < 2 * 1024 * 1024) big += std::string(998, 'x') + "\r\n";
  Message m(dir.path(), big, {"a@example.org", "b@example.org"});
  FakeLmtp server;
  server.close_after_data_bytes = 10000;
  server.start();
  LmtpTransport t(options(server.endpoint));
  const auto res = t.deliver(m.all());
  ASSERT_EQ(res.size(), 2u);
  for (const auto& r : res) {
    EXPECT_EQ(r.status, Status::Deferred);
    EXPECT_EQ(r.detail, "4.4.2 lmtp " + server.endpoint + ": connection lost (at DATA)");
  }
}

TEST(LmtpTransport, ServerClosingBetweenPerRecipientRepliesDefersTheRest) {
  TempDir dir;
  Message m(dir.path(), kContent, {"a@example.org", "b@example.org"});
  FakeLmtp server;
  // One reply for two accepted recipients, then the connection ends (RFC 2033 4.2).
  server.data_reply = [n = 0](const std::string& r) mutable {
    return ++n == 1 ? "250 2.0.0 <" + r + "> Saved" : std::string("");
  };
  server.start();
  LmtpTransport t(options(server.endpoint));
  const auto res = t.deliver(m.all());
  ASSERT_EQ(res.size(), 2u);
  EXPECT_EQ(result_for(res, 0)->status, Status::Delivered);
  EXPECT_EQ(result_for(res, 1)->status, Status::Deferred);
  EXPECT_EQ(result_for(res, 1)->detail,
            "4.4.2 lmtp " + server.endpoint + ": connection lost (at DATA)");
}

TEST(LmtpTransport, Rfc5321_4_5_3_1_8_MoreThan100RecipientsTwoTransactionsOneConnection) {
  TempDir dir;
  std::vector<std::string> rcpts;
  for (int i = 0; i < 150; ++i) rcpts.push_back("u" + std::to_string(i) + "@example.org");
  Message m(dir.path(), kContent, rcpts);
  FakeLmtp server;
  server.start();
  LmtpTransport t(options(server.endpoint));
  const auto res = t.deliver(m.all());
  ASSERT_EQ(res.size(), 150u);
  for (const auto& r : res) EXPECT_EQ(r.status, Status::Delivered) << r.index << " " << r.detail;
  server.await(1);
  EXPECT_EQ(server.connections, 1);
  int mails = 0, rcpt_cmds = 0, rsets = 0;
  for (const auto& c : server.commands) {
    mails += c.rfind("MAIL ", 0) == 0;
    rcpt_cmds += c.rfind("RCPT ", 0) == 0;
    rsets += c == "RSET";
  }
  EXPECT_EQ(mails, 2);
  EXPECT_EQ(rcpt_cmds, 150);
  EXPECT_EQ(rsets, 0);  // each transaction ended with its replies
  ASSERT_EQ(server.data_wire.size(), 2u);
  EXPECT_EQ(unstuff(server.data_wire[1]), kContent);
}

TEST(LmtpTransport, BadIndexAndUnreadableSpoolFileDefer) {
  TempDir dir;
  Message m(dir.path(), kContent, {"a@example.org"});
  FakeLmtp server;
  server.start();
  LmtpTransport t(options(server.endpoint));
  auto res = t.deliver(Request{&m.stored, {0, 7}});
  ASSERT_EQ(res.size(), 2u);
  EXPECT_EQ(result_for(res, 0)->status, Status::Delivered);
  EXPECT_EQ(result_for(res, 7)->status, Status::Deferred);
  EXPECT_EQ(result_for(res, 7)->detail, "4.3.0 lmtp: no such recipient index");

  fs::remove(m.stored.path);
  res = t.deliver(m.all());
  ASSERT_EQ(res.size(), 1u);
  EXPECT_EQ(res[0].status, Status::Deferred);
  EXPECT_EQ(res[0].detail, "4.3.0 lmtp: cannot open spool file: No such file or directory");
}

}  // namespace
