// Unit tests for proto/command: RFC 5321 4.1.1 command lines and 4.1.2 esmtp-params, with
// RFC 1870 SIZE, RFC 6152 BODY, RFC 3030 BDAT/BINARYMIME, RFC 6531 SMTPUTF8, RFC 3461 DSN
// parameters and xtext, RFC 6533 ORCPT utf-8, RFC 4954 MAIL AUTH=.
#include "proto/command.hpp"

#include <gtest/gtest.h>

using namespace carrier::proto;

namespace {

Extensions all_ext() {
  Extensions e;
  e.auth = true;
  return e;
}

MailFrom mail_ok(std::string_view arg, const Extensions& ext = all_ext()) {
  auto r = parse_mail(arg, ext);
  if (auto* rep = std::get_if<Reply>(&r)) {
    ADD_FAILURE() << "MAIL " << arg << " -> " << rep->render();
    return {};
  }
  return std::get<MailFrom>(r);
}

Reply mail_err(std::string_view arg, const Extensions& ext = all_ext()) {
  auto r = parse_mail(arg, ext);
  if (!std::holds_alternative<Reply>(r)) {
    ADD_FAILURE() << "MAIL " << arg << " accepted";
    return {};
  }
  return std::get<Reply>(r);
}

RcptTo rcpt_ok(std::string_view arg, bool utf8 = false, const Extensions& ext = all_ext()) {
  auto r = parse_rcpt(arg, ext, utf8);
  if (auto* rep = std::get_if<Reply>(&r)) {
    ADD_FAILURE() << "RCPT " << arg << " -> " << rep->render();
    return {};
  }
  return std::get<RcptTo>(r);
}

Reply rcpt_err(std::string_view arg, bool utf8 = false, const Extensions& ext = all_ext()) {
  auto r = parse_rcpt(arg, ext, utf8);
  if (!std::holds_alternative<Reply>(r)) {
    ADD_FAILURE() << "RCPT " << arg << " accepted";
    return {};
  }
  return std::get<Reply>(r);
}

#define EXPECT_REPLY(rep, c, st)      \
  do {                                \
    Reply r_ = (rep);                 \
    EXPECT_EQ(r_.code, c);            \
    EXPECT_EQ(r_.status, st);         \
    ASSERT_EQ(r_.lines.size(), 1u);   \
    EXPECT_FALSE(r_.lines[0].empty()); \
  } while (0)

}  // namespace

// --- parse_command, RFC 5321 4.1.1 / 2.4 -----------------------------------------------

TEST(Command, Rfc5321_2_4_VerbsCaseInsensitive) {
  struct {
    const char* line;
    Verb verb;
  } cases[] = {
      {"HELO x", Verb::Helo},   {"ehlo x", Verb::Ehlo},     {"MaIl FROM:<>", Verb::Mail},
      {"rcpt TO:<a@b>", Verb::Rcpt}, {"DATA", Verb::Data},  {"bdat 10 LAST", Verb::Bdat},
      {"RSET", Verb::Rset},     {"noop", Verb::Noop},       {"QUIT", Verb::Quit},
      {"VRFY x", Verb::Vrfy},   {"EXPN x", Verb::Expn},     {"HELP", Verb::Help},
      {"StartTLS", Verb::StartTls}, {"AUTH PLAIN", Verb::Auth},
  };
  for (const auto& c : cases) EXPECT_EQ(parse_command(c.line).verb, c.verb) << c.line;
}

TEST(Command, Rfc5321_4_1_1_ArgAfterOneSpace) {
  auto c = parse_command("MAIL FROM:<a@b.example> SIZE=10");
  EXPECT_EQ(c.verb, Verb::Mail);
  EXPECT_EQ(c.name, "MAIL");
  EXPECT_EQ(c.arg, "FROM:<a@b.example> SIZE=10");
  auto d = parse_command("DATA");
  EXPECT_EQ(d.arg, "");
  EXPECT_EQ(d.name, "DATA");
  auto e = parse_command("EHLO  two.spaces");
  EXPECT_EQ(e.verb, Verb::Ehlo);
  EXPECT_EQ(e.arg, " two.spaces");  // only ONE space is the separator
  auto f = parse_command("NOOP ");
  EXPECT_EQ(f.verb, Verb::Noop);
  EXPECT_EQ(f.arg, "");
}

TEST(Command, UnknownVerbs) {
  for (const char* l : {"", " ", "MAILFROM:<a@b>", "MAIL\tFROM:<a@b>", "DAT", "DATAX", "STARTTLSX",
                        "XCLIENT a", "HEL", "\x80\x81\x82\x83", "GET / HTTP/1.1"}) {
    EXPECT_EQ(parse_command(l).verb, Verb::Unknown) << l;
  }
  auto c = parse_command("FOO bar");
  EXPECT_EQ(c.name, "FOO");
  EXPECT_EQ(c.arg, "bar");
}

// --- MAIL FROM --------------------------------------------------------------------------

TEST(Mail, Rfc5321_4_1_1_2_Basic) {
  auto m = mail_ok("FROM:<user@example.com>");
  EXPECT_EQ(m.sender.str(), "user@example.com");
  EXPECT_FALSE(m.params.size);
  EXPECT_EQ(m.params.body, Body::SevenBit);
  EXPECT_FALSE(m.params.body_given);
  EXPECT_FALSE(m.params.smtputf8);
  EXPECT_EQ(m.params.ret, Ret::Unset);
}

TEST(Mail, Rfc5321_4_1_1_2_CaseInsensitiveFromAndSpaceAfterColon) {
  EXPECT_EQ(mail_ok("from:<a@b.example>").sender.str(), "a@b.example");
  EXPECT_EQ(mail_ok("FROM: <a@b.example>").sender.str(), "a@b.example");
}

TEST(Mail, Rfc5321_4_1_1_2_NullSender) {
  auto m = mail_ok("FROM:<>");
  EXPECT_TRUE(m.sender.empty());
  EXPECT_TRUE(mail_ok("FROM:<> SIZE=10").params.size.has_value());
}

TEST(Mail, Rfc3463_MissingFromIs5_5_2) {
  EXPECT_REPLY(mail_err("<a@b.example>"), 501, "5.5.2");
  EXPECT_REPLY(mail_err("TO:<a@b.example>"), 501, "5.5.2");
  EXPECT_REPLY(mail_err(""), 501, "5.5.2");
  EXPECT_REPLY(mail_err("FROM<a@b.example>"), 501, "5.5.2");
  EXPECT_EQ(mail_err("FRM:<a@b>").lines[0], "Syntax: MAIL FROM:<address>");
}

TEST(Mail, Rfc3463_BadSenderIs5_1_7) {
  EXPECT_REPLY(mail_err("FROM:a@b.example"), 501, "5.1.7");
  EXPECT_REPLY(mail_err("FROM:"), 501, "5.1.7");
  EXPECT_REPLY(mail_err("FROM:<a@-b.example>"), 501, "5.1.7");
  EXPECT_REPLY(mail_err("FROM:<a..b@example.com>"), 501, "5.1.7");
  EXPECT_REPLY(mail_err("FROM:<" + std::string(65, 'a') + "@example.com>"), 501, "5.1.7");
  EXPECT_REPLY(mail_err("FROM:<a\xC0\xAF@example.com> SMTPUTF8"), 501, "5.1.7");
}

TEST(Mail, Rfc6531_3_5_Utf8SenderNeedsSmtputf8) {
  EXPECT_REPLY(mail_err("FROM:<j\xC3\xB6rg@example.com>"), 553, "5.6.7");
  auto m = mail_ok("FROM:<j\xC3\xB6rg@example.com> SMTPUTF8");
  EXPECT_TRUE(m.params.smtputf8);
  EXPECT_TRUE(m.sender.needs_utf8());
  // SMTPUTF8 not offered: the address alone is refused.
  Extensions e = all_ext();
  e.smtputf8 = false;
  EXPECT_REPLY(mail_err("FROM:<j\xC3\xB6rg@example.com>", e), 553, "5.6.7");
  EXPECT_REPLY(mail_err("FROM:<j\xC3\xB6rg@example.com> SMTPUTF8", e), 553, "5.6.7");
}

TEST(Mail, Rfc6531_3_4_Smtputf8TakesNoValue) {
  EXPECT_REPLY(mail_err("FROM:<a@b.example> SMTPUTF8=yes"), 501, "5.5.4");
  EXPECT_TRUE(mail_ok("FROM:<a@b.example> smtputf8").params.smtputf8);
}

TEST(Mail, Rfc5321_4_1_2_ParamSeparators) {
  auto m = mail_ok("FROM:<a@b.example> SIZE=10 BODY=8BITMIME");
  EXPECT_EQ(m.params.size.value(), 10u);
  EXPECT_EQ(m.params.body, Body::EightBitMime);
  // tolerated: several spaces and trailing spaces
  auto t = mail_ok("FROM:<a@b.example>  SIZE=10   BODY=7BIT  ");
  EXPECT_EQ(t.params.size.value(), 10u);
  EXPECT_TRUE(t.params.body_given);
  // no space between path and parameter
  EXPECT_REPLY(mail_err("FROM:<a@b.example>SIZE=10"), 501, "5.5.4");
  EXPECT_REPLY(mail_err("FROM:<a@b.example>x"), 501, "5.5.4");
}

TEST(Mail, Rfc5321_4_1_2_ParamSyntaxErrors) {
  EXPECT_REPLY(mail_err("FROM:<a@b.example> =10"), 501, "5.5.4");
  EXPECT_REPLY(mail_err("FROM:<a@b.example> -SIZE=10"), 501, "5.5.4");
  EXPECT_REPLY(mail_err("FROM:<a@b.example> SI_ZE=10"), 501, "5.5.4");
  EXPECT_REPLY(mail_err("FROM:<a@b.example> SIZE="), 501, "5.5.4");
  EXPECT_REPLY(mail_err("FROM:<a@b.example> SIZE=1=2"), 501, "5.5.4");
  EXPECT_REPLY(mail_err("FROM:<a@b.example> SIZE=1\t"), 501, "5.5.4");
  EXPECT_REPLY(mail_err(std::string_view("FROM:<a@b.example> SIZE=1\0", 27)), 501, "5.5.4");
}

TEST(Mail, Rfc5321_4_1_1_11_UnknownParamIs555) {
  auto r = mail_err("FROM:<a@b.example> XFOO=bar");
  EXPECT_REPLY(r, 555, "5.5.4");
  EXPECT_EQ(r.lines[0], "Unsupported parameter: XFOO");
  // RCPT parameters are unknown on MAIL
  EXPECT_REPLY(mail_err("FROM:<a@b.example> NOTIFY=NEVER"), 555, "5.5.4");
  EXPECT_REPLY(mail_err("FROM:<a@b.example> ORCPT=rfc822;a@b"), 555, "5.5.4");
}

TEST(Mail, Rfc5321_3_3_ParamsOfUnofferedExtensionsAre555) {
  Extensions none;
  none.size = none.eightbitmime = none.smtputf8 = none.chunking = none.dsn = none.auth = false;
  EXPECT_REPLY(mail_err("FROM:<a@b.example> SIZE=1", none), 555, "5.5.4");
  EXPECT_REPLY(mail_err("FROM:<a@b.example> BODY=8BITMIME", none), 555, "5.5.4");
  EXPECT_REPLY(mail_err("FROM:<a@b.example> SMTPUTF8", none), 555, "5.5.4");
  EXPECT_REPLY(mail_err("FROM:<a@b.example> RET=FULL", none), 555, "5.5.4");
  EXPECT_REPLY(mail_err("FROM:<a@b.example> ENVID=x", none), 555, "5.5.4");
  EXPECT_REPLY(mail_err("FROM:<a@b.example> AUTH=<>", none), 555, "5.5.4");
}

TEST(Mail, Rfc5321_4_1_2_DuplicateParam) {
  auto r = mail_err("FROM:<a@b.example> SIZE=1 size=2");
  EXPECT_REPLY(r, 501, "5.5.4");
  EXPECT_EQ(r.lines[0], "Duplicate parameter: size");
  EXPECT_REPLY(mail_err("FROM:<a@b.example> SMTPUTF8 SMTPUTF8"), 501, "5.5.4");
  EXPECT_REPLY(mail_err("FROM:<a@b.example> BODY=7BIT BODY=7BIT"), 501, "5.5.4");
}

TEST(Mail, Rfc1870_Size) {
  EXPECT_EQ(mail_ok("FROM:<a@b.example> SIZE=0").params.size.value(), 0u);
  EXPECT_EQ(mail_ok("FROM:<a@b.example> size=12345").params.size.value(), 12345u);
  EXPECT_EQ(mail_ok("FROM:<a@b.example> SIZE=18446744073709551615").params.size.value(),
            18446744073709551615ull);
  EXPECT_REPLY(mail_err("FROM:<a@b.example> SIZE=abc"), 501, "5.5.4");
  EXPECT_REPLY(mail_err("FROM:<a@b.example> SIZE=-1"), 501, "5.5.4");
  EXPECT_REPLY(mail_err("FROM:<a@b.example> SIZE=1k"), 501, "5.5.4");
  EXPECT_REPLY(mail_err("FROM:<a@b.example> SIZE"), 501, "5.5.4");
  EXPECT_REPLY(mail_err("FROM:<a@b.example> SIZE=123456789012345678901"), 501, "5.5.4");  // 21
}

TEST(Mail, Rfc1870_6_1_SizeOverLimitIs552) {
  Extensions e = all_ext();
  e.max_size = 1000;
  EXPECT_EQ(mail_ok("FROM:<a@b.example> SIZE=1000", e).params.size.value(), 1000u);
  EXPECT_REPLY(mail_err("FROM:<a@b.example> SIZE=1001", e), 552, "5.3.4");
  // 20 digits that do not fit in 64 bits: over any limit.
  EXPECT_REPLY(mail_err("FROM:<a@b.example> SIZE=99999999999999999999", e), 552, "5.3.4");
  EXPECT_REPLY(mail_err("FROM:<a@b.example> SIZE=99999999999999999999"), 552, "5.3.4");
  // no limit configured
  EXPECT_EQ(mail_ok("FROM:<a@b.example> SIZE=99999999999").params.size.value(), 99999999999u);
}

TEST(Mail, Rfc6152_Rfc3030_Body) {
  auto m = mail_ok("FROM:<a@b.example> BODY=8bitmime");
  EXPECT_EQ(m.params.body, Body::EightBitMime);
  EXPECT_TRUE(m.params.body_given);
  EXPECT_EQ(mail_ok("FROM:<a@b.example> BODY=7bit").params.body, Body::SevenBit);
  EXPECT_EQ(mail_ok("FROM:<a@b.example> BODY=BinaryMIME").params.body, Body::BinaryMime);
  EXPECT_REPLY(mail_err("FROM:<a@b.example> BODY=9BIT"), 501, "5.5.4");
  EXPECT_REPLY(mail_err("FROM:<a@b.example> BODY"), 501, "5.5.4");
  Extensions nochunk = all_ext();
  nochunk.chunking = false;
  EXPECT_REPLY(mail_err("FROM:<a@b.example> BODY=BINARYMIME", nochunk), 555, "5.5.4");
  EXPECT_EQ(mail_ok("FROM:<a@b.example> BODY=8BITMIME", nochunk).params.body, Body::EightBitMime);
  Extensions no8 = all_ext();
  no8.eightbitmime = false;
  EXPECT_REPLY(mail_err("FROM:<a@b.example> BODY=8BITMIME", no8), 555, "5.5.4");
  EXPECT_EQ(mail_ok("FROM:<a@b.example> BODY=BINARYMIME", no8).params.body, Body::BinaryMime);
}

TEST(Mail, Rfc3461_4_3_Ret) {
  EXPECT_EQ(mail_ok("FROM:<a@b.example> RET=FULL").params.ret, Ret::Full);
  EXPECT_EQ(mail_ok("FROM:<a@b.example> ret=hdrs").params.ret, Ret::Hdrs);
  EXPECT_REPLY(mail_err("FROM:<a@b.example> RET=BOTH"), 501, "5.5.4");
  EXPECT_REPLY(mail_err("FROM:<a@b.example> RET"), 501, "5.5.4");
}

TEST(Mail, Rfc3461_4_4_Envid) {
  EXPECT_EQ(mail_ok("FROM:<a@b.example> ENVID=QQ314159+2B1").params.envid, "QQ314159+1");
  EXPECT_EQ(mail_ok("FROM:<a@b.example> ENVID=a+20b").params.envid, "a b");
  std::string ok100(100, 'x'), bad101(101, 'x');
  EXPECT_EQ(mail_ok("FROM:<a@b.example> ENVID=" + ok100).params.envid, ok100);
  EXPECT_REPLY(mail_err("FROM:<a@b.example> ENVID=" + bad101), 501, "5.5.4");
  EXPECT_REPLY(mail_err("FROM:<a@b.example> ENVID=a+2"), 501, "5.5.4");
  EXPECT_REPLY(mail_err("FROM:<a@b.example> ENVID=a+2b"), 501, "5.5.4");  // lower case hex
  EXPECT_REPLY(mail_err("FROM:<a@b.example> ENVID=a+0D+0Ab"), 501, "5.5.4");  // CR LF decoded
  EXPECT_REPLY(mail_err("FROM:<a@b.example> ENVID"), 501, "5.5.4");
}

TEST(Mail, Rfc4954_5_AuthParam) {
  EXPECT_EQ(mail_ok("FROM:<a@b.example> AUTH=<>").params.auth, "<>");
  EXPECT_EQ(mail_ok("FROM:<a@b.example> AUTH=e+3Dmc2@example.com").params.auth, "e=mc2@example.com");
  EXPECT_REPLY(mail_err("FROM:<a@b.example> AUTH=a+0Ab"), 501, "5.5.4");
  EXPECT_REPLY(mail_err("FROM:<a@b.example> AUTH=a+FFb"), 501, "5.5.4");  // not UTF-8
  EXPECT_REPLY(mail_err("FROM:<a@b.example> AUTH"), 501, "5.5.4");
  Extensions noauth = all_ext();
  noauth.auth = false;
  EXPECT_REPLY(mail_err("FROM:<a@b.example> AUTH=<>", noauth), 555, "5.5.4");
}

TEST(Mail, AllParamsTogether) {
  Extensions e = all_ext();
  e.max_size = 1 << 20;
  auto m = mail_ok(
      "FROM:<j\xC3\xB6rg@example.com> SIZE=1000 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=id1 "
      "AUTH=<>",
      e);
  EXPECT_EQ(m.params.size.value(), 1000u);
  EXPECT_EQ(m.params.body, Body::EightBitMime);
  EXPECT_TRUE(m.params.smtputf8);
  EXPECT_EQ(m.params.ret, Ret::Hdrs);
  EXPECT_EQ(m.params.envid, "id1");
  EXPECT_EQ(m.params.auth, "<>");
}

// --- RCPT TO ----------------------------------------------------------------------------

TEST(Rcpt, Rfc5321_4_1_1_3_Basic) {
  auto r = rcpt_ok("TO:<user@example.com>");
  EXPECT_EQ(r.rcpt.str(), "user@example.com");
  EXPECT_EQ(r.params.notify, kNotifyNone);
  EXPECT_EQ(rcpt_ok("to: <user@example.com>").rcpt.str(), "user@example.com");
  auto sr = rcpt_ok("TO:<@relay.example:user@example.com>");
  EXPECT_EQ(sr.rcpt.str(), "user@example.com");
}

TEST(Rcpt, Rfc3463_MissingToIs5_5_2) {
  EXPECT_REPLY(rcpt_err("<a@b.example>"), 501, "5.5.2");
  EXPECT_REPLY(rcpt_err("FROM:<a@b.example>"), 501, "5.5.2");
  EXPECT_REPLY(rcpt_err(""), 501, "5.5.2");
  EXPECT_EQ(rcpt_err("T:<a@b>").lines[0], "Syntax: RCPT TO:<address>");
}

TEST(Rcpt, Rfc3463_BadRecipientIs5_1_3) {
  EXPECT_REPLY(rcpt_err("TO:<>"), 501, "5.1.3");
  EXPECT_REPLY(rcpt_err("TO:user@example.com"), 501, "5.1.3");
  EXPECT_REPLY(rcpt_err("TO:<user@exa_mple.com>"), 501, "5.1.3");
  EXPECT_REPLY(rcpt_err("TO:<" + std::string(65, 'a') + "@example.com>"), 501, "5.1.3");
  EXPECT_REPLY(rcpt_err("TO:<a\xFF@example.com>", true), 501, "5.1.3");
}

TEST(Rcpt, Rfc6531_3_5_Utf8RecipientNeedsSmtputf8) {
  EXPECT_REPLY(rcpt_err("TO:<j\xC3\xB6rg@example.com>", false), 553, "5.6.7");
  EXPECT_TRUE(rcpt_ok("TO:<j\xC3\xB6rg@example.com>", true).rcpt.needs_utf8());
}

TEST(Rcpt, Rfc3461_4_1_Notify) {
  EXPECT_EQ(rcpt_ok("TO:<a@b.example> NOTIFY=NEVER").params.notify, kNotifyNever);
  EXPECT_EQ(rcpt_ok("TO:<a@b.example> NOTIFY=success,Failure").params.notify,
            kNotifySuccess | kNotifyFailure);
  EXPECT_EQ(rcpt_ok("TO:<a@b.example> NOTIFY=DELAY,SUCCESS,FAILURE").params.notify,
            kNotifySuccess | kNotifyFailure | kNotifyDelay);
  EXPECT_REPLY(rcpt_err("TO:<a@b.example> NOTIFY=NEVER,SUCCESS"), 501, "5.5.4");
  EXPECT_REPLY(rcpt_err("TO:<a@b.example> NOTIFY=SUCCESS,NEVER"), 501, "5.5.4");
  EXPECT_REPLY(rcpt_err("TO:<a@b.example> NOTIFY=SUCCESS,"), 501, "5.5.4");
  EXPECT_REPLY(rcpt_err("TO:<a@b.example> NOTIFY=,SUCCESS"), 501, "5.5.4");
  EXPECT_REPLY(rcpt_err("TO:<a@b.example> NOTIFY=ALWAYS"), 501, "5.5.4");
  EXPECT_REPLY(rcpt_err("TO:<a@b.example> NOTIFY"), 501, "5.5.4");
}

TEST(Rcpt, Rfc3461_4_2_Orcpt) {
  auto r = rcpt_ok("TO:<a@b.example> ORCPT=rfc822;Bob+2Bx@b.example");
  EXPECT_EQ(r.params.orcpt_type, "rfc822");
  EXPECT_EQ(r.params.orcpt, "Bob+x@b.example");
  EXPECT_EQ(rcpt_ok("TO:<a@b.example> ORCPT=RFC822;a@b").params.orcpt_type, "rfc822");
  EXPECT_REPLY(rcpt_err("TO:<a@b.example> ORCPT=a@b.example"), 501, "5.5.4");      // no type
  EXPECT_REPLY(rcpt_err("TO:<a@b.example> ORCPT=;a@b.example"), 501, "5.5.4");     // empty type
  EXPECT_REPLY(rcpt_err("TO:<a@b.example> ORCPT=rfc822;"), 501, "5.5.4");          // empty addr
  EXPECT_REPLY(rcpt_err("TO:<a@b.example> ORCPT=rfc822;a+ZZ"), 501, "5.5.4");      // bad xtext
  EXPECT_REPLY(rcpt_err("TO:<a@b.example> ORCPT=rfc822;a+0Db"), 501, "5.5.4");     // CR decoded
  EXPECT_REPLY(rcpt_err("TO:<a@b.example> ORCPT=rfc(822;a@b"), 501, "5.5.4");      // not an atom
  EXPECT_REPLY(rcpt_err("TO:<a@b.example> ORCPT"), 501, "5.5.4");
  std::string big = "TO:<a@b.example> ORCPT=rfc822;" + std::string(493, 'x');
  EXPECT_EQ(rcpt_ok(big).params.orcpt.size(), 493u);  // 7 + 493 = 500: the limit
  EXPECT_REPLY(rcpt_err(big + "x"), 501, "5.5.4");
}

TEST(Rcpt, Rfc6533_OrcptUtf8Type) {
  auto r = rcpt_ok("TO:<a@b.example> ORCPT=utf-8;j\\x{F6}rg@example.com");
  EXPECT_EQ(r.params.orcpt_type, "utf-8");
  EXPECT_EQ(r.params.orcpt, "j\xC3\xB6rg@example.com");
  EXPECT_EQ(rcpt_ok("TO:<a@b.example> ORCPT=UTF-8;\\x{1F600}@x").params.orcpt,
            "\xF0\x9F\x98\x80@x");
  // raw UTF-8 only with SMTPUTF8 (utf-8-addr-unitext)
  EXPECT_EQ(rcpt_ok("TO:<a@b.example> ORCPT=utf-8;j\xC3\xB6rg@x", true).params.orcpt,
            "j\xC3\xB6rg@x");
  EXPECT_REPLY(rcpt_err("TO:<a@b.example> ORCPT=utf-8;j\xC3\xB6rg@x", false), 501, "5.5.4");
  EXPECT_REPLY(rcpt_err("TO:<a@b.example> ORCPT=utf-8;\\x{D800}@x"), 501, "5.5.4");
  EXPECT_REPLY(rcpt_err("TO:<a@b.example> ORCPT=utf-8;\\x{110000}@x"), 501, "5.5.4");
  EXPECT_REPLY(rcpt_err("TO:<a@b.example> ORCPT=utf-8;\\x{0A}@x"), 501, "5.5.4");
  EXPECT_REPLY(rcpt_err("TO:<a@b.example> ORCPT=utf-8;\\x{F6@x"), 501, "5.5.4");
  EXPECT_REPLY(rcpt_err("TO:<a@b.example> ORCPT=utf-8;\\y"), 501, "5.5.4");
  EXPECT_REPLY(rcpt_err("TO:<a@b.example> ORCPT=utf-8;a+C2+85b"), 501, "5.5.4");  // C1 control
  EXPECT_REPLY(rcpt_err("TO:<a@b.example> ORCPT=utf-8;a+FFb"), 501, "5.5.4");     // not UTF-8
}

TEST(Rcpt, Rfc5321_4_1_1_11_UnknownAndUnofferedParams) {
  EXPECT_REPLY(rcpt_err("TO:<a@b.example> SIZE=10"), 555, "5.5.4");
  EXPECT_REPLY(rcpt_err("TO:<a@b.example> XFOO"), 555, "5.5.4");
  Extensions nodsn = all_ext();
  nodsn.dsn = false;
  EXPECT_REPLY(rcpt_err("TO:<a@b.example> NOTIFY=NEVER", false, nodsn), 555, "5.5.4");
  EXPECT_REPLY(rcpt_err("TO:<a@b.example> ORCPT=rfc822;a@b", false, nodsn), 555, "5.5.4");
}

TEST(Rcpt, DuplicateParamAndSyntax) {
  EXPECT_REPLY(rcpt_err("TO:<a@b.example> NOTIFY=NEVER NOTIFY=NEVER"), 501, "5.5.4");
  EXPECT_REPLY(rcpt_err("TO:<a@b.example>NOTIFY=NEVER"), 501, "5.5.4");
  auto ok = rcpt_ok("TO:<a@b.example>  NOTIFY=NEVER  ORCPT=rfc822;a@b.example ");
  EXPECT_EQ(ok.params.notify, kNotifyNever);
  EXPECT_EQ(ok.params.orcpt, "a@b.example");
}

// --- BDAT, RFC 3030 2 -------------------------------------------------------------------

TEST(Bdat, Rfc3030_2_SizeAndLast) {
  auto ok = [](std::string_view a) {
    auto r = parse_bdat(a);
    EXPECT_TRUE(std::holds_alternative<Bdat>(r)) << a;
    return std::holds_alternative<Bdat>(r) ? std::get<Bdat>(r) : Bdat{};
  };
  EXPECT_EQ(ok("1000").size, 1000u);
  EXPECT_FALSE(ok("1000").last);
  EXPECT_TRUE(ok("0 LAST").last);
  EXPECT_TRUE(ok("12 last").last);
  EXPECT_EQ(ok("18446744073709551615 LAST").size, 18446744073709551615ull);
}

TEST(Bdat, Rfc3030_2_Malformed) {
  for (const char* bad : {"", "LAST", "-1", "1.5", "abc", "10 LASTX", "10 FIRST", "10 LAST x",
                          "18446744073709551616", "123456789012345678901", " 10", "10x",
                          "0x10"}) {
    auto r = parse_bdat(bad);
    ASSERT_TRUE(std::holds_alternative<Reply>(r)) << bad;
    EXPECT_REPLY(std::get<Reply>(r), 501, "5.5.4");
  }
}

// --- HELO/EHLO argument, RFC 5321 4.1.1.1 ----------------------------------------------

TEST(Helo, Rfc5321_4_1_1_1_ValidHeloArg) {
  EXPECT_TRUE(valid_helo_arg("mail.example.com"));
  EXPECT_TRUE(valid_helo_arg("[192.0.2.1]"));
  EXPECT_TRUE(valid_helo_arg("[IPv6:2001:db8::1]"));
  EXPECT_TRUE(valid_helo_arg("not_a_valid_domain!"));  // liberal: logged only
  EXPECT_FALSE(valid_helo_arg(""));
  EXPECT_FALSE(valid_helo_arg("two words"));
  EXPECT_FALSE(valid_helo_arg("tab\there"));
  EXPECT_FALSE(valid_helo_arg("crlf\r\nX-Injected: 1"));
  EXPECT_FALSE(valid_helo_arg(std::string_view("nul\0", 4)));
  EXPECT_FALSE(valid_helo_arg("del\x7f"));
  EXPECT_FALSE(valid_helo_arg("h\xC3\xA9llo"));
  EXPECT_TRUE(valid_helo_arg(std::string(255, 'a')));
  EXPECT_FALSE(valid_helo_arg(std::string(256, 'a')));
}

// --- xtext, RFC 3461 4 ------------------------------------------------------------------

TEST(Xtext, Rfc3461_4_Decode) {
  EXPECT_EQ(xtext_decode("").value(), "");
  EXPECT_EQ(xtext_decode("abc").value(), "abc");
  EXPECT_EQ(xtext_decode("a+2Bb+3D").value(), "a+b=");
  EXPECT_EQ(xtext_decode("+00").value(), std::string(1, '\0'));
  EXPECT_EQ(xtext_decode("+FF").value(), "\xFF");
  EXPECT_FALSE(xtext_decode("+"));
  EXPECT_FALSE(xtext_decode("+4"));
  EXPECT_FALSE(xtext_decode("+4g"));
  EXPECT_FALSE(xtext_decode("+ff"));  // hexchar uses upper case only
  EXPECT_FALSE(xtext_decode("a=b"));
  EXPECT_FALSE(xtext_decode("a b"));
  EXPECT_FALSE(xtext_decode("a\x7f"));
  EXPECT_FALSE(xtext_decode("\xC3\xA9"));
}

TEST(Xtext, Rfc3461_4_EncodeRoundTrip) {
  EXPECT_EQ(xtext_encode("a+b=c d"), "a+2Bb+3Dc+20d");
  EXPECT_EQ(xtext_encode(std::string("\0\x7f\xff", 3)), "+00+7F+FF");
  std::string all;
  for (int c = 0; c < 256; ++c) all += static_cast<char>(c);
  EXPECT_EQ(xtext_decode(xtext_encode(all)).value(), all);
}
