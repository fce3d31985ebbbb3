// Tests for src/filter/milter_proto: packet framing, OPTNEG, the client's dialogue with
// byte-exact packets, replies (accept, reject, tempfail, discard, replycode, quarantine,
// progress, skip), header edits and their application, malformed and oversize replies.
#include "filter/milter_proto.hpp"

#include <gtest/gtest.h>

namespace carrier::filter::milter {
namespace {

using namespace std::string_literals;

std::string be32(std::uint32_t v) {
  std::string s;
  s += static_cast<char>(v >> 24);
  s += static_cast<char>(v >> 16);
  s += static_cast<char>(v >> 8);
  s += static_cast<char>(v);
  return s;
}

std::string optneg_reply(std::uint32_t version, std::uint32_t actions, std::uint32_t protocol,
                         std::string extra = {}) {
  return encode(cmd::OptNeg, be32(version) + be32(actions) + be32(protocol) + extra);
}

MessageInfo info() {
  MessageInfo m;
  m.client_name = "client.example";
  m.family = '4';
  m.port = 0x1234;
  m.address = "192.0.2.7";
  m.helo = "helo.example";
  m.sender = "<a@example.org>";
  m.mail_args = {"SIZE=10"};
  m.rcpts = {"<b@example.net>", "<c@example.net>"};
  m.head = "Subject: hi\r\nX-Folded: one\r\n\ttwo\r\n\r\n";
  m.connect_macros = {{"j", "mx.example.net"}, {"{daemon_name}", "carrier"}};
  m.mail_macros = {{"i", "QID1"}};
  return m;
}

// Every step except end of body waits for no reply: the whole dialogue up to the body goes at once.
constexpr std::uint32_t kAllNr = pf::NrConn | pf::NrHelo | pf::NrMail | pf::NrRcpt | pf::NrData |
                                 pf::NrHdr | pf::NrEoh | pf::NrBody;

TEST(MilterFraming, EncodesLengthCommandData) {
  EXPECT_EQ(encode('Q'), "\0\0\0\x01Q"s);
  EXPECT_EQ(encode('B', "ab"), "\0\0\0\x03" "Bab"s);
}

TEST(MilterFraming, DecodesInPiecesAndRefusesZeroAndOversize) {
  Decoder d;
  const std::string two = encode('c') + encode('h', "X\0y\0"s);
  for (char c : two) ASSERT_TRUE(d.feed(std::string_view(&c, 1)));
  auto a = d.next();
  ASSERT_TRUE(a);
  EXPECT_EQ(a->cmd, 'c');
  EXPECT_EQ(a->data, "");
  auto b = d.next();
  ASSERT_TRUE(b);
  EXPECT_EQ(b->cmd, 'h');
  EXPECT_EQ(b->data, "X\0y\0"s);
  EXPECT_FALSE(d.next());

  Decoder z;
  EXPECT_FALSE(z.feed("\0\0\0\0"s));
  EXPECT_NE(z.error().find("length 0"), std::string::npos);

  Decoder big;
  EXPECT_FALSE(big.feed(be32(kMaxPacket + 1)));  // refused before any of it is buffered
  EXPECT_TRUE(big.failed());
  Decoder max;
  EXPECT_TRUE(max.feed(be32(kMaxPacket) + "b" + std::string(kMaxPacket - 1, 'x')));
  auto p = max.next();
  ASSERT_TRUE(p);
  EXPECT_EQ(p->data.size(), kMaxPacket - 1);
}

TEST(MilterClient, SendsOptNegFirst) {
  Client c(info());
  EXPECT_EQ(c.out(), "\0\0\0\x0dO"s + be32(6) + be32(act::Offered) + be32(pf::Offered));
  EXPECT_EQ(act::Offered, 0x131u);
  EXPECT_EQ(pf::Offered, 0x1FF7FFu);
  EXPECT_EQ(c.want(), Client::Want::Read);
}

TEST(MilterClient, FullDialogueByteExact) {
  Client c(info());
  c.out().clear();
  c.on_input(optneg_reply(6, act::AddHdrs, 0));
  ASSERT_FALSE(c.failed()) << c.error();
  // CONNECT with its macros: hostname, family, port (big-endian), address.
  EXPECT_EQ(c.out(), encode('D', "Cj\0mx.example.net\0{daemon_name}\0carrier\0"s) +
                         encode('C', "client.example\0" "4\x12\x34" "192.0.2.7\0"s));
  c.out().clear();
  c.on_input(encode('c'));
  EXPECT_EQ(c.out(), encode('H', "helo.example\0"s));
  c.out().clear();
  c.on_input(encode('c'));
  EXPECT_EQ(c.out(), encode('D', "Mi\0QID1\0"s) + encode('M', "<a@example.org>\0SIZE=10\0"s));
  c.out().clear();
  c.on_input(encode('c'));
  EXPECT_EQ(c.out(), encode('D', "R{rcpt_addr}\0b@example.net\0"s) + encode('R', "<b@example.net>\0"s));
  c.out().clear();
  c.on_input(encode('c'));
  EXPECT_EQ(c.out(), encode('D', "R{rcpt_addr}\0c@example.net\0"s) + encode('R', "<c@example.net>\0"s));
  c.out().clear();
  c.on_input(encode('c'));
  EXPECT_EQ(c.out(), encode('T'));
  c.out().clear();
  c.on_input(encode('c'));
  // Leading space dropped, folded lines joined by LF.
  EXPECT_EQ(c.out(), encode('L', "Subject\0hi\0"s));
  c.out().clear();
  c.on_input(encode('c'));
  EXPECT_EQ(c.out(), encode('L', "X-Folded\0one\n\ttwo\0"s));
  c.out().clear();
  c.on_input(encode('c'));
  EXPECT_EQ(c.out(), encode('N'));
  c.out().clear();
  c.on_input(encode('c'));
  ASSERT_EQ(c.want(), Client::Want::Body);
  c.body("line\r\n");
  EXPECT_EQ(c.out(), encode('B', "line\r\n"));
  EXPECT_EQ(c.want(), Client::Want::Read);
  c.out().clear();
  c.on_input(encode('c'));
  ASSERT_EQ(c.want(), Client::Want::Body);
  c.body_end();
  EXPECT_EQ(c.out(), encode('E'));
  c.out().clear();
  c.on_input(encode('p') + encode('h', "X-Spam\0no\0"s) + encode('c'));
  ASSERT_EQ(c.want(), Client::Want::Done);
  EXPECT_FALSE(c.failed());
  EXPECT_EQ(c.out(), encode('Q'));
  EXPECT_EQ(c.outcome().decision, Decision::Accept);
  ASSERT_EQ(c.outcome().edits.size(), 1u);
  EXPECT_EQ(c.outcome().edits[0].name, "X-Spam");
  EXPECT_EQ(c.outcome().at, "end-of-body");
}

TEST(MilterClient, NoReplyFlagsSendEverythingAtOnceAndOmitSteps) {
  Client c(info());
  c.out().clear();
  c.on_input(optneg_reply(6, 0, kAllNr | pf::NoHelo | pf::NoRcpt | pf::NoHdrs));
  ASSERT_EQ(c.want(), Client::Want::Body);
  EXPECT_EQ(c.out(), encode('D', "Cj\0mx.example.net\0{daemon_name}\0carrier\0"s) +
                         encode('C', "client.example\0" "4\x12\x34" "192.0.2.7\0"s) +
                         encode('D', "Mi\0QID1\0"s) + encode('M', "<a@example.org>\0SIZE=10\0"s) +
                         encode('T') + encode('N'));
  c.out().clear();
  c.body("a");
  c.body("b");
  EXPECT_EQ(c.want(), Client::Want::Body);
  c.body_end();
  EXPECT_EQ(c.out(), encode('B', "a") + encode('B', "b") + encode('E'));
}

TEST(MilterClient, BytesArrivingDuringTheBodyWaitForTheNextReply) {
  Client c(info());
  // OPTNEG reply and, early, the final reply: it is read only after the end of the body.
  c.on_input(optneg_reply(6, 0, kAllNr) + encode('y', "550 5.7.1 no\0"s));
  ASSERT_EQ(c.want(), Client::Want::Body);
  c.body("x");
  EXPECT_EQ(c.want(), Client::Want::Body);
  c.body_end();
  EXPECT_EQ(c.want(), Client::Want::Done);
  EXPECT_FALSE(c.failed());
  EXPECT_EQ(c.outcome().decision, Decision::Reject);
}

TEST(MilterClient, NoBodySkipsToEndOfBody) {
  Client c(info());
  c.out().clear();
  c.on_input(optneg_reply(6, 0, kAllNr | pf::NoBody | pf::NoConnect | pf::NoMail | pf::NoHelo |
                                    pf::NoRcpt | pf::NoData | pf::NoHdrs | pf::NoEoh));
  EXPECT_EQ(c.want(), Client::Want::Read);
  EXPECT_EQ(c.out(), encode('E'));
}

TEST(MilterClient, MacroListLimitsWhatIsSent) {
  Client c(info());
  c.out().clear();
  // SMFIM_CONNECT (0): only {daemon_name}; SMFIM_ENVFROM (2): a macro carrier lacks.
  c.on_input(optneg_reply(6, act::SetSymList, kAllNr | pf::NoHelo | pf::NoRcpt | pf::NoData | pf::NoHdrs | pf::NoEoh,
                          be32(0) + "{daemon_name}\0"s + be32(2) + "{auth_authen}\0"s));
  ASSERT_FALSE(c.failed()) << c.error();
  EXPECT_EQ(c.out(), encode('D', "C{daemon_name}\0carrier\0"s) +
                         encode('C', "client.example\0" "4\x12\x34" "192.0.2.7\0"s) +
                         encode('M', "<a@example.org>\0SIZE=10\0"s));
}

TEST(MilterClient, SkipJumpsToEndOfBody) {
  Client c(info());
  c.on_input(optneg_reply(6, 0, (kAllNr & ~pf::NrBody) | pf::Skip));
  c.out().clear();
  ASSERT_EQ(c.want(), Client::Want::Body);
  c.body("x");
  c.out().clear();
  c.on_input(encode('s'));
  EXPECT_EQ(c.want(), Client::Want::Read);
  EXPECT_EQ(c.out(), encode('E'));
}

TEST(MilterClient, SkipWithoutNegotiationFails) {
  Client c(info());
  c.on_input(optneg_reply(6, 0, kAllNr & ~pf::NrBody));
  c.body("x");
  c.on_input(encode('s'));
  EXPECT_TRUE(c.failed());
}

Client at_eob(std::uint32_t actions = act::Offered) {
  Client c(info());
  c.on_input(optneg_reply(6, actions, kAllNr));
  c.body_end();
  c.out().clear();
  return c;
}

TEST(MilterClient, ReplyCodeRejects) {
  auto c = at_eob();
  c.on_input(encode('y', "554 5.7.1 Spam message rejected\0"s));
  ASSERT_FALSE(c.failed());
  EXPECT_EQ(c.outcome().decision, Decision::Reject);
  EXPECT_EQ(c.outcome().reply.code, 554);
  EXPECT_EQ(c.outcome().reply.status, "5.7.1");
  EXPECT_EQ(c.outcome().reply.lines, std::vector<std::string>{"Spam message rejected"});
  EXPECT_EQ(c.out(), encode('Q'));
}

TEST(MilterClient, ReplyCode4xxIsTempFail) {
  auto c = at_eob();
  c.on_input(encode('y', "451-4.7.1 first\r\n451 4.7.1 second\0"s));
  EXPECT_EQ(c.outcome().decision, Decision::TempFail);
  EXPECT_EQ(c.outcome().reply.code, 451);
  EXPECT_EQ(c.outcome().reply.lines, (std::vector<std::string>{"first", "second"}));
}

TEST(MilterClient, PlainRejectTempfailDiscardDefaults) {
  auto r = at_eob();
  r.on_input(encode('r'));
  EXPECT_EQ(r.outcome().decision, Decision::Reject);
  EXPECT_EQ(r.outcome().reply.code, 550);
  EXPECT_EQ(r.outcome().reply.status, "5.7.1");
  auto t = at_eob();
  t.on_input(encode('t'));
  EXPECT_EQ(t.outcome().decision, Decision::TempFail);
  EXPECT_EQ(t.outcome().reply.code, 451);
  EXPECT_EQ(t.outcome().reply.status, "4.7.1");
  auto d = at_eob();
  d.on_input(encode('h', "A\0b\0"s) + encode('d'));
  EXPECT_EQ(d.outcome().decision, Decision::Discard);
  EXPECT_TRUE(d.outcome().edits.empty());
}

TEST(MilterClient, RejectAtRcptEndsDialogue) {
  Client c(info());
  c.on_input(optneg_reply(6, 0, pf::NrConn | pf::NrHelo | pf::NrMail));
  c.out().clear();
  c.on_input(encode('y', "550 5.1.1 no such user\0"s));
  EXPECT_EQ(c.want(), Client::Want::Done);
  EXPECT_EQ(c.outcome().decision, Decision::Reject);
  EXPECT_EQ(c.outcome().at, "rcpt");
  EXPECT_EQ(c.out(), encode('Q'));
}

TEST(MilterClient, AcceptEarlyMeansNoChanges) {
  Client c(info());
  c.on_input(optneg_reply(6, 0, 0));
  c.on_input(encode('a'));
  EXPECT_EQ(c.want(), Client::Want::Done);
  EXPECT_EQ(c.outcome().decision, Decision::Accept);
  EXPECT_EQ(c.outcome().at, "connect");
}

TEST(MilterClient, QuarantineAndEditsAndIgnoredActions) {
  auto c = at_eob();
  c.on_input(encode('q', "looks bad\0"s) + encode('i', be32(0) + "X-Top\0t\0"s) +
             encode('m', be32(1) + "Subject\0\0"s) + encode('e', "<x@y>\0"s) +
             encode('+', "<z@y>\0"s) + encode('+', "<w@y>\0"s) + encode('b', "new body") +
             encode('a'));
  ASSERT_FALSE(c.failed()) << c.error();
  EXPECT_EQ(c.outcome().decision, Decision::Accept);
  EXPECT_EQ(c.outcome().quarantine, "looks bad");
  ASSERT_EQ(c.outcome().edits.size(), 2u);
  EXPECT_EQ(c.outcome().edits[0].op, HeaderEdit::Op::Insert);
  EXPECT_EQ(c.outcome().edits[1].op, HeaderEdit::Op::Change);
  EXPECT_EQ(c.outcome().edits[1].value, "");
  EXPECT_EQ(c.outcome().ignored, (std::vector<std::string>{"chgfrom", "addrcpt", "replbody"}));
}

TEST(MilterClient, MalformedRepliesFail) {
  const std::vector<std::string> bad = {
      encode('h', "NoValue\0"s),            // one string only
      encode('h', "A\0b\0trailing"s),       // bytes after the last NUL
      encode('h', "Bad Name\0v\0"s),        // space in the field name
      encode('h', "Bad:Name\0v\0"s),        // colon
      encode('h', "\0v\0"s),                // empty name
      encode('i', "\0\0"s),                 // index too short
      encode('y', "250 2.0.0 ok\0"s),       // not 4xx/5xx
      encode('y', "550 5.7.1 no NUL"s),     // unterminated
      encode('y', "550-a\r\n551 b\0"s),     // codes differ
      encode('y', "55\0"s),                 // too short
      encode('q', "reason"s),               // unterminated
      encode('c', "x"s),                    // data where none belongs
      encode('Z'),                          // unknown reply
      "\0\0\0\0"s,                          // zero length
      be32(kMaxPacket + 1) + "h",           // oversize
  };
  for (const auto& b : bad) {
    auto c = at_eob();
    c.on_input(b);
    EXPECT_TRUE(c.failed()) << testing::PrintToString(b);
    EXPECT_EQ(c.want(), Client::Want::Done);
  }
}

TEST(MilterClient, ModificationBeforeEndOfBodyFails) {
  Client c(info());
  c.on_input(optneg_reply(6, 0, 0));
  c.on_input(encode('h', "A\0b\0"s));
  EXPECT_TRUE(c.failed());
}

TEST(MilterClient, BadOptNeg) {
  for (const auto& r : {optneg_reply(7, 0, 0), optneg_reply(1, 0, 0), encode('O', "short"),
                        encode('c'), optneg_reply(6, 0, 0, be32(9) + "x\0"s),
                        optneg_reply(6, 0, 0, be32(0) + "no-nul"s)}) {
    Client c(info());
    c.on_input(r);
    EXPECT_TRUE(c.failed()) << testing::PrintToString(r);
  }
}

TEST(MilterClient, UnofferedProtocolBitsAreIgnored) {
  Client c(info());
  c.on_input(optneg_reply(6, 0xffff, kAllNr | pf::RcptRej | pf::Mds1M | 0x80000000u));
  EXPECT_FALSE(c.failed());
  EXPECT_EQ(c.milter_protocol(), kAllNr);
  EXPECT_EQ(c.milter_actions(), 0xffffu);
}

TEST(MilterClient, ClosedEarlyFails) {
  Client c(info());
  c.on_closed("connection closed");
  EXPECT_TRUE(c.failed());
  EXPECT_EQ(c.error(), "connection closed");
}

TEST(MilterClient, UnknownFamilyHasNoPortOrAddress) {
  auto m = info();
  m.family = 'U';
  m.connect_macros.clear();
  Client c(m);
  c.out().clear();
  c.on_input(optneg_reply(6, 0, 0));
  EXPECT_EQ(c.out(), encode('C', "client.example\0U"s));
}

TEST(MilterHeaders, SplitKeepsLeadingSpaceWhenAsked) {
  auto h = split_header("A:  x\r\nB:y\r\n\r\n", true);
  ASSERT_EQ(h.size(), 2u);
  EXPECT_EQ(h[0].second, "  x");
  EXPECT_EQ(h[1].second, "y");
  auto n = split_header("A:  x\r\n", false);
  EXPECT_EQ(n[0].second, "x");
}

TEST(MilterHeaders, ApplyEditsSendmailSemantics) {
  std::string head = "Received: r\r\nSubject: one\r\nX-A: 1\r\nx-a: 2\r\n\r\n";
  apply_header_edits(head,
                     {{HeaderEdit::Op::Add, 0, "X-Spam", "yes"},
                      {HeaderEdit::Op::Insert, 0, "X-First", "f"},
                      {HeaderEdit::Op::Insert, 99, "X-Late", "l"},
                      {HeaderEdit::Op::Change, 2, "X-A", "two\n more"},
                      {HeaderEdit::Op::Change, 0, "subject", ""},
                      {HeaderEdit::Op::Change, 3, "X-A", "added"},
                      {HeaderEdit::Op::Change, 1, "X-None", ""}},
                     false);
  EXPECT_EQ(head,
            "X-First: f\r\nReceived: r\r\nX-A: 1\r\nX-A: two\r\n more\r\nX-Spam: yes\r\n"
            "X-Late: l\r\nX-A: added\r\n\r\n");
}

TEST(MilterHeaders, ValuesCannotEndTheHeaderSection) {
  std::string head = "A: 1\r\n\r\n";
  apply_header_edits(head, {{HeaderEdit::Op::Add, 0, "X", "a\r\n\r\nBody: injected\rx\n\n"}}, true);
  EXPECT_EQ(head, "A: 1\r\nX:a\r\n\tBody: injectedx\r\n\r\n");
}

TEST(MilterHeaders, NoEmptyLineWithoutBody) {
  std::string head = "A: 1\r\n";
  apply_header_edits(head, {{HeaderEdit::Op::Add, 0, "B", "2"}}, false);
  EXPECT_EQ(head, "A: 1\r\nB: 2\r\n");
}

}  // namespace
}  // namespace carrier::filter::milter
