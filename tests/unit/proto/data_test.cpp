// Unit tests for proto/data: RFC 5321 4.1.1.4 end of data, 4.5.2 transparency (dot-stuffing
// and unstuffing), SMTP smuggling defences (only <CRLF>.<CRLF> ends DATA), the header scan
// for Received: counting (RFC 5321 6.3, RFC 5322 2.2) and dot_stuff for sending.
#include "proto/data.hpp"

#include <gtest/gtest.h>

#include <random>
#include <vector>

using namespace carrier::proto;

namespace {

struct Decoded {
  std::string out;
  std::size_t consumed = 0;
  bool done = false;
  bool bare = false;
  bool operator==(const Decoded&) const = default;
};

std::ostream& operator<<(std::ostream& os, const Decoded& d) {
  return os << "{consumed=" << d.consumed << " done=" << d.done << " bare=" << d.bare
            << " out.size=" << d.out.size() << "}";
}

// Feeds `in` split at the given cut points (ascending); stops at done like a server would.
Decoded decode_split(std::string_view in, const std::vector<std::size_t>& cuts,
                     BareNewline policy = BareNewline::Reject) {
  DotDecoder dec(policy);
  Decoded d;
  std::size_t pos = 0;
  std::vector<std::size_t> ends = cuts;
  ends.push_back(in.size());
  for (std::size_t end : ends) {
    if (end < pos) continue;
    auto step = dec.feed(in.substr(pos, end - pos), d.out);
    EXPECT_EQ(step.done, dec.done());
    if (!step.done) {
      EXPECT_EQ(step.consumed, end - pos);  // all consumed unless done
    }
    EXPECT_LE(step.consumed, end - pos);
    pos += step.consumed;
    d.consumed = pos;
    if (step.done) {
      d.done = true;
      break;
    }
  }
  d.bare = dec.saw_bare_newline();
  return d;
}

Decoded decode(std::string_view in, BareNewline policy = BareNewline::Reject) {
  return decode_split(in, {}, policy);
}

Decoded decode_bytewise(std::string_view in, BareNewline policy = BareNewline::Reject) {
  std::vector<std::size_t> cuts;
  for (std::size_t i = 1; i < in.size(); ++i) cuts.push_back(i);
  return decode_split(in, cuts, policy);
}

// Decodes whole, byte by byte, and at every single split point; all must agree.
Decoded decode_all_ways(std::string_view in, BareNewline policy = BareNewline::Reject) {
  Decoded whole = decode(in, policy);
  EXPECT_EQ(decode_bytewise(in, policy), whole) << "bytewise";
  for (std::size_t cut = 1; cut < in.size(); ++cut)
    EXPECT_EQ(decode_split(in, {cut}, policy), whole) << "cut at " << cut;
  return whole;
}

}  // namespace

// --- End of data, RFC 5321 4.1.1.4 -----------------------------------------------------

TEST(DotDecoder, Rfc5321_4_1_1_4_SimpleMessage) {
  std::string in = "Subject: hi\r\n\r\nbody\r\n.\r\n";
  auto d = decode_all_ways(in);
  EXPECT_TRUE(d.done);
  EXPECT_EQ(d.consumed, in.size());
  EXPECT_EQ(d.out, "Subject: hi\r\n\r\nbody\r\n");
  EXPECT_FALSE(d.bare);
}

TEST(DotDecoder, Rfc5321_4_1_1_4_EmptyMessageDotAsFirstLine) {
  // The DATA command's CRLF precedes the data, so "." as the very first line ends it.
  auto d = decode_all_ways(".\r\n");
  EXPECT_TRUE(d.done);
  EXPECT_EQ(d.consumed, 3u);
  EXPECT_EQ(d.out, "");
}

TEST(DotDecoder, Rfc5321_4_1_1_4_PipelinedBytesNotConsumed) {
  std::string in = "line\r\n.\r\nQUIT\r\n";
  auto d = decode_all_ways(in);
  EXPECT_TRUE(d.done);
  EXPECT_EQ(d.consumed, 9u);
  EXPECT_EQ(in.substr(d.consumed), "QUIT\r\n");
  EXPECT_EQ(d.out, "line\r\n");
  // Even a second terminator right after stays in the input.
  std::string in2 = ".\r\n.\r\n";
  auto d2 = decode_all_ways(in2);
  EXPECT_EQ(d2.consumed, 3u);
}

TEST(DotDecoder, Rfc5321_4_1_1_4_NotDoneWithoutTerminator) {
  for (const char* in : {"", "abc", "abc\r\n", "abc\r\n.", "abc\r\n.\r", ".", ".\r", "\r\n.\r"}) {
    auto d = decode_all_ways(in);
    EXPECT_FALSE(d.done) << in;
    EXPECT_EQ(d.consumed, std::string_view(in).size()) << in;
  }
}

TEST(DotDecoder, Rfc5321_4_1_1_4_TerminatorSplitAcrossThreeFeeds) {
  std::string in = "hello\r\n.\r\nNOOP\r\n";
  Decoded whole = decode(in);
  for (std::size_t a = 1; a < in.size(); ++a)
    for (std::size_t b = a + 1; b < in.size(); ++b)
      EXPECT_EQ(decode_split(in, {a, b}), whole) << a << "," << b;
  EXPECT_EQ(whole.consumed, 10u);
}

// --- Transparency, RFC 5321 4.5.2 ------------------------------------------------------

TEST(DotDecoder, Rfc5321_4_5_2_DotUnstuffing) {
  EXPECT_EQ(decode_all_ways("..\r\n.\r\n").out, ".\r\n");
  EXPECT_EQ(decode_all_ways("..foo\r\n.\r\n").out, ".foo\r\n");
  EXPECT_EQ(decode_all_ways("...\r\n.\r\n").out, "..\r\n");
  EXPECT_EQ(decode_all_ways("a\r\n..\r\nb\r\n.\r\n").out, "a\r\n.\r\nb\r\n");
  // A line beginning with "." followed by other text: the first dot is removed.
  EXPECT_EQ(decode_all_ways(".foo\r\n.\r\n").out, "foo\r\n");
  // Dots elsewhere are untouched.
  EXPECT_EQ(decode_all_ways("a.b\r\nx..\r\n .\r\n.\r\n").out, "a.b\r\nx..\r\n .\r\n");
}

TEST(DotDecoder, Rfc5321_4_5_2_StuffedTerminatorIsContent) {
  auto d = decode_all_ways("a\r\n..\r\n.\r\n");
  EXPECT_TRUE(d.done);
  EXPECT_EQ(d.out, "a\r\n.\r\n");
  EXPECT_EQ(d.consumed, 10u);
}

// --- SMTP smuggling: nothing but <CRLF>.<CRLF> ends DATA ------------------------------

TEST(DotDecoder, Smuggling_FakeTerminatorsNeverEndData) {
  const char* fakes[] = {
      "\n.\n",        // <LF>.<LF>
      "\r.\r",        // <CR>.<CR>
      "\n.\r\n",      // <LF>.<CR><LF>
      "\r\n.\n",      // <CR><LF>.<LF>
      "\r\n.\r",      // <CR><LF>.<CR> (followed by 'M', not LF)
      "\r.\r\n",      // <CR>.<CR><LF>
      "\r\n.\r\r\n",  // <CR><LF>.<CR><CR><LF>
      "\r\r\n.\n",    // CR CRLF . LF
      "\n\r\n.\n",    // LF CRLF . LF
  };
  for (auto policy : {BareNewline::Reject, BareNewline::Normalize}) {
    for (const char* fake : fakes) {
      std::string in = std::string("Subject: x\r\n\r\nline") + fake +
                       "MAIL FROM:<evil@example.com>\r\nRCPT TO:<v@example.com>\r\n";
      std::size_t real_end = in.size();
      in += ".\r\nNEXT";
      auto d = decode_all_ways(in, policy);
      EXPECT_TRUE(d.done) << testing::PrintToString(fake);
      EXPECT_EQ(d.consumed, real_end + 3) << testing::PrintToString(fake);
      EXPECT_TRUE(d.bare) << testing::PrintToString(fake);
      EXPECT_NE(d.out.find("MAIL FROM:<evil@example.com>\r\n"), std::string::npos);
    }
  }
}

TEST(DotDecoder, Smuggling_FakeTerminatorsAtStartOfData) {
  for (const char* fake : {"\n.\n", ".\n", "\n.\r\n", ".\r.\r\n", "\r.\r\n", ".\rX\r\n"}) {
    std::string in = std::string(fake) + "QUIT\r\n";
    std::size_t real_end = in.size();
    in += ".\r\n";
    auto d = decode_all_ways(in);
    EXPECT_TRUE(d.done) << testing::PrintToString(fake);
    EXPECT_EQ(d.consumed, real_end + 3) << testing::PrintToString(fake);
    EXPECT_TRUE(d.bare) << testing::PrintToString(fake);
  }
}

TEST(DotDecoder, Smuggling_ContentOutputKeepsFakeTerminator) {
  // Reject keeps the bytes as they are (the message is refused as a whole later).
  auto d = decode_all_ways("a\n.\nb\r\n.\r\n", BareNewline::Reject);
  EXPECT_EQ(d.out, "a\n.\nb\r\n");
  EXPECT_TRUE(d.bare);
  // "<CR><LF>.<LF>": the line starts after a real CRLF, so its dot is removed.
  auto e = decode_all_ways("a\r\n.\nb\r\n.\r\n", BareNewline::Reject);
  EXPECT_EQ(e.out, "a\r\n\nb\r\n");
}

TEST(DotDecoder, NoBareNewlineFlagForCleanData) {
  EXPECT_FALSE(decode_all_ways("a\r\nb\r\n\r\n..x\r\n.\r\n").bare);
}

// --- Bare newline policy ---------------------------------------------------------------

TEST(DotDecoder, Normalize_BareLfBecomesCrlf) {
  auto d = decode_all_ways("a\nb\r\n\n\r\n.\r\n", BareNewline::Normalize);
  EXPECT_TRUE(d.done);
  EXPECT_EQ(d.out, "a\r\nb\r\n\r\n\r\n");
  EXPECT_TRUE(d.bare);
}

TEST(DotDecoder, Normalize_BareCrKept) {
  auto d = decode_all_ways("a\rb\r\nc\r\r\n.\r\n", BareNewline::Normalize);
  EXPECT_EQ(d.out, "a\rb\r\nc\r\r\n");
  EXPECT_TRUE(d.bare);
}

TEST(DotDecoder, Normalize_LfDotLfStaysContent) {
  // After a bare LF no line starts: the "." is neither unstuffed nor an end of data.
  auto d = decode_all_ways("a\n.\nb\r\n.\r\n", BareNewline::Normalize);
  EXPECT_TRUE(d.done);
  EXPECT_EQ(d.out, "a\r\n.\r\nb\r\n");
  EXPECT_EQ(d.consumed, 10u);
}

TEST(DotDecoder, Normalize_DotThenBareLfAtLineStart) {
  // ".<LF>" at a line start: the dot is removed and the bare LF normalised; the "." after it
  // is not at a line start, so "<LF>.<CRLF>" does not end the data either.
  auto d = decode_all_ways("x\r\n.\n.\r\n\r\n.\r\n", BareNewline::Normalize);
  EXPECT_EQ(d.out, "x\r\n\r\n.\r\n\r\n");
  EXPECT_TRUE(d.done);
  EXPECT_EQ(d.consumed, 13u);
}

TEST(DotDecoder, Reject_BareLfKeptVerbatim) {
  auto d = decode_all_ways("a\nb\r\n.\r\n", BareNewline::Reject);
  EXPECT_EQ(d.out, "a\nb\r\n");
  EXPECT_TRUE(d.bare);
}

// --- Decoder life cycle ----------------------------------------------------------------

TEST(DotDecoder, ResetAndFeedAfterDone) {
  DotDecoder dec;
  std::string out;
  auto s = dec.feed("a\n\r\n.\r\nrest", out);
  EXPECT_TRUE(s.done);
  EXPECT_TRUE(dec.done());
  EXPECT_TRUE(dec.saw_bare_newline());
  auto again = dec.feed("more", out);
  EXPECT_TRUE(again.done);
  EXPECT_EQ(again.consumed, 0u);
  EXPECT_EQ(out, "a\n\r\n");
  dec.reset();
  EXPECT_FALSE(dec.done());
  EXPECT_FALSE(dec.saw_bare_newline());
  out.clear();
  auto s2 = dec.feed(".\r\n", out);  // back at the start of a line
  EXPECT_TRUE(s2.done);
  EXPECT_EQ(s2.consumed, 3u);
}

TEST(DotDecoder, EmptyFeedConsumesNothing) {
  DotDecoder dec;
  std::string out;
  auto s = dec.feed("", out);
  EXPECT_EQ(s.consumed, 0u);
  EXPECT_FALSE(s.done);
}

TEST(DotDecoder, OutputIsAppended) {
  DotDecoder dec;
  std::string out = "prefix:";
  (void)dec.feed("abc\r\n.\r\n", out);
  EXPECT_EQ(out, "prefix:abc\r\n");
}

TEST(DotDecoder, LargeMessageRandomChunks) {
  // ~2 MiB of lines with dots, CRs and LFs sprinkled in; random chunking must not matter.
  std::mt19937 rng(12345);
  std::string in;
  const char alphabet[] = "abcdefghij .\r\n..";
  while (in.size() < (2u << 20)) {
    std::size_t len = rng() % 120;
    for (std::size_t i = 0; i < len; ++i) in += alphabet[rng() % (sizeof alphabet - 1)];
    in += (rng() % 8 == 0) ? "\r\n." : "\r\n";
  }
  // Remove accidental terminators so that only the final one counts.
  for (std::size_t p = 0; (p = in.find("\r\n.\r\n", p)) != std::string::npos;) in[p + 2] = 'x';
  if (in.rfind(".\r\n", 0) == 0) in[0] = 'x';
  in += "END\r\n.\r\nTAIL";
  for (auto policy : {BareNewline::Reject, BareNewline::Normalize}) {
    Decoded whole = decode(in, policy);
    ASSERT_TRUE(whole.done);
    EXPECT_EQ(whole.consumed, in.size() - 4);
    std::vector<std::size_t> cuts;
    for (std::size_t p = 0; p < in.size(); p += 1 + rng() % 9000) cuts.push_back(p);
    cuts.erase(cuts.begin());
    EXPECT_EQ(decode_split(in, cuts, policy), whole);
  }
}

// --- HeaderScanner ---------------------------------------------------------------------

namespace {

HeaderScanner scan_whole(std::string_view s) {
  HeaderScanner h;
  h.feed(s);
  return h;
}

HeaderScanner scan_bytewise(std::string_view s) {
  HeaderScanner h;
  for (char c : s) h.feed(std::string_view(&c, 1));
  return h;
}

void expect_scan(std::string_view s, int received, bool in_body, bool eight) {
  for (const auto& h : {scan_whole(s), scan_bytewise(s)}) {
    EXPECT_EQ(h.received_count(), received) << s;
    EXPECT_EQ(h.in_body(), in_body) << s;
    EXPECT_EQ(h.header_has_8bit(), eight) << s;
  }
}

}  // namespace

TEST(HeaderScanner, Rfc5321_6_3_CountsReceived) {
  expect_scan(
      "Received: from a by b; date\r\n"
      "Received: from c\r\n\tby d; date\r\n"
      "X-Received: no\r\n"
      "Subject: x\r\n"
      "\r\n"
      "Received: in the body does not count\r\n",
      2, true, false);
}

TEST(HeaderScanner, Rfc5322_2_2_FieldNameRules) {
  expect_scan("RECEIVED: a\r\nreceived: b\r\nReceived : c\r\nReceived\t: d\r\n\r\n", 4, true,
              false);
  expect_scan("Received-SPF: pass\r\nReceivedx: a\r\nReceive: b\r\nReceived\r\n\r\n", 0, true,
              false);
}

TEST(HeaderScanner, Rfc5322_2_2_3_ContinuationLinesDoNotCount) {
  expect_scan("Subject: x\r\n Received: no\r\n\tReceived: no\r\n\r\n", 0, true, false);
}

TEST(HeaderScanner, Rfc5322_2_2_HeaderEndsAtFirstEmptyLine) {
  expect_scan("A: b\r\n", 0, false, false);
  expect_scan("A: b\r\n\r\n", 0, true, false);
  expect_scan("\r\nReceived: x\r\n", 0, true, false);
  expect_scan("A: b\n\nReceived: x\n", 0, true, false);  // bare LF lines also end it
}

TEST(HeaderScanner, Rfc6532_EightBitInHeaderOnly) {
  expect_scan("Subject: caf\xC3\xA9\r\n\r\nbody\r\n", 0, true, true);
  expect_scan("Subject: cafe\r\n\r\nbody caf\xC3\xA9\r\n", 0, true, false);
  // 8-bit far beyond the first 16 bytes of a long line
  expect_scan("Subject: " + std::string(200, 'x') + "\xFF\r\n\r\n", 0, true, true);
}

TEST(HeaderScanner, LongLinesAndReset) {
  std::string s = "Received: " + std::string(5000, 'r') + "\r\n" + "Received: x\r\n\r\n";
  expect_scan(s, 2, true, false);
  HeaderScanner h = scan_whole(s);
  h.reset();
  EXPECT_EQ(h.received_count(), 0);
  EXPECT_FALSE(h.in_body());
  h.feed("Received: again\r\n");
  EXPECT_EQ(h.received_count(), 1);
}

// --- dot_stuff, RFC 5321 4.5.2 ---------------------------------------------------------

TEST(DotStuff, Rfc5321_4_5_2_StuffsLeadingDots) {
  std::string out;
  bool ls = true;
  dot_stuff(".a\r\nb.c\r\n.\r\n..\r\n", out, ls);
  EXPECT_EQ(out, "..a\r\nb.c\r\n..\r\n...\r\n");
  EXPECT_TRUE(ls);
}

TEST(DotStuff, Rfc5321_4_5_2_StateAcrossCalls) {
  std::string out;
  bool ls = true;
  dot_stuff("x\r\n", out, ls);
  EXPECT_TRUE(ls);
  dot_stuff(".y", out, ls);
  EXPECT_FALSE(ls);
  dot_stuff(".z\r", out, ls);
  EXPECT_TRUE(ls);
  dot_stuff("", out, ls);
  EXPECT_TRUE(ls);
  dot_stuff("\n.", out, ls);
  EXPECT_EQ(out, "x\r\n..y.z\r\n..");
  bool mid = false;
  std::string o2;
  dot_stuff(".a", o2, mid);
  EXPECT_EQ(o2, ".a");
}

TEST(DotStuff, Smuggling_StuffsAfterBareCrAndLf) {
  std::string out;
  bool ls = false;
  dot_stuff("a\r.\r\nb\n.\n", out, ls);
  EXPECT_EQ(out, "a\r..\r\nb\n..\n");
}

TEST(DotStuff, Rfc5321_4_5_2_RoundTripThroughDecoder) {
  for (std::string content : {std::string(""), std::string("a\r\n"), std::string(".\r\n"),
                              std::string("..\r\n.x\r\n\r\n.\r\n"),
                              std::string("Subject: t\r\n\r\n.hidden\r\n...\r\n")}) {
    std::string wire;
    bool ls = true;
    dot_stuff(content, wire, ls);
    wire += ".\r\nNEXT";
    auto d = decode_all_ways(wire);
    EXPECT_TRUE(d.done);
    EXPECT_EQ(d.out, content);
    EXPECT_EQ(wire.substr(d.consumed), "NEXT");
  }
}

// RFC 6409 8.2 / 8.3: the scanner says whether Date: and Message-ID: are present and where the
// header section ends (the offset of the empty line), however the content is split.
TEST(HeaderScanner, Rfc6409_8_DateMessageIdAndHeaderEnd) {
  const std::string msg =
      "Subject: hi\r\nmessage-ID : <a@b>\r\nX-Date: no\r\n\r\nDate: body, not a header\r\n";
  for (const auto& h : {scan_whole(msg), scan_bytewise(msg)}) {
    EXPECT_TRUE(h.in_body());
    EXPECT_TRUE(h.has_message_id());
    EXPECT_FALSE(h.has_date());
    EXPECT_EQ(h.header_end(), msg.find("\r\n\r\n") + 2);
  }
  const std::string dated = "Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n \r\n\r\nbody\r\n";
  for (const auto& h : {scan_whole(dated), scan_bytewise(dated)}) {
    EXPECT_TRUE(h.has_date());
    EXPECT_FALSE(h.has_message_id());
  }
  // Continuation lines never count as fields.
  const std::string cont = "Subject: x\r\n Date: y\r\n\r\n";
  EXPECT_FALSE(scan_whole(cont).has_date());
}
