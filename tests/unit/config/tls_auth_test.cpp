// carrier config tests: the TLS and submission keys — [[listener]] tls/submission, [tls]
// certificates (with SNI extras), [auth], [relay] tls_ca_file, [[route]] tls = "verify" and
// tls_name — and their errors, each reported on its line.
#include <gtest/gtest.h>

#include "test_util.hpp"

namespace carrier::config {
namespace {

using namespace std::chrono_literals;
using test::expect_one_error;
using test::load;

TEST(ConfigTls, EveryKeyRoundTrips) {
  auto l = load(R"(
[[listener]]
address = "127.0.0.1:25"
[[listener]]
address = "127.0.0.1:587"
name = "submission"
submission = true
[[listener]]
address = "127.0.0.1:465"
tls = "implicit"
submission = true
[[listener]]
address = "127.0.0.1:2500"
tls = "none"

[tls]
cert_file = "/etc/carrier/a.pem"
key_file = "/etc/carrier/a.key"
extra_certificates = [ { cert_file = "/etc/carrier/b.pem", key_file = "/etc/carrier/b.key" } ]

[auth]
password_file = "/etc/carrier/passwd"
plaintext_on_loopback = true
failure_delay = "0s"
max_failures = 3
failure_window = "1m"
received_user = true

[relay]
tls_ca_file = "/etc/carrier/ca.pem"

[[route]]
domain = "b.test"
next_hop = "[127.0.0.3]:2525"
tls = "verify"
tls_name = "MX.B.test"
)");
  ASSERT_TRUE(l.config) << test::dump(l.diags);
  const Config& c = *l.config;
  ASSERT_EQ(c.listeners.size(), 4u);
  EXPECT_EQ(c.listeners[0].tls, "starttls");  // the default
  EXPECT_FALSE(c.listeners[0].submission);
  EXPECT_TRUE(c.listeners[1].submission);
  EXPECT_EQ(c.listeners[2].tls, "implicit");
  EXPECT_EQ(c.listeners[3].tls, "none");
  ASSERT_TRUE(c.tls_cert);
  EXPECT_EQ(c.tls_cert->cert_file, "/etc/carrier/a.pem");
  EXPECT_EQ(c.tls_cert->key_file, "/etc/carrier/a.key");
  ASSERT_EQ(c.tls_extra.size(), 1u);
  EXPECT_EQ(c.tls_extra[0].key_file, "/etc/carrier/b.key");
  auto tf = tls_files(c);
  EXPECT_FALSE(tf.self_signed);
  EXPECT_EQ(tf.certs.size(), 2u);
  EXPECT_TRUE(tls_wanted(c));
  EXPECT_EQ(c.auth_password_file, "/etc/carrier/passwd");
  EXPECT_TRUE(c.auth_plaintext_on_loopback);
  EXPECT_EQ(c.auth_failure_delay, 0s);
  EXPECT_EQ(c.auth_max_failures, 3);
  EXPECT_EQ(c.auth_failure_window, 60s);
  EXPECT_TRUE(c.auth_received_user);
  EXPECT_EQ(c.relay_tls_ca_file, "/etc/carrier/ca.pem");
  ASSERT_EQ(c.routes.size(), 1u);
  EXPECT_EQ(c.routes[0].tls, "verify");
  EXPECT_EQ(c.routes[0].tls_name, "mx.b.test");
}

TEST(ConfigTls, NoTlsListenersMeansNoCertificateNeeded) {
  auto l = load("[[listener]]\naddress = \"127.0.0.1:25\"\ntls = \"none\"\n");
  ASSERT_TRUE(l.config) << test::dump(l.diags);
  EXPECT_FALSE(tls_wanted(*l.config));
}

TEST(ConfigTls, Errors) {
  expect_one_error("[[listener]]\naddress = \"127.0.0.1:25\"\ntls = \"always\"\n", 3, "tls");
  expect_one_error("[[listener]]\naddress = \"127.0.0.1:25\"\nsubmission = \"yes\"\n", 3,
                   "boolean");
  expect_one_error("[tls]\ncert_file = \"/a.pem\"\n", 1, "cert_file and key_file go together");
  expect_one_error("[tls]\ncert_file = \"/a.pem\"\nkey_file = \"/a.key\"\nchain = \"x\"\n", 4,
                   "unknown key 'chain'");
  expect_one_error("[tls]\nextra_certificates = [ { cert_file = \"/b\", key_file = \"/c\" } ]\n",
                   1, "need a default cert_file");
  expect_one_error("[auth]\nfailure_delay = \"2m\"\n", 2, "failure_delay");
  expect_one_error("[auth]\nmax_failures = 0\n", 2, "at least 1");
  expect_one_error("[auth]\nusers = \"x\"\n", 2, "unknown key 'users'");
  expect_one_error("[[route]]\ndomain = \"b.test\"\nnext_hop = \"[127.0.0.3]\"\ntls = \"dane\"\n",
                   4, "tls");
  expect_one_error(
      "[[route]]\ndomain = \"b.test\"\nnext_hop = \"[127.0.0.3]\"\ntls_name = \"not a name\"\n", 4,
      "host name");
}

}  // namespace
}  // namespace carrier::config

namespace carrier::config {
namespace {

TEST(ConfigAdmin, LoopbackOnlyAndATokenWithTcp) {
  auto l = test::load("[admin]\nlisten = \"127.0.0.1:9926\"\ntoken = \"0123456789abcdef\"\n");
  ASSERT_TRUE(l.config) << test::dump(l.diags);
  EXPECT_EQ(l.config->admin_listen, "127.0.0.1:9926");
  test::expect_one_error("[admin]\nlisten = \"0.0.0.0:9926\"\ntoken = \"0123456789abcdef\"\n", 2,
                         "must be a loopback address");
  test::expect_one_error("[admin]\nlisten = \"127.0.0.1:9926\"\n", 1, "listen needs a token");
  // A short token is an error of its own, and then listen has no token either: both said.
  auto short_token = test::load("[admin]\nlisten = \"127.0.0.1:9926\"\ntoken = \"short\"\n");
  EXPECT_FALSE(short_token.config);
  ASSERT_EQ(short_token.diags.size(), 2u) << test::dump(short_token.diags);
  EXPECT_NE(test::dump(short_token.diags).find("carrier.toml:3:9: [admin] token: must be at least 16"),
            std::string::npos) << test::dump(short_token.diags);
  test::expect_one_error("[server]\nrun_as_root = \"yes\"\n", 2, "a boolean");
}

}  // namespace
}  // namespace carrier::config
