// Regression tests (found by AddressSanitizer in `make test-sanitize`, tests/sanitize/run.sh)
// for src/filter: a stage may hold on to its done() callback — and through it the pipeline's
// per-message run — after the Pipeline and its thread pool are gone (a DNS-waiting check that
// answers late, a stage that never answers). The run's timeout timer must not be destroyed
// after the pool it belongs to (heap-use-after-free in ~steady_timer before the fix). These
// tests pass in any build; under ASan they fail without the fix. No untrusted input.
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>

#include "filter/filter.hpp"

namespace carrier::filter {
namespace {

// Keeps every callback it gets (answers only when told to).
class Keeper : public Stage {
 public:
  explicit Keeper(bool answer) : answer_(answer) {}
  const char* name() const override { return "keeper"; }
  Kind kind() const override { return Kind::Content; }
  void run(Context&, std::function<void()> done) override {
    kept = done;
    if (answer_) done();  // answers, but keeps a copy of the callback
  }
  std::function<void()> kept;

 private:
  bool answer_;
};

std::shared_ptr<Context> run_and_wait(Pipeline& p) {
  auto c = std::make_shared<Context>();
  c->msg.local_hostname = "mx.test";
  c->msg.head = "Subject: y\r\n\r\n";
  std::mutex m;
  std::condition_variable cv;
  std::shared_ptr<Context> out;
  p.run(c, [&](std::shared_ptr<Context> r) {
    std::lock_guard lk(m);
    out = std::move(r);
    cv.notify_all();
  });
  std::unique_lock lk(m);
  cv.wait_for(lk, std::chrono::seconds(10), [&] { return out != nullptr; });
  return out;
}

TEST(PipelineLifetime, CallbackKeptPastThePipelineAfterAnAnswer) {
  auto stage = std::make_shared<Keeper>(true);
  {
    Pipeline p({}, {stage});
    auto r = run_and_wait(p);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->verdict.action, Action::Accept);
  }  // pipeline and pool destroyed; the stage still holds the run
  stage->kept = nullptr;  // the run (and anything it owns) goes now
  SUCCEED();
}

TEST(PipelineLifetime, CallbackKeptPastThePipelineAfterTheTimeout) {
  auto stage = std::make_shared<Keeper>(false);
  {
    Pipeline::Options o;
    o.timeout = std::chrono::seconds(1);
    Pipeline p(o, {stage});
    auto r = run_and_wait(p);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->verdict.action, Action::TempFail);
    EXPECT_EQ(r->verdict.reply.code, 451);
  }
  stage->kept = nullptr;
  SUCCEED();
}

}  // namespace
}  // namespace carrier::filter
