// Unit tests of the local delivery queue: delivery and removal, recovery at start, retry with
// exponential backoff on a manual clock, partial success, relay recipients left pending,
// permanent failures, restart recovery, no concurrent double delivery, and stop().
#include "queue/delivery.hpp"

#include <atomic>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

#include "fixture.hpp"
#include "transport/maildir/maildir.hpp"

using namespace carrier_queue_test;

TEST_F(DeliveryTest, DeliversToMaildirThenRemovesFromSpool) {
  transport::MaildirTransport maildir(dir_.path() / "mail", "mx.test");
  queue::Delivery d(*spool_, maildir, {});
  d.start();
  std::string id = put({rcpt("demo", "localhost")});
  d.submit(id);
  ASSERT_TRUE(d.wait_idle(10s));
  EXPECT_FALSE(in_spool(id));
  EXPECT_FALSE(fs::exists(dir_.path() / "spool" / "state" / id));
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir_.path() / "mail" / "demo" / "new"))
    files.push_back(e.path());
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(read_file(files[0]),
            "Return-Path: <alice@example.org>\nDelivered-To: demo@localhost\nSubject: t\n\nhi\n");
  auto st = d.stats();
  EXPECT_EQ(st.delivered, 1u);
  EXPECT_EQ(st.deferred, 0u);
  EXPECT_EQ(st.failed, 0u);
  EXPECT_EQ(st.pending, 0u);
  EXPECT_EQ(logs_.count(id + ": to=<demo@localhost> relay=maildir delay="), 1) << logs_.dump();
  EXPECT_EQ(logs_.count(" status=delivered (delivered to maildir demo/new/" +
                        files[0].filename().string() + ")"),
            1)
      << logs_.dump();
  EXPECT_EQ(logs_.count(id + ": removed"), 1) << logs_.dump();
}

TEST_F(DeliveryTest, StartDeliversEverythingAlreadyInTheSpoolOldestFirst) {
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) ids.push_back(put({rcpt("demo", "localhost")}));
  FakeTransport t("fake", always(Status::Delivered, "ok"));
  queue::Options o;
  o.threads = 1;  // one worker: the order is observable
  queue::Delivery d(*spool_, t, o);
  d.start();
  ASSERT_TRUE(d.wait_idle(10s));
  std::vector<std::string> order;
  for (const auto& [id, r] : t.requests()) order.push_back(id);
  EXPECT_EQ(order, ids);
  EXPECT_TRUE(spool_->list().empty());
  EXPECT_EQ(logs_.count("queue: 5 message(s) in the spool at start"), 1) << logs_.dump();
}

TEST_F(DeliveryTest, TemporaryFailuresAreRetriedWithExponentialBackoff) {
  ManualClock& clock = clock_;
  FakeTransport t("fake", [](const transport::Request& req, int call) {
    return all(req, call < 2 ? Status::Deferred : Status::Delivered,
               call < 2 ? "4.2.2 mailbox full" : "ok");
  });
  queue::Options o;
  o.clock = &clock;
  o.retry_initial = 60s;
  o.retry_max = 3600s;
  queue::Delivery d(*spool_, t, o);
  d.start();
  std::string id = put({rcpt("demo", "localhost")});
  d.submit(id);
  ASSERT_TRUE(d.wait_idle(10s));
  ASSERT_EQ(t.calls(), 1);
  auto due1 = d.next_try(id);
  ASSERT_TRUE(due1.has_value());
  auto i1 = std::chrono::duration_cast<std::chrono::seconds>(*due1 - clock.now());
  EXPECT_GE(i1, 54s);  // 60 s ± 10 %
  EXPECT_LE(i1, 66s);
  EXPECT_EQ(logs_.count("status=deferred (4.2.2 mailbox full) next_try=" +
                        std::to_string(i1.count()) + "s"),
            1)
      << logs_.dump();
  EXPECT_TRUE(in_spool(id));
  EXPECT_EQ(d.stats().pending, 1u);

  // Not yet due: nothing happens, even when asked to look.
  clock.advance(i1 - 1s);
  d.poll_due();
  ASSERT_TRUE(d.wait_idle(10s));
  EXPECT_EQ(t.calls(), 1);
  d.submit(id);  // already scheduled: not queued a second time
  ASSERT_TRUE(d.wait_idle(10s));
  EXPECT_EQ(t.calls(), 1);

  clock.advance(1s);
  d.poll_due();
  ASSERT_TRUE(d.wait_idle(10s));
  ASSERT_EQ(t.calls(), 2);
  auto due2 = d.next_try(id);
  ASSERT_TRUE(due2.has_value());
  auto i2 = std::chrono::duration_cast<std::chrono::seconds>(*due2 - clock.now());
  EXPECT_GE(i2, 108s);  // doubled: 120 s ± 10 %
  EXPECT_LE(i2, 132s);

  clock.advance(i2);
  d.poll_due();
  ASSERT_TRUE(d.wait_idle(10s));
  EXPECT_EQ(t.calls(), 3);
  EXPECT_FALSE(d.next_try(id).has_value());
  EXPECT_FALSE(in_spool(id));
  auto st = d.stats();
  EXPECT_EQ(st.deferred, 2u);
  EXPECT_EQ(st.delivered, 1u);
  EXPECT_EQ(st.pending, 0u);
}

TEST_F(DeliveryTest, BackoffDoublesUpToTheMaximum) {
  ManualClock& clock = clock_;
  FakeTransport t("fake", always(Status::Deferred, "4.3.0 try later"));
  queue::Options o;
  o.clock = &clock;
  o.retry_initial = 10s;
  o.retry_max = 25s;
  queue::Delivery d(*spool_, t, o);
  d.start();
  std::string id = put({rcpt("demo", "localhost")});
  d.submit(id);
  const std::pair<int, int> expected[] = {{9, 11}, {18, 22}, {22, 28}, {22, 28}, {22, 28}};
  for (auto [lo, hi] : expected) {
    ASSERT_TRUE(d.wait_idle(10s));
    auto due = d.next_try(id);
    ASSERT_TRUE(due.has_value());
    auto s = std::chrono::duration_cast<std::chrono::seconds>(*due - clock.now()).count();
    EXPECT_GE(s, lo);
    EXPECT_LE(s, hi);
    clock.set(*due);
    d.poll_due();
  }
  ASSERT_TRUE(d.wait_idle(10s));
  EXPECT_EQ(t.calls(), 6);
  EXPECT_TRUE(in_spool(id));  // deferred forever here, never dropped
}

TEST_F(DeliveryTest, WakeAllRetriesScheduledMessagesNow) {
  FakeTransport t("fake", [](const transport::Request& req, int call) {
    return all(req, call == 0 ? Status::Deferred : Status::Delivered, call == 0 ? "4.3.0 x" : "ok");
  });
  queue::Delivery d(*spool_, t, {});  // system clock: the retry would be a minute away
  d.start();
  std::string id = put({rcpt("demo", "localhost")});
  d.submit(id);
  ASSERT_TRUE(d.wait_idle(10s));
  ASSERT_TRUE(d.next_try(id).has_value());
  d.wake_all();
  ASSERT_TRUE(d.wait_idle(10s));
  EXPECT_EQ(t.calls(), 2);
  EXPECT_FALSE(in_spool(id));
}

TEST_F(DeliveryTest, PartialSuccessRetriesOnlyTheRest) {
  ManualClock& clock = clock_;
  FakeTransport t("fake", [](const transport::Request& req, int call) {
    std::vector<TResult> out;
    for (auto i : req.recipients)
      out.push_back(call == 0 && i == 1 ? TResult{i, Status::Deferred, "4.2.2 full"}
                                        : TResult{i, Status::Delivered, "ok " + std::to_string(i)});
    return out;
  });
  queue::Options o;
  o.clock = &clock;
  queue::Delivery d(*spool_, t, o);
  d.start();
  std::string id = put({rcpt("demo", "localhost"), rcpt("postmaster", "localhost"),
                        rcpt("other", "localhost")});
  d.submit(id);
  ASSERT_TRUE(d.wait_idle(10s));
  auto loaded = spool_->load(id);
  ASSERT_TRUE(loaded.ok());
  EXPECT_EQ(loaded->done, std::vector<bool>({true, false, true}));  // recorded in state/ID
  clock.advance(1h);
  d.poll_due();
  ASSERT_TRUE(d.wait_idle(10s));
  auto reqs = t.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[0].second, (std::vector<std::size_t>{0, 1, 2}));
  EXPECT_EQ(reqs[1].second, (std::vector<std::size_t>{1}));
  EXPECT_FALSE(in_spool(id));
  EXPECT_EQ(d.stats().delivered, 3u);
}

TEST_F(DeliveryTest, MissingTransportResultIsADeferralNotALoss) {
  ManualClock& clock = clock_;
  FakeTransport t("fake", [](const transport::Request& req, int call) {
    std::vector<TResult> out;
    if (call > 0) out = all(req, Status::Delivered, "ok");
    out.push_back({99, Status::Delivered, "an index nobody asked for"});
    return out;
  });
  queue::Options o;
  o.clock = &clock;
  queue::Delivery d(*spool_, t, o);
  d.start();
  std::string id = put({rcpt("demo", "localhost")});
  d.submit(id);
  ASSERT_TRUE(d.wait_idle(10s));
  EXPECT_TRUE(in_spool(id));
  EXPECT_EQ(logs_.count("status=deferred (4.3.0 fake: no result for this recipient)"), 1)
      << logs_.dump();
  clock.advance(1h);
  d.poll_due();
  ASSERT_TRUE(d.wait_idle(10s));
  EXPECT_FALSE(in_spool(id));
}

TEST_F(DeliveryTest, RelayRecipientsWaitWithoutRetryLoopUntilARelayIsSet) {
  FakeTransport local("fake", always(Status::Delivered, "ok"));
  queue::Delivery d(*spool_, local, {});
  d.start();
  std::string id = put({rcpt("demo", "localhost"), rcpt("bob", "remote.example", proto::RcptRoute::Relay)});
  d.submit(id);
  ASSERT_TRUE(d.wait_idle(10s));
  EXPECT_EQ(local.calls(), 1);
  EXPECT_EQ(local.requests()[0].second, std::vector<std::size_t>{0});  // never the relay one
  EXPECT_TRUE(in_spool(id));
  EXPECT_FALSE(d.next_try(id).has_value());  // waiting, not scheduled for retries
  EXPECT_EQ(d.stats().pending, 1u);
  EXPECT_EQ(logs_.count(id + ": waiting for relay: <bob@remote.example>"), 1) << logs_.dump();

  d.wake_all();  // looked at again: the local recipient is done, the line is not repeated
  ASSERT_TRUE(d.wait_idle(10s));
  EXPECT_EQ(local.calls(), 1);
  EXPECT_EQ(logs_.count("waiting for relay"), 1) << logs_.dump();
  EXPECT_TRUE(in_spool(id));

  FakeTransport relay("relay", always(Status::Delivered, "250 2.0.0 queued as X"));
  d.set_relay(&relay);
  ASSERT_TRUE(d.wait_idle(10s));
  ASSERT_EQ(relay.calls(), 1);
  EXPECT_EQ(relay.requests()[0].second, std::vector<std::size_t>{1});
  EXPECT_FALSE(in_spool(id));
  EXPECT_EQ(logs_.count(id + ": to=<bob@remote.example> relay=relay delay="), 1) << logs_.dump();
}

TEST_F(DeliveryTest, PermanentFailureIsRecordedAndLoggedAsFailed) {
  FakeTransport t("fake", [](const transport::Request& req, int) {
    std::vector<TResult> out;
    for (auto i : req.recipients)
      out.push_back(i == 0 ? TResult{i, Status::Failed, "5.1.1 maildir: invalid mailbox name"}
                           : TResult{i, Status::Delivered, "ok"});
    return out;
  });
  queue::Delivery d(*spool_, t, {});
  d.start();
  std::string id = put({rcpt("bad", "localhost"), rcpt("demo", "localhost")});
  d.submit(id);
  ASSERT_TRUE(d.wait_idle(10s));
  EXPECT_FALSE(in_spool(id));  // every recipient has a final result
  EXPECT_EQ(logs_.count(id + ": to=<bad@localhost> relay=fake delay="), 1) << logs_.dump();
  EXPECT_EQ(logs_.count("status=failed (5.1.1 maildir: invalid mailbox name)"), 1) << logs_.dump();
  // RFC 3464 / RFC 5321 6.1: the sender is told (details in notice_test.cpp).
  auto dsn = notices();
  ASSERT_EQ(dsn.size(), 1u);
  EXPECT_EQ(logs_.count(id + ": sender non-delivery notification: " + dsn[0]), 1) << logs_.dump();
  auto st = d.stats();
  EXPECT_EQ(st.failed, 1u);
  EXPECT_EQ(st.delivered, 1u);
}

TEST_F(DeliveryTest, ANewDeliveryOnTheSameSpoolFinishesWhatWasLeft) {
  std::string id = put({rcpt("demo", "localhost"), rcpt("postmaster", "localhost")});
  {
    FakeTransport first("fake", [](const transport::Request& req, int) {
      std::vector<TResult> out;
      for (auto i : req.recipients)
        out.push_back({i, i == 0 ? Status::Delivered : Status::Deferred, i == 0 ? "ok" : "4.3.0 x"});
      return out;
    });
    queue::Delivery d(*spool_, first, {});
    d.start();
    ASSERT_TRUE(d.wait_idle(10s));
    EXPECT_EQ(first.calls(), 1);
    d.stop();  // the deferred recipient stays in the spool
  }
  ASSERT_TRUE(in_spool(id));
  FakeTransport second("fake", always(Status::Delivered, "ok"));
  queue::Delivery d2(*spool_, second, {});
  d2.start();
  ASSERT_TRUE(d2.wait_idle(10s));
  ASSERT_EQ(second.calls(), 1);
  EXPECT_EQ(second.requests()[0].second, std::vector<std::size_t>{1});  // 0 was delivered before
  EXPECT_FALSE(in_spool(id));
}

TEST_F(DeliveryTest, AMessageIsNeverDeliveredTwiceConcurrently) {
  std::promise<void> release;
  std::shared_future<void> gate = release.get_future().share();
  std::promise<void> entered;
  std::atomic<bool> entered_once{false};
  FakeTransport t("fake", [&](const transport::Request& req, int) {
    if (!entered_once.exchange(true)) entered.set_value();
    gate.wait();
    return all(req, Status::Delivered, "ok");
  });
  queue::Options o;
  o.threads = 8;
  queue::Delivery d(*spool_, t, o);
  d.start();
  std::string id = put({rcpt("demo", "localhost")});
  d.submit(id);
  entered.get_future().wait();
  for (int i = 0; i < 20; ++i) {
    d.submit(id);
    d.wake_all();
    d.poll_due();
  }
  release.set_value();
  ASSERT_TRUE(d.wait_idle(10s));
  EXPECT_EQ(t.calls(), 1);
  EXPECT_EQ(t.max_concurrent(), 1);
  EXPECT_FALSE(in_spool(id));
}

TEST_F(DeliveryTest, StopFinishesDeliveriesInProgressAndLosesNothing) {
  std::promise<void> release;
  std::shared_future<void> gate = release.get_future().share();
  std::promise<void> entered;
  FakeTransport t("fake", [&](const transport::Request& req, int call) {
    if (call == 0) {
      entered.set_value();
      gate.wait();
    }
    return all(req, Status::Delivered, "ok");
  });
  queue::Options o;
  o.threads = 1;
  queue::Delivery d(*spool_, t, o);
  std::string a = put({rcpt("demo", "localhost")});
  std::string b = put({rcpt("demo", "localhost")});
  d.start();
  entered.get_future().wait();  // a is in progress, b is queued behind it
  std::atomic<bool> stopped{false};
  std::thread stopper([&] {
    d.stop();
    stopped = true;
  });
  std::this_thread::sleep_for(100ms);
  EXPECT_FALSE(stopped.load());  // waits for the delivery in progress
  release.set_value();
  stopper.join();
  EXPECT_TRUE(stopped.load());
  EXPECT_FALSE(in_spool(a));  // finished and removed
  EXPECT_TRUE(in_spool(b));   // never started: still in the spool for the next start
  EXPECT_EQ(t.calls(), 1);
  d.submit(b);  // after stop: ignored, stays in the spool
  EXPECT_TRUE(in_spool(b));
}

TEST_F(DeliveryTest, CorruptMessageIsSetAsideAndForgotten) {
  const std::string id = "0G4X7PN1Q2AB";
  std::ofstream(dir_.path() / "spool" / "queue" / id) << "not a spool file";
  FakeTransport t("fake", always(Status::Delivered, "ok"));
  queue::Delivery d(*spool_, t, {});
  d.start();
  ASSERT_TRUE(d.wait_idle(10s));
  EXPECT_EQ(t.calls(), 0);
  EXPECT_EQ(d.stats().pending, 0u);
  EXPECT_TRUE(fs::exists(dir_.path() / "spool" / "corrupt" / id));
  d.submit("not-an-id/../x");  // rejected outright
  EXPECT_EQ(d.stats().pending, 0u);
}

namespace {

// A relay that answers only when the test says so (like a next hop that stalls), on another
// thread, as the SMTP transport does.
class HeldRelay : public transport::Transport {
 public:
  const char* name() const override { return "held"; }
  std::vector<TResult> deliver(const transport::Request&) override { return {}; }
  void deliver_async(const transport::Request& req, Done done) override {
    std::lock_guard lk(mu_);
    pending_.push_back({req.recipients, std::move(done)});
    ++handed_;
  }
  int handed() {
    std::lock_guard lk(mu_);
    return handed_;
  }
  int waiting() {
    std::lock_guard lk(mu_);
    return static_cast<int>(pending_.size());
  }
  // Answers the oldest request: every recipient delivered.
  void answer_one() {
    std::pair<std::vector<std::size_t>, Done> p;
    {
      std::lock_guard lk(mu_);
      ASSERT_FALSE(pending_.empty());
      p = std::move(pending_.front());
      pending_.pop_front();
    }
    std::thread([p = std::move(p)]() mutable {
      std::vector<TResult> out;
      for (auto i : p.first) out.push_back(TResult{i, Status::Delivered, "250 ok"});
      p.second(std::move(out));
    }).join();
  }

 private:
  std::mutex mu_;
  std::deque<std::pair<std::vector<std::size_t>, Done>> pending_;
  int handed_ = 0;
};

bool eventually(const std::function<bool()>& f) {
  for (int i = 0; i < 1000; ++i) {
    if (f()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return f();
}

}  // namespace

TEST_F(DeliveryTest, ARelayThatDoesNotAnswerHoldsNoThreadAndAtMostTheInFlightLimit) {
  FakeTransport local("fake", always(Status::Delivered, "ok"));
  HeldRelay relay;
  queue::Options o;
  o.threads = 2;
  o.max_relay_in_flight = 3;
  queue::Delivery d(*spool_, local, o);
  d.set_relay(&relay);
  d.start();
  std::vector<std::string> ids;
  for (int i = 0; i < 6; ++i) {
    ids.push_back(put({rcpt("bob", "remote.example", proto::RcptRoute::Relay)}));
    d.submit(ids.back());
  }
  // Three go to the relay, three wait in line; the two threads are free meanwhile.
  ASSERT_TRUE(eventually([&] { return relay.handed() == 3; }));
  std::string lid = put({rcpt("demo", "localhost")});
  d.submit(lid);
  ASSERT_TRUE(eventually([&] { return !in_spool(lid); }));  // local mail is not held up
  EXPECT_EQ(relay.handed(), 3);
  EXPECT_FALSE(d.wait_idle(50ms));
  // Each answer lets one more in, oldest first, until all are delivered.
  for (int n = 0; n < 6; ++n) {
    ASSERT_TRUE(eventually([&] { return relay.waiting() > 0; }));
    relay.answer_one();
  }
  ASSERT_TRUE(d.wait_idle(10s));
  EXPECT_EQ(relay.handed(), 6);
  for (const auto& id : ids) EXPECT_FALSE(in_spool(id)) << id;
  EXPECT_EQ(d.stats().delivered, 7u);
}
