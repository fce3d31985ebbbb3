#include "base/queue_id.hpp"

#include <gtest/gtest.h>

#include <set>
#include <thread>

using namespace carrier;

TEST(QueueId, FixedWidthValidAndUnique) {
  QueueIdGenerator g;
  std::set<std::string> seen;
  for (int i = 0; i < 100000; ++i) {
    auto id = g.next();
    ASSERT_EQ(id.size(), kQueueIdLength);
    ASSERT_TRUE(is_valid_queue_id(id)) << id;
    ASSERT_TRUE(seen.insert(id).second) << "duplicate " << id;
  }
}

TEST(QueueId, SortsByTime) {
  QueueIdGenerator g;
  auto t0 = std::chrono::system_clock::now();
  auto a = g.next_at(t0);
  auto b = g.next_at(t0 + std::chrono::milliseconds(1));
  auto c = g.next_at(t0 + std::chrono::hours(24 * 365));
  EXPECT_LT(a, b);
  EXPECT_LT(b, c);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t0.time_since_epoch()).count();
  EXPECT_EQ(queue_id_time_ms(a), ms);
}

TEST(QueueId, ClockSteppingBackStaysMonotonic) {
  QueueIdGenerator g;
  auto t0 = std::chrono::system_clock::now();
  auto a = g.next_at(t0);
  auto b = g.next_at(t0 - std::chrono::seconds(5));
  EXPECT_NE(a, b);
  EXPECT_EQ(queue_id_time_ms(b), queue_id_time_ms(a));
}

TEST(QueueId, RejectsForeignNames) {
  EXPECT_FALSE(is_valid_queue_id(""));
  EXPECT_FALSE(is_valid_queue_id("0123456789AI"));   // I is not in the alphabet
  EXPECT_FALSE(is_valid_queue_id("0123456789A"));    // too short
  EXPECT_FALSE(is_valid_queue_id("../etc/passwd"));
  EXPECT_TRUE(is_valid_queue_id("0123456789AB"));
}

TEST(QueueId, ThreadSafe) {
  QueueIdGenerator g;
  std::vector<std::vector<std::string>> out(4);
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([&, t] { for (int i = 0; i < 20000; ++i) out[t].push_back(g.next()); });
  for (auto& t : ts) t.join();
  std::set<std::string> all;
  for (auto& v : out) all.insert(v.begin(), v.end());
  EXPECT_EQ(all.size(), 80000u);
}
