// carrier config tests: valid files — every key round trip, relative path resolution,
// load_file failures, and the shipped contrib/carrier.toml.
#include <gtest/gtest.h>

#include "test_util.hpp"

namespace carrier::config {
namespace {

using namespace std::chrono_literals;
using test::load;
namespace fs = std::filesystem;

constexpr std::string_view kFull = R"(# every key
[server]
hostname = "mx.example.test"
data_dir = "/srv/carrier"
spool_dir = "/var/spool/carrier"
log_format = "json"
log_level = "debug"
bare_newline = "normalize"
delivery_threads = 8
retry_initial = "90s"
retry_max = "2h"

[[listener]]
address = "127.0.0.1:2525"
name = "smtp"

[[listener]]
address = "[::1]:2526"
name = "smtp6"

[[listener]]
address = "0.0.0.0:0"

[limits]
max_command_line = 1000
max_message_size = "20M"
max_recipients = 200
max_errors = 5
max_received_headers = 50
max_connections = 64
max_connections_per_ip = 8
command_timeout = 120
data_timeout = "15m"

[local]
domains = ["localhost", "Example.TEST", "xn--bcher-kva.example"]
mail_dir = "/home/mail"
mailboxes = ["postmaster", "Demo", "john.doe", "a_b-c"]
recipient_delimiter = "-"

[local.aliases]
abuse = ["postmaster"]
Team = ["demo", "john.doe", "someone@Remote.Example"]
all = ["team", "abuse"]

[relay]
trusted_networks = ["127.0.0.0/8", "::1/128", "192.168.1.0/24", "fd00::/8", "0.0.0.0/0"]
)";

TEST(ConfigLoad, EveryKeyRoundTrip) {
  auto l = load(kFull);
  ASSERT_TRUE(l.config) << test::dump(l.diags);
  EXPECT_TRUE(l.diags.empty());
  const Config& c = *l.config;
  EXPECT_EQ(c.hostname, "mx.example.test");
  EXPECT_EQ(c.data_dir, fs::path("/srv/carrier"));
  EXPECT_EQ(c.spool_dir, fs::path("/var/spool/carrier"));
  EXPECT_TRUE(c.spool_dir_explicit);
  EXPECT_EQ(c.log_format, "json");
  EXPECT_EQ(c.log_level, "debug");
  EXPECT_EQ(c.bare_newline, "normalize");
  EXPECT_EQ(c.delivery_threads, 8);
  EXPECT_EQ(c.retry_initial, 90s);
  EXPECT_EQ(c.retry_max, 7200s);

  ASSERT_EQ(c.listeners.size(), 3u);
  EXPECT_EQ(c.listeners[0].address, "127.0.0.1");
  EXPECT_EQ(c.listeners[0].port, 2525);
  EXPECT_EQ(c.listeners[0].name, "smtp");
  EXPECT_EQ(c.listeners[1].address, "::1");  // brackets removed
  EXPECT_EQ(c.listeners[1].port, 2526);
  EXPECT_EQ(c.listeners[1].name, "smtp6");
  EXPECT_EQ(c.listeners[2].address, "0.0.0.0");
  EXPECT_EQ(c.listeners[2].port, 0);
  EXPECT_EQ(c.listeners[2].name, "smtp");  // default name

  EXPECT_EQ(c.limits.max_command_line, 1000u);
  EXPECT_EQ(c.limits.max_message_size, 20ull << 20);
  EXPECT_EQ(c.limits.max_recipients, 200u);
  EXPECT_EQ(c.limits.max_errors, 5);
  EXPECT_EQ(c.limits.max_received_headers, 50);
  EXPECT_EQ(c.limits.max_connections, 64);
  EXPECT_EQ(c.limits.max_connections_per_ip, 8);
  EXPECT_EQ(c.limits.command_timeout, 120s);
  EXPECT_EQ(c.limits.data_timeout, 900s);

  EXPECT_EQ(c.local_domains,
            (std::vector<std::string>{"localhost", "example.test", "xn--bcher-kva.example"}));
  EXPECT_EQ(c.mail_dir, fs::path("/home/mail"));
  EXPECT_TRUE(c.mail_dir_explicit);
  EXPECT_EQ(c.mailboxes, (std::vector<std::string>{"postmaster", "demo", "john.doe", "a_b-c"}));
  EXPECT_EQ(c.recipient_delimiter, "-");
  ASSERT_EQ(c.aliases.size(), 3u);
  EXPECT_EQ(c.aliases.at("abuse"), std::vector<std::string>{"postmaster"});
  // Alias names and local targets are lower-cased; an address keeps its local part but the
  // domain is lower-cased.
  EXPECT_EQ(c.aliases.at("team"),
            (std::vector<std::string>{"demo", "john.doe", "someone@remote.example"}));
  EXPECT_EQ(c.aliases.at("all"), (std::vector<std::string>{"team", "abuse"}));
  EXPECT_EQ(c.trusted_networks, (std::vector<std::string>{"127.0.0.0/8", "::1/128",
                                                          "192.168.1.0/24", "fd00::/8",
                                                          "0.0.0.0/0"}));
  EXPECT_FALSE(c.source.has_value());  // load_string
}

TEST(ConfigLoad, IntegerFormsOfDurationsAndSizes) {
  auto l = load("[limits]\nmax_message_size = 1024\ncommand_timeout = 1\ndata_timeout = 86400\n"
                "[server]\nretry_initial = 60\nretry_max = 60\n");
  ASSERT_TRUE(l.config) << test::dump(l.diags);
  EXPECT_EQ(l.config->limits.max_message_size, 1024u);
  EXPECT_EQ(l.config->limits.command_timeout, 1s);
  EXPECT_EQ(l.config->limits.data_timeout, 86400s);
  EXPECT_EQ(l.config->retry_initial, 60s);
  EXPECT_EQ(l.config->retry_max, 60s);  // equal is fine
}

TEST(ConfigLoad, BoundaryValuesAreAccepted) {
  auto l = load(
      "[server]\ndelivery_threads = 256\n"
      "[limits]\nmax_command_line = 65536\nmax_recipients = 100\nmax_errors = 1\n"
      "max_message_size = \"64G\"\n");
  ASSERT_TRUE(l.config) << test::dump(l.diags);
  EXPECT_EQ(l.config->delivery_threads, 256);
  EXPECT_EQ(l.config->limits.max_command_line, 65536u);
  EXPECT_EQ(l.config->limits.max_recipients, 100u);  // RFC 5321 4.5.3.1.8 minimum
  EXPECT_EQ(l.config->limits.max_message_size, 64ull << 30);
}

TEST(ConfigLoad, EmptyDelimiterDisables) {
  auto l = load("[local]\nrecipient_delimiter = \"\"\n");
  ASSERT_TRUE(l.config) << test::dump(l.diags);
  EXPECT_EQ(l.config->recipient_delimiter, "");
}

TEST(ConfigLoad, PostmasterNeedNotBeAMailbox) {
  // RFC 5321 4.5.1: postmaster always exists, so aliases may point to it even when it is not
  // listed among the mailboxes, and an alias may be named postmaster.
  auto l = load("[local]\nmailboxes = [\"demo\"]\n[local.aliases]\nabuse = [\"postmaster\"]\n"
                "postmaster = [\"demo\"]\n");
  ASSERT_TRUE(l.config) << test::dump(l.diags);
  EXPECT_EQ(l.config->aliases.at("abuse"), std::vector<std::string>{"postmaster"});
  EXPECT_EQ(l.config->aliases.at("postmaster"), std::vector<std::string>{"demo"});
}

TEST(ConfigLoad, DottedKeysAndInlineTablesAreEquivalent) {
  auto l = load("local.mailboxes = [\"x\"]\nlocal.aliases = { y = [\"x\"] }\n"
                "limits = { max_errors = 3 }\n");
  ASSERT_TRUE(l.config) << test::dump(l.diags);
  EXPECT_EQ(l.config->mailboxes, std::vector<std::string>{"x"});
  EXPECT_EQ(l.config->aliases.at("y"), std::vector<std::string>{"x"});
  EXPECT_EQ(l.config->limits.max_errors, 3);
}

TEST(ConfigLoadFile, RelativePathsAreResolvedAgainstTheFilesDirectory) {
  test::TempDir dir;
  auto file = dir.write("carrier.toml",
                        "[server]\ndata_dir = \"state\"\nspool_dir = \"../q\"\n"
                        "[local]\nmail_dir = \"./boxes/\"\n");
  std::vector<Diagnostic> d;
  auto c = load_file(file, d);
  ASSERT_TRUE(c) << test::dump(d);
  EXPECT_EQ(c->data_dir, dir.path() / "state");
  EXPECT_EQ(c->spool_dir, (dir.path() / "../q").lexically_normal());
  EXPECT_EQ(c->mail_dir, dir.path() / "boxes/");
  ASSERT_TRUE(c->source.has_value());
  EXPECT_EQ(*c->source, file);
}

TEST(ConfigLoadFile, DerivedDirectoriesFollowTheResolvedDataDir) {
  test::TempDir dir;
  auto file = dir.write("c.toml", "[server]\ndata_dir = \"state\"\n");
  std::vector<Diagnostic> d;
  auto c = load_file(file, d);
  ASSERT_TRUE(c) << test::dump(d);
  EXPECT_EQ(c->spool_dir, dir.path() / "state" / "spool");
  EXPECT_EQ(c->mail_dir, dir.path() / "state" / "mail");
  EXPECT_FALSE(c->spool_dir_explicit);
}

TEST(ConfigLoadFile, AbsolutePathsStayAsWritten) {
  test::TempDir dir;
  auto file = dir.write("c.toml", "[server]\ndata_dir = \"/srv/x\"\n");
  std::vector<Diagnostic> d;
  auto c = load_file(file, d);
  ASSERT_TRUE(c) << test::dump(d);
  EXPECT_EQ(c->data_dir, fs::path("/srv/x"));
}

TEST(ConfigLoadFile, DefaultDataDirIsNotRelocatedWhenTheFileDoesNotSetIt) {
  test::TempDir dir;
  auto file = dir.write("c.toml", "[server]\nlog_level = \"warn\"\n");
  std::vector<Diagnostic> d;
  auto c = load_file(file, d);
  ASSERT_TRUE(c) << test::dump(d);
  EXPECT_EQ(c->data_dir, fs::path("var"));  // the default, relative to the current directory
  EXPECT_EQ(c->log_level, "warn");
}

TEST(ConfigLoadFile, MissingFile) {
  test::TempDir dir;
  std::vector<Diagnostic> d;
  auto c = load_file(dir.path() / "nope.toml", d);
  EXPECT_FALSE(c);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].line, 0);
  EXPECT_EQ(d[0].file, (dir.path() / "nope.toml").string());
  EXPECT_NE(d[0].message.find("cannot read"), std::string::npos) << d[0].str();
}

TEST(ConfigLoadFile, DirectoryIsNotAConfigFile) {
  test::TempDir dir;
  std::vector<Diagnostic> d;
  EXPECT_FALSE(load_file(dir.path(), d));
  ASSERT_EQ(d.size(), 1u);
  EXPECT_NE(d[0].message.find("not a regular file"), std::string::npos) << d[0].str();
}

TEST(ConfigLoadFile, OversizedFileIsRejected) {
  test::TempDir dir;
  std::string big(2u << 20, '#');
  auto file = dir.write("big.toml", big);
  std::vector<Diagnostic> d;
  EXPECT_FALSE(load_file(file, d));
  ASSERT_EQ(d.size(), 1u);
  EXPECT_NE(d[0].message.find("larger than"), std::string::npos) << d[0].str();
}

TEST(ConfigLoadFile, ErrorsNameTheFileAsGiven) {
  test::TempDir dir;
  auto file = dir.write("bad.toml", "\n[limits]\nmax_errors = 0\n");
  std::vector<Diagnostic> d;
  EXPECT_FALSE(load_file(file, d));
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].str(), file.string() + ":3:14: [limits] max_errors: must be at least 1, got 0");
}

TEST(ConfigContrib, ExampleConfigLoads) {
  fs::path file = fs::path(CARRIER_TEST_DATA_DIR "/../..") / "contrib" / "carrier.toml";
  std::vector<Diagnostic> d;
  auto c = load_file(file, d);  // its data_dir may not exist here: no validate_runtime
  ASSERT_TRUE(c) << test::dump(d);
  EXPECT_EQ(c->hostname, "mx.example.com");
  ASSERT_FALSE(c->listeners.empty());
  EXPECT_EQ(c->listeners[0].address, "0.0.0.0");
  EXPECT_EQ(c->listeners[0].port, 25);
  EXPECT_FALSE(c->trusted_networks.empty());
  EXPECT_FALSE(c->aliases.empty());
  EXPECT_NE(std::find(c->local_domains.begin(), c->local_domains.end(), "example.com"),
            c->local_domains.end());
}

}  // namespace
}  // namespace carrier::config
