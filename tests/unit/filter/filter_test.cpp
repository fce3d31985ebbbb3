// Tests for src/filter: Authentication-Results rendering (RFC 8601 2.2), removal of forged
// results with our authserv-id (RFC 8601 5), reading the header section back from a spool
// file, and the pipeline (order, stop at a verdict, A-R placement, timeout).
#include "filter/filter.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <thread>

namespace carrier::filter {
namespace {

TEST(AuthResults, RendersMethodsReasonsAndProperties) {
  std::vector<AuthResult> r{
      {"spf", "pass", "", {{"smtp.mailfrom", "alice@example.org"}}},
      {"dkim", "fail", "body hash mismatch", {{"header.d", "example.org"}, {"header.s", "sel 1"}}},
  };
  EXPECT_EQ(authentication_results("mx.example.net", r),
            "Authentication-Results: mx.example.net;\r\n"
            "\tspf=pass smtp.mailfrom=alice@example.org;\r\n"
            "\tdkim=fail reason=\"body hash mismatch\" header.d=example.org header.s=\"sel 1\"\r\n");
}

TEST(AuthResults, NoResultsIsNone) {
  EXPECT_EQ(authentication_results("mx", {}), "Authentication-Results: mx; none\r\n");
}

TEST(AuthResults, HostileValuesCannotBreakTheField) {
  std::vector<AuthResult> r{{"spf", "pass", "", {{"smtp.mailfrom", "a\r\nX-Evil: 1\"@x"}}}};
  auto h = authentication_results("mx", r);
  // Only the folding CRLFs we write, and the closing one.
  EXPECT_EQ(h.find("\r\nX-Evil"), std::string::npos);
  EXPECT_NE(h.find("\"aX-Evil: 1\\\"@x\""), std::string::npos);
}

TEST(StripOwn, RemovesOnlyFieldsWithOurAuthservId) {
  std::string head =
      "Received: from x\r\n"
      "Authentication-Results: MX.Example.Net;\r\n\tspf=pass smtp.mailfrom=forged.example\r\n"
      "authentication-results: other.example; dkim=pass\r\n"
      "Authentication-Results:mx.example.net; dmarc=pass\r\n"
      "Subject: hi\r\n"
      "\r\n";
  EXPECT_EQ(strip_own_authentication_results(head, "mx.example.net"), 2u);
  EXPECT_EQ(head,
            "Received: from x\r\n"
            "authentication-results: other.example; dkim=pass\r\n"
            "Subject: hi\r\n"
            "\r\n");
}

TEST(StripOwn, StopsAtTheEndOfTheHeaderSection) {
  std::string head = "Subject: a\r\n\r\nAuthentication-Results: mx; spf=pass\r\n";
  EXPECT_EQ(strip_own_authentication_results(head, "mx"), 0u);
}

struct TempFile {
  std::string path;
  explicit TempFile(const std::string& content) {
    char tmpl[] = "/tmp/carrier-filter-XXXXXX";
    int fd = ::mkstemp(tmpl);
    path = tmpl;
    ::close(fd);
    std::ofstream(path, std::ios::binary) << content;
  }
  ~TempFile() { ::unlink(path.c_str()); }
};

TEST(ReadHead, FindsTheEndOfTheHeaderSectionAfterTheOffset) {
  TempFile f("ENVELOPE\nReceived: x\r\nSubject: y\r\n\r\nbody\r\n");
  std::string head;
  bool complete = false;
  ASSERT_TRUE(read_head(f.path, 9, 33, head, complete));
  EXPECT_TRUE(complete);
  EXPECT_EQ(head, "Received: x\r\nSubject: y\r\n\r\n");
}

TEST(ReadHead, NoBodyMeansTheWholeContentIsTheHeader) {
  TempFile f("Received: x\r\nSubject: y\r\n");
  std::string head;
  bool complete = false;
  ASSERT_TRUE(read_head(f.path, 0, 25, head, complete));
  EXPECT_TRUE(complete);
  EXPECT_EQ(head, "Received: x\r\nSubject: y\r\n");
}

TEST(ReadHead, AnOverlongHeaderSectionIsIncomplete) {
  std::string big = "Received: x\r\nX: " + std::string(Message::kMaxHead, 'a') + "\r\n\r\nbody";
  TempFile f(big);
  std::string head;
  bool complete = true;
  ASSERT_TRUE(read_head(f.path, 0, big.size(), head, complete));
  EXPECT_FALSE(complete);
  EXPECT_EQ(head.size(), Message::kMaxHead);
}

TEST(ReadHead, MissingFileFails) {
  std::string head;
  bool complete = false;
  EXPECT_FALSE(read_head("/nonexistent/carrier", 0, 10, head, complete));
}

// A stage that records its name, optionally adds an auth result or a verdict, and answers
// from another thread (as DNS-waiting stages do).
class Probe : public Stage {
 public:
  Probe(std::string n, Kind k, std::vector<std::string>& log, std::mutex& mu)
      : name_(std::move(n)), kind_(k), log_(log), mu_(mu) {}
  const char* name() const override { return name_.c_str(); }
  Kind kind() const override { return kind_; }
  void run(Context& ctx, std::function<void()> done) override {
    {
      std::lock_guard lk(mu_);
      log_.push_back(name_ + (ctx.head.rfind("Authentication-Results:", 0) == 0 ? "+ar" : ""));
    }
    if (kind_ == Kind::Auth) ctx.auth.push_back({name_, "pass", "", {}});
    if (!set_action.has_value() && never_answer) {
      parked = std::move(done);
      return;
    }
    if (set_action) ctx.verdict.action = *set_action;
    std::thread([done = std::move(done)] { done(); }).detach();
  }
  std::optional<Action> set_action;
  bool never_answer = false;
  std::function<void()> parked;

 private:
  std::string name_;
  Kind kind_;
  std::vector<std::string>& log_;
  std::mutex& mu_;
};

std::shared_ptr<Context> run_sync(Pipeline& p, std::shared_ptr<Context> c) {
  std::mutex m;
  std::condition_variable cv;
  std::shared_ptr<Context> out;
  p.run(std::move(c), [&](std::shared_ptr<Context> r) {
    std::lock_guard lk(m);
    out = std::move(r);
    cv.notify_all();
  });
  std::unique_lock lk(m);
  cv.wait_for(lk, std::chrono::seconds(10), [&] { return out != nullptr; });
  return out;
}

std::shared_ptr<Context> make_ctx() {
  auto c = std::make_shared<Context>();
  c->msg.local_hostname = "mx.test";
  c->msg.head = "Received: x\r\nSubject: y\r\n\r\n";
  return c;
}

TEST(Pipeline, RunsStagesInOrderAndWritesOneAuthResultsFieldBeforeContentStages) {
  std::vector<std::string> log;
  std::mutex mu;
  auto a = std::make_shared<Probe>("spf", Stage::Kind::Auth, log, mu);
  auto b = std::make_shared<Probe>("dkim", Stage::Kind::Auth, log, mu);
  auto m = std::make_shared<Probe>("milter", Stage::Kind::Content, log, mu);
  Pipeline p({}, {a, b, m});
  auto r = run_sync(p, make_ctx());
  ASSERT_TRUE(r);
  EXPECT_EQ(log, (std::vector<std::string>{"spf", "dkim", "milter+ar"}));
  EXPECT_EQ(r->verdict.action, Action::Accept);
  EXPECT_EQ(r->head,
            "Authentication-Results: mx.test;\r\n\tspf=pass;\r\n\tdkim=pass\r\n"
            "Received: x\r\nSubject: y\r\n\r\n");
}

TEST(Pipeline, AVerdictStopsTheRestAndNamesTheStage) {
  std::vector<std::string> log;
  std::mutex mu;
  auto a = std::make_shared<Probe>("spf", Stage::Kind::Auth, log, mu);
  a->set_action = Action::Reject;
  auto b = std::make_shared<Probe>("dkim", Stage::Kind::Auth, log, mu);
  Pipeline p({}, {a, b});
  auto r = run_sync(p, make_ctx());
  ASSERT_TRUE(r);
  EXPECT_EQ(log, (std::vector<std::string>{"spf"}));
  EXPECT_EQ(r->verdict.action, Action::Reject);
  EXPECT_EQ(r->verdict.stage, "spf");
  EXPECT_EQ(r->head, r->msg.head);  // a refused message gets no header
}

TEST(Pipeline, HoldStillGetsTheAuthResults) {
  std::vector<std::string> log;
  std::mutex mu;
  auto a = std::make_shared<Probe>("dmarc", Stage::Kind::Auth, log, mu);
  a->set_action = Action::Hold;
  Pipeline p({}, {a});
  auto r = run_sync(p, make_ctx());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->verdict.action, Action::Hold);
  EXPECT_EQ(r->head.rfind("Authentication-Results: mx.test;\r\n\tdmarc=pass\r\n", 0), 0u);
}

TEST(Pipeline, HoldLetsTheLaterStagesRunAndARefusalAfterItWins) {
  // A held message is committed: the stages after the hold (a milter, DKIM signing) still run.
  std::vector<std::string> log;
  std::mutex mu;
  auto a = std::make_shared<Probe>("milter", Stage::Kind::Content, log, mu);
  a->set_action = Action::Hold;
  auto sign = std::make_shared<Probe>("dkim-sign", Stage::Kind::Content, log, mu);
  Pipeline p({}, {a, sign});
  auto r = run_sync(p, make_ctx());
  ASSERT_TRUE(r);
  EXPECT_EQ(log, (std::vector<std::string>{"milter", "dkim-sign"}));
  EXPECT_EQ(r->verdict.action, Action::Hold);
  EXPECT_EQ(r->verdict.stage, "milter");
  log.clear();
  auto refuse = std::make_shared<Probe>("milter2", Stage::Kind::Content, log, mu);
  refuse->set_action = Action::Reject;
  Pipeline q({}, {a, refuse, sign});
  r = run_sync(q, make_ctx());
  ASSERT_TRUE(r);
  EXPECT_EQ(log, (std::vector<std::string>{"milter", "milter2"}));
  EXPECT_EQ(r->verdict.action, Action::Reject);
  EXPECT_EQ(r->verdict.stage, "milter2");
}

TEST(Pipeline, AStageThatNeverAnswersTimesOutWithATemporaryFailure) {
  std::vector<std::string> log;
  std::mutex mu;
  auto a = std::make_shared<Probe>("milter", Stage::Kind::Content, log, mu);
  a->never_answer = true;
  Pipeline::Options o;
  o.timeout = std::chrono::seconds(1);
  Pipeline p(o, {a});
  auto r = run_sync(p, make_ctx());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->verdict.action, Action::TempFail);
  EXPECT_EQ(r->verdict.reply.code, 451);
  EXPECT_EQ(r->verdict.reply.status, "4.7.1");
  // The late answer is harmless.
  if (a->parked) a->parked();
}

}  // namespace
}  // namespace carrier::filter
