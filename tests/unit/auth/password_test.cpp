// Unit tests for auth/password: yescrypt hashing (crypt_gensalt_ra + crypt_r), verification
// with constant-time compare, and the accepted hash formats (spec "Password file").
#include "auth/password.hpp"

#include <crypt.h>
#include <gtest/gtest.h>

#include <string>

using namespace carrier::auth;
using namespace std::string_literals;

namespace {

std::string sha512(const char* pw) {
  crypt_data d{};
  const char* out = crypt_r(pw, "$6$saltsalt$", &d);
  EXPECT_NE(out, nullptr);
  return out ? std::string(out) : std::string();
}

TEST(Password, HashIsYescryptAndVerifies) {
  auto h = hash_password("correct horse");
  ASSERT_TRUE(h) << h.error().message;
  EXPECT_TRUE(h->starts_with("$y$")) << *h;
  EXPECT_EQ(check_hash(*h), "");
  EXPECT_EQ(verify_password("correct horse", *h), Verify::Match);
  EXPECT_EQ(verify_password("correct horsE", *h), Verify::Mismatch);
  EXPECT_EQ(verify_password("correct horse ", *h), Verify::Mismatch);
  auto h2 = hash_password("correct horse");
  ASSERT_TRUE(h2);
  EXPECT_NE(*h, *h2);  // fresh salt each time
}

TEST(Password, HashPasswordRefusesBadInput) {
  EXPECT_FALSE(hash_password(""));
  EXPECT_FALSE(hash_password(std::string(kMaxPasswordLength + 1, 'a')));
  EXPECT_FALSE(hash_password("a\0b"s));
  EXPECT_TRUE(hash_password(std::string(kMaxPasswordLength, 'a')));
}

TEST(Password, Sha512Verifies) {
  const std::string h = sha512("s3cret");
  ASSERT_TRUE(h.starts_with("$6$saltsalt$"));
  EXPECT_EQ(check_hash(h), "");
  EXPECT_EQ(verify_password("s3cret", h), Verify::Match);
  EXPECT_EQ(verify_password("s3cre", h), Verify::Mismatch);
}

// A NUL would end the C string given to crypt_r: "s3cret\0junk" must not match "s3cret".
TEST(Password, NulInPasswordNeverMatches) {
  const std::string h = sha512("s3cret");
  EXPECT_EQ(verify_password("s3cret\0junk"s, h), Verify::Mismatch);
  EXPECT_EQ(verify_password("", h), Verify::Mismatch);
  EXPECT_EQ(verify_password(std::string(kMaxPasswordLength + 1, 'a'), h), Verify::Mismatch);
}

TEST(Password, CheckHashAcceptsAllowedMethods) {
  EXPECT_EQ(check_hash(sha512("x")), "");
  EXPECT_EQ(check_hash("$6$rounds=10000$saltsalt$" + std::string(86, 'a')), "");
  EXPECT_EQ(check_hash("$2b$04$abcdefghijklmnopqrstuu2r9OfJnfCsdneAXAGHnS4UpFFP8WIrW"), "");
  EXPECT_EQ(check_hash("$2y$10$abcdefghijklmnopqrstuu2r9OfJnfCsdneAXAGHnS4UpFFP8WIrW"), "");
  EXPECT_EQ(check_hash("$2a$10$abcdefghijklmnopqrstuu2r9OfJnfCsdneAXAGHnS4UpFFP8WIrW"), "");
  EXPECT_EQ(check_hash("$y$j9T$xBZx2Zjrw8zuQZ9mUb5Ne/$ZQnif/jAA2/Hc/24mxEzyXCS/mzXoooxfVnxtE5Rhx1"), "");
}

TEST(Password, CheckHashRefusesOtherMethods) {
  const std::string not_allowed = "hash method not allowed; make one with: carrier passwd";
  EXPECT_EQ(check_hash("$1$abcdefgh$abcdefghijklmnopqrstuv"), not_allowed);  // MD5-crypt
  EXPECT_EQ(check_hash("$5$saltsalt$" + std::string(43, 'a')), not_allowed);  // SHA-256-crypt
  EXPECT_EQ(check_hash("abJnggxhB/yWI"), not_allowed);                          // DES
  EXPECT_EQ(check_hash("$7$CU..../....abc"), not_allowed);                      // scrypt
  EXPECT_EQ(check_hash("$gy$j9T$x$y"), not_allowed);
  EXPECT_EQ(check_hash("plaintext"), not_allowed);
  EXPECT_EQ(check_hash(""), not_allowed);
  EXPECT_EQ(check_hash("!"), not_allowed);
  EXPECT_EQ(check_hash("*"), not_allowed);
}

TEST(Password, CheckHashRefusesMalformed) {
  EXPECT_EQ(check_hash("$y$"), "malformed yescrypt hash");
  EXPECT_EQ(check_hash("$y$j9T$salt$short"), "malformed yescrypt hash");
  EXPECT_EQ(check_hash("$6$saltsalt$"), "malformed SHA-512-crypt hash");
  EXPECT_EQ(check_hash("$6$saltsalt$" + std::string(85, 'a')), "malformed SHA-512-crypt hash");
  EXPECT_EQ(check_hash("$6$saltsalt$" + std::string(85, 'a') + "!"), "malformed SHA-512-crypt hash");
  EXPECT_EQ(check_hash("$6$rounds=$saltsalt$" + std::string(86, 'a')), "malformed SHA-512-crypt hash");
  EXPECT_EQ(check_hash("$2b$03$abcdefghijklmnopqrstuu2r9OfJnfCsdneAXAGHnS4UpFFP8WIrW"), "malformed bcrypt hash");
  EXPECT_EQ(check_hash("$2b$10$abcdefghijklmnopqrstuu2r9OfJnfCsdneAXAGHnS4UpFFP8WIr"), "malformed bcrypt hash");
  EXPECT_EQ(check_hash("$2x$10$abcdefghijklmnopqrstuu2r9OfJnfCsdneAXAGHnS4UpFFP8WIrW"),
            "hash method not allowed; make one with: carrier passwd");
}

}  // namespace
