// Unit tests of the pure DNS RDATA parsers and the domain name check (src/dns/rdata.hpp):
// MX (RFC 1035 3.3.9, null MX RFC 7505 3), A (RFC 1035 3.4.1), AAAA (RFC 3596 2.2), name size
// limits (RFC 1035 2.3.4) and malformed input of every kind.
#include "dns/rdata.hpp"

#include <gtest/gtest.h>

#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

using namespace carrier::dns;

namespace {

// Wire-format name from labels (no compression), terminated by the root label.
std::string wire_name(std::initializer_list<std::string_view> labels) {
  std::string out;
  for (auto l : labels) {
    out.push_back(static_cast<char>(l.size()));
    out.append(l);
  }
  out.push_back('\0');
  return out;
}

std::string mx(int pref, std::initializer_list<std::string_view> labels) {
  std::string out;
  out.push_back(static_cast<char>((pref >> 8) & 0xff));
  out.push_back(static_cast<char>(pref & 0xff));
  return out + wire_name(labels);
}

}  // namespace

// RFC 1035 3.3.9: PREFERENCE (16 bits) then EXCHANGE.
TEST(ParseMx, PreferenceAndExchange) {
  auto r = parse_mx_rdata(mx(10, {"mx1", "example", "test"}));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->first, 10);
  EXPECT_EQ(r->second, "mx1.example.test");
}

TEST(ParseMx, PreferenceIsUnsigned16Bit) {
  auto r = parse_mx_rdata(mx(65535, {"a"}));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->first, 65535);
  r = parse_mx_rdata(mx(256 + 7, {"a"}));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->first, 263);
}

// RFC 1035 2.3.3: names compare case-insensitively; results are lower case.
TEST(ParseMx, ExchangeIsLowerCased) {
  auto r = parse_mx_rdata(mx(5, {"MX", "Upper", "TEST"}));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->second, "mx.upper.test");
}

// RFC 7505 3: the null MX is preference 0 with the root as exchange.
TEST(ParseMx, RootExchangeIsDot) {
  auto r = parse_mx_rdata(std::string("\0\0\0", 3));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->first, 0);
  EXPECT_EQ(r->second, ".");
}

TEST(ParseMx, HyphenDigitsUnderscoreAllowed) {
  auto r = parse_mx_rdata(mx(1, {"mx-1", "_x", "9"}));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->second, "mx-1._x.9");
}

TEST(ParseMx, TooShort) {
  EXPECT_FALSE(parse_mx_rdata(""));
  EXPECT_FALSE(parse_mx_rdata(std::string("\0", 1)));
  EXPECT_FALSE(parse_mx_rdata(std::string("\0\0", 2)));  // preference, no name at all
}

TEST(ParseMx, MissingRootLabel) {
  std::string d = mx(10, {"mx", "test"});
  d.pop_back();
  EXPECT_FALSE(parse_mx_rdata(d));
}

TEST(ParseMx, LabelRunsPastEnd) {
  std::string d("\0\x0a\x05mx", 5);
  EXPECT_FALSE(parse_mx_rdata(d));
  d = std::string("\0\x0a\x3f", 3);  // claims 63 octets, has none
  EXPECT_FALSE(parse_mx_rdata(d));
}

TEST(ParseMx, TrailingOctetsAfterName) {
  EXPECT_FALSE(parse_mx_rdata(mx(10, {"mx", "test"}) + "x"));
  EXPECT_FALSE(parse_mx_rdata(mx(10, {"mx", "test"}) + std::string(1, '\0')));
}

// RFC 1035 4.1.4: a compression pointer (top bits 11); libunbound hands out uncompressed names,
// so a pointer here is malformed. Label types 01/10 (RFC 6891 extended labels) likewise.
TEST(ParseMx, CompressionPointerAndExtendedLabelTypesRejected) {
  EXPECT_FALSE(parse_mx_rdata(std::string("\0\x0a\xc0\x0c", 4)));
  EXPECT_FALSE(parse_mx_rdata(std::string("\0\x0a\x02mx\xc0\x0c", 7)));
  EXPECT_FALSE(parse_mx_rdata(std::string("\0\x0a\x40", 3) + std::string(64, 'a') + std::string(1, '\0')));
  EXPECT_FALSE(parse_mx_rdata(std::string("\0\x0a\x80\0", 4)));
}

// RFC 1035 2.3.4: labels of 63 octets or less.
TEST(ParseMx, LabelOf63OctetsAccepted) {
  std::string l63(63, 'a');
  auto r = parse_mx_rdata(mx(1, {l63, "test"}));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->second, l63 + ".test");
}

// RFC 1035 2.3.4: names of 255 octets or less (length octets and the root label included).
TEST(ParseMx, NameOf255OctetsAcceptedOf256Rejected) {
  const std::string l63(63, 'a'), l61(61, 'b'), l62(62, 'b');
  // 3 * (1 + 63) + (1 + 61) + 1 = 255
  auto r = parse_mx_rdata(mx(1, {l63, l63, l63, l61}));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->second.size(), 253u);
  // 3 * (1 + 63) + (1 + 62) + 1 = 256
  EXPECT_FALSE(parse_mx_rdata(mx(1, {l63, l63, l63, l62})));
}

// RFC 5321 2.3.5: an exchange must be a host name; other octets make the record unusable.
TEST(ParseMx, NonHostCharactersRejected) {
  EXPECT_FALSE(parse_mx_rdata(mx(1, {"a.b", "test"})));  // a dot inside a label
  EXPECT_FALSE(parse_mx_rdata(mx(1, {"a b", "test"})));
  EXPECT_FALSE(parse_mx_rdata(mx(1, {std::string_view("a\0b", 3), "test"})));
  EXPECT_FALSE(parse_mx_rdata(mx(1, {"caf\xc3\xa9", "test"})));
  EXPECT_FALSE(parse_mx_rdata(mx(1, {"a\\", "test"})));
}

// RFC 1035 3.4.1: A RDATA is exactly 4 octets.
TEST(ParseA, FourOctets) {
  EXPECT_EQ(parse_a_rdata(std::string("\x7f\0\0\x02", 4)), "127.0.0.2");
  EXPECT_EQ(parse_a_rdata(std::string("\xff\xff\xff\xff", 4)), "255.255.255.255");
  EXPECT_FALSE(parse_a_rdata(std::string("\x7f\0\0", 3)));
  EXPECT_FALSE(parse_a_rdata(std::string("\x7f\0\0\x01\x01", 5)));
  EXPECT_FALSE(parse_a_rdata(""));
}

// RFC 3596 2.2: AAAA RDATA is exactly 16 octets; text as RFC 5952 (inet_ntop).
TEST(ParseAaaa, SixteenOctets) {
  std::string loop(16, '\0');
  loop[15] = 1;
  EXPECT_EQ(parse_aaaa_rdata(loop), "::1");
  std::string doc(16, '\0');
  doc[0] = '\x20';
  doc[1] = '\x01';
  doc[2] = '\x0d';
  doc[3] = '\xb8';
  doc[15] = '\x30';
  EXPECT_EQ(parse_aaaa_rdata(doc), "2001:db8::30");
  EXPECT_FALSE(parse_aaaa_rdata(std::string(15, '\0')));
  EXPECT_FALSE(parse_aaaa_rdata(std::string(17, '\0')));
  EXPECT_FALSE(parse_aaaa_rdata(std::string(4, '\x7f')));
}

TEST(NormalizeDomain, LowerCasesAndStripsOneTrailingDot) {
  auto r = normalize_domain("Example.TEST.");
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, "example.test");
  r = normalize_domain("localhost");
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, "localhost");
  r = normalize_domain("mx-1.sub_domain.example.test");
  ASSERT_TRUE(r);
  EXPECT_EQ(*r, "mx-1.sub_domain.example.test");
}

TEST(NormalizeDomain, EmptyAndRootRejected) {
  EXPECT_FALSE(normalize_domain(""));
  EXPECT_FALSE(normalize_domain("."));
  EXPECT_FALSE(normalize_domain(".."));
}

TEST(NormalizeDomain, EmptyLabelsRejected) {
  EXPECT_FALSE(normalize_domain("a..test"));
  EXPECT_FALSE(normalize_domain(".a.test"));
  EXPECT_FALSE(normalize_domain("a.test.."));
}

// RFC 1035 2.3.4: labels up to 63, names up to 255 octets on the wire (253 characters of text).
TEST(NormalizeDomain, SizeLimits) {
  EXPECT_TRUE(normalize_domain(std::string(63, 'a') + ".test"));
  auto r = normalize_domain(std::string(64, 'a') + ".test");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("63"), std::string::npos);
  const std::string l63(63, 'a');
  const std::string n253 = l63 + "." + l63 + "." + l63 + "." + std::string(61, 'b');
  ASSERT_EQ(n253.size(), 253u);
  EXPECT_TRUE(normalize_domain(n253));
  EXPECT_TRUE(normalize_domain(n253 + "."));
  EXPECT_FALSE(normalize_domain(n253 + "b"));
  EXPECT_FALSE(normalize_domain(std::string(100000, 'a')));
}

TEST(NormalizeDomain, InvalidCharactersRejected) {
  const std::vector<std::string> bad = {"ex ample.test", "[127.0.0.1]", "a\\.test", "caf\xc3\xa9.test",
                                        "a@b.test", "a/b", std::string("a\0b.test", 8), "a.test\n"};
  for (const auto& b : bad) {
    auto r = normalize_domain(b);
    ASSERT_FALSE(r) << b;
    EXPECT_FALSE(r.error().message.empty());
  }
}
