// Unit tests of the Maildir transport: exact file content (prepended Return-Path/Delivered-To,
// CRLF → LF including a CR split across read chunks), unique names, completeness of files in
// new/, mailbox name checks and I/O failures (deferred, nothing partial left behind).
#include "transport/maildir/maildir.hpp"

#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <fstream>
#include <future>
#include <regex>
#include <set>
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
  TempDir() : test::TempDir("carrier-maildir") {}
};

std::vector<fs::path> files_in(const fs::path& dir) {
  std::vector<fs::path> v;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) v.push_back(e.path());
  std::sort(v.begin(), v.end());
  return v;
}

proto::EnvelopeRecipient local(std::string mailbox, proto::Mailbox addr, proto::Mailbox orig = {}) {
  proto::EnvelopeRecipient r;
  r.address = std::move(addr);
  r.original = std::move(orig);
  r.mailbox = std::move(mailbox);
  return r;
}

std::vector<TResult> deliver(MaildirTransport& t, const Message& m, std::vector<std::size_t> idx) {
  Request req{&m.stored, std::move(idx)};
  return t.deliver(req);
}

// Reference conversion for comparison.
std::string crlf_to_lf(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\r' && i + 1 < s.size() && s[i + 1] == '\n') continue;
    out.push_back(s[i]);
  }
  return out;
}

}  // namespace

TEST(Maildir, WritesHeadersThenContentWithUnixLineEnds) {
  TempDir t;
  const std::string content =
      "Received: from x\r\nSubject: hi\r\n\r\nline one\r\nlone\rCR and lone\nLF\r\n\r\nend\r\n";
  Message m(t.path(), content, {local("demo", {"demo", "localhost"}, {"Demo+tag", "LocalHost"})});
  MaildirTransport tr(t.path() / "mail", "mx.example");
  EXPECT_STREQ(tr.name(), "maildir");
  auto res = deliver(tr, m, {0});
  ASSERT_EQ(res.size(), 1u);
  EXPECT_EQ(res[0].index, 0u);
  ASSERT_EQ(res[0].status, Status::Delivered) << res[0].detail;
  auto files = files_in(t.path() / "mail" / "demo" / "new");
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(res[0].detail, "delivered to maildir demo/new/" + files[0].filename().string());
  const std::string expected =
      "Return-Path: <alice@example.org>\n"
      "Delivered-To: Demo+tag@LocalHost\n"  // the address as given in RCPT TO
      "Received: from x\nSubject: hi\n\nline one\nlone\rCR and lone\nLF\n\nend\n";
  EXPECT_EQ(read_file(files[0]), expected);
  EXPECT_TRUE(files_in(t.path() / "mail" / "demo" / "tmp").empty());
  EXPECT_TRUE(fs::is_directory(t.path() / "mail" / "demo" / "cur"));
  struct stat st {};
  ASSERT_EQ(::stat(files[0].c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  for (const char* d : {"", "tmp", "new", "cur"}) {
    ASSERT_EQ(::stat((t.path() / "mail" / "demo" / d).c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0700u) << d;
  }
}

TEST(Maildir, NullSenderAndAddressWhenNoOriginal) {
  TempDir t;
  Message m(t.path(), "x\r\n", {local("demo", {"demo", "localhost"})}, proto::Mailbox{});
  MaildirTransport tr(t.path(), "h");
  auto res = deliver(tr, m, {0});
  ASSERT_EQ(res.at(0).status, Status::Delivered) << res[0].detail;
  auto files = files_in(t.path() / "demo" / "new");
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(read_file(files[0]), "Return-Path: <>\nDelivered-To: demo@localhost\nx\n");
}

TEST(Maildir, CrlfSplitAcrossEveryChunkBoundary) {
  TempDir t;
  const std::string content = "a\r\nbb\r\n\r\r\n\rc\n\r\n\r";  // ends with a lone CR
  const std::string header = "Return-Path: <alice@example.org>\nDelivered-To: demo@localhost\n";
  Message m(t.path(), content, {local("demo", {"demo", "localhost"})});
  for (std::size_t chunk = 1; chunk <= content.size() + 1; ++chunk) {
    fs::path root = t.path() / ("m" + std::to_string(chunk));
    MaildirTransport tr(root, "h", chunk);
    auto res = deliver(tr, m, {0});
    ASSERT_EQ(res.at(0).status, Status::Delivered) << res[0].detail;
    auto files = files_in(root / "demo" / "new");
    ASSERT_EQ(files.size(), 1u);
    EXPECT_EQ(read_file(files[0]), header + crlf_to_lf(content)) << "chunk " << chunk;
  }
  EXPECT_EQ(crlf_to_lf(content), "a\nbb\n\r\n\rc\n\n\r");
}

TEST(Maildir, LargeMessageIsStreamedAndConvertedExactly) {
  TempDir t;
  std::string content;
  for (int i = 0; content.size() < 3 * 1024 * 1024; ++i)
    content += "line " + std::to_string(i) + (i % 7 == 0 ? "\r" : "") + "\r\n";
  Message m(t.path(), content, {local("demo", {"demo", "localhost"})});
  MaildirTransport tr(t.path() / "mail", "h", 4099);
  auto res = deliver(tr, m, {0});
  ASSERT_EQ(res.at(0).status, Status::Delivered) << res[0].detail;
  auto files = files_in(t.path() / "mail" / "demo" / "new");
  ASSERT_EQ(files.size(), 1u);
  EXPECT_TRUE(read_file(files[0]) ==
              "Return-Path: <alice@example.org>\nDelivered-To: demo@localhost\n" + crlf_to_lf(content));
}

TEST(Maildir, TwoRecipientsInOneMailboxGetDistinctCompleteFiles) {
  TempDir t;
  Message m(t.path(), "Subject: s\r\n\r\nbody\r\n",
            {local("demo", {"demo", "localhost"}, {"demo", "localhost"}),
             local("demo", {"demo", "localhost"}, {"postmaster", "localhost"})});
  MaildirTransport tr(t.path(), "mx.example:25/x");
  auto res = deliver(tr, m, {0, 1});
  ASSERT_EQ(res.size(), 2u);
  EXPECT_EQ(res[0].index, 0u);
  EXPECT_EQ(res[1].index, 1u);
  ASSERT_EQ(res[0].status, Status::Delivered);
  ASSERT_EQ(res[1].status, Status::Delivered);
  EXPECT_NE(res[0].detail, res[1].detail);
  auto files = files_in(t.path() / "demo" / "new");
  ASSERT_EQ(files.size(), 2u);
  // <secs>.M<usecs>P<pid>Q<id>R<index>.<host, / and : escaped>,S=<size>
  const std::regex name(R"((\d+)\.M(\d+)P(\d+)Q0G4X7PN1Q2ABR([01])\.mx\.example\\07225\\057x,S=(\d+))");
  std::set<std::string> seen_idx;
  for (const auto& f : files) {
    std::smatch mm;
    std::string n = f.filename().string();
    ASSERT_TRUE(std::regex_match(n, mm, name)) << n;
    EXPECT_EQ(std::stoul(mm[3]), static_cast<unsigned long>(::getpid()));
    EXPECT_LT(std::stoul(mm[2]), 1000000u);
    EXPECT_EQ(std::stoull(mm[5]), fs::file_size(f)) << n;
    seen_idx.insert(mm[4]);
    std::string body = read_file(f);
    EXPECT_NE(body.find(mm[4] == "0" ? "Delivered-To: demo@localhost\n"
                                     : "Delivered-To: postmaster@localhost\n"),
              std::string::npos);
  }
  EXPECT_EQ(seen_idx, (std::set<std::string>{"0", "1"}));
}

TEST(Maildir, UniqueNameFormat) {
  EXPECT_EQ(MaildirTransport::unique_name(1763920000123456, 4242, "0G4X7PN1Q2AB", 3, "a/b:c"),
            "1763920000.M123456P4242Q0G4X7PN1Q2ABR3.a\\057b\\072c");
  EXPECT_EQ(MaildirTransport::unique_name(5, 1, "ID", 0, "h"), "0.M5P1QIDR0.h");
}

TEST(Maildir, FilesAppearInNewOnlyWhenComplete) {
  TempDir t;
  const std::string content(8 * 1024 * 1024, 'x');
  Message m(t.path(), content, {local("demo", {"demo", "localhost"})});
  MaildirTransport tr(t.path(), "h", 4096);  // many small writes: a long window to observe
  ASSERT_EQ(deliver(tr, m, {0}).at(0).status, Status::Delivered);  // creates the directories
  for (const auto& f : files_in(t.path() / "demo" / "new")) fs::remove(f);

  std::atomic<bool> finished{false};
  std::atomic<int> observations{0}, incomplete{0};
  std::thread watcher([&] {
    while (!finished.load()) {
      for (const auto& f : files_in(t.path() / "demo" / "new")) {
        std::error_code ec;
        auto size = fs::file_size(f, ec);
        if (ec) continue;
        ++observations;
        auto n = f.filename().string();
        auto s = n.rfind(",S=");
        if (s == std::string::npos || std::stoull(n.substr(s + 3)) != size) ++incomplete;
      }
    }
  });
  std::vector<TResult> res;
  for (int i = 0; i < 3; ++i) {
    res = deliver(tr, m, {0});
    if (res.at(0).status != Status::Delivered) break;
  }
  finished = true;
  watcher.join();
  ASSERT_EQ(res.at(0).status, Status::Delivered) << res[0].detail;
  EXPECT_GT(observations.load(), 0);
  EXPECT_EQ(incomplete.load(), 0);
  EXPECT_EQ(files_in(t.path() / "demo" / "new").size(), 3u);
  EXPECT_TRUE(files_in(t.path() / "demo" / "tmp").empty());
}

TEST(Maildir, InvalidMailboxNamesFailPermanently) {
  TempDir t;
  Message m(t.path(), "x\r\n",
            {local("", {"a", "l"}), local(".hidden", {"b", "l"}), local("a/b", {"c", "l"}),
             local("..", {"d", "l"}), local("ok", {"e", "l"})});
  MaildirTransport tr(t.path() / "mail", "h");
  auto res = deliver(tr, m, {0, 1, 2, 3, 4});
  ASSERT_EQ(res.size(), 5u);
  for (std::size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(res[i].status, Status::Failed) << i;
    EXPECT_EQ(res[i].detail.rfind("5.1.1 ", 0), 0u) << res[i].detail;
  }
  EXPECT_EQ(res[4].status, Status::Delivered);
  EXPECT_EQ(files_in(t.path() / "mail"), std::vector<fs::path>{t.path() / "mail" / "ok"});
  EXPECT_FALSE(MaildirTransport::valid_mailbox_name(std::string("a\0b", 3)));
  EXPECT_TRUE(MaildirTransport::valid_mailbox_name("demo"));
}

TEST(Maildir, RelayRecipientsAndBadIndexesAreDeferredNotLost) {
  TempDir t;
  auto r = local("demo", {"x", "remote.example"});
  r.route = proto::RcptRoute::Relay;
  Message m(t.path(), "x\r\n", {r});
  MaildirTransport tr(t.path() / "mail", "h");
  auto res = deliver(tr, m, {0, 7});
  ASSERT_EQ(res.size(), 2u);
  EXPECT_EQ(res[0].status, Status::Deferred);
  EXPECT_EQ(res[1].index, 7u);
  EXPECT_EQ(res[1].status, Status::Deferred);
  EXPECT_FALSE(fs::exists(t.path() / "mail"));
}

TEST(Maildir, UnwritableMailDirIsDeferredWithTheMailboxInTheDetail) {
  TempDir t;
  fs::path mail;
  if (::geteuid() == 0) {
    // root ignores permission bits: make the mail dir a path through a regular file (ENOTDIR).
    std::ofstream(t.path() / "plainfile") << "x";
    mail = t.path() / "plainfile" / "mail";
  } else {
    mail = t.path() / "mail";
    fs::create_directory(mail);
    fs::permissions(mail, fs::perms(0500));
  }
  Message m(t.path(), "x\r\n", {local("demo", {"demo", "localhost"})});
  MaildirTransport tr(mail, "h");
  auto res = deliver(tr, m, {0});
  ASSERT_EQ(res.size(), 1u);
  EXPECT_EQ(res[0].status, Status::Deferred);
  EXPECT_EQ(res[0].detail.rfind("4.3.0 maildir ", 0), 0u) << res[0].detail;
  EXPECT_NE(res[0].detail.find(" demo: "), std::string::npos) << res[0].detail;
  EXPECT_NE(res[0].detail.find(std::strerror(::geteuid() == 0 ? ENOTDIR : EACCES)),
            std::string::npos)
      << res[0].detail;
}

TEST(Maildir, ExistingMaildirUnwritableNewDirIsDeferredAndLeavesNoTmpFile) {
  TempDir t;
  MaildirTransport tr(t.path(), "h");
  Message m(t.path(), "x\r\n", {local("demo", {"demo", "localhost"})});
  ASSERT_EQ(deliver(tr, m, {0}).at(0).status, Status::Delivered);
  // Replace new/ by a regular file: the rename fails after the tmp file was written.
  fs::remove_all(t.path() / "demo" / "new");
  std::ofstream(t.path() / "demo" / "new") << "not a directory";
  auto res = deliver(tr, m, {0});
  EXPECT_EQ(res.at(0).status, Status::Deferred) << res[0].detail;
  EXPECT_TRUE(files_in(t.path() / "demo" / "tmp").empty());
}

// A write error (EFBIG via RLIMIT_FSIZE; ENOSPC needs a full file system) defers the
// recipient and leaves nothing in tmp/ or new/.
TEST(Maildir, WriteErrorIsDeferredAndLeavesNothingBehind) {
  TempDir t;
  const std::string content(300 * 1024, 'y');
  Message m(t.path(), content, {local("demo", {"demo", "localhost"})});
  MaildirTransport tr(t.path() / "mail", "h", 16 * 1024);
  struct rlimit old {};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old), 0);
  auto old_handler = ::signal(SIGXFSZ, SIG_IGN);
  struct rlimit lim = old;
  lim.rlim_cur = 200 * 1024;  // the spool file (300 KiB) already exists; only new writes fail
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &lim), 0);
  auto res = deliver(tr, m, {0});
  ::setrlimit(RLIMIT_FSIZE, &old);
  ::signal(SIGXFSZ, old_handler);
  ASSERT_EQ(res.size(), 1u);
  EXPECT_EQ(res[0].status, Status::Deferred);
  EXPECT_EQ(res[0].detail, std::string("4.3.0 maildir write demo: ") + std::strerror(EFBIG));
  EXPECT_TRUE(files_in(t.path() / "mail" / "demo" / "tmp").empty());
  EXPECT_TRUE(files_in(t.path() / "mail" / "demo" / "new").empty());
}

TEST(Maildir, MissingOrTruncatedSpoolFileIsDeferred) {
  TempDir t;
  Message m(t.path(), "abc\r\n", {local("demo", {"demo", "localhost"})});
  MaildirTransport tr(t.path() / "mail", "h");
  m.stored.content_size = 100;  // longer than the file
  auto res = deliver(tr, m, {0});
  EXPECT_EQ(res.at(0).status, Status::Deferred);
  EXPECT_NE(res[0].detail.find("truncated"), std::string::npos) << res[0].detail;
  EXPECT_TRUE(files_in(t.path() / "mail" / "demo" / "new").empty());
  EXPECT_TRUE(files_in(t.path() / "mail" / "demo" / "tmp").empty());
  fs::remove(m.stored.path);
  res = deliver(tr, m, {0});
  EXPECT_EQ(res.at(0).status, Status::Deferred);
  EXPECT_EQ(res[0].detail.rfind("4.3.0 maildir read spool", 0), 0u) << res[0].detail;
}

TEST(Maildir, HeaderValuesCannotBeSplit) {
  TempDir t;
  Message m(t.path(), "x\r\n", {local("demo", {"de\r\nmo", "localhost"})},
            proto::Mailbox{"a\nX-Evil: 1", "b"});
  MaildirTransport tr(t.path(), "h");
  ASSERT_EQ(deliver(tr, m, {0}).at(0).status, Status::Delivered);
  auto files = files_in(t.path() / "demo" / "new");
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(read_file(files[0]), "Return-Path: <a?X-Evil: 1@b>\nDelivered-To: de??mo@localhost\nx\n");
}

TEST(Maildir, DeliversAFileWrittenByTheRealSpool) {
  TempDir t;
  spool::Options o;
  o.dir = t.path() / "spool";
  auto sp = spool::Spool::open(o);
  ASSERT_TRUE(sp.ok()) << sp.error().message;
  proto::Envelope env;
  env.sender = {"s", "example.org"};
  env.recipients = {local("demo", {"demo", "localhost"})};
  auto w = (*sp)->begin(env);
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE(w->write("Subject: real\r\n\r\nbody\r\n").ok());
  std::promise<carrier::Result<std::string>> p;
  (*sp)->commit(std::move(w.value()), [&](carrier::Result<std::string> r) { p.set_value(r); });
  auto id = p.get_future().get();
  ASSERT_TRUE(id.ok());
  auto stored = (*sp)->load(id.value());
  ASSERT_TRUE(stored.ok());
  MaildirTransport tr(t.path() / "mail", "h");
  auto res = tr.deliver(Request{&stored.value(), {0}});
  ASSERT_EQ(res.at(0).status, Status::Delivered) << res[0].detail;
  auto files = files_in(t.path() / "mail" / "demo" / "new");
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(read_file(files[0]),
            "Return-Path: <s@example.org>\nDelivered-To: demo@localhost\nSubject: real\n\nbody\n");
  EXPECT_NE(files[0].filename().string().find("Q" + id.value() + "R0."), std::string::npos);
}

// With a shared sync barrier (the spool's group commit), a delivery calls it twice — once for
// the file's data before the rename, once for the rename — and never fsyncs on its own.
TEST(Maildir, SharedBarrierIsCalledBeforeAndAfterTheRename) {
  TempDir t;
  Message m(t.path(), "Subject: b\r\n\r\nbody\r\n", {local("demo", {"demo", "localhost"})});
  MaildirTransport tr(t.path() / "mail", "mx.example");
  int calls = 0;
  std::vector<std::size_t> in_new_at_call;
  tr.set_sync_barrier([&] {
    ++calls;
    in_new_at_call.push_back(files_in(t.path() / "mail" / "demo" / "new").size());
    return 0;
  });
  auto res = deliver(tr, m, {0});
  ASSERT_EQ(res[0].status, Status::Delivered) << res[0].detail;
  EXPECT_EQ(calls, 2);
  ASSERT_EQ(in_new_at_call.size(), 2u);
  EXPECT_EQ(in_new_at_call[0], 0u) << "data must be durable before the name appears in new/";
  EXPECT_EQ(in_new_at_call[1], 1u);
}

// A failing barrier after the rename takes the file back: a retry cannot duplicate it.
TEST(Maildir, FailingBarrierDefersAndLeavesNothing) {
  TempDir t;
  Message m(t.path(), "Subject: b\r\n\r\nbody\r\n", {local("demo", {"demo", "localhost"})});
  MaildirTransport tr(t.path() / "mail", "mx.example");
  int calls = 0;
  tr.set_sync_barrier([&] { return ++calls == 2 ? EIO : 0; });
  auto res = deliver(tr, m, {0});
  EXPECT_EQ(res[0].status, Status::Deferred) << res[0].detail;
  EXPECT_TRUE(files_in(t.path() / "mail" / "demo" / "new").empty());
  EXPECT_TRUE(files_in(t.path() / "mail" / "demo" / "tmp").empty());
}

TEST(Maildir, ConcurrentDeliveriesIntoOneMailboxShareTheDirectorySync) {
  // Four threads deliver into the same new/ at once; the fsync of new/ is shared by the
  // deliveries that overlap (DirSync). Every one of them must still be complete and reported.
  TempDir t;
  std::vector<proto::EnvelopeRecipient> rcpts;
  for (int i = 0; i < 40; ++i)
    rcpts.push_back(local("demo", {"demo", "localhost"}, {"u" + std::to_string(i), "localhost"}));
  Message m(t.path(), "Subject: s\r\n\r\nbody\r\n", rcpts);
  MaildirTransport tr(t.path(), "mx.example");
  ASSERT_EQ(deliver(tr, m, {0}).at(0).status, Status::Delivered);  // creates the directories
  std::vector<std::vector<TResult>> got(4);
  std::vector<std::thread> threads;
  for (int k = 0; k < 4; ++k)
    threads.emplace_back([&, k] {
      for (std::size_t i = 1 + static_cast<std::size_t>(k); i < 40; i += 4) {
        auto r = deliver(tr, m, {i});
        got[static_cast<std::size_t>(k)].insert(got[static_cast<std::size_t>(k)].end(), r.begin(), r.end());
      }
    });
  for (auto& th : threads) th.join();
  std::size_t delivered = 0;
  for (const auto& v : got)
    for (const auto& r : v) delivered += r.status == Status::Delivered ? 1 : 0;
  EXPECT_EQ(delivered, 39u);
  auto files = files_in(t.path() / "demo" / "new");
  ASSERT_EQ(files.size(), 40u);
  for (const auto& f : files) EXPECT_NE(read_file(f).find("\nbody\n"), std::string::npos) << f;
}
