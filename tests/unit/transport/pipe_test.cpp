// Unit tests of the pipe transport with real commands: the command's input (Return-Path: per
// RFC 5321 4.4, Delivered-To:, LF line ends), placeholders and environment, the sysexits.h
// mapping (0 delivered, 75/71/74 deferred, others failed with the output in the detail), the
// time limit (process group killed, deliver() returns in about the limit), exec failures, large
// input to a command that writes a lot (no deadlock) and a command that reads nothing.
#include "transport/pipe/pipe_transport.hpp"

#include <signal.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include "fixture.hpp"

using namespace carrier;
using namespace carrier::transport;
namespace fs = std::filesystem;
using Status = spool::RecipientResult::Status;
using TResult = carrier::transport::Result;

namespace {

using test::Message;
using test::read_file;
struct TempDir : test::TempDir {
  TempDir() : test::TempDir("carrier-pipe") {}
};

proto::EnvelopeRecipient rcpt(proto::Mailbox addr, std::string mailbox = "",
                              proto::Mailbox orig = {}) {
  proto::EnvelopeRecipient r;
  r.address = std::move(addr);
  r.original = std::move(orig);
  r.mailbox = std::move(mailbox);
  return r;
}

std::vector<TResult> deliver(PipeTransport& t, const Message& m, std::vector<std::size_t> idx) {
  return t.deliver(Request{&m.stored, std::move(idx)});
}

PipeOptions shell(std::string script, std::vector<std::string> args = {}, int timeout_s = 10) {
  PipeOptions o;
  o.argv = {"/bin/sh", "-c", std::move(script), "sh"};
  o.argv.insert(o.argv.end(), args.begin(), args.end());
  o.timeout = std::chrono::seconds(timeout_s);
  o.hostname = "mx.example";
  return o;
}

// A process that no longer runs (gone, or a zombie waiting for its reaper).
bool process_gone(pid_t pid) {
  if (::kill(pid, 0) != 0) return true;
  std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  auto close = stat.rfind(')');
  return close != std::string::npos && close + 2 < stat.size() && stat[close + 2] == 'Z';
}

}  // namespace

TEST(Pipe, CatWritesHeadersAndContentWithLfLineEnds) {
  TempDir t;
  const fs::path out = t.path() / "out";
  const std::string content =
      "Received: from x\r\nSubject: hi\r\n\r\nbody\r\nlone\rCR\r\n.dot\r\n";
  Message m(t.path(), content,
            {rcpt({"bob+tag", "example.net"}, "bob", {"Bob+Tag", "Example.NET"})});
  PipeTransport tr(shell("cat > \"$1\"", {out.string()}));
  EXPECT_STREQ(tr.name(), "pipe");
  auto res = deliver(tr, m, {0});
  ASSERT_EQ(res.size(), 1u);
  EXPECT_EQ(res[0].index, 0u);
  ASSERT_EQ(res[0].status, Status::Delivered) << res[0].detail;
  EXPECT_EQ(res[0].detail, "2.0.0 delivered to command /bin/sh");
  // RFC 5321 4.4: Return-Path: first; Delivered-To: the address as given; LF line ends.
  EXPECT_EQ(read_file(out),
            "Return-Path: <alice@example.org>\n"
            "Delivered-To: Bob+Tag@Example.NET\n"
            "Received: from x\nSubject: hi\n\nbody\nlone\rCR\n.dot\n");
}

TEST(Pipe, CrSplitAcrossChunksAndNullSender) {
  TempDir t;
  const fs::path out = t.path() / "out";
  Message m(t.path(), "a\r\nb\rc\r\n", {rcpt({"bob", "example.net"})}, proto::Mailbox{});
  auto o = shell("cat > \"$1\"", {out.string()});
  o.chunk_size = 1;
  PipeTransport tr(o);
  auto res = deliver(tr, m, {0});
  ASSERT_EQ(res[0].status, Status::Delivered) << res[0].detail;
  EXPECT_EQ(read_file(out), "Return-Path: <>\nDelivered-To: bob@example.net\na\nb\rc\n");
}

TEST(Pipe, PlaceholdersExpandedInEveryArgument) {
  TempDir t;
  const fs::path out = t.path() / "out";
  Message m(t.path(), "x\r\n",
            {rcpt({"bob+box", "example.net"}, "bob", {"orig", "example.com"})});
  PipeTransport tr(shell("printf '%s|' \"$@\" > \"$1\"",
                         {out.string(), "{sender}", "{recipient}", "{user}", "{extension}",
                          "{domain}", "{mailbox}", "{original_recipient}", "u={user}@{domain}",
                          "{unknown}", "{user"}));
  auto res = deliver(tr, m, {0});
  ASSERT_EQ(res[0].status, Status::Delivered) << res[0].detail;
  EXPECT_EQ(read_file(out), out.string() +
                            "|alice@example.org|bob+box@example.net|bob|box|example.net|bob|"
                            "orig@example.com|u=bob@example.net|{unknown}|{user|");
}

TEST(Pipe, EnvironmentIsFixedAndNothingInherited) {
  TempDir t;
  const fs::path out = t.path() / "out";
  ::setenv("CARRIER_PIPE_SECRET", "leak", 1);
  Message m(t.path(), "x\r\n", {rcpt({"bob+ext", "example.net"}, "bob")});
  PipeTransport tr(shell("/usr/bin/env > \"$1\"; pwd >> \"$1\"", {out.string()}));
  auto res = deliver(tr, m, {0});
  ::unsetenv("CARRIER_PIPE_SECRET");
  ASSERT_EQ(res[0].status, Status::Delivered) << res[0].detail;
  const std::string env = read_file(out);
  for (const char* want :
       {"SENDER=alice@example.org\n", "RECIPIENT=bob+ext@example.net\n", "USER=bob\n",
        "EXTENSION=ext\n", "DOMAIN=example.net\n", "ORIGINAL_RECIPIENT=bob+ext@example.net\n",
        "HOME=/\n", "PATH=/usr/bin:/bin\n"})
    EXPECT_NE(env.find(want), std::string::npos) << want << " in\n" << env;
  EXPECT_EQ(env.find("CARRIER_PIPE_SECRET"), std::string::npos) << env;
  EXPECT_TRUE(env.size() >= 2 && env.substr(env.size() - 2) == "/\n") << env;  // cwd is /
}

TEST(Pipe, ExitTempfailIsDeferred) {
  TempDir t;
  Message m(t.path(), "x\r\n", {rcpt({"bob", "example.net"})});
  PipeTransport tr(shell("echo try later; exit 75"));
  auto res = deliver(tr, m, {0});
  ASSERT_EQ(res.size(), 1u);
  EXPECT_EQ(res[0].status, Status::Deferred);
  EXPECT_EQ(res[0].detail, "4.3.0 command /bin/sh exited 75 (EX_TEMPFAIL): try later");
}

TEST(Pipe, ExitNoUserFailsWithTheOutput) {
  TempDir t;
  Message m(t.path(), "x\r\n", {rcpt({"bob", "example.net"})});
  PipeTransport tr(shell("echo no such user >&2; exit 67"));
  auto res = deliver(tr, m, {0});
  ASSERT_EQ(res.size(), 1u);
  EXPECT_EQ(res[0].status, Status::Failed);
  EXPECT_EQ(res[0].detail, "5.3.0 command /bin/sh exited 67 (EX_NOUSER): no such user");
}

TEST(Pipe, ExitStatusMapping) {
  EXPECT_EQ(PipeTransport::classify_exit(3, "/x", 0, "", false).status, Status::Delivered);
  EXPECT_EQ(PipeTransport::classify_exit(3, "/x", 0, "", false).index, 3u);
  for (int s : {75, 71, 74}) {
    auto r = PipeTransport::classify_exit(0, "/x", s, "", false);
    EXPECT_EQ(r.status, Status::Deferred) << s;
    EXPECT_EQ(r.detail.substr(0, 6), "4.3.0 ") << s;
  }
  for (int s : {1, 2, 64, 65, 67, 69, 70, 77, 78, 100, 255}) {
    auto r = PipeTransport::classify_exit(0, "/x", s, "", false);
    EXPECT_EQ(r.status, Status::Failed) << s;
    EXPECT_EQ(r.detail.substr(0, 6), "5.3.0 ") << s;
  }
  EXPECT_EQ(PipeTransport::classify_exit(0, "/x", 69, "", false).detail,
            "5.3.0 command /x exited 69 (EX_UNAVAILABLE)");
  EXPECT_EQ(PipeTransport::classify_exit(0, "/x", 1, "oops", false).detail,
            "5.3.0 command /x exited 1: oops");
  EXPECT_STREQ(PipeTransport::exit_name(64), "EX_USAGE");
  EXPECT_STREQ(PipeTransport::exit_name(78), "EX_CONFIG");
  EXPECT_STREQ(PipeTransport::exit_name(63), "");
  EXPECT_STREQ(PipeTransport::exit_name(79), "");
}

TEST(Pipe, OutputIsSanitisedAndBounded) {
  EXPECT_EQ(PipeTransport::clean_output("  a\r\n\tb\x01\xc3\xa9  \n", false), "a b???");  // 1 control byte + 2 bytes of UTF-8
  EXPECT_EQ(PipeTransport::clean_output("abc", true), "abc...");
  TempDir t;
  Message m(t.path(), "x\r\n", {rcpt({"bob", "example.net"})});
  // 200 KB of output: only the first 1 KiB is kept.
  PipeTransport tr(shell("i=0; while [ $i -lt 4000 ]; do echo xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; i=$((i+1)); done; exit 65"));
  auto res = deliver(tr, m, {0});
  ASSERT_EQ(res[0].status, Status::Failed);
  EXPECT_LT(res[0].detail.size(), PipeTransport::kMaxOutput + 100);
  EXPECT_EQ(res[0].detail.substr(res[0].detail.size() - 3), "...");
}

TEST(Pipe, TimeLimitKillsTheProcessGroup) {
  TempDir t;
  const fs::path pidfile = t.path() / "pid";
  Message m(t.path(), "x\r\n", {rcpt({"bob", "example.net"})});
  // The shell leaves a child in its group, then waits: both must be killed.
  PipeTransport tr(shell("sleep 30 & echo $! > \"$1\"; sleep 30", {pidfile.string()}, 1));
  auto start = std::chrono::steady_clock::now();
  auto res = deliver(tr, m, {0});
  auto took = std::chrono::steady_clock::now() - start;
  ASSERT_EQ(res.size(), 1u);
  EXPECT_EQ(res[0].status, Status::Deferred);
  EXPECT_EQ(res[0].detail, "4.3.0 command /bin/sh: time limit exceeded (1s)");
  EXPECT_GE(took, std::chrono::milliseconds(900));
  EXPECT_LT(took, std::chrono::milliseconds(2500));
  pid_t child = static_cast<pid_t>(std::atol(read_file(pidfile).c_str()));
  ASSERT_GT(child, 1);
  bool gone = false;
  for (int i = 0; i < 100 && !gone; ++i) {
    gone = process_gone(child);
    if (!gone) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(gone) << "grandchild " << child << " still runs";
}

TEST(Pipe, SleepWithOneSecondLimitReturnsInAboutOneSecond) {
  TempDir t;
  Message m(t.path(), "x\r\n", {rcpt({"bob", "example.net"})});
  PipeOptions o;
  o.argv = {"/bin/sleep", "30"};
  o.timeout = std::chrono::seconds(1);
  PipeTransport tr(o);
  auto start = std::chrono::steady_clock::now();
  auto res = deliver(tr, m, {0});
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(res[0].status, Status::Deferred);
  EXPECT_NE(res[0].detail.find("time limit exceeded"), std::string::npos) << res[0].detail;
  EXPECT_LT(took, std::chrono::milliseconds(2500));
}

TEST(Pipe, ExitedCommandWhoseChildKeepsTheOutputOpen) {
  TempDir t;
  Message m(t.path(), "x\r\n", {rcpt({"bob", "example.net"})});
  PipeTransport tr(shell("sleep 30 & exit 0", {}, 20));
  auto start = std::chrono::steady_clock::now();
  auto res = deliver(tr, m, {0});
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(res[0].status, Status::Delivered) << res[0].detail;
  EXPECT_LT(took, std::chrono::milliseconds(3000));
}

TEST(Pipe, MissingExecutableIsDeferred) {
  TempDir t;
  Message m(t.path(), "x\r\n", {rcpt({"bob", "example.net"})});
  PipeOptions o;
  o.argv = {"/nonexistent/carrier-no-such-command", "{user}"};
  PipeTransport tr(o);
  auto res = deliver(tr, m, {0});
  ASSERT_EQ(res.size(), 1u);
  EXPECT_EQ(res[0].status, Status::Deferred);
  EXPECT_EQ(res[0].detail,
            "4.3.0 command /nonexistent/carrier-no-such-command: cannot execute: No such file or "
            "directory");
}

TEST(Pipe, RelativeCommandIsDeferredAsAConfigurationError) {
  TempDir t;
  Message m(t.path(), "x\r\n", {rcpt({"bob", "example.net"}), rcpt({"carol", "example.net"})});
  PipeOptions o;
  o.argv = {"cat"};
  PipeTransport tr(o);
  auto res = deliver(tr, m, {0, 1});
  ASSERT_EQ(res.size(), 2u);
  EXPECT_EQ(res[1].index, 1u);
  for (auto& r : res) {
    EXPECT_EQ(r.status, Status::Deferred);
    EXPECT_EQ(r.detail.substr(0, 6), "4.3.5 ");
  }
}

TEST(Pipe, AddressStartingWithDashNeverBecomesAnOption) {
  TempDir t;
  Message m(t.path(), "x\r\n", {rcpt({"-oQ/tmp", "example.net"})});
  PipeOptions o;
  o.argv = {"/bin/true", "{user}"};
  PipeTransport tr(o);
  auto res = deliver(tr, m, {0});
  EXPECT_EQ(res[0].status, Status::Failed);
  EXPECT_EQ(res[0].detail.substr(0, 6), "5.1.3 ");
  // Inside an argument it is harmless.
  o.argv = {"/bin/true", "--user={user}"};
  PipeTransport tr2(o);
  EXPECT_EQ(deliver(tr2, m, {0})[0].status, Status::Delivered);
}

TEST(Pipe, LargeMessageToACommandThatEchoesEverything) {
  TempDir t;
  std::string content;
  for (int i = 0; i < 100000; ++i) content += "line " + std::to_string(i) + " of a large message\r\n";
  Message m(t.path(), content, {rcpt({"bob", "example.net"})});
  PipeOptions o;
  o.argv = {"/bin/cat"};  // writes as much as it reads, to stdout: must not deadlock
  o.timeout = std::chrono::seconds(30);
  PipeTransport tr(o);
  auto start = std::chrono::steady_clock::now();
  auto res = deliver(tr, m, {0});
  EXPECT_EQ(res[0].status, Status::Delivered) << res[0].detail;
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(15));
}

TEST(Pipe, CommandThatReadsNothingStillCounts) {
  TempDir t;
  std::string content(4 * 1024 * 1024, 'x');
  Message m(t.path(), content, {rcpt({"bob", "example.net"})});
  PipeOptions o;
  o.argv = {"/bin/true"};
  PipeTransport tr(o);
  auto res = deliver(tr, m, {0});  // EPIPE on our side, no SIGPIPE death
  EXPECT_EQ(res[0].status, Status::Delivered) << res[0].detail;
  o.argv = {"/bin/false"};
  PipeTransport tr2(o);
  EXPECT_EQ(deliver(tr2, m, {0})[0].status, Status::Failed);
}

TEST(Pipe, KilledBySignalIsDeferred) {
  TempDir t;
  Message m(t.path(), "x\r\n", {rcpt({"bob", "example.net"})});
  PipeTransport tr(shell("kill -TERM $$"));
  auto res = deliver(tr, m, {0});
  EXPECT_EQ(res[0].status, Status::Deferred);
  EXPECT_EQ(res[0].detail, "4.3.0 command /bin/sh killed by signal 15 (SIGTERM)");
}

TEST(Pipe, OneProcessPerRecipient) {
  TempDir t;
  const fs::path out = t.path() / "out";
  Message m(t.path(), "x\r\n",
            {rcpt({"bob", "example.net"}), rcpt({"carol", "example.net"}),
             rcpt({"dave", "example.net"})});
  PipeTransport tr(shell("[ \"$2\" = carol ] && exit 67; echo \"$2\" >> \"$1\"",
                         {out.string(), "{user}"}));
  auto res = deliver(tr, m, {2, 1, 0});
  ASSERT_EQ(res.size(), 3u);
  EXPECT_EQ(res[0].index, 2u);
  EXPECT_EQ(res[0].status, Status::Delivered);
  EXPECT_EQ(res[1].index, 1u);
  EXPECT_EQ(res[1].status, Status::Failed);
  EXPECT_EQ(res[2].status, Status::Delivered);
  EXPECT_EQ(read_file(out), "dave\nbob\n");
}

TEST(Pipe, MissingSpoolFileDefersEveryone) {
  TempDir t;
  Message m(t.path(), "x\r\n", {rcpt({"bob", "example.net"})});
  fs::remove(m.stored.path);
  PipeOptions o;
  o.argv = {"/bin/true"};
  PipeTransport tr(o);
  auto res = deliver(tr, m, {0});
  EXPECT_EQ(res[0].status, Status::Deferred);
  EXPECT_EQ(res[0].detail.substr(0, 6), "4.3.0 ");
}
