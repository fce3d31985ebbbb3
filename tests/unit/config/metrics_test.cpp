// carrier config tests: [metrics] listen — off by default, a loopback IP literal with a port
// ("127.0.0.1:9925", "[::1]:9925", port 0 for tests), anything else refused with file:line.
// No untrusted input beyond the test's own TOML.
#include <gtest/gtest.h>

#include "test_util.hpp"

namespace carrier::config {
namespace {

using test::expect_one_error;
using test::load;

TEST(ConfigMetrics, OffByDefault) {
  EXPECT_TRUE(defaults().metrics_listen.empty());
  auto l = load("[server]\nhostname = \"mx.example.test\"\n");
  ASSERT_TRUE(l.config) << test::dump(l.diags);
  EXPECT_TRUE(l.config->metrics_listen.empty());
}

TEST(ConfigMetrics, LoopbackAddressesAreAccepted) {
  for (const char* a : {"127.0.0.1:9925", "127.1.2.3:0", "[::1]:9925"}) {
    auto l = load(std::string("[metrics]\nlisten = \"") + a + "\"\n");
    ASSERT_TRUE(l.config) << a << "\n" << test::dump(l.diags);
    EXPECT_EQ(l.config->metrics_listen, a);
  }
}

TEST(ConfigMetrics, OtherAddressesAreRefusedWithTheLine) {
  for (const char* a : {"0.0.0.0:9925", "[::]:9925", "192.0.2.10:9925", "[2001:db8::1]:9925"})
    expect_one_error(std::string("# metrics\n[metrics]\nlisten = \"") + a + "\"\n", 3,
                     "[metrics] listen: must be a loopback address");
}

TEST(ConfigMetrics, MalformedAddressesAndUnknownKeys) {
  expect_one_error("[metrics]\nlisten = \"localhost:9925\"\n", 2, "[metrics] listen: invalid address");
  expect_one_error("[metrics]\nlisten = \"127.0.0.1\"\n", 2, "[metrics] listen: invalid address");
  expect_one_error("[metrics]\nlisten = \"127.0.0.1:99999\"\n", 2, "[metrics] listen: invalid address");
  expect_one_error("[metrics]\nlisten = 9925\n", 2, "[metrics] listen");
  expect_one_error("[metrics]\nport = 9925\n", 2, "unknown key 'port' in [metrics]");
}

}  // namespace
}  // namespace carrier::config
