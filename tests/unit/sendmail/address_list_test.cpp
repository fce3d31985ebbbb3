// Unit tests of RFC 5322 3.4 address-list parsing for sendmail -t and recipient arguments:
// display names, angle addresses, groups, comments (3.2.2), quoted strings (3.2.4), domain
// literals (3.4.1), obsolete routes and empty elements (4.4), UTF-8 (RFC 6532), bounds and
// malformed input.
#include "sendmail/address_list.hpp"

#include <gtest/gtest.h>

using namespace carrier::sendmail;

namespace {

std::vector<std::string> parse(std::string_view v) {
  std::vector<std::string> out;
  std::string why;
  if (!parse_address_list(v, out, &why)) ADD_FAILURE() << "\"" << v << "\": " << why;
  return out;
}

std::string fails(std::string_view v, const AddressListLimits& lim = {}) {
  std::vector<std::string> out{"kept"};
  std::string why;
  if (parse_address_list(v, out, &why, lim)) return "(parsed)";
  EXPECT_EQ(out, std::vector<std::string>{"kept"}) << "output changed on failure";
  return why;
}

using V = std::vector<std::string>;

}  // namespace

TEST(AddressList, Mailboxes) {  // RFC 5322 3.4
  EXPECT_EQ(parse("bob@example.net"), V{"bob@example.net"});
  EXPECT_EQ(parse(" bob@example.net , carol@example.net "),
            (V{"bob@example.net", "carol@example.net"}));
  EXPECT_EQ(parse("Bob Smith <bob@example.net>"), V{"bob@example.net"});
  EXPECT_EQ(parse("\"Smith, Bob\" <bob@example.net>, <carol@example.net>"),
            (V{"bob@example.net", "carol@example.net"}));
  EXPECT_EQ(parse("John Q. Public <jqp@example.com>"), V{"jqp@example.com"});  // obs-phrase
  EXPECT_EQ(parse("root"), V{"root"});  // unqualified: the caller adds the domain
  EXPECT_EQ(parse("\"a b\"@example.net"), V{"\"a b\"@example.net"});
  EXPECT_EQ(parse("x@[192.0.2.1]"), V{"x@[192.0.2.1]"});
  EXPECT_EQ(parse("J\xc3\xb6rg <j\xc3\xb6rg@b\xc3\xbc\x63her.example>"),
            V{"j\xc3\xb6rg@b\xc3\xbc\x63her.example"});  // RFC 6532
}

TEST(AddressList, CommentsAndFolding) {  // RFC 5322 3.2.2, 2.2.3
  EXPECT_EQ(parse("bob@example.net (Bob (the (nested) one))"), V{"bob@example.net"});
  EXPECT_EQ(parse("(comment)bob(x)@(y)example.net(z)"), V{"bob@example.net"});
  EXPECT_EQ(parse("Bob\r\n <bob@example.net>,\r\n\tcarol@example.net"),
            (V{"bob@example.net", "carol@example.net"}));
  EXPECT_EQ(parse("Pete(A nice \\) chap) <pete(his account)@silly.test(his host)>"),
            V{"pete@silly.test"});  // RFC 5322 A.5
}

TEST(AddressList, Groups) {  // RFC 5322 3.4, A.1.3
  EXPECT_EQ(parse("A Group:Ed Jones <c@a.test>,joe@where.test,John <jdoe@one.test>;"),
            (V{"c@a.test", "joe@where.test", "jdoe@one.test"}));
  EXPECT_TRUE(parse("undisclosed-recipients:;").empty());
  EXPECT_EQ(parse("friends: a@x.test; b@y.test"), (V{"a@x.test", "b@y.test"}));
  EXPECT_EQ(parse("team: a@x.test"), V{"a@x.test"});  // missing ";" at the very end tolerated
}

TEST(AddressList, ObsoleteForms) {  // RFC 5322 4.4
  EXPECT_EQ(parse("<@relay1.test,@relay2.test:bob@example.net>"), V{"bob@example.net"});
  EXPECT_EQ(parse(",bob@example.net,,carol@example.net,"),
            (V{"bob@example.net", "carol@example.net"}));
  EXPECT_TRUE(parse("").empty());
  EXPECT_TRUE(parse("  ").empty());
}

TEST(AddressList, Malformed) {
  EXPECT_EQ(fails("Bob Smith"), "not an address: Bob Smith");
  EXPECT_EQ(fails("bob@"), "not an address: bob@");
  EXPECT_EQ(fails("<bob@example.net"), "missing '>'");
  EXPECT_EQ(fails("bob@example.net>"), "unexpected '>'");
  EXPECT_EQ(fails("<a@b.c> <d@e.f>"), "two angle addresses in one mailbox");
  EXPECT_EQ(fails("<a@b.c> trailing"), "text after an angle address");
  EXPECT_EQ(fails("a@b.c;"), "unexpected ';'");
  EXPECT_EQ(fails("g: h: a@b.c;"), "unexpected ':'");
  EXPECT_EQ(fails("\"unterminated@x"), "unterminated quoted string");
  EXPECT_EQ(fails("(unterminated a@b"), "unterminated comment");
  EXPECT_EQ(fails("a@[1.2.3.4"), "unterminated domain literal");
  EXPECT_EQ(fails("a\x01@b.c"), "control character in an address list");
  EXPECT_EQ(fails(std::string("a\0b@c.d", 7)), "control character in an address list");
  EXPECT_EQ(fails("<>"), "not an address: <>");
  EXPECT_EQ(fails("a\\b@c.d"), "unexpected '\\'");
  // A folded quoted string is fine, but a CR or LF cannot be quoted: it would end up inside the
  // recipient (found by fuzz_sendmail_rcpts in CI).
  EXPECT_EQ(fails("\"a\\\r\"@b.c"), "invalid quoted-pair in a quoted string");
  EXPECT_EQ(fails("\"a\\\n\"@b.c"), "invalid quoted-pair in a quoted string");
}

TEST(AddressList, Bounds) {
  AddressListLimits lim;
  lim.max_addresses = 3;
  EXPECT_EQ(fails("a@x.y, b@x.y, c@x.y, d@x.y", lim), "too many addresses");
  lim = {};
  lim.max_length = 10;
  EXPECT_EQ(fails("abcdefghij@x.y", lim), "address list too long");
  lim = {};
  lim.max_comment_depth = 3;
  EXPECT_EQ(fails("a@b.c ((((x))))", lim), "comments nested too deeply");
  // Deep nesting of the default limit does not recurse or crash.
  EXPECT_EQ(fails(std::string(100000, '(')), "comments nested too deeply");
}
