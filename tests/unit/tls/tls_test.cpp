// carrier tls tests: certificate files (check_cert_files), the self-signed certificate
// carrier makes when none is configured, and loading server contexts with SNI extras
// (RFC 6066 3). Handshakes themselves are tested end to end (tests/e2e/test_tls.py).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "tls/tls.hpp"

namespace carrier::tls {
namespace {

namespace fs = std::filesystem;

class TlsFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("carrier-tls-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  CertFiles pair(const std::string& name) {
    return CertFiles{dir_ / (name + ".crt"), dir_ / (name + ".key")};
  }
  fs::path dir_;
};

TEST_F(TlsFiles, SelfSignedCertificateNamesTheHostAndKeepsTheKeyPrivate) {
  CertFiles a = pair("a");
  ASSERT_TRUE(make_self_signed(a, "mx.example.test"));
  auto names = check_cert_files(a);
  ASSERT_TRUE(names) << names.error().message;
  EXPECT_EQ(names.value(), std::vector<std::string>{"mx.example.test"});
  struct stat st {};
  ASSERT_EQ(::stat(a.key_file.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_FALSE(fs::exists(a.key_file.string() + ".tmp"));
}

TEST_F(TlsFiles, MismatchedKeyMissingFileAndGarbageAreReported) {
  CertFiles a = pair("a"), b = pair("b");
  ASSERT_TRUE(make_self_signed(a, "a.example.test"));
  ASSERT_TRUE(make_self_signed(b, "b.example.test"));
  auto mixed = check_cert_files(CertFiles{a.cert_file, b.key_file});
  ASSERT_FALSE(mixed);
  EXPECT_NE(mixed.error().message.find("does not match"), std::string::npos) << mixed.error().message;
  auto missing = check_cert_files(CertFiles{dir_ / "none.crt", a.key_file});
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find("none.crt"), std::string::npos);
  std::ofstream(dir_ / "junk.crt") << "not a certificate\n";
  auto junk = check_cert_files(CertFiles{dir_ / "junk.crt", a.key_file});
  ASSERT_FALSE(junk);
  EXPECT_NE(junk.error().message.find("not a PEM certificate"), std::string::npos);
  // The server contexts refuse the same files.
  EXPECT_FALSE(ServerTls::load({CertFiles{a.cert_file, b.key_file}}));
  EXPECT_FALSE(ServerTls::load({}));
}

TEST_F(TlsFiles, Rfc6066_3_ServerContextsKeepTheNamesOfEveryCertificate) {
  CertFiles a = pair("a"), b = pair("b");
  ASSERT_TRUE(make_self_signed(a, "mx.example.test"));
  ASSERT_TRUE(make_self_signed(b, "mail.other.test"));
  auto t = ServerTls::load({a, b});
  ASSERT_TRUE(t) << t.error().message;
  ASSERT_EQ(t.value()->names().size(), 2u);
  EXPECT_EQ(t.value()->names()[1], std::vector<std::string>{"mail.other.test"});
}

TEST_F(TlsFiles, ClientContextsNeedAReadableCaFile) {
  EXPECT_TRUE(ClientTls::create(""));  // the system store
  auto bad = ClientTls::create(dir_ / "no-such-ca.pem");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("tls_ca_file"), std::string::npos);
  CertFiles a = pair("a");
  ASSERT_TRUE(make_self_signed(a, "ca.example.test"));
  EXPECT_TRUE(ClientTls::create(a.cert_file));
}

}  // namespace
}  // namespace carrier::tls
