// Unit tests of the durable spool: file format and envelope round trip, streaming writes,
// concurrent (group) commits, recovery rules at open, corrupt files, state records, removal,
// and I/O errors. Each test uses its own temporary directory.
#include "spool/spool.hpp"

#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <map>
#include <future>
#include <random>
#include <set>
#include <sstream>
#include <thread>

using namespace carrier;
using namespace carrier::spool;
namespace fs = std::filesystem;

namespace {

class TempDir {
 public:
  TempDir() {
    std::string t = (fs::temp_directory_path() / "carrier-spool-XXXXXX").string();
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

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_file(const fs::path& p, std::string_view s) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(s.data(), static_cast<std::streamsize>(s.size()));
}

std::vector<std::string> names_in(const fs::path& dir) {
  std::vector<std::string> v;
  for (const auto& e : fs::directory_iterator(dir)) v.push_back(e.path().filename().string());
  std::sort(v.begin(), v.end());
  return v;
}

std::unique_ptr<Spool> open_spool(const fs::path& dir, int threads = 4) {
  Options o;
  o.dir = dir;
  o.sync_threads = threads;
  auto r = Spool::open(o);
  if (!r) ADD_FAILURE() << r.error().message;
  return r ? std::move(r.value()) : nullptr;
}

Result<std::string> commit_sync(Spool& sp, Writer&& w) {
  std::promise<Result<std::string>> p;
  auto f = p.get_future();
  sp.commit(std::move(w), [&p](Result<std::string> r) { p.set_value(std::move(r)); });
  return f.get();
}

proto::Envelope simple_envelope() {
  proto::Envelope e;
  e.sender = {"alice", "example.org"};
  proto::EnvelopeRecipient r;
  r.address = {"demo", "localhost"};
  r.original = {"demo+tag", "localhost"};
  r.mailbox = "demo";
  e.recipients.push_back(r);
  e.helo = "client.example.org";
  e.client_ip = "127.0.0.1";
  e.protocol = "ESMTP";
  e.received_at_ms = 1763920000123;
  return e;
}

proto::Envelope full_envelope() {
  proto::Envelope e;
  e.sender = {"\"j\\\"o e\"", "[192.0.2.1]"};
  e.params.size = 123456789012ULL;
  e.params.body = proto::Body::BinaryMime;
  e.params.body_given = true;
  e.params.smtputf8 = true;
  e.params.ret = proto::Ret::Hdrs;
  e.params.envid = std::string("env\xff\x01id", 7);  // xtext can decode to any octets
  e.params.auth = "<>";
  proto::EnvelopeRecipient a;
  a.address = {"d\xc3\xa9mo", "b\xc3\xbc" "cher.example"};  // UTF-8 (RFC 6531)
  a.original = {"Demo+x", "Localhost."};
  a.route = proto::RcptRoute::Local;
  a.mailbox = "demo";
  a.notify = proto::kNotifySuccess | proto::kNotifyDelay;
  a.orcpt_type = "rfc822";
  a.orcpt = "Demo+x@Localhost.";
  proto::EnvelopeRecipient b;
  b.address = {"bob", "remote.example"};
  b.route = proto::RcptRoute::Relay;
  b.notify = proto::kNotifyNever;
  b.orcpt_type = "utf-8";
  b.orcpt = "b\xc3\xb6" "b@remote.example";
  e.recipients = {a, b};
  e.helo = "[IPv6:2001:db8::1]";
  e.client_ip = "::1";
  e.client_rdns = "host.example";
  e.protocol = "UTF8SMTPS";
  e.received_at_ms = -5;  // any int64 survives
  return e;
}

void expect_same(const proto::Envelope& a, const proto::Envelope& b) {
  EXPECT_EQ(a.sender, b.sender);
  EXPECT_EQ(a.params.size, b.params.size);
  EXPECT_EQ(a.params.body, b.params.body);
  EXPECT_EQ(a.params.body_given, b.params.body_given);
  EXPECT_EQ(a.params.smtputf8, b.params.smtputf8);
  EXPECT_EQ(a.params.ret, b.params.ret);
  EXPECT_EQ(a.params.envid, b.params.envid);
  EXPECT_EQ(a.params.auth, b.params.auth);
  ASSERT_EQ(a.recipients.size(), b.recipients.size());
  for (std::size_t i = 0; i < a.recipients.size(); ++i) {
    const auto& x = a.recipients[i];
    const auto& y = b.recipients[i];
    EXPECT_EQ(x.address, y.address) << i;
    EXPECT_EQ(x.original, y.original) << i;
    EXPECT_EQ(x.route, y.route) << i;
    EXPECT_EQ(x.mailbox, y.mailbox) << i;
    EXPECT_EQ(x.notify, y.notify) << i;
    EXPECT_EQ(x.orcpt_type, y.orcpt_type) << i;
    EXPECT_EQ(x.orcpt, y.orcpt) << i;
  }
  EXPECT_EQ(a.helo, b.helo);
  EXPECT_EQ(a.client_ip, b.client_ip);
  EXPECT_EQ(a.client_rdns, b.client_rdns);
  EXPECT_EQ(a.protocol, b.protocol);
  EXPECT_EQ(a.received_at_ms, b.received_at_ms);
}

std::string content_of(const Stored& s) {
  std::string all = read_file(s.path);
  return all.substr(s.content_offset);
}

}  // namespace

TEST(Spool, OpenCreatesPrivateDirectories) {
  TempDir t;
  auto sp = open_spool(t.path() / "var" / "spool");  // missing parents are created too
  ASSERT_TRUE(sp);
  for (const char* d : {"", "tmp", "queue", "state", "corrupt"}) {
    struct stat st {};
    ASSERT_EQ(::stat((t.path() / "var" / "spool" / d).c_str(), &st), 0) << d;
    EXPECT_TRUE(S_ISDIR(st.st_mode)) << d;
    EXPECT_EQ(st.st_mode & 0777, 0700u) << d;
  }
  EXPECT_EQ(sp->dir(), t.path() / "var" / "spool");
  // A path through a regular file is reported, not crashed on.
  write_file(t.path() / "file", "x");
  Options o;
  o.dir = t.path() / "file" / "spool";
  auto bad = Spool::open(o);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().sys_errno, ENOTDIR) << bad.error().message;
}

TEST(Spool, SecondOpenOfTheSameDirectoryIsRefused) {
  TempDir t;
  auto a = open_spool(t.path());
  ASSERT_TRUE(a);
  Options o;
  o.dir = t.path();
  auto b = Spool::open(o);
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.error().message.find("in use"), std::string::npos) << b.error().message;
  a.reset();
  EXPECT_TRUE(Spool::open(o).ok());  // lock released with the first instance
}

TEST(Spool, RoundTripOfEveryEnvelopeField) {
  TempDir t;
  auto sp = open_spool(t.path());
  ASSERT_TRUE(sp);
  const auto env = full_envelope();
  auto w = sp->begin(env);
  ASSERT_TRUE(w.ok()) << w.error().message;
  std::string id = w->id();
  EXPECT_TRUE(is_valid_queue_id(id));
  EXPECT_TRUE(fs::exists(t.path() / "tmp" / id));
  const std::string body = "Received: from x\r\nSubject: t\r\n\r\nhello\r\n";
  ASSERT_TRUE(w->write(body).ok());
  EXPECT_EQ(w->content_size(), body.size());
  auto c = commit_sync(*sp, std::move(w.value()));
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c.value(), id);
  EXPECT_FALSE(fs::exists(t.path() / "tmp" / id));
  EXPECT_TRUE(fs::exists(t.path() / "queue" / id));

  auto s = sp->load(id);
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_EQ(s->id, id);
  EXPECT_EQ(s->path, t.path() / "queue" / id);
  expect_same(env, s->envelope);
  EXPECT_EQ(s->content_size, body.size());
  EXPECT_EQ(content_of(*s), body);
  EXPECT_EQ(s->done, std::vector<bool>({false, false}));

  // Unset optional values survive as unset.
  auto e2 = simple_envelope();
  auto w2 = sp->begin(e2);
  ASSERT_TRUE(w2.ok());
  auto c2 = commit_sync(*sp, std::move(w2.value()));
  ASSERT_TRUE(c2.ok());
  auto s2 = sp->load(c2.value());
  ASSERT_TRUE(s2.ok()) << s2.error().message;
  expect_same(e2, s2->envelope);
  EXPECT_FALSE(s2->envelope.params.size.has_value());
  EXPECT_EQ(s2->content_size, 0u);
}

// Writer::stored() is what the queue gets instead of reading back a message just committed:
// it must be exactly what load() returns, for a new file, a recycled one (longer than the new
// message until the commit truncates it) and after a header rewrite by the checks.
TEST(Spool, WriterStoredIsWhatLoadReturns) {
  TempDir t;
  auto sp = open_spool(t.path());
  ASSERT_TRUE(sp);
  auto check = [&](const proto::Envelope& env, const std::string& body, bool rewrite) {
    auto w = sp->begin(env);
    ASSERT_TRUE(w.ok()) << w.error().message;
    ASSERT_TRUE(w->write(body).ok());
    std::string expect = body;
    if (rewrite) {
      ASSERT_TRUE(w->flush().ok());
      const std::string head = "X-Added: yes\r\nSubject: t\r\n";
      ASSERT_TRUE(w->rewrite_head(13, head).ok());  // replaces "Subject: tt\r\n"
      expect = head + body.substr(13);
    }
    const Stored pre = w->stored(env);
    auto c = commit_sync(*sp, std::move(w.value()));
    ASSERT_TRUE(c.ok()) << c.error().message;
    auto s = sp->load(c.value());
    ASSERT_TRUE(s.ok()) << s.error().message;
    EXPECT_EQ(pre.id, s->id);
    EXPECT_EQ(pre.path, s->path);
    expect_same(pre.envelope, s->envelope);
    EXPECT_EQ(pre.content_offset, s->content_offset);
    EXPECT_EQ(pre.content_size, s->content_size);
    EXPECT_EQ(pre.done, s->done);
    EXPECT_EQ(pre.events, s->events);
    EXPECT_EQ(content_of(pre), expect);
    ASSERT_TRUE(sp->remove(c.value()).ok());  // its file is recycled by the next begin()
  };
  const std::string big = "Subject: t\r\n\r\n" + std::string(20000, 'x') + "\r\n";
  check(full_envelope(), big, false);                              // new file
  check(simple_envelope(), "Subject: t\r\n\r\nshort\r\n", false);  // recycled, was longer
  check(full_envelope(), "Subject: tt\r\n\r\nbody\r\n", true);     // header rewritten
}

TEST(Spool, FileFormatIsHeaderLineJsonLineThenContent) {
  TempDir t;
  auto sp = open_spool(t.path());
  ASSERT_TRUE(sp);
  auto w = sp->begin(simple_envelope());
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE(w->write("Subject: x\r\n\r\nbody\r\n").ok());
  auto c = commit_sync(*sp, std::move(w.value()));
  ASSERT_TRUE(c.ok());
  std::string f = read_file(t.path() / "queue" / c.value());
  ASSERT_EQ(f.rfind("CARRIER-SPOOL 1 ", 0), 0u) << f;
  auto nl = f.find('\n');
  std::size_t n = std::stoul(f.substr(16, nl - 16));
  std::string json = f.substr(nl + 1, n);
  EXPECT_EQ(json.front(), '{');
  EXPECT_EQ(json.find('\n'), std::string::npos);  // one line
  EXPECT_NE(json.find("\"sender\""), std::string::npos);
  EXPECT_NE(json.find("\"demo+tag\""), std::string::npos);  // greppable
  EXPECT_EQ(f[nl + 1 + n], '\n');
  EXPECT_EQ(f.substr(nl + 2 + n), "Subject: x\r\n\r\nbody\r\n");
  struct stat st {};
  ASSERT_EQ(::stat((t.path() / "queue" / c.value()).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST(Spool, ContentStreamedInOddChunkSizes) {
  TempDir t;
  auto sp = open_spool(t.path());
  ASSERT_TRUE(sp);
  std::mt19937 rng(42);
  std::string content(700 * 1024 + 13, '\0');
  for (auto& ch : content) ch = static_cast<char>(rng());
  auto w = sp->begin(simple_envelope());
  ASSERT_TRUE(w.ok());
  const std::size_t sizes[] = {1, 7, 13, 4093, 65535, 65536, 65537, 200001, 3};
  std::size_t off = 0, k = 0;
  while (off < content.size()) {
    std::size_t n = std::min(sizes[k++ % std::size(sizes)], content.size() - off);
    ASSERT_TRUE(w->write(std::string_view(content).substr(off, n)).ok());
    off += n;
  }
  EXPECT_EQ(w->content_size(), content.size());
  auto c = commit_sync(*sp, std::move(w.value()));
  ASSERT_TRUE(c.ok()) << c.error().message;
  auto s = sp->load(c.value());
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->content_size, content.size());
  EXPECT_TRUE(content_of(*s) == content);
}

TEST(Spool, HundredConcurrentCommitsAreAllDurableAndListed) {
  TempDir t;
  auto sp = open_spool(t.path(), 16);
  ASSERT_TRUE(sp);
  constexpr int kThreads = 5, kPerThread = 20;
  std::mutex mu;
  std::map<std::string, std::string> begun;  // id → content
  std::vector<std::string> committed;
  std::set<std::thread::id> callback_threads;
  std::atomic<int> outstanding{0}, failures{0};
  std::promise<void> all_done;
  std::vector<std::thread> ts;
  for (int t_i = 0; t_i < kThreads; ++t_i) {
    ts.emplace_back([&, t_i] {
      for (int i = 0; i < kPerThread; ++i) {
        auto w = sp->begin(simple_envelope());
        if (!w) {
          ++failures;
          continue;
        }
        std::string body = "Subject: " + std::to_string(t_i) + "/" + std::to_string(i) + "\r\n\r\n" +
                           std::string(4096, 'x') + "\r\n";
        if (!w->write(body)) ++failures;
        {
          std::lock_guard lk(mu);
          begun[w->id()] = body;
        }
        ++outstanding;
        sp->commit(std::move(w.value()), [&, caller = std::this_thread::get_id()](Result<std::string> r) {
          std::lock_guard lk(mu);
          if (!r || std::this_thread::get_id() == caller) ++failures;
          if (r) committed.push_back(r.value());
          callback_threads.insert(std::this_thread::get_id());
          if (--outstanding == 0 && committed.size() + failures >= kThreads * kPerThread)
            all_done.set_value();
        });
      }
    });
  }
  for (auto& th : ts) th.join();
  ASSERT_EQ(all_done.get_future().wait_for(std::chrono::seconds(60)), std::future_status::ready);
  EXPECT_EQ(failures.load(), 0);
  ASSERT_EQ(committed.size(), std::size_t(kThreads * kPerThread));
  std::sort(committed.begin(), committed.end());
  std::vector<std::string> begun_ids;
  for (const auto& [id, body] : begun) begun_ids.push_back(id);
  EXPECT_EQ(begun_ids, committed);
  auto listed = sp->list();
  EXPECT_EQ(listed, committed);  // list() is sorted: oldest first
  EXPECT_TRUE(names_in(t.path() / "tmp").empty());
  for (const auto& id : committed) {
    auto s = sp->load(id);
    ASSERT_TRUE(s.ok()) << id;
    EXPECT_EQ(s->content_size, begun[id].size());
    EXPECT_EQ(content_of(*s), begun[id]);
  }
}

TEST(Spool, CallbackRunsOnASpoolThreadEvenForAFailedCommit) {
  TempDir t;
  auto sp = open_spool(t.path());
  ASSERT_TRUE(sp);
  auto w = sp->begin(simple_envelope());
  ASSERT_TRUE(w.ok());
  Writer moved = std::move(w.value());
  std::promise<std::pair<bool, std::thread::id>> p;
  sp->commit(std::move(w.value()),  // the moved-from writer: not open
             [&](Result<std::string> r) { p.set_value({r.ok(), std::this_thread::get_id()}); });
  auto [ok, tid] = p.get_future().get();
  EXPECT_FALSE(ok);
  EXPECT_NE(tid, std::this_thread::get_id());
  // The real writer is unaffected and still commits.
  EXPECT_TRUE(commit_sync(*sp, std::move(moved)).ok());
  EXPECT_EQ(sp->list().size(), 1u);
}

TEST(Spool, CommitNeverOverwritesAnExistingQueueFile) {
  TempDir t;
  auto sp = open_spool(t.path());
  ASSERT_TRUE(sp);
  auto w = sp->begin(simple_envelope());
  ASSERT_TRUE(w.ok());
  std::string id = w->id();
  write_file(t.path() / "queue" / id, "someone else's message");
  ASSERT_TRUE(w->write("mine").ok());
  auto c = commit_sync(*sp, std::move(w.value()));
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().sys_errno, EEXIST);
  EXPECT_EQ(read_file(t.path() / "queue" / id), "someone else's message");
  EXPECT_FALSE(fs::exists(t.path() / "tmp" / id));  // failed commit removes its tmp file
}

TEST(Spool, AbortAndDestroyingAnUncommittedWriterRemoveTheTmpFile) {
  TempDir t;
  auto sp = open_spool(t.path());
  ASSERT_TRUE(sp);
  std::string id1, id2;
  {
    auto w = sp->begin(simple_envelope());
    ASSERT_TRUE(w.ok());
    id1 = w->id();
    ASSERT_TRUE(w->write(std::string(100000, 'a')).ok());
    EXPECT_TRUE(fs::exists(t.path() / "tmp" / id1));
  }
  EXPECT_FALSE(fs::exists(t.path() / "tmp" / id1));
  auto w = sp->begin(simple_envelope());
  ASSERT_TRUE(w.ok());
  id2 = w->id();
  w->abort();
  EXPECT_FALSE(fs::exists(t.path() / "tmp" / id2));
  EXPECT_FALSE(w->write("x").ok());  // closed
  EXPECT_TRUE(sp->list().empty());
}

TEST(Spool, OpenRemovesTmpLeftoversAndOrphanState) {
  TempDir t;
  std::string kept;
  {
    auto sp = open_spool(t.path());
    ASSERT_TRUE(sp);
    auto w = sp->begin(simple_envelope());
    ASSERT_TRUE(w.ok());
    auto c = commit_sync(*sp, std::move(w.value()));
    ASSERT_TRUE(c.ok());
    kept = c.value();
    ASSERT_TRUE(sp->record(kept, {{0, RecipientResult::Status::Deferred, "4.2.2 full"}}).ok());
  }
  // A crash while receiving leaves files in tmp/ (never acknowledged).
  write_file(t.path() / "tmp" / "0G4X7PN1Q2AB", "CARRIER-SPOOL 1 2\n{}\npartial");
  write_file(t.path() / "tmp" / "garbage", "x");
  // A crash inside remove() leaves a state file without its message.
  write_file(t.path() / "state" / "0G4X7PN1Q2AC", "1 0 delivered x\n");
  auto sp = open_spool(t.path());
  ASSERT_TRUE(sp);
  EXPECT_TRUE(names_in(t.path() / "tmp").empty());
  EXPECT_EQ(names_in(t.path() / "state"), std::vector<std::string>{kept});
  EXPECT_EQ(sp->list(), std::vector<std::string>{kept});
}

TEST(Spool, ListIsOldestFirstAndIgnoresForeignNames) {
  TempDir t;
  auto sp = open_spool(t.path());
  ASSERT_TRUE(sp);
  QueueIdGenerator g1, g2;  // one generator never goes back in time; two can
  auto now = std::chrono::system_clock::now();
  std::string newer = g1.next_at(now), older = g2.next_at(now - std::chrono::hours(48));
  ASSERT_TRUE(is_valid_queue_id(older));
  write_file(t.path() / "queue" / newer, "x");
  write_file(t.path() / "queue" / older, "x");
  write_file(t.path() / "queue" / "README", "x");
  write_file(t.path() / "queue" / (newer + ".bak"), "x");
  write_file(t.path() / "queue" / "0123456789AI", "x");
  EXPECT_EQ(sp->list(), (std::vector<std::string>{older, newer}));
}

struct CorruptCase {
  const char* name;
  std::string bytes;
};

class SpoolCorrupt : public ::testing::TestWithParam<CorruptCase> {};

TEST_P(SpoolCorrupt, IsMovedToCorruptNeverDeleted) {
  TempDir t;
  auto sp = open_spool(t.path());
  ASSERT_TRUE(sp);
  const std::string id = "0G4X7PN1Q2AB";
  write_file(t.path() / "queue" / id, GetParam().bytes);
  write_file(t.path() / "state" / id, "1 0 deferred x\n");
  ASSERT_EQ(sp->list(), std::vector<std::string>{id});
  auto s = sp->load(id);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().sys_errno, 0);
  EXPECT_NE(s.error().message.find("corrupt"), std::string::npos) << s.error().message;
  EXPECT_FALSE(fs::exists(t.path() / "queue" / id));
  EXPECT_EQ(read_file(t.path() / "corrupt" / id), GetParam().bytes);
  EXPECT_TRUE(fs::exists(t.path() / "corrupt" / (id + ".state")));
  EXPECT_TRUE(sp->list().empty());
  // A second corrupt file with the same name does not replace the first.
  write_file(t.path() / "queue" / id, "again");
  EXPECT_FALSE(sp->load(id).ok());
  EXPECT_EQ(read_file(t.path() / "corrupt" / id), GetParam().bytes);
  EXPECT_EQ(read_file(t.path() / "corrupt" / (id + ".1")), "again");
}

namespace {
std::string spool_file(const std::string& json, const std::string& tail = "\nbody") {
  return "CARRIER-SPOOL 1 " + std::to_string(json.size()) + "\n" + json + tail;
}
const std::string kGoodJson =
    R"({"sender":{"local":"a","domain":"b"},"params":{"size":null,"body":"7bit","body_given":false,)"
    R"("smtputf8":false,"ret":"","envid":"","auth":""},"recipients":[{"address":{"local":"d","domain":"l"},)"
    R"("original":{"local":"","domain":""},"route":"local","mailbox":"d","notify":0,"orcpt_type":"","orcpt":""}],)"
    R"("helo":"h","client_ip":"127.0.0.1","client_rdns":"","protocol":"ESMTP","received_at_ms":1})";
std::string with(std::string s, const std::string& from, const std::string& to) {
  auto p = s.find(from);
  if (p == std::string::npos) throw std::logic_error("test pattern not found: " + from);
  return s.replace(p, from.size(), to);
}
}  // namespace

INSTANTIATE_TEST_SUITE_P(
    Files, SpoolCorrupt,
    ::testing::Values(
        CorruptCase{"empty", ""}, CorruptCase{"not_a_spool_file", "hello world\n"},
        CorruptCase{"wrong_version", "CARRIER-SPOOL 2 2\n{}\n"},
        CorruptCase{"no_length", "CARRIER-SPOOL 1 \n{}\n"},
        CorruptCase{"negative_length", "CARRIER-SPOOL 1 -2\n{}\n"},
        CorruptCase{"huge_length", "CARRIER-SPOOL 1 99999999999\n{}\n"},
        CorruptCase{"truncated_envelope", spool_file(kGoodJson, "").substr(0, 60)},
        CorruptCase{"no_newline_after_envelope", spool_file(kGoodJson, "Xbody")},
        CorruptCase{"bad_json", spool_file("{\"sender\":")},
        CorruptCase{"json_not_object", spool_file("[1,2,3]")},
        CorruptCase{"missing_field", spool_file(with(kGoodJson, R"("helo":"h",)", ""))},
        CorruptCase{"unknown_field", spool_file(with(kGoodJson, R"("helo":"h",)", R"("helo":"h","x":1,)"))},
        CorruptCase{"wrong_type", spool_file(with(kGoodJson, R"("received_at_ms":1)", R"("received_at_ms":"1")"))},
        CorruptCase{"bad_body", spool_file(with(kGoodJson, R"("body":"7bit")", R"("body":"9bit")"))},
        CorruptCase{"bad_route", spool_file(with(kGoodJson, R"("route":"local")", R"("route":"mars")"))},
        CorruptCase{"bad_notify", spool_file(with(kGoodJson, R"("notify":0)", R"("notify":-1)"))},
        CorruptCase{"bad_size", spool_file(with(kGoodJson, R"("size":null)", R"("size":1.5)"))},
        CorruptCase{"bad_hex", spool_file(with(kGoodJson, R"("envid":"")", R"("envid":{"hex":"zz"})"))}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(Spool, GoodHandWrittenFileLoads) {
  // Guards the corrupt cases above: they differ from a valid file only by their defect.
  TempDir t;
  auto sp = open_spool(t.path());
  ASSERT_TRUE(sp);
  write_file(t.path() / "queue" / "0G4X7PN1Q2AB", spool_file(kGoodJson));
  auto s = sp->load("0G4X7PN1Q2AB");
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_EQ(s->envelope.recipients.at(0).mailbox, "d");
  EXPECT_EQ(content_of(*s), "body");
}

TEST(Spool, LoadOfMissingOrInvalidIdIsAnErrorWithoutSideEffects) {
  TempDir t;
  auto sp = open_spool(t.path());
  ASSERT_TRUE(sp);
  auto a = sp->load("0G4X7PN1Q2AB");
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.error().sys_errno, ENOENT);
  auto b = sp->load("../../etc/passwd");
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.error().sys_errno, EINVAL);
  EXPECT_FALSE(sp->record("../x", {{0, RecipientResult::Status::Delivered, ""}}).ok());
  EXPECT_FALSE(sp->remove("..").ok());
  EXPECT_TRUE(names_in(t.path() / "corrupt").empty());
}

TEST(Spool, StateRecordsFillDone) {
  TempDir t;
  auto sp = open_spool(t.path());
  ASSERT_TRUE(sp);
  auto env = simple_envelope();
  env.recipients.resize(4, env.recipients[0]);
  auto w = sp->begin(env);
  ASSERT_TRUE(w.ok());
  auto c = commit_sync(*sp, std::move(w.value()));
  ASSERT_TRUE(c.ok());
  const std::string id = c.value();
  using S = RecipientResult::Status;
  ASSERT_TRUE(sp->record(id, {{0, S::Delivered, "delivered to maildir demo/new/x"},
                              {1, S::Deferred, "4.2.2 mailbox full\r\nsecond line"}})
                  .ok());
  ASSERT_TRUE(sp->record(id, {{2, S::Failed, "5.1.1 no such user"}}, /*sync=*/true).ok());
  auto s = sp->load(id);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->done, std::vector<bool>({true, false, true, false}));

  std::string st = read_file(t.path() / "state" / id);
  std::istringstream in(st);
  std::string line;
  std::vector<std::string> lines;
  while (std::getline(in, line)) lines.push_back(line);
  ASSERT_EQ(lines.size(), 3u) << st;  // CR/LF in a detail cannot start a new line
  auto check = [](const std::string& l, const std::string& rest) {
    auto sp1 = l.find(' ');
    ASSERT_NE(sp1, std::string::npos);
    auto ms = std::stoll(l.substr(0, sp1));
    auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::system_clock::now().time_since_epoch()).count();
    EXPECT_LE(std::llabs(now - ms), 60000) << l;
    EXPECT_EQ(l.substr(sp1 + 1), rest);
  };
  check(lines[0], "0 delivered delivered to maildir demo/new/x");
  check(lines[1], "1 deferred 4.2.2 mailbox full  second line");
  check(lines[2], "2 failed 5.1.1 no such user");
  EXPECT_EQ(st.back(), '\n');

  // Later records win nothing back: a deferral after delivery does not undo it; a torn last
  // line (crash during the append) and out-of-range indexes are ignored.
  {
    std::ofstream out(t.path() / "state" / id, std::ios::app | std::ios::binary);
    out << "5 0 deferred late\n" << "6 3 delivered\n" << "7 99 delivered x\n" << "8 3 deliv";
  }
  s = sp->load(id);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->done, std::vector<bool>({true, false, true, false}));
}

TEST(Spool, RemoveDeletesMessageAndState) {
  TempDir t;
  auto sp = open_spool(t.path());
  ASSERT_TRUE(sp);
  auto w = sp->begin(simple_envelope());
  ASSERT_TRUE(w.ok());
  auto c = commit_sync(*sp, std::move(w.value()));
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE(sp->record(c.value(), {{0, RecipientResult::Status::Delivered, "ok"}}).ok());
  ASSERT_TRUE(sp->remove(c.value()).ok());
  EXPECT_TRUE(sp->list().empty());
  EXPECT_TRUE(names_in(t.path() / "queue").empty());
  EXPECT_TRUE(names_in(t.path() / "state").empty());
  auto again = sp->remove(c.value());
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().sys_errno, ENOENT);
}

TEST(Spool, WithoutFsyncOptionCommitsStillWork) {
  TempDir t;
  Options o;
  o.dir = t.path();
  o.fsync = false;
  auto sp = Spool::open(o);
  ASSERT_TRUE(sp.ok());
  auto w = (*sp)->begin(simple_envelope());
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE(w->write("x").ok());
  auto c = commit_sync(**sp, std::move(w.value()));
  ASSERT_TRUE(c.ok());
  EXPECT_EQ((*sp)->list(), std::vector<std::string>{c.value()});
}

// An I/O error while writing (here EFBIG from RLIMIT_FSIZE, which needs no special mount) is
// remembered: write() reports it, later writes and commit() fail, and the tmp file goes away.
TEST(Spool, WriteErrorIsRememberedAndFailsTheCommit) {
  TempDir t;
  auto sp = open_spool(t.path());
  ASSERT_TRUE(sp);
  auto w = sp->begin(simple_envelope());
  ASSERT_TRUE(w.ok());
  const std::string id = w->id();

  struct rlimit old {};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old), 0);
  auto old_handler = ::signal(SIGXFSZ, SIG_IGN);
  struct rlimit lim = old;
  lim.rlim_cur = 100 * 1024;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &lim), 0);
  bool saw_error = false;
  Error first;
  const std::string block(64 * 1024, 'z');
  for (int i = 0; i < 8 && !saw_error; ++i) {
    auto r = w->write(block);
    if (!r) {
      saw_error = true;
      first = r.error();
    }
  }
  ::setrlimit(RLIMIT_FSIZE, &old);
  ::signal(SIGXFSZ, old_handler);

  ASSERT_TRUE(saw_error);
  EXPECT_EQ(first.sys_errno, EFBIG);
  EXPECT_NE(first.message.find(id), std::string::npos) << first.message;
  auto again = w->write("more");  // remembered
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().sys_errno, EFBIG);
  auto c = commit_sync(*sp, std::move(w.value()));
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().sys_errno, EFBIG);
  EXPECT_FALSE(fs::exists(t.path() / "tmp" / id));
  EXPECT_TRUE(sp->list().empty());
}

TEST(Error, NoSpaceIsTheEnospcOrEdquotKind) {
  EXPECT_TRUE(sys_error("x", ENOSPC).no_space());
  EXPECT_TRUE(sys_error("x", EDQUOT).no_space());
  EXPECT_FALSE(sys_error("x", EFBIG).no_space());
}

namespace {
std::string commit_message(Spool& sp, const std::string& content) {
  auto w = sp.begin(simple_envelope());
  EXPECT_TRUE(w.ok());
  EXPECT_TRUE(w->write(content).ok());
  auto c = commit_sync(sp, std::move(w.value()));
  EXPECT_TRUE(c.ok()) << (c.ok() ? "" : c.error().message);
  return c.ok() ? c.value() : std::string();
}
}  // namespace

// A removed message's file is recycled for the next one (same inode), and the new message
// reads back exactly, however much longer the old content was.
TEST(Spool, RemovedFileIsRecycledAndTruncatedToTheNewMessage) {
  TempDir t;
  auto sp = open_spool(t.path());
  ASSERT_TRUE(sp);
  const std::string big(300 * 1024, 'B');
  std::string id1 = commit_message(*sp, big);
  struct stat st1 {};
  ASSERT_EQ(::stat((t.path() / "queue" / id1).c_str(), &st1), 0);
  ASSERT_TRUE(sp->remove(id1).ok());
  EXPECT_FALSE(fs::exists(t.path() / "queue" / id1));
  EXPECT_EQ(names_in(t.path() / "free").size(), 1u);

  const std::string small = "Subject: small\r\n\r\nhello\r\n";
  std::string id2 = commit_message(*sp, small);
  struct stat st2 {};
  ASSERT_EQ(::stat((t.path() / "queue" / id2).c_str(), &st2), 0);
  EXPECT_EQ(st1.st_ino, st2.st_ino) << "the file was not recycled";
  EXPECT_TRUE(names_in(t.path() / "free").empty());
  auto s = sp->load(id2);
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_EQ(s->content_size, small.size());
  EXPECT_TRUE(content_of(*s) == small) << "content differs (size " << content_of(*s).size() << ")";
  EXPECT_EQ(static_cast<std::uint64_t>(st2.st_size), s->content_offset + small.size());
}

// A recycled file is written where it lies, in free/, and renamed straight into queue/ at
// commit (nothing in tmp/); one a writer gives up on goes back to the pool for the next.
TEST(Spool, RecycledFileIsWrittenInFreeAndAnAbortedOneIsReused) {
  TempDir t;
  auto sp = open_spool(t.path());
  ASSERT_TRUE(sp);
  std::string id1 = commit_message(*sp, "first\r\n");
  ASSERT_TRUE(sp->remove(id1).ok());
  ASSERT_EQ(names_in(t.path() / "free").size(), 1u);
  const std::string spare = names_in(t.path() / "free").front();
  {
    auto w = sp->begin(simple_envelope());
    ASSERT_TRUE(w.ok());
    EXPECT_EQ(w->path(), t.path() / "free" / spare);
    ASSERT_TRUE(w->write("given up\r\n").ok());
    ASSERT_TRUE(w->flush().ok());
    EXPECT_TRUE(names_in(t.path() / "tmp").empty());
  }  // destroyed uncommitted: the file stays in free/ and is taken again
  EXPECT_EQ(names_in(t.path() / "free"), std::vector<std::string>{spare});
  auto w = sp->begin(simple_envelope());
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(w->path(), t.path() / "free" / spare);
  const std::string id2 = w->id();
  ASSERT_TRUE(w->write("second\r\n").ok());
  auto c = commit_sync(*sp, std::move(w.value()));
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_TRUE(names_in(t.path() / "free").empty());
  EXPECT_TRUE(names_in(t.path() / "tmp").empty());
  EXPECT_EQ(names_in(t.path() / "queue"), std::vector<std::string>{id2});
  auto s = sp->load(id2);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(content_of(*s), "second\r\n");
  // A header rewrite moves the writer to a file of its own in tmp/; the spare goes back.
  std::string id3 = commit_message(*sp, "third\r\n");
  ASSERT_TRUE(sp->remove(id2).ok());
  ASSERT_TRUE(sp->remove(id3).ok());
  ASSERT_EQ(names_in(t.path() / "free").size(), 2u);
  auto w3 = sp->begin(simple_envelope());
  ASSERT_TRUE(w3.ok());
  ASSERT_TRUE(w3->write("Subject: a\r\n\r\nbody\r\n").ok());
  ASSERT_TRUE(w3->rewrite_head(std::string("Subject: a\r\n").size(), "Subject: b\r\n").ok());
  EXPECT_EQ(w3->path(), t.path() / "tmp" / w3->id());
  EXPECT_EQ(names_in(t.path() / "free").size(), 2u);
  auto c3 = commit_sync(*sp, std::move(w3.value()));
  ASSERT_TRUE(c3.ok()) << c3.error().message;
  auto s3 = sp->load(c3.value());
  ASSERT_TRUE(s3.ok());
  EXPECT_EQ(content_of(*s3), "Subject: b\r\n\r\nbody\r\n");
  EXPECT_TRUE(names_in(t.path() / "tmp").empty());
}

// After a crash, a spare in free/ that is also a queued message's name (a rename whose free/
// side never reached the disk, link count fixed by fsck) is dropped at open, never reused:
// the queued message stays intact.
TEST(Spool, SpareThatIsAlsoAQueuedMessageIsNotReused) {
  TempDir t;
  std::string id;
  {
    auto sp = open_spool(t.path());
    ASSERT_TRUE(sp);
    id = commit_message(*sp, "keep me\r\n");
  }
  ASSERT_EQ(::link((t.path() / "queue" / id).c_str(), (t.path() / "free" / "Fstale").c_str()), 0);
  auto sp = open_spool(t.path());
  ASSERT_TRUE(sp);
  EXPECT_TRUE(names_in(t.path() / "free").empty());
  std::string other = commit_message(*sp, "new message\r\n");
  ASSERT_FALSE(other.empty());
  auto s = sp->load(id);
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_EQ(content_of(*s), "keep me\r\n");
  EXPECT_EQ(sp->list().size(), 2u);
}

// remove() leaves no state file whether the message never had one (finished in one attempt)
// or was given lines by record() or record_event() after its commit.
TEST(Spool, RemoveWithAndWithoutStateLinesLeavesNothing) {
  TempDir t;
  auto sp = open_spool(t.path());
  ASSERT_TRUE(sp);
  std::string plain = commit_message(*sp, "a\r\n");
  std::string with_event = commit_message(*sp, "b\r\n");
  std::string with_result = commit_message(*sp, "c\r\n");
  ASSERT_TRUE(sp->record_event(with_event, "held").ok());
  ASSERT_TRUE(sp->record(with_result, {{0, RecipientResult::Status::Deferred, "4.4.1 later"}}).ok());
  EXPECT_EQ(names_in(t.path() / "state").size(), 2u);
  for (const auto& id : {plain, with_event, with_result}) ASSERT_TRUE(sp->remove(id).ok()) << id;
  EXPECT_TRUE(names_in(t.path() / "state").empty());
  EXPECT_TRUE(names_in(t.path() / "queue").empty());
  // A message committed by an earlier process (its state file found at open) too.
  std::string old = commit_message(*sp, "d\r\n");
  ASSERT_TRUE(sp->record_event(old, "x").ok());
  sp.reset();
  sp = open_spool(t.path());
  ASSERT_TRUE(sp);
  ASSERT_TRUE(sp->remove(old).ok());
  EXPECT_TRUE(names_in(t.path() / "state").empty());
}

// Recycled files survive a restart as spare files and are never mistaken for messages.
TEST(Spool, FreeFilesAreReusedAfterReopenAndNeverListed) {
  TempDir t;
  std::string id1;
  {
    auto sp = open_spool(t.path());
    ASSERT_TRUE(sp);
    id1 = commit_message(*sp, "x\r\n");
    ASSERT_TRUE(sp->remove(id1).ok());
  }
  auto sp = open_spool(t.path());
  ASSERT_TRUE(sp);
  EXPECT_TRUE(sp->list().empty());
  std::string id2 = commit_message(*sp, "second\r\n");
  EXPECT_TRUE(names_in(t.path() / "free").empty());
  auto s = sp->load(id2);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(content_of(*s), "second\r\n");
}

// SyncMode::Filesystem commits through syncfs rounds: durable, listed, readable.
TEST(Spool, FilesystemSyncModeCommitsConcurrently) {
  TempDir t;
  Options o;
  o.dir = t.path();
  o.sync_mode = SyncMode::Filesystem;
  auto r = Spool::open(o);
  ASSERT_TRUE(r.ok());
  auto& sp = *r.value();
  std::vector<std::thread> ts;
  std::mutex mu;
  std::vector<std::string> ids;
  for (int i = 0; i < 8; ++i)
    ts.emplace_back([&, i] {
      for (int k = 0; k < 10; ++k) {
        auto id = commit_message(sp, "m" + std::to_string(i * 100 + k) + "\r\n");
        std::lock_guard lk(mu);
        ids.push_back(id);
      }
    });
  for (auto& th : ts) th.join();
  EXPECT_EQ(sp.list().size(), 80u);
  EXPECT_TRUE(sp.sync_barrier().ok());
  EXPECT_TRUE(names_in(t.path() / "tmp").empty());
  for (const auto& id : ids) EXPECT_TRUE(sp.load(id).ok()) << id;
}

// ---- message checks before commit (src/filter): flush, read back, rewrite the head ---------

TEST(Spool, AuthUserRoundTripsAndOldFilesWithoutItStillLoad) {
  TempDir t;
  auto sp = open_spool(t.path());
  ASSERT_TRUE(sp);
  auto env = simple_envelope();
  env.auth_user = "alice";
  auto w = sp->begin(env);
  ASSERT_TRUE(w.ok());
  auto c = commit_sync(*sp, std::move(w.value()));
  ASSERT_TRUE(c.ok());
  auto s = sp->load(c.value());
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_EQ(s->envelope.auth_user, "alice");
  // Without an authenticated user the key is absent: the format of earlier versions.
  auto w2 = sp->begin(simple_envelope());
  ASSERT_TRUE(w2.ok());
  auto c2 = commit_sync(*sp, std::move(w2.value()));
  ASSERT_TRUE(c2.ok());
  EXPECT_EQ(read_file(t.path() / "queue" / c2.value()).find("auth_user"), std::string::npos);
  auto s2 = sp->load(c2.value());
  ASSERT_TRUE(s2.ok());
  EXPECT_EQ(s2->envelope.auth_user, "");
}

TEST(Spool, FlushMakesTheContentReadableAtContentOffset) {
  TempDir t;
  auto sp = open_spool(t.path());
  ASSERT_TRUE(sp);
  auto w = sp->begin(simple_envelope());
  ASSERT_TRUE(w.ok());
  const std::string body = "Received: x\r\nSubject: s\r\n\r\nbody\r\n";
  ASSERT_TRUE(w->write(body).ok());
  ASSERT_TRUE(w->flush().ok());
  const std::string file = read_file(w->path());
  ASSERT_GE(file.size(), w->content_offset() + body.size());
  EXPECT_EQ(file.substr(w->content_offset(), body.size()), body);
}

TEST(Spool, RewriteHeadReplacesTheHeaderSectionAndKeepsTheBody) {
  TempDir t;
  auto sp = open_spool(t.path());
  ASSERT_TRUE(sp);
  for (int round = 0; round < 2; ++round) {  // round 1 reuses a recycled file from round 0
    auto w = sp->begin(simple_envelope());
    ASSERT_TRUE(w.ok());
    const std::string head = "Received: x\r\nSubject: s\r\n\r\n";
    const std::string body(200000 + round, 'b');  // beyond one write buffer
    ASSERT_TRUE(w->write(head).ok());
    ASSERT_TRUE(w->write(body).ok());
    const std::string new_head = "Authentication-Results: mx; spf=pass\r\n" + head;
    ASSERT_TRUE(w->rewrite_head(head.size(), new_head).ok());
    EXPECT_EQ(w->content_size(), new_head.size() + body.size());
    ASSERT_TRUE(w->write("tail\r\n").ok());  // writing after a rewrite appends
    auto c = commit_sync(*sp, std::move(w.value()));
    ASSERT_TRUE(c.ok()) << c.error().message;
    auto s = sp->load(c.value());
    ASSERT_TRUE(s.ok()) << s.error().message;
    EXPECT_EQ(content_of(*s), new_head + body + "tail\r\n");
    expect_same(simple_envelope(), s->envelope);
    EXPECT_EQ(names_in(t.path() / "tmp"), std::vector<std::string>{});  // no ID.r left
    ASSERT_TRUE(sp->remove(c.value()).ok());
  }
}

TEST(Spool, RewriteHeadRefusesALengthBeyondTheContent) {
  TempDir t;
  auto sp = open_spool(t.path());
  ASSERT_TRUE(sp);
  auto w = sp->begin(simple_envelope());
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE(w->write("abc").ok());
  EXPECT_FALSE(w->rewrite_head(4, "x").ok());
}
