// Unit tests for auth/userdb: password file syntax and errors (spec "Password file"),
// authenticate() with yescrypt and SHA-512-crypt hashes, and the sender rules for MAIL FROM
// of authenticated users (RFC 4954 6 / RFC 6409 6.1: the submission server checks the sender).
#include "auth/userdb.hpp"

#include <crypt.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "auth/password.hpp"

using namespace carrier;
using namespace carrier::auth;
using namespace std::string_literals;

namespace {

class UserDbTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto a = hash_password("alice-pw");
    ASSERT_TRUE(a) << a.error().message;
    alice_hash = *a;
    crypt_data d{};
    const char* out = crypt_r("bob-pw", "$6$saltsalt$", &d);
    ASSERT_NE(out, nullptr);
    bob_hash = out;
  }
  static inline std::string alice_hash, bob_hash;

  static UserDb must_parse(const std::string& text) {
    auto r = UserDb::parse(text, "passwd");
    EXPECT_TRUE(r) << (r ? "" : r.error().message);
    return r ? std::move(r).value() : UserDb();
  }
  static std::string parse_error(const std::string& text) {
    auto r = UserDb::parse(text, "passwd");
    EXPECT_FALSE(r);
    return r ? std::string() : r.error().message;
  }
};

proto::Mailbox mb(std::string_view s) {
  auto m = proto::parse_mailbox(s, true);
  EXPECT_TRUE(m) << s;
  return m ? *m : proto::Mailbox{};
}

TEST_F(UserDbTest, ParsesCommentsBlankLinesAndCrlf) {
  auto db = must_parse("# users\n\n   \n  # indented comment\nalice@example.com:" + alice_hash +
                       "\r\nbob:" + bob_hash + ":bob@example.org\n");
  EXPECT_EQ(db.size(), 2u);
  EXPECT_EQ(must_parse("").size(), 0u);
  EXPECT_EQ(must_parse("# only a comment").size(), 0u);
  EXPECT_EQ(must_parse("bob:" + bob_hash).size(), 1u);  // no final newline
}

TEST_F(UserDbTest, AuthenticateYescrypt) {
  auto db = must_parse("alice@example.com:" + alice_hash + "\n");
  auto r = db.authenticate("alice@example.com", "alice-pw");
  EXPECT_EQ(r.verdict, AuthResult::Ok);
  EXPECT_EQ(r.user, "alice@example.com");
  EXPECT_TRUE(r.error.empty());
  ASSERT_EQ(r.senders.size(), 1u);  // default: the user name itself
  EXPECT_EQ(r.senders[0], "alice@example.com");

  r = db.authenticate("alice@example.com", "alice-pW");
  EXPECT_EQ(r.verdict, AuthResult::Bad);
  EXPECT_TRUE(r.user.empty());
  EXPECT_TRUE(r.senders.empty());
  EXPECT_EQ(r.error.find("alice-pW"), std::string::npos);  // never the password
}

TEST_F(UserDbTest, AuthenticateSha512) {
  auto db = must_parse("bob:" + bob_hash + "\n");
  EXPECT_EQ(db.authenticate("bob", "bob-pw").verdict, AuthResult::Ok);
  EXPECT_EQ(db.authenticate("bob", "bob-pwx").verdict, AuthResult::Bad);
  EXPECT_EQ(db.authenticate("Bob", "bob-pw").verdict, AuthResult::Bad);  // names are exact
  // No '@' in the name and no senders field: only the null sender.
  auto r = db.authenticate("bob", "bob-pw");
  EXPECT_TRUE(r.senders.empty());
}

TEST_F(UserDbTest, UnknownUserAndBadPasswords) {
  auto db = must_parse("bob:" + bob_hash + "\n");
  auto r = db.authenticate("carol", "bob-pw");
  EXPECT_EQ(r.verdict, AuthResult::Bad);
  EXPECT_EQ(r.error, "unknown user");
  EXPECT_EQ(db.authenticate("", "bob-pw").verdict, AuthResult::Bad);
  EXPECT_EQ(db.authenticate(std::string(300, 'b'), "bob-pw").verdict, AuthResult::Bad);
  EXPECT_EQ(db.authenticate("bob", "").verdict, AuthResult::Bad);
  EXPECT_EQ(db.authenticate("bob", "bob-pw\0x"s).verdict, AuthResult::Bad);
  EXPECT_EQ(db.authenticate("bob", std::string(kMaxPasswordLength + 1, 'x')).verdict,
            AuthResult::Bad);
  EXPECT_EQ(UserDb().authenticate("bob", "bob-pw").verdict, AuthResult::Bad);
}

// Address user names: the domain is compared case-insensitively (RFC 5321 2.4), the local part
// exactly.
TEST_F(UserDbTest, AddressUserDomainCaseInsensitive) {
  auto db = must_parse("Alice@Example.COM:" + alice_hash + "\n");
  auto r = db.authenticate("Alice@example.com", "alice-pw");
  EXPECT_EQ(r.verdict, AuthResult::Ok);
  EXPECT_EQ(r.user, "Alice@example.com");
  EXPECT_EQ(db.authenticate("Alice@EXAMPLE.com", "alice-pw").verdict, AuthResult::Ok);
  EXPECT_EQ(db.authenticate("alice@example.com", "alice-pw").verdict, AuthResult::Bad);
  EXPECT_EQ(normalize_user("A@B.Example."), "A@b.example");
  EXPECT_EQ(normalize_user("Plain"), "Plain");
}

TEST_F(UserDbTest, ErrorsNameEveryBadLine) {
  const std::string text = "# header\n"                                   // 1
                           "alice@example.com:" + alice_hash + "\n"       // 2 ok
                           "carol:$1$abcdefgh$abcdefghijklmnopqrstuv\n"    // 3 MD5
                           "no-colon-here\n"                               // 4
                           "\n"                                            // 5
                           "dave:" + bob_hash + ":a@b:c\n"                 // 6 too many ':'
                           "ALICE@EXAMPLE.com:" + bob_hash + "\n"          // 7 ok (local differs)
                           "alice@EXAMPLE.com:" + bob_hash + "\n";         // 8 duplicate of 2
  const std::string e = parse_error(text);
  EXPECT_NE(e.find("passwd:3: hash method not allowed; make one with: carrier passwd"),
            std::string::npos) << e;
  EXPECT_NE(e.find("passwd:4: expected user:hash"), std::string::npos) << e;
  EXPECT_NE(e.find("passwd:6: too many ':'"), std::string::npos) << e;
  EXPECT_NE(e.find("passwd:8: duplicate user alice@example.com (first on line 2)"),
            std::string::npos) << e;
  EXPECT_EQ(e.find("passwd:2:"), std::string::npos) << e;
  EXPECT_EQ(e.find("passwd:7:"), std::string::npos) << e;
  EXPECT_EQ(std::count(e.begin(), e.end(), '\n'), 3) << e;  // four lines
}

TEST_F(UserDbTest, UserNameRules) {
  EXPECT_NE(parse_error(":" + bob_hash).find("passwd:1: empty user name"), std::string::npos);
  EXPECT_NE(parse_error("a b:" + bob_hash).find("passwd:1: user name contains whitespace"),
            std::string::npos);
  EXPECT_NE(parse_error("a\x01" "b:" + bob_hash).find("passwd:1: user name contains"),
            std::string::npos);
  EXPECT_NE(parse_error("a\x7f:" + bob_hash).find("passwd:1: user name contains"),
            std::string::npos);
  EXPECT_NE(parse_error("j\xf6rg:" + bob_hash).find("passwd:1: user name is not valid UTF-8"),
            std::string::npos);
  EXPECT_NE(parse_error(std::string(256, 'u') + ":" + bob_hash).find("passwd:1: user name longer"),
            std::string::npos);
  EXPECT_EQ(must_parse(std::string(255, 'u') + ":" + bob_hash).size(), 1u);
  EXPECT_EQ(must_parse("j\xc3\xb6rg:" + bob_hash).size(), 1u);
}

TEST_F(UserDbTest, HashAndLineRules) {
  EXPECT_NE(parse_error("bob:").find("passwd:1: hash method not allowed"), std::string::npos);
  EXPECT_NE(parse_error("bob:$6$saltsalt$tooshort").find("passwd:1: malformed SHA-512-crypt hash"),
            std::string::npos);
  EXPECT_NE(parse_error("bob:" + bob_hash + "\0"s).find("passwd:1: line contains a NUL"),
            std::string::npos);
  EXPECT_NE(parse_error("# x\nbob:" + std::string(kMaxLine, 'x')).find("passwd:2: line longer"),
            std::string::npos);
}

TEST_F(UserDbTest, TooManyErrorsAreCapped) {
  std::string text;
  for (int i = 0; i < 150; ++i) text += "bad line\n";
  const std::string e = parse_error(text);
  EXPECT_NE(e.find("passwd:100: expected"), std::string::npos);
  EXPECT_EQ(e.find("passwd:101: expected"), std::string::npos);
  EXPECT_NE(e.find("passwd: 50 more errors not shown"), std::string::npos) << e;
}

TEST_F(UserDbTest, SendersFieldParsing) {
  auto db = must_parse("u:" + bob_hash + ": Alice@Example.COM , @Example.ORG,*@c.example,\"x y\"@d.example\n");
  auto r = db.authenticate("u", "bob-pw");
  ASSERT_EQ(r.verdict, AuthResult::Ok);
  EXPECT_EQ(r.senders, (std::vector<std::string>{"Alice@example.com", "@example.org", "@c.example",
                                                  "x y@d.example"}));
  EXPECT_NE(parse_error("u:" + bob_hash + ":").find("passwd:1: empty senders field"), std::string::npos);
  EXPECT_NE(parse_error("u:" + bob_hash + ":a@b.example,").find("passwd:1: empty sender pattern"),
            std::string::npos);
  EXPECT_NE(parse_error("u:" + bob_hash + ":a@b.example,,c@d.example").find("passwd:1: empty sender"),
            std::string::npos);
  EXPECT_NE(parse_error("u:" + bob_hash + ":alice").find("passwd:1: bad sender pattern \"alice\""),
            std::string::npos);
  EXPECT_NE(parse_error("u:" + bob_hash + ":@").find("passwd:1: bad domain"), std::string::npos);
  EXPECT_NE(parse_error("u:" + bob_hash + ":*@bad..domain").find("passwd:1: bad domain"),
            std::string::npos);
  EXPECT_NE(parse_error("u:" + bob_hash + ":**").find("passwd:1: bad sender pattern"),
            std::string::npos);
}

TEST_F(UserDbTest, SenderRulesExplicitPatterns) {
  auto db = must_parse("u:" + bob_hash + ":Alice@Example.COM,@example.org\n"
                       "any:" + bob_hash + ":*\n");
  auto u = db.authenticate("u", "bob-pw");
  ASSERT_EQ(u.verdict, AuthResult::Ok);
  EXPECT_TRUE(sender_allowed(u, mb("alice@example.com")));   // case-insensitive local and domain
  EXPECT_TRUE(sender_allowed(u, mb("ALICE@EXAMPLE.com")));
  EXPECT_TRUE(sender_allowed(u, mb("\"alice\"@example.com")));  // quoting is not a new mailbox
  EXPECT_TRUE(sender_allowed(u, mb("alice@example.com.")));
  EXPECT_FALSE(sender_allowed(u, mb("alice2@example.com")));
  EXPECT_FALSE(sender_allowed(u, mb("alice@sub.example.com")));
  EXPECT_FALSE(sender_allowed(u, mb("bob@example.com")));
  EXPECT_TRUE(sender_allowed(u, mb("anyone@example.org")));  // @domain
  EXPECT_TRUE(sender_allowed(u, mb("x@EXAMPLE.ORG")));
  EXPECT_FALSE(sender_allowed(u, mb("x@sub.example.org")));   // not subdomains
  EXPECT_FALSE(sender_allowed(u, mb("x@example.org.evil")));
  EXPECT_TRUE(sender_allowed(u, proto::Mailbox{}));           // null sender always
  auto any = db.authenticate("any", "bob-pw");
  EXPECT_TRUE(sender_allowed(any, mb("whoever@wherever.example")));
  EXPECT_TRUE(sender_allowed(any, mb("x@[192.0.2.1]")));
}

TEST_F(UserDbTest, SenderRulesDefaultAndNotAuthenticated) {
  auto db = must_parse("alice@example.com:" + alice_hash + "\nbob:" + bob_hash + "\n");
  auto a = db.authenticate("alice@EXAMPLE.COM", "alice-pw");
  ASSERT_EQ(a.verdict, AuthResult::Ok);
  EXPECT_TRUE(sender_allowed(a, mb("alice@example.com")));
  EXPECT_TRUE(sender_allowed(a, mb("Alice@Example.Com")));
  EXPECT_FALSE(sender_allowed(a, mb("bob@example.com")));
  EXPECT_TRUE(sender_allowed(a, proto::Mailbox{}));

  auto b = db.authenticate("bob", "bob-pw");  // no address, no senders field
  ASSERT_EQ(b.verdict, AuthResult::Ok);
  EXPECT_FALSE(sender_allowed(b, mb("bob@example.com")));
  EXPECT_TRUE(sender_allowed(b, proto::Mailbox{}));

  auto bad = db.authenticate("alice@example.com", "wrong");
  EXPECT_FALSE(sender_allowed(bad, mb("alice@example.com")));
  EXPECT_FALSE(sender_allowed(bad, proto::Mailbox{}));
  AuthResult forged;  // verdict Bad by default even with patterns filled in
  forged.senders = {"*"};
  EXPECT_FALSE(sender_allowed(forged, mb("x@y.example")));
  EXPECT_TRUE(sender_allowed(std::vector<std::string>{"*"}, mb("x@y.example")));
  EXPECT_FALSE(sender_allowed(std::vector<std::string>{""}, mb("x@y.example")));
}

TEST_F(UserDbTest, LoadFromFile) {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("carrier-userdb-test-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const auto good = dir / "passwd";
  std::ofstream(good) << "bob:" << bob_hash << "\n";
  auto db = UserDb::load(good);
  ASSERT_TRUE(db) << db.error().message;
  EXPECT_EQ(db->size(), 1u);
  EXPECT_EQ(db->authenticate("bob", "bob-pw").verdict, AuthResult::Ok);

  const auto bad = dir / "bad";
  std::ofstream(bad) << "\nbob:$5$x$y\n";
  auto e = UserDb::load(bad);
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().message, bad.string() + ":2: hash method not allowed; make one with: carrier passwd");

  auto missing = UserDb::load(dir / "missing");
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find((dir / "missing").string()), std::string::npos);
  std::filesystem::remove_all(dir);
}

}  // namespace
