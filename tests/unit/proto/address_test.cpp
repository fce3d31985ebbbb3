// Unit tests for proto/address: RFC 5321 4.1.2 paths and mailboxes, 4.1.3 address literals,
// 4.5.3.1 size limits, Appendix C source routes, RFC 6531 3.3 UTF-8, RFC 3629 UTF-8 rules.
#include "proto/address.hpp"

#include <gtest/gtest.h>

#include <string>

using namespace carrier::proto;

namespace {

// Parses a whole path (must consume all input); returns the error.
PathError path_err(std::string_view s, bool allow_null = true, bool utf8 = false) {
  PathError e = PathError::None;
  auto r = parse_path(s, allow_null, utf8, &e);
  if (r) EXPECT_EQ(e, PathError::None);
  else EXPECT_NE(e, PathError::None);
  return e;
}

Mailbox path_ok(std::string_view s, bool utf8 = false) {
  PathError e = PathError::Syntax;
  auto r = parse_path(s, true, utf8, &e);
  EXPECT_TRUE(r.has_value()) << s;
  EXPECT_EQ(e, PathError::None);
  if (!r) return {};
  EXPECT_EQ(r->consumed, s.size()) << s;
  return r->mailbox;
}

std::string rep(char c, std::size_t n) { return std::string(n, c); }

// A domain of exactly n octets made of labels of at most 63 octets.
std::string domain_of(std::size_t n) {
  std::string d;
  std::size_t left = n;
  while (left > 0) {
    std::size_t take = left < 63 ? left : 63;
    if (left - take == 1) --take;  // never leave just a dot for the end
    d += rep('a', take);
    left -= take;
    if (left > 0) {
      d += '.';
      --left;
    }
  }
  return d;
}

}  // namespace

// --- basic forms, RFC 5321 4.1.2 -------------------------------------------------------

TEST(Address, Rfc5321_4_1_2_SimplePath) {
  auto m = path_ok("<user@example.com>");
  EXPECT_EQ(m.local, "user");
  EXPECT_EQ(m.domain, "example.com");
  EXPECT_EQ(m.str(), "user@example.com");
  EXPECT_FALSE(m.is_quoted());
  EXPECT_FALSE(m.is_address_literal());
  EXPECT_FALSE(m.needs_utf8());
}

TEST(Address, Rfc5321_4_1_2_ConsumedStopsAtClosingBracket) {
  auto r = parse_path("<a@b.example> SIZE=100 BODY=8BITMIME", true, false);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->consumed, 13u);
  EXPECT_EQ(r->mailbox.str(), "a@b.example");
  EXPECT_FALSE(r->had_source_route);
}

TEST(Address, Rfc5321_4_1_2_NullReversePath) {
  auto r = parse_path("<>", true, false);
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->mailbox.empty());
  EXPECT_EQ(r->mailbox.str(), "");
  EXPECT_EQ(r->consumed, 2u);
  auto r2 = parse_path("<> SMTPUTF8", true, false);
  ASSERT_TRUE(r2);
  EXPECT_EQ(r2->consumed, 2u);
}

TEST(Address, Rfc5321_4_1_1_3_NullPathNotAllowedForRcpt) {
  EXPECT_EQ(path_err("<>", /*allow_null=*/false), PathError::NullNotAllowed);
}

TEST(Address, Rfc5321_4_1_2_MissingAngleBrackets) {
  EXPECT_EQ(path_err("user@example.com"), PathError::Syntax);
  EXPECT_EQ(path_err("<user@example.com"), PathError::Syntax);
  EXPECT_EQ(path_err("user@example.com>"), PathError::Syntax);
  EXPECT_EQ(path_err(" <user@example.com>"), PathError::Syntax);  // caller skips spaces
  EXPECT_EQ(path_err(""), PathError::Syntax);
  EXPECT_EQ(path_err("<"), PathError::Syntax);
}

TEST(Address, Rfc5321_4_1_2_EmptyPartsAndBareAt) {
  EXPECT_EQ(path_err("<@example.com>"), PathError::Syntax);
  EXPECT_EQ(path_err("<user@>"), PathError::Syntax);
  EXPECT_EQ(path_err("<@>"), PathError::Syntax);
  EXPECT_EQ(path_err("<user>"), PathError::Syntax);
  EXPECT_EQ(path_err("<Postmaster>"), PathError::Syntax);  // session handles RFC 5321 4.5.1
  EXPECT_EQ(path_err("<a@b@c.example>"), PathError::Syntax);
  EXPECT_EQ(path_err("<a b@c.example>"), PathError::Syntax);
}

// --- Dot-string local parts ------------------------------------------------------------

TEST(Address, Rfc5321_4_1_2_DotStringAtext) {
  auto m = path_ok("<!#$%&'*+-/=?^_`{|}~.x@example.com>");
  EXPECT_EQ(m.local, "!#$%&'*+-/=?^_`{|}~.x");
  EXPECT_EQ(path_ok("<first.last@example.com>").local, "first.last");
}

TEST(Address, Rfc5321_4_1_2_DotStringDots) {
  EXPECT_EQ(path_err("<.a@example.com>"), PathError::Syntax);
  EXPECT_EQ(path_err("<a.@example.com>"), PathError::Syntax);
  EXPECT_EQ(path_err("<a..b@example.com>"), PathError::Syntax);
  EXPECT_EQ(path_err("<.@example.com>"), PathError::Syntax);
}

TEST(Address, Rfc5321_4_1_2_DotStringSpecialsRejected) {
  for (const char* s : {"<a(b@example.com>", "<a)b@example.com>", "<a,b@example.com>",
                        "<a;b@example.com>", "<a:b@example.com>", "<a\\b@example.com>",
                        "<a[b@example.com>", "<a]b@example.com>", "<a\"b@example.com>",
                        "<a<b@example.com>"}) {
    EXPECT_EQ(path_err(s), PathError::Syntax) << s;
  }
}

// --- Quoted-string local parts ---------------------------------------------------------

TEST(Address, Rfc5321_4_1_2_QuotedString) {
  auto m = path_ok("<\"john doe\"@example.com>");
  EXPECT_EQ(m.local, "\"john doe\"");
  EXPECT_TRUE(m.is_quoted());
  EXPECT_EQ(m.unquoted_local(), "john doe");
  EXPECT_EQ(m.str(), "\"john doe\"@example.com");
}

TEST(Address, Rfc5321_4_1_2_QuotedPairs) {
  auto m = path_ok("<\"a\\\"b\\\\c\"@example.com>");
  EXPECT_EQ(m.local, "\"a\\\"b\\\\c\"");
  EXPECT_EQ(m.unquoted_local(), "a\"b\\c");
  // Specials and "@" are fine inside quotes.
  auto m2 = path_ok("<\"a@b>,;:\"@example.com>");
  EXPECT_EQ(m2.unquoted_local(), "a@b>,;:");
  EXPECT_EQ(m2.domain, "example.com");
}

TEST(Address, Rfc5321_4_1_2_QuotedStringErrors) {
  EXPECT_EQ(path_err("<\"unterminated@example.com>"), PathError::Syntax);
  EXPECT_EQ(path_err("<\"\"@example.com>"), PathError::Syntax);  // empty local part
  EXPECT_EQ(path_err("<\"a\"b@example.com>"), PathError::Syntax);
  EXPECT_EQ(path_err("<\"a\x01\"@example.com>"), PathError::Syntax);
  EXPECT_EQ(path_err("<\"a\\\x01\"@example.com>"), PathError::Syntax);  // quoted-pair %d32-126
  EXPECT_EQ(path_err("<\"a\\\"@example.com>"), PathError::Syntax);      // escaped final quote
  EXPECT_EQ(path_err(std::string_view("<\"a\0\"@example.com>", 18)), PathError::Syntax);
}

TEST(Address, UnquotedLocalOfUnquotedIsUnchanged) {
  Mailbox m{"a.b", "example.com"};
  EXPECT_EQ(m.unquoted_local(), "a.b");
}

// --- Domains ---------------------------------------------------------------------------

TEST(Address, Rfc5321_4_1_2_DomainLabels) {
  EXPECT_EQ(path_ok("<u@a-b.example>").domain, "a-b.example");
  EXPECT_EQ(path_ok("<u@123.example>").domain, "123.example");
  EXPECT_EQ(path_ok("<u@localhost>").domain, "localhost");
  EXPECT_EQ(path_ok("<u@a--b.example>").domain, "a--b.example");
  EXPECT_EQ(path_err("<u@-a.example>"), PathError::Syntax);
  EXPECT_EQ(path_err("<u@a-.example>"), PathError::Syntax);
  EXPECT_EQ(path_err("<u@a..example>"), PathError::Syntax);
  EXPECT_EQ(path_err("<u@.example>"), PathError::Syntax);
  EXPECT_EQ(path_err("<u@a_b.example>"), PathError::Syntax);
  EXPECT_EQ(path_err("<u@exa mple.com>"), PathError::Syntax);
  EXPECT_EQ(path_err("<u@example.com..>"), PathError::Syntax);
}

TEST(Address, TrailingDotAcceptedAndNormalized) {
  auto m = path_ok("<u@Example.COM.>");
  EXPECT_EQ(m.domain, "Example.COM.");  // as written
  EXPECT_EQ(normalize_domain(m.domain), "example.com");
}

TEST(Address, Rfc1035_LabelOf63OctetsMax) {
  EXPECT_EQ(path_ok("<u@" + rep('a', 63) + ".example>").domain.size(), 63u + 8);
  EXPECT_EQ(path_err("<u@" + rep('a', 64) + ".example>"), PathError::TooLong);
}

TEST(Address, Rfc5321_4_1_3_Ipv4Literal) {
  auto m = path_ok("<u@[192.0.2.1]>");
  EXPECT_EQ(m.domain, "[192.0.2.1]");
  EXPECT_TRUE(m.is_address_literal());
  for (const char* bad : {"<u@[256.1.1.1]>", "<u@[1.2.3]>", "<u@[1.2.3.4.5]>", "<u@[]>",
                          "<u@[192.0.2.1>", "<u@[192.0.2.1]x>", "<u@[ 192.0.2.1]>",
                          "<u@[192.0.2.1].example>", "<u@[a.b.c.d]>"}) {
    EXPECT_EQ(path_err(bad), PathError::Syntax) << bad;
  }
}

TEST(Address, Rfc5321_4_1_3_Ipv6Literal) {
  EXPECT_EQ(path_ok("<u@[IPv6:2001:db8::1]>").domain, "[IPv6:2001:db8::1]");
  EXPECT_EQ(path_ok("<u@[ipv6:::1]>").domain, "[ipv6:::1]");  // ABNF strings are case-insensitive
  EXPECT_EQ(path_ok("<u@[IPv6:::ffff:192.0.2.1]>").domain, "[IPv6:::ffff:192.0.2.1]");
  EXPECT_EQ(path_ok("<u@[IPv6:1:2:3:4:5:6:7:8]>").domain, "[IPv6:1:2:3:4:5:6:7:8]");
  for (const char* bad : {"<u@[IPv6:2001:db8::g]>", "<u@[IPv6:1:2:3:4:5:6:7:8:9]>",
                          "<u@[IPv6:]>", "<u@[IPv6:1::2::3]>", "<u@[2001:db8::1]>",
                          "<u@[IPv6:192.0.2.1]>"}) {
    EXPECT_EQ(path_err(bad), PathError::Syntax) << bad;
  }
}

TEST(Address, Rfc5321_4_1_3_GeneralAddressLiteralRejected) {
  EXPECT_EQ(path_err("<u@[x-tag:something]>"), PathError::Syntax);
}

TEST(Address, Rfc5321_4_1_3_OverlongLiteralRejected) {
  EXPECT_EQ(path_err("<u@[IPv6:" + rep('1', 100) + "]>"), PathError::Syntax);
}

// --- Source routes, RFC 5321 4.1.2 and Appendix C --------------------------------------

TEST(Address, Rfc5321_AppendixC_SourceRouteIgnored) {
  auto r = parse_path("<@a.example,@b.example:user@d.example>", false, false);
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->had_source_route);
  EXPECT_EQ(r->mailbox.local, "user");
  EXPECT_EQ(r->mailbox.domain, "d.example");
  EXPECT_EQ(r->consumed, 38u);
  auto r1 = parse_path("<@a.example:user@d.example>", false, false);
  ASSERT_TRUE(r1);
  EXPECT_TRUE(r1->had_source_route);
  EXPECT_EQ(r1->mailbox.str(), "user@d.example");
}

TEST(Address, Rfc5321_4_1_2_BadSourceRoutes) {
  for (const char* bad : {"<@a.example user@d.example>", "<@:user@d.example>",
                          "<@a.example,b.example:user@d.example>", "<@a.example,:u@d.example>",
                          "<@a.example:>", "<@a.example:@d.example>", "<@-a.example:u@d.example>",
                          "<@a.example;u@d.example>"}) {
    EXPECT_EQ(path_err(bad), PathError::Syntax) << bad;
  }
}

// --- Limits, RFC 5321 4.5.3.1 ----------------------------------------------------------

TEST(Address, Rfc5321_4_5_3_1_1_LocalPart64) {
  EXPECT_EQ(path_ok("<" + rep('l', 64) + "@example.com>").local.size(), 64u);
  EXPECT_EQ(path_err("<" + rep('l', 65) + "@example.com>"), PathError::TooLong);
  // Quotes count: a quoted local part of 64 octets including its quotes is fine, 65 is not.
  EXPECT_EQ(path_ok("<\"" + rep('q', 62) + "\"@example.com>").local.size(), 64u);
  EXPECT_EQ(path_err("<\"" + rep('q', 63) + "\"@example.com>"), PathError::TooLong);
}

TEST(Address, Rfc5321_4_5_3_1_2_Domain255) {
  std::string d255 = domain_of(255), d256 = domain_of(256);
  ASSERT_EQ(d255.size(), 255u);
  ASSERT_EQ(d256.size(), 256u);
  EXPECT_TRUE(is_valid_domain(d255, false));
  EXPECT_FALSE(is_valid_domain(d256, false));
  PathError e = PathError::None;
  EXPECT_TRUE(parse_mailbox("u@" + d255, false, &e));
  EXPECT_FALSE(parse_mailbox("u@" + d256, false, &e));
  EXPECT_EQ(e, PathError::TooLong);
  // The trailing root dot does not count.
  EXPECT_TRUE(parse_mailbox("u@" + d255 + ".", false));
}

TEST(Address, Rfc5321_4_5_3_1_3_Path256) {
  // "<" + 64 + "@" + 189 + ">" = 256 octets
  std::string ok = "<" + rep('l', 64) + "@" + domain_of(189) + ">";
  ASSERT_EQ(ok.size(), 256u);
  EXPECT_EQ(path_ok(ok).domain.size(), 189u);
  std::string bad = "<" + rep('l', 64) + "@" + domain_of(190) + ">";
  ASSERT_EQ(bad.size(), 257u);
  EXPECT_EQ(path_err(bad), PathError::TooLong);
}

// --- Control characters and NUL --------------------------------------------------------

TEST(Address, ControlCharactersAndNulRejected) {
  EXPECT_EQ(path_err("<us\x01er@example.com>"), PathError::Syntax);
  EXPECT_EQ(path_err("<user@exa\x7fmple.com>"), PathError::Syntax);
  EXPECT_EQ(path_err("<us\ter@example.com>"), PathError::Syntax);
  EXPECT_EQ(path_err("<user@example.com\r\n>"), PathError::Syntax);
  EXPECT_EQ(path_err(std::string_view("<us\0er@example.com>", 19)), PathError::Syntax);
  EXPECT_EQ(path_err(std::string_view("<user@exa\0mple.com>", 19)), PathError::Syntax);
  EXPECT_EQ(path_err(std::string_view("<user@[192.0.2.1\0]>", 19)), PathError::Syntax);
}

// --- UTF-8, RFC 6531 3.3 ---------------------------------------------------------------

TEST(Address, Rfc6531_3_3_Utf8NeedsSmtputf8) {
  EXPECT_EQ(path_err("<j\xC3\xB6rg@example.com>", true, false), PathError::Utf8NotAllowed);
  EXPECT_EQ(path_err("<user@m\xC3\xBCnchen.example>", true, false), PathError::Utf8NotAllowed);
  EXPECT_EQ(path_err("<\"j\xC3\xB6 rg\"@example.com>", true, false), PathError::Utf8NotAllowed);
}

TEST(Address, Rfc6531_3_3_Utf8LocalAndULabels) {
  auto m = path_ok("<j\xC3\xB6rg@m\xC3\xBCnchen.example>", true);
  EXPECT_EQ(m.local, "j\xC3\xB6rg");
  EXPECT_EQ(m.domain, "m\xC3\xBCnchen.example");
  EXPECT_TRUE(m.needs_utf8());
  // 3- and 4-byte sequences, and UTF-8 in a quoted local part
  EXPECT_TRUE(path_ok("<\xE4\xBE\x8B\xF0\x9F\x98\x80@\xE4\xBE\x8B.example>", true).needs_utf8());
  EXPECT_EQ(path_ok("<\"\xC3\xA9 x\"@example.com>", true).unquoted_local(), "\xC3\xA9 x");
}

TEST(Address, Rfc3629_InvalidUtf8Rejected) {
  for (bool utf8 : {true, false}) {
    for (const char* bad : {
             "<\xC0\xAF@example.com>",          // overlong '/'
             "<\xC1\xBF@example.com>",          // overlong
             "<\xE0\x80\xAF@example.com>",      // overlong 3-byte
             "<\xF0\x80\x80\xAF@example.com>",  // overlong 4-byte
             "<\xED\xA0\x80@example.com>",      // surrogate U+D800
             "<\xF4\x90\x80\x80@example.com>",  // above U+10FFFF
             "<\xC3@example.com>",              // truncated
             "<a\x80@example.com>",             // stray continuation byte
             "<a\xFF@example.com>",             // never valid
             "<u@ex\xE2\x82.com>",              // truncated in the domain
         }) {
      EXPECT_EQ(path_err(bad, true, utf8), PathError::BadUtf8) << bad << " utf8=" << utf8;
    }
  }
}

TEST(Address, Rfc6531_C1ControlsRejected) {
  EXPECT_EQ(path_err("<a\xC2\x85@example.com>", true, true), PathError::Syntax);  // U+0085 NEL
}

TEST(Address, Utf8LabelHyphenRules) {
  EXPECT_EQ(path_err("<u@-\xC3\xBC.example>", true, true), PathError::Syntax);
  EXPECT_EQ(path_err("<u@\xC3\xBC-.example>", true, true), PathError::Syntax);
}

TEST(Address, Rfc3629_IsValidUtf8) {
  EXPECT_TRUE(is_valid_utf8(""));
  EXPECT_TRUE(is_valid_utf8("plain ascii"));
  EXPECT_TRUE(is_valid_utf8("\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80"));
  EXPECT_TRUE(is_valid_utf8("\xF4\x8F\xBF\xBF"));  // U+10FFFF
  EXPECT_TRUE(is_valid_utf8("\xED\x9F\xBF"));      // U+D7FF
  EXPECT_TRUE(is_valid_utf8("\xEE\x80\x80"));      // U+E000
  EXPECT_FALSE(is_valid_utf8("\xC0\x80"));
  EXPECT_FALSE(is_valid_utf8("\xED\xBF\xBF"));  // U+DFFF
  EXPECT_FALSE(is_valid_utf8("\xF4\x90\x80\x80"));
  EXPECT_FALSE(is_valid_utf8("\xF5\x80\x80\x80"));
  EXPECT_FALSE(is_valid_utf8("\xE2\x82"));
  EXPECT_FALSE(is_valid_utf8("a\xBF"));
  EXPECT_FALSE(is_valid_utf8("\xE2\x28\xA1"));
}

TEST(Address, Utf8SequenceDecodes) {
  char32_t cp = 0;
  EXPECT_EQ(utf8_sequence("A", &cp), 1u);
  EXPECT_EQ(cp, U'A');
  EXPECT_EQ(utf8_sequence("\xC3\xA9z", &cp), 2u);
  EXPECT_EQ(cp, U'\u00E9');
  EXPECT_EQ(utf8_sequence("\xE2\x82\xAC", &cp), 3u);
  EXPECT_EQ(cp, U'\u20AC');
  EXPECT_EQ(utf8_sequence("\xF0\x9F\x98\x80", &cp), 4u);
  EXPECT_EQ(cp, U'\U0001F600');
  EXPECT_EQ(utf8_sequence(""), 0u);
  EXPECT_EQ(utf8_sequence("\x80"), 0u);
}

// --- parse_mailbox / is_valid_domain / normalize_domain --------------------------------

TEST(Address, ParseMailboxBare) {
  auto m = parse_mailbox("user@example.com", false);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->local, "user");
  EXPECT_EQ(m->domain, "example.com");
  EXPECT_TRUE(parse_mailbox("\"a b\"@[192.0.2.1]", false));
  PathError e = PathError::None;
  EXPECT_FALSE(parse_mailbox("<user@example.com>", false, &e));
  EXPECT_EQ(e, PathError::Syntax);
  EXPECT_FALSE(parse_mailbox("user@example.com ", false));
  EXPECT_FALSE(parse_mailbox("user", false));
  EXPECT_FALSE(parse_mailbox("", false));
  EXPECT_FALSE(parse_mailbox("j\xC3\xB6rg@example.com", false, &e));
  EXPECT_EQ(e, PathError::Utf8NotAllowed);
  EXPECT_TRUE(parse_mailbox("j\xC3\xB6rg@example.com", true));
}

TEST(Address, IsValidDomain) {
  EXPECT_TRUE(is_valid_domain("example.com", false));
  EXPECT_TRUE(is_valid_domain("localhost", false));
  EXPECT_TRUE(is_valid_domain("example.com.", false));
  EXPECT_TRUE(is_valid_domain("[192.0.2.1]", false));
  EXPECT_TRUE(is_valid_domain("[IPv6:::1]", false));
  EXPECT_FALSE(is_valid_domain("", false));
  EXPECT_FALSE(is_valid_domain(".", false));
  EXPECT_FALSE(is_valid_domain("ex ample.com", false));
  EXPECT_FALSE(is_valid_domain("example.com>", false));
  EXPECT_FALSE(is_valid_domain("[192.0.2.1", false));
  EXPECT_FALSE(is_valid_domain("m\xC3\xBCnchen.example", false));
  EXPECT_TRUE(is_valid_domain("m\xC3\xBCnchen.example", true));
}

TEST(Address, NormalizeDomain) {
  EXPECT_EQ(normalize_domain("ExAmple.COM."), "example.com");
  EXPECT_EQ(normalize_domain("example.com"), "example.com");
  EXPECT_EQ(normalize_domain("M\xC3\x9Cnchen.DE"), "m\xC3\x9Cnchen.de");  // U-label bytes kept
  EXPECT_EQ(normalize_domain("[IPv6:2001:DB8::1]"), "[ipv6:2001:db8::1]");
  EXPECT_EQ(normalize_domain(""), "");
}

TEST(Address, MailboxHelpers) {
  Mailbox empty;
  EXPECT_TRUE(empty.empty());
  EXPECT_EQ(empty.str(), "");
  Mailbox lit{"x", "[192.0.2.1]"};
  EXPECT_TRUE(lit.is_address_literal());
  EXPECT_EQ(lit.str(), "x@[192.0.2.1]");
  EXPECT_FALSE(lit.needs_utf8());
  EXPECT_TRUE((Mailbox{"x", "\xC3\xBC.example"}).needs_utf8());
  EXPECT_EQ((Mailbox{"a", "b"}), (Mailbox{"a", "b"}));
}

TEST(Address, RenderedMailboxReparses) {
  for (const char* s : {"<user@example.com>", "<\"a b\\\"c\"@example.com>", "<x@[IPv6:::1]>",
                        "<@r.example:u@d.example>"}) {
    auto r = parse_path(s, false, false);
    ASSERT_TRUE(r) << s;
    auto again = parse_path("<" + r->mailbox.str() + ">", false, false);
    ASSERT_TRUE(again) << s;
    EXPECT_EQ(again->mailbox, r->mailbox);
  }
}
