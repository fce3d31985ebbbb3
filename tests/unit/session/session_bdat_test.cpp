// carrier session tests: CHUNKING and BINARYMIME (RFC 3030 2, 3, 4.2): the first BDAT opens
// the message, every chunk is answered 250 2.0.0, LAST commits; DATA and BDAT do not mix;
// BINARYMIME requires BDAT; a failed chunk makes every later chunk fail until LAST (the bytes
// are still read and discarded); a BDAT without a valid size cannot be skipped and closes the
// session; BDAT 0 LAST. Sizes: RFC 1870 / RFC 5321 4.5.3.1.10 (552 5.3.4).
#include <gtest/gtest.h>

#include <string>

#include "session_harness.hpp"

namespace carrier::session::test {
namespace {

void to_rcpt(Smtp& t, std::string_view mail = "MAIL FROM:<sender@client.example>") {
  t.greet();
  ASSERT_TRUE(reply_is(t.C(mail), "250 2.1.0"));
  ASSERT_TRUE(reply_is(t.C("RCPT TO:<alice@localhost>"), "250 2.1.5"));
}

TEST_F(SessionTest, BdatChunksThenLastCommits) {  // RFC 3030 2, 4.2 (example)
  Smtp t;
  to_rcpt(t);
  // C: BDAT 10 → the first chunk opens the spool writer before its bytes are read.
  EXPECT_EQ(t.C("BDAT 10"), "");
  EXPECT_EQ(t.want(), Want::OpenMessage);
  EXPECT_EQ(t.state(), State::Bdat);
  EXPECT_EQ(t.opened(), "");  // no 354 for BDAT
  EXPECT_EQ(t.want(), Want::Bdat);
  EXPECT_EQ(t.s().bdat_remaining(), 10u);
  EXPECT_FALSE(t.s().discarding());
  EXPECT_FALSE(t.s().bdat_last());
  EXPECT_TRUE(reply_is(t.chunk_end(content(10)), "250 2.0.0"));
  EXPECT_EQ(t.want(), Want::Line);
  EXPECT_EQ(t.state(), State::Bdat);
  EXPECT_TRUE(t.s().message_open());
  // C: BDAT 5 (a second chunk: no new open)
  EXPECT_EQ(t.C("BDAT 5"), "");
  EXPECT_EQ(t.want(), Want::Bdat);
  EXPECT_EQ(t.s().bdat_remaining(), 5u);
  EXPECT_TRUE(reply_is(t.chunk_end(content(15)), "250 2.0.0"));
  // C: BDAT 3 LAST
  EXPECT_EQ(t.C("BDAT 3 LAST"), "");
  EXPECT_EQ(t.want(), Want::Bdat);
  EXPECT_TRUE(t.s().bdat_last());
  EXPECT_EQ(t.chunk_end(content(18)), "");
  EXPECT_EQ(t.want(), Want::Commit);
  EXPECT_EQ(t.committed("0123456789AB"), "250 2.0.0 Ok: queued as 0123456789AB\r\n");
  EXPECT_EQ(t.want(), Want::Line);
  EXPECT_EQ(t.state(), State::Greeted);
  EXPECT_EQ(t.s().transactions(), 1);
  EXPECT_TRUE(t.env().recipients.empty());
  EXPECT_TRUE(reply_is(t.C("MAIL FROM:<a@b.example>"), "250 2.1.0"));
}

TEST_F(SessionTest, BdatLastIsCaseInsensitiveAndSpacesAreTolerated) {  // RFC 3030 2
  Smtp t;
  to_rcpt(t);
  t.C("BDAT 4  last");
  t.opened();
  EXPECT_TRUE(t.s().bdat_last());
  EXPECT_EQ(t.chunk_end(content(4)), "");
  EXPECT_EQ(t.want(), Want::Commit);
}

TEST_F(SessionTest, BdatZeroLast) {  // RFC 3030 2: "BDAT 0 LAST" ends the message
  Smtp t;
  to_rcpt(t);
  t.C("BDAT 5");
  t.opened();
  t.chunk_end(content(5));
  EXPECT_EQ(t.C("BDAT 0 LAST"), "");
  EXPECT_EQ(t.want(), Want::Bdat);
  EXPECT_EQ(t.s().bdat_remaining(), 0u);
  EXPECT_EQ(t.chunk_end(content(5)), "");
  EXPECT_EQ(t.want(), Want::Commit);
  EXPECT_TRUE(reply_is(t.committed("0123456789AB"), "250 2.0.0 Ok: queued as 0123456789AB"));
}

TEST_F(SessionTest, BdatZeroLastAsTheOnlyChunk) {  // RFC 3030 2: an empty message is valid
  Smtp t;
  to_rcpt(t);
  EXPECT_EQ(t.C("BDAT 0 LAST"), "");
  EXPECT_EQ(t.want(), Want::OpenMessage);
  t.opened();
  EXPECT_EQ(t.want(), Want::Bdat);
  EXPECT_EQ(t.s().bdat_remaining(), 0u);
  EXPECT_EQ(t.chunk_end(content(0)), "");
  EXPECT_EQ(t.want(), Want::Commit);
}

TEST_F(SessionTest, DataAfterBdatIsRefused) {  // RFC 3030 2: DATA and BDAT do not mix
  Smtp t;
  to_rcpt(t);
  t.C("BDAT 10");
  t.opened();
  t.chunk_end(content(10));
  EXPECT_TRUE(reply_is(t.C("DATA"), "503 5.5.1 Error: DATA not allowed after BDAT"));
  EXPECT_EQ(t.state(), State::Bdat);
  EXPECT_TRUE(t.s().message_open());
  EXPECT_TRUE(reply_is(t.C("RCPT TO:<bob@localhost>"), "503 5.5.1"));
  // The transaction goes on with BDAT.
  t.C("BDAT 1 LAST");
  EXPECT_EQ(t.chunk_end(content(11)), "");
  EXPECT_EQ(t.want(), Want::Commit);
}

TEST_F(SessionTest, BinaryMimeRequiresBdat) {  // RFC 3030 3
  Smtp t;
  to_rcpt(t, "MAIL FROM:<a@b.example> BODY=BINARYMIME");
  EXPECT_EQ(t.env().params.body, proto::Body::BinaryMime);
  EXPECT_TRUE(reply_is(t.C("DATA"), "503 5.5.1 Error: BODY=BINARYMIME requires BDAT"));
  EXPECT_EQ(t.want(), Want::Line);
  EXPECT_EQ(t.state(), State::Rcpt);
  EXPECT_EQ(t.C("BDAT 7 LAST"), "");
  EXPECT_EQ(t.want(), Want::OpenMessage);
  t.opened();
  EXPECT_EQ(t.chunk_end(content(7)), "");
  EXPECT_EQ(t.want(), Want::Commit);
}

TEST_F(SessionTest, BdatContentIsNotSubjectToLineRules) {
  // RFC 3030 2 / 3: BDAT data is raw octets; bare CR/LF is no smuggling risk there.
  Smtp t;  // bare_newline = Reject
  to_rcpt(t);
  t.C("BDAT 9 LAST");
  t.opened();
  ContentReport r = content(9);
  r.bare_newline = true;
  EXPECT_EQ(t.chunk_end(r), "");
  EXPECT_EQ(t.want(), Want::Commit);
}

TEST_F(SessionTest, OversizeChunkFailsThisAndEveryLaterChunkUntilLast) {
  // RFC 3030 2: after a failed chunk the server must still read each later chunk and may
  // fail it; RFC 1870 6.2 / RFC 5321 4.5.3.1.10: 552 5.3.4.
  Config c = test_config();
  c.limits.max_message_size = 100;
  Smtp t(c);
  to_rcpt(t);
  t.C("BDAT 80");
  t.opened();
  EXPECT_TRUE(reply_is(t.chunk_end(content(80)), "250 2.0.0"));
  t.C("BDAT 80");
  ContentReport big = content(160);
  big.too_big = true;
  EXPECT_TRUE(reply_is(t.chunk_end(big), "552 5.3.4"));
  EXPECT_FALSE(t.s().message_open()) << "the spool writer must be dropped";
  EXPECT_EQ(t.want(), Want::Line);
  EXPECT_EQ(t.state(), State::Bdat);
  // C: BDAT 10 → still read (Want::Bdat) but discarded, and failed again.
  EXPECT_EQ(t.C("BDAT 10"), "");
  EXPECT_EQ(t.want(), Want::Bdat);
  EXPECT_TRUE(t.s().discarding());
  EXPECT_EQ(t.s().bdat_remaining(), 10u);
  EXPECT_TRUE(reply_is(t.chunk_end(content(0)), "552 5.3.4"));
  EXPECT_EQ(t.state(), State::Bdat);
  // C: BDAT 10 LAST → discarded, failed, and the transaction ends.
  t.C("BDAT 10 LAST");
  EXPECT_TRUE(t.s().discarding());
  EXPECT_TRUE(reply_is(t.chunk_end(content(0)), "552 5.3.4"));
  EXPECT_EQ(t.want(), Want::Line);
  EXPECT_EQ(t.state(), State::Greeted);
  EXPECT_EQ(t.s().transactions(), 0);
  EXPECT_FALSE(t.s().discarding());
  EXPECT_TRUE(t.env().recipients.empty());
  // A new transaction starts clean.
  to_rcpt(t);
  t.C("BDAT 5 LAST");
  EXPECT_EQ(t.want(), Want::OpenMessage);
  t.opened();
  EXPECT_FALSE(t.s().discarding());
  EXPECT_EQ(t.chunk_end(content(5)), "");
  EXPECT_EQ(t.want(), Want::Commit);
}

TEST_F(SessionTest, RsetAfterFailedChunkStartsOver) {  // RFC 3030 2 / RFC 5321 4.1.1.5
  Config c = test_config();
  c.limits.max_message_size = 10;
  Smtp t(c);
  to_rcpt(t);
  t.C("BDAT 20");
  t.opened();
  ContentReport big = content(20);
  big.too_big = true;
  EXPECT_TRUE(reply_is(t.chunk_end(big), "552 5.3.4"));
  EXPECT_TRUE(reply_is(t.C("RSET"), "250 2.0.0"));
  EXPECT_EQ(t.state(), State::Greeted);
  EXPECT_FALSE(t.s().discarding());
}

TEST_F(SessionTest, SpoolUnavailableForBdatFailsEveryChunk) {  // RFC 3030 2; RFC 3463 X.3.1
  Smtp t;
  to_rcpt(t);
  t.C("BDAT 10");
  EXPECT_EQ(t.opened(false, true), "");  // the chunk must still be read: reply after it
  EXPECT_EQ(t.want(), Want::Bdat);
  EXPECT_TRUE(t.s().discarding());
  EXPECT_FALSE(t.s().message_open());
  EXPECT_TRUE(reply_is(t.chunk_end(content(0)), "452 4.3.1"));
  EXPECT_EQ(t.state(), State::Bdat);
  t.C("BDAT 10 LAST");
  EXPECT_TRUE(t.s().discarding());
  EXPECT_TRUE(reply_is(t.chunk_end(content(0)), "452 4.3.1"));
  EXPECT_EQ(t.state(), State::Greeted);
  EXPECT_EQ(t.s().transactions(), 0);
}

TEST_F(SessionTest, BdatWriteFailureAndLoop) {  // RFC 3463 X.3.0; RFC 5321 6.3 (X.4.6)
  {
    Smtp t;
    to_rcpt(t);
    t.C("BDAT 10 LAST");
    t.opened();
    ContentReport r = content(10);
    r.write_failed = true;
    EXPECT_TRUE(reply_is(t.chunk_end(r), "451 4.3.0"));
    EXPECT_EQ(t.state(), State::Greeted);
  }
  {
    Smtp t;
    to_rcpt(t);
    t.C("BDAT 10 LAST");
    t.opened();
    ContentReport r = content(10);
    r.received_count = 101;
    EXPECT_TRUE(reply_is(t.chunk_end(r), "554 5.4.6"));
    EXPECT_EQ(t.state(), State::Greeted);
  }
}

TEST_F(SessionTest, BdatCommitFailure) {  // RFC 5321 4.2.5
  Smtp t;
  to_rcpt(t);
  t.C("BDAT 3 LAST");
  t.opened();
  t.chunk_end(content(3));
  ASSERT_EQ(t.want(), Want::Commit);
  EXPECT_TRUE(reply_is(t.commit_failed(true), "452 4.3.1"));
  EXPECT_EQ(t.state(), State::Greeted);
  EXPECT_FALSE(t.s().message_open());
}

class BadBdat : public SessionTest, public ::testing::WithParamInterface<const char*> {};

TEST_P(BadBdat, ReplyAndClose) {
  // RFC 3030 2: bdat-cmd = "BDAT" SP chunk-size [SP end-marker]. Without a valid size the
  // chunk cannot be skipped, so its bytes would be read as commands: 501, then 421 and close.
  Smtp t;
  to_rcpt(t);
  const std::string got = t.C(GetParam());
  auto lines = split_lines(got);
  ASSERT_EQ(lines.size(), 2u) << got;
  EXPECT_EQ(lines[0].substr(0, 9), "501 5.5.4");
  EXPECT_EQ(lines[1].substr(0, 9), "421 4.7.0");
  EXPECT_EQ(t.want(), Want::Close);
  EXPECT_EQ(t.state(), State::Closed);
  EXPECT_FALSE(t.s().message_open());
}

INSTANTIATE_TEST_SUITE_P(Rfc3030, BadBdat,
                         ::testing::Values("BDAT", "BDAT ", "BDAT x", "BDAT -1", "BDAT 1x",
                                           "BDAT 10 FIRST", "BDAT 10 LAST more",
                                           "BDAT 99999999999999999999", "BDAT 123456789012345678901",
                                           "BDAT +5"));

TEST_F(SessionTest, BadBdatInAnOpenMessageAlsoCloses) {  // RFC 3030 2
  Smtp t;
  drive_to(t, State::Bdat);
  const std::string got = t.C("BDAT abc");
  EXPECT_NE(got.find("421 4.7.0"), std::string::npos) << got;
  EXPECT_EQ(t.want(), Want::Close);
  EXPECT_FALSE(t.s().message_open());
}

TEST_F(SessionTest, BdatRefusedWhenChunkingIsDisabled) {
  // CHUNKING not advertised (RFC 3030 1, RFC 5321 2.2.1 / 4.2.4): BDAT is a command this
  // server does not implement → 502 5.5.1; its announced octets must still be skipped
  // (they follow the command immediately, RFC 3030 2), and no message is opened.
  Config c = test_config();
  c.chunking = false;
  Smtp t(c);
  to_rcpt(t);
  const std::string got = t.C("BDAT 4 LAST");
  EXPECT_TRUE(reply_is(got, "502 5.5.1")) << got;
  EXPECT_NE(t.want(), Want::OpenMessage) << "BDAT was accepted although CHUNKING is off";
  if (t.want() == Want::Bdat) {
    EXPECT_TRUE(t.s().discarding());
    EXPECT_EQ(t.chunk_end(content(0)), "");
  }
  EXPECT_EQ(t.want(), Want::Line);
  EXPECT_EQ(t.state(), State::Rcpt);
}

}  // namespace
}  // namespace carrier::session::test
