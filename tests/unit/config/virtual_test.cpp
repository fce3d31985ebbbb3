// carrier config tests: [[virtual]] hosted domains, map files, and the delivery method keys
// of [local] and [[virtual]] (maildir, lmtp, pipe), with their errors on the right line.
#include <gtest/gtest.h>

#include "test_util.hpp"

namespace carrier::config {
namespace {

using namespace std::chrono_literals;
using test::expect_one_error;
using test::load;

TEST(ConfigVirtual, DomainsDeliveryAndMapFile) {
  test::TempDir dir;
  const auto map = dir.path() / "example.org.map";
  std::ofstream(map) << "# mailboxes and aliases\ncarol\nsales: carol, Bob\nteam: x@elsewhere.test\n";
  auto l = load(R"([local]
domains = ["localhost"]
delivery = "lmtp"
lmtp = "unix:/run/dovecot/lmtp"

[[virtual]]
domain = "Example.ORG"
mailboxes = ["alice", "Bob"]
aliases = { info = ["alice", "someone@elsewhere.test"] }
catch_all = "alice"
map_file = ")" + map.string() + R"("
delivery = "pipe"
pipe_command = ["/usr/bin/procmail", "-d", "{user}"]
pipe_timeout = "30s"

[[virtual]]
domain = "example.net"
lmtp = "127.0.0.1:24"
delivery = "lmtp"
)");
  ASSERT_TRUE(l.config) << test::dump(l.diags);
  const Config& c = *l.config;
  EXPECT_EQ(c.local_delivery.method, "lmtp");
  EXPECT_EQ(c.local_delivery.lmtp, "unix:/run/dovecot/lmtp");
  ASSERT_EQ(c.virtual_domains.size(), 2u);
  const VirtualDomain& v = c.virtual_domains[0];
  EXPECT_EQ(v.domain, "example.org");
  EXPECT_EQ(v.mailboxes, (std::vector<std::string>{"alice", "bob"}));
  EXPECT_EQ(v.aliases.at("info"), (std::vector<std::string>{"alice", "someone@elsewhere.test"}));
  EXPECT_EQ(v.catch_all, "alice");
  EXPECT_EQ(v.map.mailboxes, (std::vector<std::string>{"carol"}));
  EXPECT_EQ(v.map.aliases.at("sales"), (std::vector<std::string>{"carol", "bob"}));
  EXPECT_EQ(v.delivery.method, "pipe");
  EXPECT_EQ(v.delivery.pipe_command.size(), 3u);
  EXPECT_EQ(v.delivery.pipe_timeout, 30s);
  EXPECT_EQ(c.virtual_domains[1].delivery.lmtp, "127.0.0.1:24");
}

TEST(ConfigVirtual, MapFileErrorsNameTheFileAndLine) {
  std::vector<Diagnostic> d;
  auto m = parse_map("ok\nbad name: x\nalias: not an address@\n", "m.map", d);
  EXPECT_FALSE(m);
  ASSERT_EQ(d.size(), 2u);
  EXPECT_EQ(d[0].line, 2);
  EXPECT_EQ(d[1].line, 3);
  EXPECT_EQ(d[0].file, "m.map");
}

TEST(ConfigVirtual, Errors) {
  expect_one_error("[local]\ndelivery = \"lmtp\"\n", 1, "needs lmtp");
  expect_one_error("[local]\ndelivery = \"pipe\"\n", 1, "needs pipe_command");
  expect_one_error("[local]\nlmtp = \"localhost:24\"\n", 2, "unix:/path");
  expect_one_error("[local]\npipe_command = [\"procmail\"]\n", 2, "absolute path");
  expect_one_error("[local]\nmaildir_owner = \"no-such-user-here\"\n", 2, "no such user");
  expect_one_error("[[virtual]]\nmailboxes = [\"a\"]\n", 1, "missing required key 'domain'");
  expect_one_error("[[virtual]]\ndomain = \"a.test\"\n[[virtual]]\ndomain = \"a.test\"\n", 3,
                   "defined twice");
  expect_one_error("[local]\ndomains = [\"a.test\"]\n[[virtual]]\ndomain = \"a.test\"\n", 3,
                   "also in [local] domains");
  auto missing = load("[[virtual]]\ndomain = \"a.test\"\nmap_file = \"/nonexistent/x.map\"\n");
  EXPECT_FALSE(missing.config);
  ASSERT_EQ(missing.diags.size(), 1u);
  EXPECT_EQ(missing.diags[0].str(), "/nonexistent/x.map: cannot read map file");
  expect_one_error("[[virtual]]\ndomain = \"a.test\"\ncatch_all = \"bad name\"\n", 3,
                   "catch_all");
}

}  // namespace
}  // namespace carrier::config
