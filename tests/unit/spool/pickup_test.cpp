// Unit tests of the pickup directory (spool/pickup.hpp): the exact file format, LF → CRLF
// content conversion (RFC 5322 2.3: lines end in CRLF), durability steps visible on disk (no
// file under its final name before it is complete, tmp/ empty afterwards), bounds (recipients,
// size), strict parsing of damaged files (moved to corrupt/, never deleted), names, clean_tmp.
#include "spool/pickup.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

using namespace carrier;
using namespace carrier::spool;
namespace fs = std::filesystem;

namespace {

class TempDir {
 public:
  TempDir() {
    std::string t = (fs::temp_directory_path() / "carrier-pickup-XXXXXX").string();
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

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::size_t count(const fs::path& dir) {
  std::size_t n = 0;
  for (const auto& e : fs::directory_iterator(dir)) n += e.is_regular_file() ? 1 : 0;
  return n;
}

Pickup open_pickup(const fs::path& root, std::uint64_t max_size = 50ull << 20,
                   std::size_t max_rcpts = 1000) {
  PickupOptions o;
  o.dir = root / "data" / "pickup";  // data/ does not exist yet: created
  o.max_size = max_size;
  o.max_recipients = max_rcpts;
  auto p = Pickup::open(o);
  if (!p) throw std::runtime_error(p.error().message);
  return std::move(*p);
}

const proto::Mailbox kAlice{"alice", "example.org"};
const proto::Mailbox kBob{"bob", "example.net"};
const proto::Mailbox kCarol{"carol", "example.net"};

}  // namespace

TEST(Pickup, OpenCreatesTheDirectories) {
  TempDir t;
  auto p = open_pickup(t.path());
  for (const char* d : {"", "tmp", "corrupt"}) {
    struct stat st {};
    ASSERT_EQ(::stat((p.dir() / d).c_str(), &st), 0) << d;
    EXPECT_TRUE(S_ISDIR(st.st_mode));
    EXPECT_EQ(st.st_mode & 0777, 0700u) << d;
  }
  EXPECT_TRUE(p.list().empty());
}

TEST(Pickup, WriteThenReadBackWithTheDocumentedFormat) {
  TempDir t;
  auto p = open_pickup(t.path());
  auto name = p.write(kAlice, {kBob, kCarol}, std::string_view("Subject: x\n\nline\r\nlast"), 1000);
  ASSERT_TRUE(name) << name.error().message;
  EXPECT_TRUE(Pickup::valid_name(*name));
  EXPECT_EQ(p.list(), std::vector<std::string>{*name});
  EXPECT_EQ(count(p.dir() / "tmp"), 0u);
  // RFC 5322 2.3: CRLF line ends; the last line gets one.
  const std::string content = "Subject: x\r\n\r\nline\r\nlast\r\n";
  EXPECT_EQ(slurp(p.dir() / *name),
            "CARRIER-PICKUP 1\nuid 1000\nsender alice@example.org\nrcpt bob@example.net\n"
            "rcpt carol@example.net\nsize 00000000000000000026\n\n" + content);
  struct stat st {};
  ASSERT_EQ(::stat((p.dir() / *name).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  auto m = p.read(*name);
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_EQ(m->name, *name);
  EXPECT_EQ(m->sender, kAlice);
  EXPECT_EQ(m->recipients, (std::vector<proto::Mailbox>{kBob, kCarol}));
  EXPECT_EQ(m->uid, 1000u);
  EXPECT_EQ(m->owner_uid, ::getuid());
  EXPECT_GT(m->mtime_ms, 0);
  EXPECT_EQ(m->content, content);

  ASSERT_TRUE(p.remove(*name));
  EXPECT_TRUE(p.list().empty());
  auto again = p.read(*name);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().sys_errno, ENOENT);
}

TEST(Pickup, LineEndsAcrossWritesAndNullSender) {
  TempDir t;
  auto p = open_pickup(t.path());
  auto w = p.begin(proto::Mailbox{}, {kBob}, 0);
  ASSERT_TRUE(w);
  // A CRLF split across two writes stays one CRLF; a bare LF gets its CR; a bare CR is kept.
  for (std::string_view part : {"a\r", "\nb\n", "c\rd\n", "\r"}) ASSERT_TRUE(w->write(part));
  auto name = w->commit();
  ASSERT_TRUE(name) << name.error().message;
  auto m = p.read(*name);
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_TRUE(m->sender.empty());
  EXPECT_EQ(m->content, "a\r\nb\r\nc\rd\r\n\r\n");
}

TEST(Pickup, StreamAndEmptyContent) {
  TempDir t;
  auto p = open_pickup(t.path());
  std::string big;
  for (int i = 0; i < 20000; ++i) big += "line " + std::to_string(i) + "\n";
  std::istringstream in(big);
  auto name = p.write(kAlice, {kBob}, in, 5);
  ASSERT_TRUE(name);
  auto m = p.read(*name);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->content.size(), big.size() + 20000);
  EXPECT_EQ(m->content.substr(0, 16), "line 0\r\nline 1\r\n");
  auto empty = p.write(kAlice, {kBob}, std::string_view(), 5);
  ASSERT_TRUE(empty);
  auto e = p.read(*empty);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->content, "");
}

TEST(Pickup, ListIsOldestFirstAndSkipsOthers) {
  TempDir t;
  auto p = open_pickup(t.path());
  std::vector<std::string> names;
  for (int i = 0; i < 5; ++i) {
    auto n = p.write(kAlice, {kBob}, std::string_view("x\n"), 0);
    ASSERT_TRUE(n);
    names.push_back(*n);
  }
  std::ofstream(p.dir() / ".hidden") << "x";
  EXPECT_EQ(p.list(), names);
}

TEST(Pickup, WriterDestroyedWithoutCommitLeavesNothing) {
  TempDir t;
  auto p = open_pickup(t.path());
  {
    auto w = p.begin(kAlice, {kBob}, 0);
    ASSERT_TRUE(w);
    ASSERT_TRUE(w->write("Subject: never\n"));
    EXPECT_EQ(count(p.dir() / "tmp"), 1u);
    EXPECT_TRUE(p.list().empty());  // never visible before commit
  }
  EXPECT_EQ(count(p.dir() / "tmp"), 0u);
  EXPECT_TRUE(p.list().empty());
}

TEST(Pickup, BoundsAndInvalidAddresses) {
  TempDir t;
  auto p = open_pickup(t.path(), 100, 3);
  auto none = p.write(kAlice, {}, std::string_view("x"), 0);
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().sys_errno, EINVAL);
  auto many = p.write(kAlice, {kBob, kBob, kBob, kBob}, std::string_view("x"), 0);
  ASSERT_FALSE(many);
  EXPECT_EQ(many.error().sys_errno, EINVAL);
  // RFC 5321 4.1.2: a mailbox needs a local part and a domain; no CR/LF can reach the file.
  for (proto::Mailbox bad : {proto::Mailbox{"bob", ""}, proto::Mailbox{"b\nrcpt x", "y.z"},
                             proto::Mailbox{"bob", "exa mple.net"}}) {
    auto r = p.write(kAlice, {bad}, std::string_view("x"), 0);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().sys_errno, EINVAL) << bad.str();
  }
  auto bad_sender = p.write({"a b", "x.y"}, {kBob}, std::string_view("x"), 0);
  ASSERT_FALSE(bad_sender);
  // Size: exactly the limit is fine (after CRLF conversion), one more byte is not.
  auto exact = p.write(kAlice, {kBob}, std::string(98, 'x') + "\n", 0);
  ASSERT_TRUE(exact) << exact.error().message;
  auto over = p.write(kAlice, {kBob}, std::string(99, 'x') + "\n", 0);
  ASSERT_FALSE(over);
  EXPECT_EQ(over.error().sys_errno, EFBIG);
  auto over_at_end = p.write(kAlice, {kBob}, std::string(99, 'x'), 0);  // CRLF added at commit
  ASSERT_FALSE(over_at_end);
  EXPECT_EQ(over_at_end.error().sys_errno, EFBIG);
  EXPECT_EQ(count(p.dir() / "tmp"), 0u);
  EXPECT_EQ(p.list().size(), 1u);
}

TEST(Pickup, DamagedFilesGoToCorruptNeverDeleted) {
  TempDir t;
  auto p = open_pickup(t.path());
  auto good = p.write(kAlice, {kBob}, std::string_view("Subject: s\n\nbody\n"), 7);
  ASSERT_TRUE(good);
  const std::string valid = slurp(p.dir() / *good);
  auto with = [&](std::string from, std::string to) {
    std::string s = valid;
    auto at = s.find(from);
    if (at == std::string::npos) throw std::runtime_error("test: " + from);
    s.replace(at, from.size(), to);
    return s;
  };
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"garbage", "hello world\n"},
      {"empty", ""},
      {"magic", with("CARRIER-PICKUP 1", "CARRIER-PICKUP 2")},
      {"uid", with("uid 7", "uid x7")},
      {"sender", with("sender alice@example.org", "sender <alice@example.org>")},
      {"rcpt", with("rcpt bob@example.net", "rcpt bob@")},
      {"norcpt", with("rcpt bob@example.net\n", "")},
      {"size", with("size 000000000000000000", "size ")},
      {"short", valid.substr(0, valid.size() - 3)},
      {"long", valid + "extra"},
      {"noblank", with("\n\nSubject", "\nSubject")},
      {"longline", with("sender alice", "sender " + std::string(2000, 'a'))},
  };
  for (const auto& [name, text] : cases) {
    std::ofstream(p.dir() / name, std::ios::binary) << text;
    auto r = p.read(name);
    ASSERT_FALSE(r) << name;
    EXPECT_EQ(r.error().sys_errno, EBADMSG) << name << ": " << r.error().message;
    EXPECT_FALSE(fs::exists(p.dir() / name)) << name;
    EXPECT_EQ(slurp(p.dir() / "corrupt" / name), text) << name;  // kept as it was
  }
  // A second damaged file of the same name does not replace the first one.
  std::ofstream(p.dir() / "garbage") << "second\n";
  ASSERT_FALSE(p.read("garbage"));
  EXPECT_EQ(slurp(p.dir() / "corrupt" / "garbage"), "hello world\n");
  EXPECT_EQ(slurp(p.dir() / "corrupt" / "garbage.1"), "second\n");
  // A symbolic link is never followed.
  fs::create_symlink(p.dir() / *good, p.dir() / "link");
  auto l = p.read("link");
  ASSERT_FALSE(l);
  EXPECT_EQ(l.error().sys_errno, EBADMSG);
  EXPECT_EQ(p.list(), std::vector<std::string>{*good});
  EXPECT_TRUE(p.read(*good));
}

TEST(Pickup, TooManyRecipientsInAFileIsCorrupt) {
  TempDir t;
  auto small = open_pickup(t.path(), 1000, 2);
  std::ofstream(small.dir() / "many")
      << "CARRIER-PICKUP 1\nuid 0\nsender \nrcpt a@b.c\nrcpt a@b.c\nrcpt a@b.c\n"
         "size 00000000000000000000\n\n";
  auto r = small.read("many");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().sys_errno, EBADMSG);
}

TEST(Pickup, NamesAreChecked) {
  TempDir t;
  auto p = open_pickup(t.path());
  for (const char* bad : {"", ".", "..", "../x", "a/b", ".hidden", "a b"}) {
    EXPECT_FALSE(Pickup::valid_name(bad)) << bad;
    auto r = p.read(bad);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().sys_errno, EINVAL);
    EXPECT_FALSE(p.remove(bad));
  }
  EXPECT_TRUE(Pickup::valid_name("0001700000000000000.123.0a1b2c3d"));
}

TEST(Pickup, CleanTmpRemovesOnlyOldFiles) {
  TempDir t;
  auto p = open_pickup(t.path());
  std::ofstream(p.dir() / "tmp" / "old") << "x";
  std::ofstream(p.dir() / "tmp" / "new") << "x";
  struct timespec times[2] = {{0, UTIME_OMIT}, {::time(nullptr) - 3 * 86400, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, (p.dir() / "tmp" / "old").c_str(), times, 0), 0);
  EXPECT_EQ(p.clean_tmp(std::chrono::hours(24)), 1u);
  EXPECT_FALSE(fs::exists(p.dir() / "tmp" / "old"));
  EXPECT_TRUE(fs::exists(p.dir() / "tmp" / "new"));
}
