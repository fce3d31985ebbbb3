// carrier config tests: the built-in defaults, Diagnostic::str, apply_data_dir and an empty
// file. RFC 5321 4.5.1 (postmaster), 4.5.3.1.4 / 4.5.3.1.8 (limits), 4.5.3.2.7 (timeouts).
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>

#include "config/syntax.hpp"
#include "test_util.hpp"

namespace carrier::config {
namespace {

using namespace std::chrono_literals;
using test::load;

std::string host_name() {
  char buf[256] = {};
  gethostname(buf, sizeof buf - 1);
  return buf[0] ? std::string(buf) : std::string("localhost");
}

TEST(ConfigDefaults, HostnameAndDomainsComeFromTheSystem) {
  Config c = defaults();
  std::string h = host_name();
  EXPECT_EQ(c.hostname, h);
  ASSERT_FALSE(c.local_domains.empty());
  EXPECT_EQ(c.local_domains[0], "localhost");
  std::string lower = syntax::to_lower(h);
  if (lower == "localhost") {
    EXPECT_EQ(c.local_domains.size(), 1u);  // no duplicate
  } else {
    ASSERT_EQ(c.local_domains.size(), 2u);
    EXPECT_EQ(c.local_domains[1], lower);
  }
}

TEST(ConfigDefaults, ListenerDirectoriesAndMailboxes) {
  Config c = defaults();
  // SMTP with STARTTLS, submission (RFC 6409) and submissions (RFC 8314 implicit TLS).
  ASSERT_EQ(c.listeners.size(), 3u);
  EXPECT_EQ(c.listeners[0].address, "127.0.0.1");
  EXPECT_EQ(c.listeners[0].port, 2525);
  EXPECT_EQ(c.listeners[0].name, "smtp");
  EXPECT_EQ(c.listeners[0].tls, "starttls");
  EXPECT_FALSE(c.listeners[0].submission);
  EXPECT_EQ(c.listeners[1].port, 5870);
  EXPECT_TRUE(c.listeners[1].submission);
  EXPECT_EQ(c.listeners[1].tls, "starttls");
  EXPECT_EQ(c.listeners[2].port, 4650);
  EXPECT_TRUE(c.listeners[2].submission);
  EXPECT_EQ(c.listeners[2].tls, "implicit");
  // No certificate configured: the self-signed pair in data_dir/tls.
  auto tf = tls_files(c);
  EXPECT_TRUE(tf.self_signed);
  ASSERT_EQ(tf.certs.size(), 1u);
  EXPECT_EQ(tf.certs[0].cert_file, std::filesystem::path("var/tls/self-signed.crt"));
  EXPECT_EQ(c.data_dir, std::filesystem::path("var"));
  EXPECT_EQ(c.spool_dir, std::filesystem::path("var/spool"));
  EXPECT_EQ(c.mail_dir, std::filesystem::path("var/mail"));
  EXPECT_FALSE(c.spool_dir_explicit);
  EXPECT_FALSE(c.mail_dir_explicit);
  EXPECT_EQ(c.mailboxes, (std::vector<std::string>{"postmaster", "demo"}));
  EXPECT_TRUE(c.aliases.empty());
  EXPECT_TRUE(c.trusted_networks.empty());
  EXPECT_EQ(c.recipient_delimiter, "+");
  EXPECT_FALSE(c.source.has_value());
}

TEST(ConfigDefaults, ServerAndLimitValues) {
  Config c = defaults();
  EXPECT_EQ(c.log_format, "text");
  EXPECT_EQ(c.log_level, "info");
  EXPECT_EQ(c.bare_newline, "reject");
  EXPECT_EQ(c.delivery_threads, 4);
  EXPECT_EQ(c.retry_initial, 300s);
  EXPECT_EQ(c.retry_max, 3600s);
  EXPECT_EQ(c.max_queue_lifetime, 5 * 86400s);
  EXPECT_EQ(c.delay_warning, 4 * 3600s);
  EXPECT_EQ(c.max_bounces_per_minute, 60);
  EXPECT_EQ(c.limits.max_command_line, 512u);        // RFC 5321 4.5.3.1.4
  EXPECT_EQ(c.limits.max_message_size, 50ull << 20);
  EXPECT_EQ(c.limits.max_recipients, 1000u);          // RFC 5321 4.5.3.1.8: >= 100
  EXPECT_EQ(c.limits.max_errors, 20);
  EXPECT_EQ(c.limits.max_received_headers, 100);
  EXPECT_EQ(c.limits.max_connections, 1000);
  EXPECT_EQ(c.limits.max_connections_per_ip, 100);
  EXPECT_EQ(c.limits.command_timeout, 300s);          // RFC 5321 4.5.3.2.7: 5 minutes
  EXPECT_EQ(c.limits.data_timeout, 600s);
}

TEST(ConfigDefaults, DefaultsPassRuntimeChecksInAnEmptyDirectory) {
  test::TempDir dir;
  Config c = defaults();
  apply_data_dir(c, dir.path() / "var");
  auto d = validate_runtime(c);
  EXPECT_TRUE(d.empty()) << test::dump(d);
}

TEST(ConfigDefaults, EmptyFileGivesTheDefaults) {
  auto l = load("");
  ASSERT_TRUE(l.config) << test::dump(l.diags);
  EXPECT_TRUE(l.diags.empty());
  Config d = defaults();
  EXPECT_EQ(l.config->hostname, d.hostname);
  EXPECT_EQ(l.config->local_domains, d.local_domains);
  EXPECT_EQ(l.config->spool_dir, d.spool_dir);
  ASSERT_EQ(l.config->listeners.size(), 3u);
  EXPECT_EQ(l.config->listeners[0].port, 2525);
}

TEST(ConfigDefaults, CommentsOnlyFileGivesTheDefaults) {
  auto l = load("# nothing here\n\n# still nothing\n");
  ASSERT_TRUE(l.config) << test::dump(l.diags);
  EXPECT_EQ(l.config->mailboxes, defaults().mailboxes);
}

TEST(ConfigDefaults, EmptyListenerArrayKeepsTheDefaultListener) {
  auto l = load("listener = []\n");
  ASSERT_TRUE(l.config) << test::dump(l.diags);
  ASSERT_EQ(l.config->listeners.size(), 3u);
  EXPECT_EQ(l.config->listeners[0].address, "127.0.0.1");
}

TEST(ConfigDiagnostic, StrWithAndWithoutLine) {
  Diagnostic a{"carrier.toml", 7, 13, "[limits] max_recipients: must be at least 100"};
  EXPECT_EQ(a.str(), "carrier.toml:7:13: [limits] max_recipients: must be at least 100");
  Diagnostic b{"/etc/carrier.toml", 0, 0, "cannot read: No such file or directory"};
  EXPECT_EQ(b.str(), "/etc/carrier.toml: cannot read: No such file or directory");
}

TEST(ConfigApplyDataDir, RecomputesDerivedDirectories) {
  Config c = defaults();
  apply_data_dir(c, "/srv/carrier");
  EXPECT_EQ(c.data_dir, std::filesystem::path("/srv/carrier"));
  EXPECT_EQ(c.spool_dir, std::filesystem::path("/srv/carrier/spool"));
  EXPECT_EQ(c.mail_dir, std::filesystem::path("/srv/carrier/mail"));
}

TEST(ConfigApplyDataDir, KeepsExplicitSpoolAndMailDirs) {
  auto l = load("[server]\nspool_dir = \"/q/spool\"\n[local]\nmail_dir = \"/m/mail\"\n");
  ASSERT_TRUE(l.config) << test::dump(l.diags);
  Config c = *l.config;
  EXPECT_TRUE(c.spool_dir_explicit);
  EXPECT_TRUE(c.mail_dir_explicit);
  apply_data_dir(c, "/other");
  EXPECT_EQ(c.data_dir, std::filesystem::path("/other"));
  EXPECT_EQ(c.spool_dir, std::filesystem::path("/q/spool"));
  EXPECT_EQ(c.mail_dir, std::filesystem::path("/m/mail"));
}

TEST(ConfigApplyDataDir, OnlyOneExplicit) {
  auto l = load("[server]\ndata_dir = \"/d\"\nspool_dir = \"/q\"\n");
  ASSERT_TRUE(l.config) << test::dump(l.diags);
  EXPECT_EQ(l.config->mail_dir, std::filesystem::path("/d/mail"));  // derived after loading
  Config c = *l.config;
  apply_data_dir(c, "/e");
  EXPECT_EQ(c.spool_dir, std::filesystem::path("/q"));
  EXPECT_EQ(c.mail_dir, std::filesystem::path("/e/mail"));
}

TEST(ConfigDefaults, FileHostnameBecomesDefaultDomain) {
  auto l = load("[server]\nhostname = \"MX.Example.TEST\"\n");
  ASSERT_TRUE(l.config) << test::dump(l.diags);
  EXPECT_EQ(l.config->hostname, "MX.Example.TEST");
  EXPECT_EQ(l.config->local_domains, (std::vector<std::string>{"localhost", "mx.example.test"}));
}

TEST(ConfigDefaults, ExplicitDomainsAreNotExtendedByHostname) {
  auto l = load("[server]\nhostname = \"mx.example.test\"\n[local]\ndomains = [\"Example.Test\"]\n");
  ASSERT_TRUE(l.config) << test::dump(l.diags);
  EXPECT_EQ(l.config->local_domains, std::vector<std::string>{"example.test"});
}

}  // namespace
}  // namespace carrier::config
