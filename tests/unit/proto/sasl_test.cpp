// Unit tests for proto/sasl: RFC 4648 4 base64 (10 test vectors, 3.3 non-alphabet characters,
// 3.5 canonical encoding, 3.2 padding) and the RFC 4616 2 PLAIN message.
#include "proto/sasl.hpp"

#include <gtest/gtest.h>

#include <string>

using namespace carrier::proto;
using namespace std::string_literals;

namespace {

// RFC 4648 10: the test vectors, both directions.
TEST(Base64, Rfc4648Section10Vectors) {
  const std::pair<std::string, std::string> v[] = {
      {"", ""},          {"f", "Zg=="},         {"fo", "Zm8="},        {"foo", "Zm9v"},
      {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"}};
  for (const auto& [plain, enc] : v) {
    EXPECT_EQ(base64_encode(plain), enc);
    auto d = base64_decode(enc);
    ASSERT_TRUE(d) << enc;
    EXPECT_EQ(*d, plain);
  }
}

// RFC 4648 4: all 256 byte values round-trip, including NUL and 0xff (binary SASL data).
TEST(Base64, Rfc4648Section4AllBytesRoundTrip) {
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  for (std::size_t len = 0; len <= all.size(); len += 37) {
    const std::string s = all.substr(0, len);
    const std::string e = base64_encode(s);
    EXPECT_EQ(e.size() % 4, 0u);
    auto d = base64_decode(e);
    ASSERT_TRUE(d);
    EXPECT_EQ(*d, s);
  }
  EXPECT_EQ(base64_encode("\xfb\xff"s), "+/8=");  // both extra alphabet characters
  EXPECT_EQ(base64_decode("+/8="), "\xfb\xff"s);
}

// RFC 4954 4 PLAIN example "\0tim\0tanstaaftanstaaf" (RFC 4616 2 message).
TEST(Base64, Rfc4954Section4PlainExample) {
  EXPECT_EQ(base64_decode("AHRpbQB0YW5zdGFhZnRhbnN0YWFm"), "\0tim\0tanstaaftanstaaf"s);
  EXPECT_EQ(base64_encode("\0tim\0tanstaaftanstaaf"s), "AHRpbQB0YW5zdGFhZnRhbnN0YWFm");
}

// RFC 4648 3.2: padding is required; the length must be a multiple of 4.
TEST(Base64, Rfc4648Section32PaddingRequired) {
  EXPECT_FALSE(base64_decode("Zg"));
  EXPECT_FALSE(base64_decode("Zg="));
  EXPECT_FALSE(base64_decode("Zm8"));
  EXPECT_FALSE(base64_decode("Zm9vY"));
  EXPECT_FALSE(base64_decode("Z"));
}

// RFC 4648 3.2/3.3: '=' only at the end, at most two of them.
TEST(Base64, Rfc4648Section33PaddingOnlyAtEnd) {
  EXPECT_FALSE(base64_decode("===="));
  EXPECT_FALSE(base64_decode("Z==="));
  EXPECT_FALSE(base64_decode("Zg==Zm9v"));  // padding inside
  EXPECT_FALSE(base64_decode("Zm8=Zm9v"));
  EXPECT_FALSE(base64_decode("Zg=A"));      // '=' then data
  EXPECT_FALSE(base64_decode("=Zm9"));
}

// RFC 4648 3.3: characters outside the alphabet (whitespace, line breaks, URL alphabet) are
// rejected.
TEST(Base64, Rfc4648Section33NonAlphabetRejected) {
  EXPECT_FALSE(base64_decode("Zm9v Zm9v"));
  EXPECT_FALSE(base64_decode(" Zm9v"));
  EXPECT_FALSE(base64_decode("Zm9v\r\n"));
  EXPECT_FALSE(base64_decode("Zm9\n"));
  EXPECT_FALSE(base64_decode("-_8="));  // base64url (RFC 4648 5) is not accepted
  EXPECT_FALSE(base64_decode("Zm9\0"s));
  EXPECT_FALSE(base64_decode("Zm9\xc3"));
  EXPECT_FALSE(base64_decode("*"));
}

// RFC 4648 3.5: non-zero pad bits are rejected, so decoding is canonical.
TEST(Base64, Rfc4648Section35NonZeroTrailingBits) {
  EXPECT_TRUE(base64_decode("Zg=="));
  EXPECT_FALSE(base64_decode("Zh=="));
  EXPECT_FALSE(base64_decode("Zv=="));
  EXPECT_TRUE(base64_decode("Zm8="));
  EXPECT_FALSE(base64_decode("Zm9="));
  EXPECT_FALSE(base64_decode("Zm+="));
}

// Input limit (kBase64MaxInput): at the limit accepted, one group more rejected.
TEST(Base64, InputLimit) {
  const std::string at_limit(kBase64MaxInput, 'A');
  auto d = base64_decode(at_limit);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->size(), kBase64MaxInput / 4 * 3);
  EXPECT_FALSE(base64_decode(std::string(kBase64MaxInput + 4, 'A')));
}

// RFC 4616 2: authzid NUL authcid NUL passwd.
TEST(SaslPlain, Rfc4616Section2Basic) {
  auto p = parse_sasl_plain("\0tim\0tanstaaftanstaaf"s);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->authzid, "");
  EXPECT_EQ(p->authcid, "tim");
  EXPECT_EQ(p->password, "tanstaaftanstaaf");

  p = parse_sasl_plain("Ursel\0Kurt\0xipj3plmq"s);  // RFC 4616 4 example with authzid
  ASSERT_TRUE(p);
  EXPECT_EQ(p->authzid, "Ursel");
  EXPECT_EQ(p->authcid, "Kurt");
  EXPECT_EQ(p->password, "xipj3plmq");
}

// RFC 4616 2: authcid and passwd are 1*SAFE; exactly two NULs.
TEST(SaslPlain, Rfc4616Section2Structure) {
  EXPECT_FALSE(parse_sasl_plain(""));
  EXPECT_FALSE(parse_sasl_plain("timpass"));
  EXPECT_FALSE(parse_sasl_plain("\0tim"s));                 // one NUL
  EXPECT_FALSE(parse_sasl_plain("\0\0pass"s));              // empty authcid
  EXPECT_FALSE(parse_sasl_plain("\0tim\0"s));               // empty passwd
  EXPECT_FALSE(parse_sasl_plain("\0tim\0pa\0ss"s));         // NUL inside passwd
  EXPECT_FALSE(parse_sasl_plain("\0tim\0pass\0"s));         // trailing NUL
  EXPECT_FALSE(parse_sasl_plain("a\0b\0c\0d"s));
  EXPECT_TRUE(parse_sasl_plain("\0tim\0 "s));               // any non-NUL passwd
}

// RFC 4616 2: each field up to 255 octets.
TEST(SaslPlain, Rfc4616Section2Lengths) {
  const std::string f255(255, 'x'), f256(256, 'x');
  EXPECT_TRUE(parse_sasl_plain(f255 + '\0' + f255 + '\0' + f255));
  EXPECT_FALSE(parse_sasl_plain(f256 + '\0' + "u" + '\0' + "p"));
  EXPECT_FALSE(parse_sasl_plain("\0"s + f256 + '\0' + "p"));
  EXPECT_FALSE(parse_sasl_plain("\0u\0"s + f256));
}

// RFC 4616 2 / RFC 3629: authcid (and authzid) are UTF-8; the password is taken as bytes.
TEST(SaslPlain, Rfc4616Section2Utf8) {
  auto p = parse_sasl_plain("\0j\xc3\xb6rg@example.com\0pw"s);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->authcid, "j\xc3\xb6rg@example.com");
  EXPECT_FALSE(parse_sasl_plain("\0j\xf6rg\0pw"s));            // Latin-1 authcid
  EXPECT_FALSE(parse_sasl_plain("\0\xc0\xafx\0pw"s));          // overlong
  EXPECT_FALSE(parse_sasl_plain("\xff\0tim\0pw"s));            // bad authzid
  auto q = parse_sasl_plain("\0tim\0p\xe4ss"s);                // 8-bit password kept as is
  ASSERT_TRUE(q);
  EXPECT_EQ(q->password, "p\xe4ss");
}

}  // namespace
