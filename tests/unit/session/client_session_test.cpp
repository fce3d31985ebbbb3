// carrier session tests: the SMTP client state machine (session/client_session), as readable
// transcripts: "S:" lines are what the server sends (consecutive ones arrive in one read), "C:"
// lines are exactly what the client must have sent in between. Covers RFC 5321 3.1-3.3, 3.8,
// 4.1.1, 4.1.4, 4.5.2, 4.5.3.2; RFC 2920 3.1 client pipelining; RFC 1870 6; RFC 3030 2-4;
// RFC 3461 4, 5.2.2; RFC 6533 3; RFC 6152 3; RFC 6531 3.2/3.4; RFC 3207 4-5; protocol errors,
// connection reuse, and that every recipient gets exactly one result. Test-only code.
#include "session/client_session.hpp"

#include <gtest/gtest.h>

#include <initializer_list>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "proto/command.hpp"
#include "proto/data.hpp"

namespace carrier::session {

inline void PrintTo(ClientWant w, std::ostream* os) {
  static const char* const names[] = {"Reply", "StartTls", "Message", "SendContent", "Close"};
  *os << "ClientWant::" << names[static_cast<int>(w)];
}

namespace {

using proto::Envelope;
using W = ClientWant;
using namespace std::chrono_literals;

ClientConfig test_config() {
  ClientConfig c;
  c.helo_name = "client.carrier.test";
  return c;
}

proto::Mailbox mbox(std::string_view s) {
  auto m = proto::parse_mailbox(s, true);
  EXPECT_TRUE(m.has_value()) << s;
  return m.value_or(proto::Mailbox{});
}

Envelope env(std::string_view sender, std::initializer_list<std::string_view> rcpts) {
  Envelope e;
  if (!sender.empty()) e.sender = mbox(sender);
  for (auto r : rcpts) {
    proto::EnvelopeRecipient er;
    er.address = mbox(r);
    er.original = er.address;
    er.route = proto::RcptRoute::Relay;
    e.recipients.push_back(er);
  }
  return e;
}

// Drives a ClientSession the way the transport does and records what it sends and decides.
class Client {
 public:
  explicit Client(ClientConfig cfg = test_config()) : s_(std::move(cfg)) {}

  ClientSession& s() { return s_; }
  W want() const { return s_.want(); }

  // Everything sent since the last call (out() is taken and cleared).
  std::string sent() {
    std::string o = std::move(s_.out());
    s_.out().clear();
    collect();
    return o;
  }

  void server(std::string_view bytes) {
    if (bytewise_) {
      for (char c : bytes) s_.on_input(std::string_view(&c, 1));
    } else {
      s_.on_input(bytes);
    }
    collect();
  }

  // Runs a transcript (see the file comment). Before each server read and at the end,
  // everything the client sent must be exactly the "C:" lines listed since the previous read.
  void run(std::string_view script) {
    std::string expected, from_server;
    char last = 0;
    std::size_t line_no = 0;
    auto check = [&] {
      EXPECT_EQ(sent(), expected) << "before transcript line " << line_no;
      expected.clear();
    };
    while (!script.empty()) {
      const std::size_t nl = script.find('\n');
      std::string_view line = script.substr(0, nl);
      script.remove_prefix(nl == std::string_view::npos ? script.size() : nl + 1);
      ++line_no;
      while (!line.empty() && line.front() == ' ') line.remove_prefix(1);
      if (line.empty()) continue;
      ASSERT_TRUE(line.size() >= 2 && (line[0] == 'S' || line[0] == 'C') && line[1] == ':')
          << "bad transcript line: " << line;
      std::string_view text = line.substr(2);
      if (!text.empty() && text.front() == ' ') text.remove_prefix(1);
      if (line[0] == 'S') {
        if (last != 'S') check();
        from_server.append(text);
        from_server += "\r\n";
      } else {
        if (last == 'S') {
          server(from_server);
          from_server.clear();
        }
        expected.append(text);
        expected += "\r\n";
      }
      last = line[0];
    }
    if (last == 'S') server(from_server);
    check();
  }

  // Greeting and EHLO with the given extension lines; the session must then be ready.
  void ready(std::initializer_list<std::string_view> exts) {
    std::string script = "S: 220 mx.example ESMTP\nC: EHLO client.carrier.test\n";
    if (exts.size() == 0) {
      script += "S: 250 mx.example\n";
    } else {
      script += "S: 250-mx.example\n";
      std::size_t i = 0;
      for (auto e : exts) {
        script += (++i == exts.size()) ? "S: 250 " : "S: 250-";
        script.append(e);
        script += "\n";
      }
    }
    run(script);
    EXPECT_EQ(want(), W::Message);
    EXPECT_TRUE(s_.ready());
  }

  std::size_t begin(const Envelope& e, std::vector<std::size_t> rcpts, std::uint64_t size = 100) {
    const std::size_t n = s_.begin_message(e, rcpts, size);
    collect();
    return n;
  }

  std::string content(std::string_view bytes, bool last) {
    EXPECT_EQ(want(), W::SendContent);
    EXPECT_TRUE(s_.content_chunk(bytes, last));
    return sent();
  }

  // "Delivered 250 2.0.0 DATA" (+ " relayed" / " generated"); "count=N" unless exactly one.
  std::string outcome(std::size_t index) {
    collect();
    const RcptOutcome* found = nullptr;
    int n = 0;
    for (const auto& o : results_) {
      if (o.index == index) {
        found = &o;
        ++n;
      }
    }
    if (n != 1) return "count=" + std::to_string(n);
    static const char* const kinds[] = {"Delivered", "TempFail", "PermFail"};
    std::string s = kinds[found->kind];
    s += " " + std::to_string(found->reply.code);
    if (!found->reply.status.empty()) s += " " + found->reply.status;
    s += " " + found->stage;
    if (found->relayed_without_dsn) s += " relayed";
    if (found->generated) s += " generated";
    return s;
  }
  const RcptOutcome* find(std::size_t index) {
    collect();
    for (const auto& o : results_)
      if (o.index == index) return &o;
    return nullptr;
  }
  std::size_t outcome_count() {
    collect();
    return results_.size();
  }
  void set_bytewise(bool b) { bytewise_ = b; }

 private:
  void collect() {
    for (auto& o : s_.outcomes()) results_.push_back(std::move(o));
    s_.outcomes().clear();
  }
  ClientSession s_;
  std::vector<RcptOutcome> results_;
  bool bytewise_ = false;
};

// ---------------------------------------------------------------- basic transaction

TEST(ClientSession, Rfc5321_3_3_PlainTransactionInLockstep) {
  Client c;
  EXPECT_EQ(c.want(), W::Reply);
  EXPECT_EQ(c.s().timeout(), 300s);  // RFC 5321 4.5.3.2.1
  c.ready({});
  EXPECT_TRUE(c.s().esmtp());
  EXPECT_EQ(c.s().greeting().code, 220);
  const Envelope e = env("alice@src.example", {"bob@dst.example"});
  EXPECT_EQ(c.begin(e, {0}, 20), 1u);
  EXPECT_TRUE(c.s().transaction_open());
  EXPECT_FALSE(c.s().uses_bdat());
  EXPECT_EQ(c.s().timeout(), 300s);  // 4.5.3.2.2 MAIL
  c.run(R"(
    C: MAIL FROM:<alice@src.example>
    S: 250 2.1.0 Ok
    C: RCPT TO:<bob@dst.example>
    S: 250 2.1.5 Ok
    C: DATA
  )");
  EXPECT_EQ(c.s().timeout(), 120s);  // 4.5.3.2.4 DATA initiation
  c.run("S: 354 End data with <CR><LF>.<CR><LF>");
  EXPECT_EQ(c.want(), W::SendContent);
  EXPECT_EQ(c.s().timeout(), 180s);  // 4.5.3.2.5 data block
  EXPECT_EQ(c.content("Subject: hi\r\n\r\nhello\r\n", true), "Subject: hi\r\n\r\nhello\r\n.\r\n");
  EXPECT_EQ(c.want(), W::Reply);
  EXPECT_EQ(c.s().timeout(), 600s);  // 4.5.3.2.6 DATA termination
  c.run("S: 250 2.0.0 Ok: queued as 4ABC");
  EXPECT_EQ(c.want(), W::Message);
  EXPECT_FALSE(c.s().transaction_open());
  EXPECT_EQ(c.outcome(0), "Delivered 250 2.0.0 DATA");
  EXPECT_EQ(c.find(0)->reply.lines.front(), "Ok: queued as 4ABC");
  c.s().quit();
  EXPECT_EQ(c.sent(), "QUIT\r\n");
  EXPECT_EQ(c.want(), W::Close);
  EXPECT_FALSE(c.s().connection_failed());
  EXPECT_EQ(c.outcome_count(), 1u);
}

TEST(ClientSession, Rfc5321_4_1_1_3_NullSenderAndPartialRcptFailureInLockstep) {
  Client c;
  c.ready({"8BITMIME"});
  const Envelope e = env("", {"a@dst.example", "b@dst.example", "c@dst.example"});
  EXPECT_EQ(c.begin(e, {0, 1, 2}), 3u);
  c.run(R"(
    C: MAIL FROM:<>
    S: 250 2.1.0 Ok
    C: RCPT TO:<a@dst.example>
    S: 550 5.1.1 <a@dst.example>: Recipient address rejected
    C: RCPT TO:<b@dst.example>
    S: 251 2.1.5 User not local; will forward
    C: RCPT TO:<c@dst.example>
    S: 452 4.2.2 Mailbox full
    C: DATA
    S: 354 go
  )");
  EXPECT_EQ(c.content("x\r\n", true), "x\r\n.\r\n");
  c.run("S: 250 2.0.0 Ok");
  EXPECT_EQ(c.outcome(0), "PermFail 550 5.1.1 RCPT");
  EXPECT_EQ(c.outcome(1), "Delivered 250 2.0.0 DATA");
  EXPECT_EQ(c.outcome(2), "TempFail 452 4.2.2 RCPT");
  EXPECT_EQ(c.want(), W::Message);
}

// ---------------------------------------------------------------- DATA content

TEST(ClientSession, Rfc5321_4_5_2_DotStuffingAcrossChunks) {
  Client c;
  c.ready({});
  c.begin(env("a@src.example", {"b@dst.example"}), {0});
  c.run(R"(
    C: MAIL FROM:<a@src.example>
    S: 250 ok
    C: RCPT TO:<b@dst.example>
    S: 250 ok
    C: DATA
    S: 354 go
  )");
  const std::vector<std::string> pieces = {".starts with a dot\r\nline\r\n..two\r\n",
                                           ".",  // a dot at a line start, alone in a chunk
                                           "\r\nx\r",
                                           "\n.\r\n",  // a fake end of data inside the content
                                           "last line"};
  std::string wire;
  for (std::size_t i = 0; i < pieces.size(); ++i) wire += c.content(pieces[i], i + 1 == pieces.size());
  EXPECT_EQ(wire,
            "..starts with a dot\r\nline\r\n...two\r\n..\r\nx\r\n..\r\nlast line\r\n.\r\n");
  // Same as proto::dot_stuff on the whole content, plus the CRLF the content lacked
  // (RFC 5321 4.1.1.4) and the terminating ".".
  std::string whole;
  for (const auto& p : pieces) whole += p;
  std::string stuffed;
  bool at_line_start = true;
  proto::dot_stuff(whole, stuffed, at_line_start);
  EXPECT_EQ(wire, stuffed + "\r\n.\r\n");
  EXPECT_EQ(wire.find("\r\n.\r\n"), wire.size() - 5);  // the only end of data is the last one
  c.run("S: 250 2.0.0 Ok");
  EXPECT_EQ(c.outcome(0), "Delivered 250 2.0.0 DATA");
}

TEST(ClientSession, Rfc5321_4_1_1_4_EmptyContentAndEmptyLastChunk) {
  Client c;
  c.ready({"PIPELINING"});
  c.begin(env("a@src.example", {"b@dst.example"}), {0});
  c.run(R"(
    C: MAIL FROM:<a@src.example>
    C: RCPT TO:<b@dst.example>
    C: DATA
    S: 250 ok
    S: 250 ok
    S: 354 go
  )");
  EXPECT_EQ(c.content("", true), ".\r\n");
  c.run("S: 250 ok");
  EXPECT_EQ(c.outcome(0), "Delivered 250 DATA");
  // The content's own final CRLF is not doubled; an empty last chunk just ends the data.
  c.begin(env("a@src.example", {"b@dst.example"}), {0});
  c.run(R"(
    C: MAIL FROM:<a@src.example>
    C: RCPT TO:<b@dst.example>
    C: DATA
    S: 250 ok
    S: 250 ok
    S: 354 go
  )");
  EXPECT_EQ(c.content("a\r", false), "a\r");
  EXPECT_EQ(c.content("\n", false), "\n");
  EXPECT_EQ(c.content("", true), ".\r\n");
  c.run("S: 250 ok");
  EXPECT_EQ(c.outcome_count(), 2u);
}

// ---------------------------------------------------------------- PIPELINING

TEST(ClientSession, Rfc2920_3_1_MailRcptsAndDataInOneGroupRepliesInOrder) {
  Client c;
  c.ready({"PIPELINING", "SIZE 10000"});
  const Envelope e = env("a@src.example", {"r0@dst.example", "r1@dst.example", "r2@dst.example"});
  EXPECT_EQ(c.begin(e, {0, 1, 2}, 123), 3u);
  c.run(R"(
    C: MAIL FROM:<a@src.example> SIZE=123
    C: RCPT TO:<r0@dst.example>
    C: RCPT TO:<r1@dst.example>
    C: RCPT TO:<r2@dst.example>
    C: DATA
  )");
  EXPECT_EQ(c.s().replies_pending(), 5u);
  // Replies trickle in: nothing more is sent and no content before 354.
  c.run("S: 250 2.1.0 Ok");
  EXPECT_EQ(c.want(), W::Reply);
  EXPECT_EQ(c.s().replies_pending(), 4u);
  c.run(R"(
    S: 250 2.1.5 Ok
    S: 550 5.1.1 No such user
  )");
  EXPECT_EQ(c.want(), W::Reply);
  c.run(R"(
    S: 450 4.2.1 Mailbox busy
    S: 354 Go ahead
  )");
  EXPECT_EQ(c.want(), W::SendContent);
  EXPECT_EQ(c.content("body\r\n", true), "body\r\n.\r\n");
  c.run("S: 250 2.0.0 queued");
  EXPECT_EQ(c.outcome(0), "Delivered 250 2.0.0 DATA");
  EXPECT_EQ(c.outcome(1), "PermFail 550 5.1.1 RCPT");
  EXPECT_EQ(c.outcome(2), "TempFail 450 4.2.1 RCPT");
  EXPECT_EQ(c.want(), W::Message);
}

TEST(ClientSession, Rfc2920_3_1_AllRcptsRefusedPipelinedDataRefusalIgnoredThenRset) {
  Client c;
  c.ready({"PIPELINING"});
  const Envelope e = env("a@src.example", {"r0@dst.example", "r1@dst.example"});
  c.begin(e, {0, 1});
  c.run(R"(
    C: MAIL FROM:<a@src.example>
    C: RCPT TO:<r0@dst.example>
    C: RCPT TO:<r1@dst.example>
    C: DATA
    S: 250 2.1.0 Ok
    S: 550 5.1.1 unknown
    S: 550 5.1.1 unknown
    S: 554 5.5.1 Error: no valid recipients
  )");
  EXPECT_EQ(c.want(), W::Message);
  EXPECT_EQ(c.outcome(0), "PermFail 550 5.1.1 RCPT");
  EXPECT_EQ(c.outcome(1), "PermFail 550 5.1.1 RCPT");
  // The server still holds the MAIL: RSET (RFC 5321 4.1.1.5) rides with the next group.
  const Envelope e2 = env("a@src.example", {"r2@dst.example"});
  c.begin(e2, {0});
  c.run(R"(
    C: RSET
    C: MAIL FROM:<a@src.example>
    C: RCPT TO:<r2@dst.example>
    C: DATA
    S: 250 2.0.0 Ok
    S: 250 2.1.0 Ok
    S: 250 2.1.5 Ok
    S: 354 go
  )");
  EXPECT_EQ(c.content("m\r\n", true), "m\r\n.\r\n");
  c.run("S: 250 2.0.0 Ok");
  EXPECT_EQ(c.outcome_count(), 3u);
}

TEST(ClientSession, Rfc5321_3_3_AllRcptsRefusedNoDataThenRsetInLockstep) {
  Client c;
  c.ready({});
  c.begin(env("a@src.example", {"r0@dst.example"}), {0});
  c.run(R"(
    C: MAIL FROM:<a@src.example>
    S: 250 ok
    C: RCPT TO:<r0@dst.example>
    S: 550 5.7.1 Relay access denied
  )");  // no DATA
  EXPECT_EQ(c.want(), W::Message);
  EXPECT_EQ(c.outcome(0), "PermFail 550 5.7.1 RCPT");
  c.begin(env("a@src.example", {"r1@dst.example"}), {0});
  c.run(R"(
    C: RSET
    S: 250 2.0.0 Ok
    C: MAIL FROM:<a@src.example>
    S: 250 ok
    C: RCPT TO:<r1@dst.example>
    S: 250 ok
    C: DATA
  )");
  c.run("S: 451 4.3.0 try later");
  EXPECT_EQ(c.outcome(0), "count=2");  // index 0 of both messages
  // Ending the connection instead of another MAIL: QUIT alone, no RSET needed.
  c.s().quit();
  EXPECT_EQ(c.sent(), "QUIT\r\n");
}

TEST(ClientSession, Rfc2920_3_1_PipelinedDataAccepted354WithoutRecipientsDropsConnection) {
  Client c;
  c.ready({"PIPELINING"});
  c.begin(env("a@src.example", {"r0@dst.example"}), {0});
  c.run(R"(
    C: MAIL FROM:<a@src.example>
    C: RCPT TO:<r0@dst.example>
    C: DATA
    S: 250 ok
    S: 550 5.1.1 unknown
    S: 354 go ahead
  )");
  // A broken server in DATA state with no recipient: no content, no QUIT (it would be text).
  EXPECT_EQ(c.want(), W::Close);
  EXPECT_EQ(c.outcome(0), "PermFail 550 5.1.1 RCPT");
  EXPECT_FALSE(c.s().connection_failed());
}

// ---------------------------------------------------------------- MAIL / DATA failures

TEST(ClientSession, Rfc5321_4_2_5_Mail4xxFailsEveryRecipientTemporarily) {
  Client c;
  c.ready({});
  c.begin(env("a@src.example", {"r0@dst.example", "r1@dst.example"}), {0, 1});
  c.run(R"(
    C: MAIL FROM:<a@src.example>
    S: 451 4.3.0 Temporary lookup failure
  )");
  EXPECT_EQ(c.want(), W::Message);
  EXPECT_EQ(c.outcome(0), "TempFail 451 4.3.0 MAIL");
  EXPECT_EQ(c.outcome(1), "TempFail 451 4.3.0 MAIL");
  // No transaction was opened: the next one starts with MAIL directly.
  c.begin(env("b@src.example", {"r0@dst.example"}), {0});
  EXPECT_EQ(c.sent(), "MAIL FROM:<b@src.example>\r\n");
}

TEST(ClientSession, Rfc2920_3_1_Mail5xxPipelinedFollowingRepliesIgnored) {
  Client c;
  c.ready({"PIPELINING"});
  c.begin(env("spam@src.example", {"r0@dst.example", "r1@dst.example"}), {0, 1});
  c.run(R"(
    C: MAIL FROM:<spam@src.example>
    C: RCPT TO:<r0@dst.example>
    C: RCPT TO:<r1@dst.example>
    C: DATA
    S: 553 5.7.1 Sender rejected
    S: 503 5.5.1 Error: need MAIL command
    S: 503 5.5.1 Error: need MAIL command
  )");
  EXPECT_EQ(c.want(), W::Reply);  // DATA's reply still to come
  c.run("S: 503 5.5.1 Error: need RCPT command");
  EXPECT_EQ(c.want(), W::Message);
  EXPECT_EQ(c.outcome(0), "PermFail 553 5.7.1 MAIL");
  EXPECT_EQ(c.outcome(1), "PermFail 553 5.7.1 MAIL");
}

TEST(ClientSession, Rfc5321_4_1_1_4_DataCommandRefused) {
  Client c;
  c.ready({});
  c.begin(env("a@src.example", {"r0@dst.example", "r1@dst.example"}), {0, 1});
  c.run(R"(
    C: MAIL FROM:<a@src.example>
    S: 250 ok
    C: RCPT TO:<r0@dst.example>
    S: 250 ok
    C: RCPT TO:<r1@dst.example>
    S: 550 5.1.1 unknown
    C: DATA
    S: 451 4.3.0 Local error in processing
  )");
  EXPECT_EQ(c.want(), W::Message);
  EXPECT_EQ(c.outcome(0), "TempFail 451 4.3.0 DATA");
  EXPECT_EQ(c.outcome(1), "PermFail 550 5.1.1 RCPT");
  c.begin(env("a@src.example", {"r0@dst.example"}), {0});
  EXPECT_EQ(c.sent(), "RSET\r\n");  // the transaction was left open
}

TEST(ClientSession, Rfc5321_4_1_1_4_FinalReplyFailsAcceptedRecipientsOnly) {
  Client c;
  c.ready({"PIPELINING"});
  c.begin(env("a@src.example", {"r0@dst.example", "r1@dst.example", "r2@dst.example"}),
          {0, 1, 2});
  c.run(R"(
    C: MAIL FROM:<a@src.example>
    C: RCPT TO:<r0@dst.example>
    C: RCPT TO:<r1@dst.example>
    C: RCPT TO:<r2@dst.example>
    C: DATA
    S: 250 ok
    S: 250 ok
    S: 450 4.2.0 greylisted
    S: 250 ok
    S: 354 go
  )");
  c.content("spam\r\n", true);
  c.run(R"(
    S: 554-5.7.1 Message rejected as spam
    S: 554 5.7.1 see https://policy.example
  )");
  EXPECT_EQ(c.outcome(0), "PermFail 554 5.7.1 DATA");
  EXPECT_EQ(c.outcome(1), "TempFail 450 4.2.0 RCPT");
  EXPECT_EQ(c.outcome(2), "PermFail 554 5.7.1 DATA");
  EXPECT_EQ(c.find(0)->reply.lines.size(), 2u);
  // The end-of-data reply closed the transaction: no RSET before the next one.
  c.begin(env("a@src.example", {"r1@dst.example"}), {0});
  EXPECT_EQ(c.sent(), "MAIL FROM:<a@src.example>\r\nRCPT TO:<r1@dst.example>\r\nDATA\r\n");
}

// ---------------------------------------------------------------- EHLO / HELO

TEST(ClientSession, Rfc5321_4_1_4_EhloRefusedFallsBackToHeloWithoutExtensions) {
  Client c;
  c.run(R"(
    S: 220 old.example SMTP ready
    C: EHLO client.carrier.test
    S: 502 5.5.2 Error: command not recognized
    C: HELO client.carrier.test
    S: 250 old.example
  )");
  EXPECT_EQ(c.want(), W::Message);
  EXPECT_FALSE(c.s().esmtp());
  Envelope e = env("a@src.example", {"r0@dst.example"});
  e.params.ret = proto::Ret::Full;
  e.params.envid = "ID1";
  e.recipients[0].notify = proto::kNotifySuccess;
  c.begin(e, {0}, 5000);
  // No ESMTP parameter at all to a HELO server (RFC 5321 4.1.1.2 / 2.2.1).
  c.run(R"(
    C: MAIL FROM:<a@src.example>
    S: 250 ok
    C: RCPT TO:<r0@dst.example>
    S: 250 ok
    C: DATA
    S: 354 go
  )");
  c.content("x\r\n", true);
  c.run("S: 250 ok");
  EXPECT_EQ(c.outcome(0), "Delivered 250 DATA relayed");  // RFC 3461 5.2.2
  // An 8-bit message cannot go to a HELO-only server (RFC 6152 3: no 8BITMIME).
  Envelope e8 = env("a@src.example", {"r0@dst.example"});
  e8.params.body = proto::Body::EightBitMime;
  EXPECT_EQ(c.begin(e8, {0}), 1u);
  EXPECT_EQ(c.sent(), "");
  EXPECT_EQ(c.outcome_count(), 2u);
}

TEST(ClientSession, Rfc5321_4_1_4_HeloRefusedToo) {
  Client c;
  c.begin(env("a@src.example", {"r0@dst.example"}), {0});  // queued before the greeting
  EXPECT_EQ(c.want(), W::Reply);
  c.run(R"(
    S: 220 mx.example
    C: EHLO client.carrier.test
    S: 500 5.5.1 what?
    C: HELO client.carrier.test
    S: 550 5.7.1 Go away
    C: QUIT
  )");
  EXPECT_EQ(c.want(), W::Close);
  EXPECT_TRUE(c.s().connection_failed());
  EXPECT_EQ(c.s().failure_stage(), "EHLO");
  EXPECT_EQ(c.s().failure_reply().code, 550);
  EXPECT_EQ(c.outcome(0), "TempFail 550 5.7.1 EHLO");  // next MX may take it: not permanent
}

TEST(ClientSession, Rfc5321_4_2_EhloTemporaryFailure) {
  Client c;
  c.run(R"(
    S: 220 mx.example
    C: EHLO client.carrier.test
    S: 454 4.7.0 Too many connections
    C: QUIT
  )");
  EXPECT_TRUE(c.s().connection_failed());
  EXPECT_EQ(c.s().failure_stage(), "EHLO");
  Client d;
  d.run(R"(
    S: 220 mx.example
    C: EHLO client.carrier.test
    S: 421 4.3.2 Shutting down
  )");  // RFC 5321 3.8: no QUIT after 421
  EXPECT_TRUE(d.s().connection_failed());
  EXPECT_EQ(d.want(), W::Close);
}

TEST(ClientSession, InvalidHeloNameFallsBackToLocalhost) {
  ClientConfig cfg = test_config();
  cfg.helo_name = "bad name\r\nRCPT TO:<x@y>";
  Client c(cfg);
  c.run(R"(
    S: 220 mx.example
    C: EHLO localhost
  )");
}

// ---------------------------------------------------------------- greeting / 421

TEST(ClientSession, Rfc5321_3_8_Greeting421IsAConnectionFailure) {
  Client c;
  c.begin(env("a@src.example", {"r0@dst.example", "r1@dst.example"}), {0, 1});
  c.run("S: 421 4.3.2 mx.example Service not available, closing channel");
  EXPECT_EQ(c.want(), W::Close);
  EXPECT_TRUE(c.s().connection_failed());
  EXPECT_EQ(c.s().failure_stage(), "connect");
  EXPECT_EQ(c.s().failure_reply().code, 421);
  EXPECT_EQ(c.outcome(0), "TempFail 421 4.3.2 connect");
  EXPECT_EQ(c.outcome(1), "TempFail 421 4.3.2 connect");
  // Nothing more happens on a closed session.
  EXPECT_EQ(c.begin(env("a@src.example", {"r0@dst.example"}), {0}), 0u);
  c.s().on_input("220 late\r\n");
  c.s().quit();
  EXPECT_EQ(c.sent(), "");
}

TEST(ClientSession, Rfc5321_3_1_Greeting554QuitsAndIsStillTemporaryHere) {
  Client c;
  c.begin(env("a@src.example", {"r0@dst.example"}), {0});
  c.run(R"(
    S: 554 5.7.1 No SMTP service here
    C: QUIT
  )");
  EXPECT_TRUE(c.s().connection_failed());
  EXPECT_EQ(c.s().failure_reply().code, 554);
  // A 5xx greeting means "try the next MX", not a bounce (RFC 5321 5.1).
  EXPECT_EQ(c.outcome(0), "TempFail 554 5.7.1 connect");
}

TEST(ClientSession, Rfc5321_4_3_2_GreetingMustBe220) {
  Client c;
  c.run("S: 250 hello?");
  EXPECT_EQ(c.want(), W::Close);
  EXPECT_TRUE(c.s().connection_failed());
  EXPECT_EQ(c.s().failure_reply().status, "4.5.0");
}

TEST(ClientSession, Rfc5321_3_8_Mid_Transaction421FailsEverythingOpenTemporarily) {
  Client c;
  c.ready({"PIPELINING"});
  c.begin(env("a@src.example", {"r0@dst.example", "r1@dst.example", "r2@dst.example"}),
          {0, 1, 2});
  c.run(R"(
    C: MAIL FROM:<a@src.example>
    C: RCPT TO:<r0@dst.example>
    C: RCPT TO:<r1@dst.example>
    C: RCPT TO:<r2@dst.example>
    C: DATA
    S: 250 ok
    S: 250 ok
    S: 550 5.1.1 unknown
    S: 421 4.4.2 mx.example Error: timeout exceeded
  )");  // no QUIT after 421
  EXPECT_EQ(c.want(), W::Close);
  EXPECT_FALSE(c.s().connection_failed());  // a recipient-level result, not a refused connection
  EXPECT_EQ(c.outcome(0), "TempFail 421 4.4.2 RCPT");  // accepted, but no DATA happened
  EXPECT_EQ(c.outcome(1), "PermFail 550 5.1.1 RCPT");
  EXPECT_EQ(c.outcome(2), "TempFail 421 4.4.2 RCPT");
}

TEST(ClientSession, Rfc5321_3_8_421AfterEndOfData) {
  Client c;
  c.ready({});
  c.begin(env("a@src.example", {"r0@dst.example"}), {0});
  c.run(R"(
    C: MAIL FROM:<a@src.example>
    S: 250 ok
    C: RCPT TO:<r0@dst.example>
    S: 250 ok
    C: DATA
    S: 354 go
  )");
  c.content("x\r\n", true);
  c.run("S: 421 4.3.0 shutting down");
  EXPECT_EQ(c.outcome(0), "TempFail 421 4.3.0 DATA");
  EXPECT_EQ(c.want(), W::Close);
}

TEST(ClientSession, Rfc5321_3_8_Unsolicited421WhileIdle) {
  Client c;
  c.ready({});
  c.run("S: 421 4.4.2 idle timeout");
  EXPECT_EQ(c.want(), W::Close);
  EXPECT_EQ(c.outcome_count(), 0u);
  EXPECT_FALSE(c.s().connection_failed());
}

// ---------------------------------------------------------------- protocol errors

TEST(ClientSession, MalformedReplyIsATemporaryFailureAndClose) {
  Client c;
  c.ready({});
  c.begin(env("a@src.example", {"r0@dst.example"}), {0});
  c.run(R"(
    C: MAIL FROM:<a@src.example>
    S: 250 ok
    C: RCPT TO:<r0@dst.example>
    S: HTTP/1.1 400 Bad Request
  )");
  EXPECT_EQ(c.want(), W::Close);
  EXPECT_EQ(c.outcome(0), "TempFail 451 4.5.0 RCPT generated");
  EXPECT_NE(c.find(0)->reply.lines.front().find("malformed reply"), std::string::npos);
}

TEST(ClientSession, UnexpectedReplyCodeIsAProtocolError) {
  Client c;
  c.ready({});
  c.begin(env("a@src.example", {"r0@dst.example"}), {0});
  c.run(R"(
    C: MAIL FROM:<a@src.example>
    S: 354 what?
  )");
  EXPECT_EQ(c.want(), W::Close);
  EXPECT_EQ(c.outcome(0), "TempFail 451 4.5.0 MAIL generated");
}

TEST(ClientSession, ReplyDuringDataContentIsAProtocolError) {
  Client c;
  c.ready({});
  c.begin(env("a@src.example", {"r0@dst.example"}), {0});
  c.run(R"(
    C: MAIL FROM:<a@src.example>
    S: 250 ok
    C: RCPT TO:<r0@dst.example>
    S: 250 ok
    C: DATA
    S: 354 go
  )");
  c.content("part\r\n", false);
  c.run("S: 552 5.3.4 too big");  // nothing was asked
  EXPECT_EQ(c.want(), W::Close);
  EXPECT_EQ(c.outcome(0), "TempFail 451 4.5.0 DATA generated");
  EXPECT_FALSE(c.s().content_chunk("more", true));
}

TEST(ClientSession, TooLongReplyLineIsAProtocolError) {
  Client c;
  c.ready({});
  c.begin(env("a@src.example", {"r0@dst.example"}), {0});
  EXPECT_EQ(c.sent(), "MAIL FROM:<a@src.example>\r\n");
  c.server("250 " + std::string(5000, 'x'));  // no line end needed to know
  EXPECT_EQ(c.want(), W::Close);
  EXPECT_EQ(c.outcome(0), "TempFail 451 4.5.0 MAIL generated");
}

TEST(ClientSession, ConnectionLostAndTimeout) {
  Client c;
  c.ready({});
  c.begin(env("a@src.example", {"r0@dst.example"}), {0});
  c.run(R"(
    C: MAIL FROM:<a@src.example>
    S: 250 ok
    C: RCPT TO:<r0@dst.example>
    S: 250 ok
    C: DATA
    S: 354 go
  )");
  c.content("x\r\n", true);
  c.s().on_closed();
  EXPECT_EQ(c.want(), W::Close);
  EXPECT_EQ(c.outcome(0), "TempFail 451 4.4.2 DATA generated");
  EXPECT_EQ(c.sent(), "");

  Client d;
  d.s().on_timeout();  // no greeting in time (RFC 5321 4.5.3.2.1)
  EXPECT_TRUE(d.s().connection_failed());
  EXPECT_EQ(d.s().failure_stage(), "connect");
  EXPECT_EQ(d.s().failure_reply().status, "4.4.2");
  EXPECT_EQ(d.sent(), "");
}

TEST(ClientSession, LocalErrorDuringContentClosesWithoutEndingTheData) {
  Client c;
  c.ready({});
  c.begin(env("a@src.example", {"r0@dst.example"}), {0});
  c.run(R"(
    C: MAIL FROM:<a@src.example>
    S: 250 ok
    C: RCPT TO:<r0@dst.example>
    S: 250 ok
    C: DATA
    S: 354 go
  )");
  c.content("half a mess", false);
  c.s().on_local_error("read error\non spool");
  EXPECT_EQ(c.sent(), "");  // neither "." nor QUIT: a partial message must not be delivered
  EXPECT_EQ(c.want(), W::Close);
  EXPECT_EQ(c.outcome(0), "TempFail 451 4.3.0 DATA generated");
  EXPECT_EQ(c.find(0)->reply.lines.front(), "local error: read error?on spool");
}

TEST(ClientSession, QuitDuringDataContentSendsNoQuit) {
  Client c;
  c.ready({});
  c.begin(env("a@src.example", {"r0@dst.example"}), {0});
  c.run(R"(
    C: MAIL FROM:<a@src.example>
    S: 250 ok
    C: RCPT TO:<r0@dst.example>
    S: 250 ok
    C: DATA
    S: 354 go
  )");
  c.s().quit();
  EXPECT_EQ(c.sent(), "");
  EXPECT_EQ(c.outcome(0), "TempFail 451 4.3.0 DATA generated");
}

// ---------------------------------------------------------------- SIZE, 8BITMIME, SMTPUTF8

TEST(ClientSession, Rfc1870_6_MessageOverTheAnnouncedLimitIsNotSent) {
  Client c;
  c.ready({"PIPELINING", "SIZE 1000"});
  EXPECT_EQ(c.s().caps().size, 1000u);
  EXPECT_EQ(c.begin(env("a@src.example", {"r0@dst.example", "r1@dst.example"}), {0, 1}, 1001), 2u);
  EXPECT_EQ(c.sent(), "");
  EXPECT_EQ(c.want(), W::Message);
  EXPECT_EQ(c.outcome(0), "PermFail 552 5.3.4 MAIL generated");
  EXPECT_EQ(c.outcome(1), "PermFail 552 5.3.4 MAIL generated");
  EXPECT_EQ(c.find(0)->reply.lines.front(), "message size exceeds remote limit");
  // Exactly the limit goes, with SIZE= (RFC 1870 4: the limit is inclusive).
  c.begin(env("a@src.example", {"r2@dst.example"}), {0}, 1000);
  EXPECT_EQ(c.sent(), "MAIL FROM:<a@src.example> SIZE=1000\r\nRCPT TO:<r2@dst.example>\r\nDATA\r\n");
}

TEST(ClientSession, Rfc1870_4_SizeWithoutNumberMeansNoLimit) {
  Client c;
  c.ready({"SIZE"});
  c.begin(env("a@src.example", {"r0@dst.example"}), {0}, 1000000000);
  EXPECT_EQ(c.sent(), "MAIL FROM:<a@src.example> SIZE=1000000000\r\n");
}

TEST(ClientSession, Rfc6152_3_EightBitBodyNeeds8BitMime) {
  Envelope e = env("a@src.example", {"r0@dst.example", "r1@dst.example"});
  e.params.body = proto::Body::EightBitMime;
  e.params.body_given = true;
  Client with;
  with.ready({"8BITMIME"});
  with.begin(e, {0, 1});
  EXPECT_EQ(with.sent(), "MAIL FROM:<a@src.example> BODY=8BITMIME\r\n");
  Client without;
  without.ready({"PIPELINING", "SIZE 100000"});
  without.begin(e, {0, 1});
  EXPECT_EQ(without.sent(), "");  // no downgrade conversion: refused
  EXPECT_EQ(without.outcome(0), "PermFail 554 5.6.3 MAIL generated");
  EXPECT_EQ(without.outcome(1), "PermFail 554 5.6.3 MAIL generated");
  // A 7-bit message to the same server goes without BODY=.
  without.begin(env("a@src.example", {"r0@dst.example"}), {0}, 10);
  EXPECT_EQ(without.sent(), "MAIL FROM:<a@src.example> SIZE=10\r\nRCPT TO:<r0@dst.example>\r\nDATA\r\n");
}

TEST(ClientSession, Rfc6531_3_2_SmtpUtf8MessageNeedsSmtpUtf8) {
  Envelope e = env("j\xC3\xBCrgen@src.example", {"r0@dst.example"});
  e.params.smtputf8 = true;
  Client without;
  without.ready({"8BITMIME"});
  without.begin(e, {0});
  EXPECT_EQ(without.sent(), "");
  EXPECT_EQ(without.outcome(0), "PermFail 553 5.6.7 MAIL generated");
  Client with;
  with.ready({"8BITMIME", "SMTPUTF8"});
  with.begin(e, {0});
  EXPECT_EQ(with.sent(), "MAIL FROM:<j\xC3\xBCrgen@src.example> SMTPUTF8\r\n");  // RFC 6531 3.4
}

TEST(ClientSession, Rfc6531_3_2_Utf8RecipientAloneFailsOnlyItself) {
  const Envelope e = env("a@src.example", {"r0@dst.example", "\xC3\xBC@dst.example"});
  Client without;
  without.ready({"PIPELINING"});
  without.begin(e, {0, 1});
  EXPECT_EQ(without.sent(), "MAIL FROM:<a@src.example>\r\nRCPT TO:<r0@dst.example>\r\nDATA\r\n");
  EXPECT_EQ(without.outcome(1), "PermFail 553 5.6.7 RCPT generated");
  Client with;
  with.ready({"PIPELINING", "SMTPUTF8"});
  with.begin(e, {0, 1});
  EXPECT_EQ(with.sent(),
            "MAIL FROM:<a@src.example> SMTPUTF8\r\nRCPT TO:<r0@dst.example>\r\n"
            "RCPT TO:<\xC3\xBC@dst.example>\r\nDATA\r\n");
}

TEST(ClientSession, ControlCharactersInAnAddressAreNeverSent) {
  Envelope e = env("a@src.example", {"r0@dst.example", "r1@dst.example"});
  e.recipients[1].address.local = "r1\r\nDATA";  // corrupt spool data must not inject commands
  Client c;
  c.ready({"PIPELINING"});
  c.begin(e, {0, 1});
  EXPECT_EQ(c.sent(), "MAIL FROM:<a@src.example>\r\nRCPT TO:<r0@dst.example>\r\nDATA\r\n");
  EXPECT_EQ(c.outcome(1), "PermFail 553 5.1.3 RCPT generated");
}

// ---------------------------------------------------------------- DSN

TEST(ClientSession, Rfc3461_4_DsnParametersPassedXtextEncoded) {
  Envelope e = env("a@src.example", {"r0@dst.example", "r1@dst.example", "r2@dst.example"});
  e.params.ret = proto::Ret::Hdrs;
  e.params.envid = "QQ 314+=x";
  e.recipients[0].notify = proto::kNotifySuccess | proto::kNotifyFailure;
  e.recipients[0].orcpt_type = "rfc822";
  e.recipients[0].orcpt = "Bob+Tag=1@orig.example";
  e.recipients[1].notify = proto::kNotifyNever;
  e.recipients[2].notify = proto::kNotifyDelay;
  e.recipients[2].orcpt_type = "utf-8";
  e.recipients[2].orcpt = "j\xC3\xBCrgen@b\xC3\xBC" "cher.example";
  Client c;
  c.ready({"PIPELINING", "DSN"});
  c.begin(e, {0, 1, 2});
  const std::string mail = "MAIL FROM:<a@src.example> RET=HDRS ENVID=" +
                           proto::xtext_encode("QQ 314+=x");
  const std::string r0 = "RCPT TO:<r0@dst.example> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;" +
                         proto::xtext_encode("Bob+Tag=1@orig.example");
  // No ORCPT received: the address as given (RFC 3461 4.2).
  const std::string r1 = "RCPT TO:<r1@dst.example> NOTIFY=NEVER ORCPT=rfc822;r1@dst.example";
  // RFC 6533 3: utf-8-addr-xtext.
  const std::string r2 =
      "RCPT TO:<r2@dst.example> NOTIFY=DELAY ORCPT=utf-8;j\\x{FC}rgen@b\\x{FC}cher.example";
  EXPECT_EQ(c.sent(), mail + "\r\n" + r0 + "\r\n" + r1 + "\r\n" + r2 + "\r\nDATA\r\n");
  EXPECT_EQ(mail, "MAIL FROM:<a@src.example> RET=HDRS ENVID=QQ+20314+2B+3Dx");

  // What we send, carrier's own server parses back to the same values.
  proto::Extensions ext;
  auto m = proto::parse_mail(std::string_view(mail).substr(5), ext);
  ASSERT_TRUE(std::holds_alternative<proto::MailFrom>(m));
  EXPECT_EQ(std::get<proto::MailFrom>(m).params.envid, "QQ 314+=x");
  EXPECT_EQ(std::get<proto::MailFrom>(m).params.ret, proto::Ret::Hdrs);
  auto p0 = proto::parse_rcpt(std::string_view(r0).substr(5), ext, false);
  ASSERT_TRUE(std::holds_alternative<proto::RcptTo>(p0));
  EXPECT_EQ(std::get<proto::RcptTo>(p0).params.orcpt, "Bob+Tag=1@orig.example");
  EXPECT_EQ(std::get<proto::RcptTo>(p0).params.notify,
            unsigned(proto::kNotifySuccess | proto::kNotifyFailure));
  auto p2 = proto::parse_rcpt(std::string_view(r2).substr(5), ext, false);
  ASSERT_TRUE(std::holds_alternative<proto::RcptTo>(p2));
  EXPECT_EQ(std::get<proto::RcptTo>(p2).params.orcpt, e.recipients[2].orcpt);
  EXPECT_EQ(std::get<proto::RcptTo>(p2).params.orcpt_type, "utf-8");

  c.run(R"(
    S: 250 ok
    S: 250 ok
    S: 250 ok
    S: 250 ok
    S: 354 go
  )");
  c.content("x\r\n", true);
  c.run("S: 250 ok");
  // The server offers DSN: it will send the success DSN itself.
  EXPECT_EQ(c.outcome(0), "Delivered 250 DATA");
}

TEST(ClientSession, Rfc3461_5_2_2_NoDsnDownstreamMarksSuccessNotifyAsRelayed) {
  Envelope e = env("a@src.example", {"r0@dst.example", "r1@dst.example", "r2@dst.example"});
  e.params.ret = proto::Ret::Full;
  e.params.envid = "ENV";
  e.recipients[0].notify = proto::kNotifySuccess;
  e.recipients[1].notify = proto::kNotifyFailure | proto::kNotifyDelay;
  e.recipients[2].orcpt_type = "rfc822";
  e.recipients[2].orcpt = "x@orig.example";
  Client c;
  c.ready({"PIPELINING"});
  c.begin(e, {0, 1, 2});
  c.run(R"(
    C: MAIL FROM:<a@src.example>
    C: RCPT TO:<r0@dst.example>
    C: RCPT TO:<r1@dst.example>
    C: RCPT TO:<r2@dst.example>
    C: DATA
    S: 250 ok
    S: 250 ok
    S: 250 ok
    S: 250 ok
    S: 354 go
  )");
  c.content("x\r\n", true);
  c.run("S: 250 2.0.0 ok");
  EXPECT_EQ(c.outcome(0), "Delivered 250 2.0.0 DATA relayed");
  EXPECT_EQ(c.outcome(1), "Delivered 250 2.0.0 DATA");
  EXPECT_EQ(c.outcome(2), "Delivered 250 2.0.0 DATA");
}

TEST(ClientSession, Rfc3461_4_OverlongOrcptAndEnvidAreLeftOut) {
  Envelope e = env("a@src.example", {"r0@dst.example"});
  e.params.envid = std::string(60, '+');  // 180 octets as xtext: over 100 (RFC 3461 4.4)
  e.recipients[0].orcpt_type = "rfc822";
  e.recipients[0].orcpt = std::string(200, '=') + "@x.example";  // over 500 as xtext (4.2)
  Client c;
  c.ready({"DSN"});
  c.begin(e, {0});
  c.run(R"(
    C: MAIL FROM:<a@src.example>
    S: 250 ok
    C: RCPT TO:<r0@dst.example>
  )");
}

// ---------------------------------------------------------------- CHUNKING / BDAT

TEST(ClientSession, Rfc3030_2_BdatInLockstepWithoutPipelining) {
  Client c;
  c.ready({"CHUNKING", "8BITMIME"});
  c.begin(env("a@src.example", {"r0@dst.example", "r1@dst.example"}), {0, 1}, 8);
  EXPECT_TRUE(c.s().uses_bdat());
  c.run(R"(
    C: MAIL FROM:<a@src.example>
    S: 250 ok
    C: RCPT TO:<r0@dst.example>
    S: 250 ok
    C: RCPT TO:<r1@dst.example>
    S: 550 5.1.1 unknown
  )");  // no DATA with CHUNKING
  EXPECT_EQ(c.want(), W::SendContent);
  // No dot-stuffing with BDAT: the octets go as they are.
  EXPECT_EQ(c.content(".\r\n", false), "BDAT 3\r\n.\r\n");
  EXPECT_EQ(c.want(), W::Reply);  // no PIPELINING: wait for each chunk's reply
  EXPECT_EQ(c.s().timeout(), 180s);
  c.run("S: 250 2.0.0 3 octets received");
  EXPECT_EQ(c.want(), W::SendContent);
  EXPECT_EQ(c.content("", false), "");  // an empty non-last piece sends nothing
  EXPECT_EQ(c.want(), W::SendContent);
  EXPECT_EQ(c.content("abcde", true), "BDAT 5 LAST\r\nabcde");
  EXPECT_EQ(c.s().timeout(), 600s);
  c.run("S: 250 2.0.0 Message accepted");
  EXPECT_EQ(c.outcome(0), "Delivered 250 2.0.0 BDAT");
  EXPECT_EQ(c.outcome(1), "PermFail 550 5.1.1 RCPT");
  EXPECT_EQ(c.want(), W::Message);
}

TEST(ClientSession, Rfc3030_4_2_PipelinedBdatFirstChunkRidesWithTheGroup) {
  ClientConfig cfg = test_config();
  cfg.max_bdat_in_flight = 2;
  Client c(cfg);
  c.ready({"PIPELINING", "CHUNKING"});
  c.begin(env("a@src.example", {"r0@dst.example"}), {0}, 20);
  EXPECT_EQ(c.sent(), "MAIL FROM:<a@src.example>\r\nRCPT TO:<r0@dst.example>\r\n");
  EXPECT_EQ(c.want(), W::SendContent);  // the first chunk follows without waiting
  EXPECT_EQ(c.content("12345", false), "BDAT 5\r\n12345");
  EXPECT_EQ(c.want(), W::Reply);  // no more until MAIL/RCPT are answered
  c.run(R"(
    S: 250 ok
    S: 250 ok
  )");
  EXPECT_EQ(c.want(), W::SendContent);  // chunk replies may lag, up to max_bdat_in_flight
  EXPECT_EQ(c.content("67890", false), "BDAT 5\r\n67890");
  EXPECT_EQ(c.want(), W::Reply);  // two chunks unanswered
  c.run("S: 250 2.0.0 5 octets");
  EXPECT_EQ(c.want(), W::SendContent);
  EXPECT_EQ(c.content("abcdefghij", true), "BDAT 10 LAST\r\nabcdefghij");
  c.run(R"(
    S: 250 2.0.0 5 octets
    S: 250 2.0.0 queued
  )");
  EXPECT_EQ(c.outcome(0), "Delivered 250 2.0.0 BDAT");
  EXPECT_EQ(c.want(), W::Message);
  EXPECT_EQ(c.s().replies_pending(), 0u);
}

TEST(ClientSession, Rfc3030_2_FailedChunkStopsTheContentAndNeedsRset) {
  Client c;
  c.ready({"PIPELINING", "CHUNKING"});
  c.begin(env("a@src.example", {"r0@dst.example", "r1@dst.example"}), {0, 1});
  c.sent();
  EXPECT_EQ(c.content("one", false), "BDAT 3\r\none");
  c.run(R"(
    S: 250 ok
    S: 250 ok
    S: 250 ok
  )");  // MAIL, RCPT, RCPT
  EXPECT_EQ(c.content("two", false), "BDAT 3\r\ntwo");
  c.run("S: 452 4.3.1 Insufficient system storage");  // the reply to chunk "one"
  EXPECT_EQ(c.outcome(0), "TempFail 452 4.3.1 BDAT");
  EXPECT_EQ(c.outcome(1), "TempFail 452 4.3.1 BDAT");
  EXPECT_EQ(c.want(), W::Reply);  // "two" is still in flight; no further chunk
  EXPECT_FALSE(c.s().content_chunk("three", true));
  c.run("S: 503 5.5.1 chunk discarded");  // RFC 3030 2: the server discards it
  EXPECT_EQ(c.want(), W::Message);
  EXPECT_EQ(c.outcome_count(), 2u);
  c.begin(env("a@src.example", {"r0@dst.example"}), {0});
  EXPECT_EQ(c.sent(), "RSET\r\nMAIL FROM:<a@src.example>\r\nRCPT TO:<r0@dst.example>\r\n");
}

TEST(ClientSession, Rfc3030_4_2_PipelinedBdatAllRecipientsRefused) {
  Client c;
  c.ready({"PIPELINING", "CHUNKING"});
  c.begin(env("a@src.example", {"r0@dst.example"}), {0});
  c.sent();
  EXPECT_EQ(c.content("chunk", false), "BDAT 5\r\nchunk");
  c.run(R"(
    S: 250 ok
    S: 550 5.1.1 unknown
  )");
  EXPECT_EQ(c.want(), W::Reply);  // the chunk's reply is still due; no more chunks
  c.run("S: 554 5.5.1 no valid recipients");
  EXPECT_EQ(c.want(), W::Message);
  EXPECT_EQ(c.outcome(0), "PermFail 550 5.1.1 RCPT");
  c.begin(env("a@src.example", {"r1@dst.example"}), {0});
  EXPECT_EQ(c.sent(), "RSET\r\nMAIL FROM:<a@src.example>\r\nRCPT TO:<r1@dst.example>\r\n");
}

TEST(ClientSession, Rfc3030_3_BinaryMimeNeedsBinaryMimeAndChunking) {
  Envelope e = env("a@src.example", {"r0@dst.example"});
  e.params.body = proto::Body::BinaryMime;
  Client with;
  with.ready({"CHUNKING", "BINARYMIME", "8BITMIME"});
  with.begin(e, {0}, 4);
  EXPECT_EQ(with.sent(), "MAIL FROM:<a@src.example> BODY=BINARYMIME\r\n");
  Client chunking_only;
  chunking_only.ready({"CHUNKING", "8BITMIME"});
  chunking_only.begin(e, {0});
  EXPECT_EQ(chunking_only.sent(), "");
  EXPECT_EQ(chunking_only.outcome(0), "PermFail 554 5.6.3 MAIL generated");
  ClientConfig no_bdat = test_config();
  no_bdat.use_chunking = false;
  Client off(no_bdat);
  off.ready({"CHUNKING", "BINARYMIME", "8BITMIME"});
  off.begin(e, {0});
  EXPECT_EQ(off.outcome(0), "PermFail 554 5.6.3 MAIL generated");
}

// ---------------------------------------------------------------- connection reuse

TEST(ClientSession, Rfc5321_3_3_TwoMessagesOnOneConnection) {
  Client c;
  c.ready({"PIPELINING", "8BITMIME", "SIZE 5000"});
  Envelope m1 = env("a@src.example", {"r0@dst.example", "r1@dst.example"});
  c.begin(m1, {0, 1}, 10);
  c.run(R"(
    C: MAIL FROM:<a@src.example> SIZE=10
    C: RCPT TO:<r0@dst.example>
    C: RCPT TO:<r1@dst.example>
    C: DATA
    S: 250 ok
    S: 250 ok
    S: 250 ok
    S: 354 go
  )");
  c.content("message 1\r\n", true);
  c.run("S: 250 2.0.0 queued as A");
  EXPECT_EQ(c.want(), W::Message);
  Envelope m2 = env("b@src.example", {"s0@dst.example"});
  m2.params.body = proto::Body::EightBitMime;
  c.begin(m2, {0}, 20);
  c.run(R"(
    C: MAIL FROM:<b@src.example> SIZE=20 BODY=8BITMIME
    C: RCPT TO:<s0@dst.example>
    C: DATA
    S: 250 ok
    S: 250 ok
    S: 354 go
  )");
  c.content("message \xE2\x82\xAC 2\r\n", true);
  c.run("S: 250 2.0.0 queued as B");
  EXPECT_EQ(c.outcome_count(), 3u);
  EXPECT_EQ(c.s().transactions(), 2u);
  c.s().quit();
  EXPECT_EQ(c.sent(), "QUIT\r\n");
}

TEST(ClientSession, Rfc5321_4_5_3_1_8_AtMostMaxRecipientsPerTransaction) {
  ClientConfig cfg = test_config();
  cfg.max_rcpts_per_transaction = 2;
  Client c(cfg);
  c.ready({"PIPELINING"});
  const Envelope e = env("a@src.example", {"r0@x.example", "r1@x.example", "r2@x.example"});
  EXPECT_EQ(c.begin(e, {2, 0, 1}), 2u);  // takes the first two indexes given
  c.run(R"(
    C: MAIL FROM:<a@src.example>
    C: RCPT TO:<r2@x.example>
    C: RCPT TO:<r0@x.example>
    C: DATA
    S: 250 ok
    S: 250 ok
    S: 250 ok
    S: 354 go
  )");
  c.content("x\r\n", true);
  c.run("S: 250 ok");
  EXPECT_EQ(c.begin(e, {1}), 1u);  // the rest, content sent again
  c.run(R"(
    C: MAIL FROM:<a@src.example>
    C: RCPT TO:<r1@x.example>
    C: DATA
    S: 250 ok
    S: 250 ok
    S: 354 go
  )");
  c.content("x\r\n", true);
  c.run("S: 250 ok");
  for (std::size_t i = 0; i < 3; ++i) EXPECT_EQ(c.outcome(i), "Delivered 250 DATA");
}

TEST(ClientSession, BeginMessageMisuseTakesNothing) {
  Client c;
  c.ready({});
  const Envelope e = env("a@src.example", {"r0@dst.example"});
  EXPECT_EQ(c.begin(e, {}), 0u);
  EXPECT_EQ(c.begin(e, {1}), 0u);  // index out of range
  EXPECT_EQ(c.sent(), "");
  EXPECT_FALSE(c.s().content_chunk("x", true));  // not asked for content
  EXPECT_EQ(c.begin(e, {0}), 1u);
  EXPECT_EQ(c.begin(e, {0}), 0u);  // a transaction is open
  EXPECT_EQ(c.sent(), "MAIL FROM:<a@src.example>\r\n");
  c.s().on_tls_started();  // not asked for: ignored
  EXPECT_EQ(c.sent(), "");
  EXPECT_EQ(c.want(), W::Reply);
}

TEST(ClientSession, MessageGivenBeforeTheGreetingStartsWhenReady) {
  Client c;
  EXPECT_EQ(c.begin(env("a@src.example", {"r0@dst.example"}), {0}), 1u);
  EXPECT_EQ(c.sent(), "");
  EXPECT_EQ(c.begin(env("a@src.example", {"r1@dst.example"}), {0}), 0u);  // one at a time
  c.run(R"(
    S: 220 mx.example ESMTP
    C: EHLO client.carrier.test
    S: 250-mx.example
    S: 250 PIPELINING
    C: MAIL FROM:<a@src.example>
    C: RCPT TO:<r0@dst.example>
    C: DATA
  )");
}

TEST(ClientSession, ByteByByteServerInputGivesTheSameTranscript) {
  Client c;
  c.set_bytewise(true);
  c.ready({"PIPELINING", "SIZE 1000"});
  c.begin(env("a@src.example", {"r0@dst.example", "r1@dst.example"}), {0, 1}, 5);
  c.run(R"(
    C: MAIL FROM:<a@src.example> SIZE=5
    C: RCPT TO:<r0@dst.example>
    C: RCPT TO:<r1@dst.example>
    C: DATA
    S: 250-2.1.0 Sender
    S: 250 2.1.0 ok
    S: 250 ok
    S: 550 5.1.1 no
    S: 354 go
  )");
  c.content("x\r\n", true);
  c.run("S: 250 ok");
  EXPECT_EQ(c.outcome(0), "Delivered 250 DATA");
  EXPECT_EQ(c.outcome(1), "PermFail 550 5.1.1 RCPT");
}

// ---------------------------------------------------------------- STARTTLS (RFC 3207)

TEST(ClientSession, Rfc3207_4_StartTlsThenEhloAgain) {
  Client c;
  c.run(R"(
    S: 220 mx.example ESMTP
    C: EHLO client.carrier.test
    S: 250-mx.example
    S: 250-PIPELINING
    S: 250-SIZE 10
    S: 250 STARTTLS
    C: STARTTLS
    S: 220 2.0.0 Ready to start TLS
  )");
  EXPECT_EQ(c.want(), W::StartTls);
  EXPECT_FALSE(c.s().tls_active());
  c.s().on_tls_started();
  EXPECT_TRUE(c.s().tls_active());
  // RFC 3207 4.2: knowledge from before TLS is discarded; only the new EHLO counts.
  EXPECT_FALSE(c.s().caps().pipelining);
  c.run(R"(
    C: EHLO client.carrier.test
    S: 250-mx.example
    S: 250-SIZE 5000
    S: 250 STARTTLS
  )");  // STARTTLS offered again: not sent twice
  EXPECT_EQ(c.want(), W::Message);
  EXPECT_EQ(c.s().caps().size, 5000u);
  c.begin(env("a@src.example", {"r0@dst.example"}), {0}, 100);
  EXPECT_EQ(c.sent(), "MAIL FROM:<a@src.example> SIZE=100\r\n");
}

TEST(ClientSession, Rfc3207_PolicyNoneNeverSendsStartTls) {
  ClientConfig cfg = test_config();
  cfg.tls = TlsPolicy::None;
  Client c(cfg);
  c.ready({"STARTTLS", "PIPELINING"});
  EXPECT_FALSE(c.s().tls_active());
}

TEST(ClientSession, Rfc3207_PolicyMayWithoutStartTlsGoesOnInPlainText) {
  Client c;  // TlsPolicy::May is the default
  c.ready({"PIPELINING"});
  EXPECT_FALSE(c.s().tls_active());
}

TEST(ClientSession, Rfc3207_EncryptWithoutStartTlsIsATemporaryConnectionFailure) {
  ClientConfig cfg = test_config();
  cfg.tls = TlsPolicy::Encrypt;
  Client c(cfg);
  c.begin(env("a@src.example", {"r0@dst.example"}), {0});
  c.run(R"(
    S: 220 mx.example ESMTP
    C: EHLO client.carrier.test
    S: 250-mx.example
    S: 250 PIPELINING
    C: QUIT
  )");
  EXPECT_EQ(c.want(), W::Close);
  EXPECT_TRUE(c.s().connection_failed());
  EXPECT_EQ(c.s().failure_stage(), "STARTTLS");
  EXPECT_EQ(c.outcome(0), "TempFail 451 4.7.10 STARTTLS generated");
  EXPECT_EQ(c.find(0)->reply.lines.front(), "TLS required but not offered by the server");
}

TEST(ClientSession, Rfc3207_EncryptWithHeloFallbackIsAFailureToo) {
  ClientConfig cfg = test_config();
  cfg.tls = TlsPolicy::Encrypt;
  Client c(cfg);
  c.run(R"(
    S: 220 mx.example
    C: EHLO client.carrier.test
    S: 502 5.5.2 no
    C: HELO client.carrier.test
    S: 250 mx.example
    C: QUIT
  )");
  EXPECT_TRUE(c.s().connection_failed());
}

TEST(ClientSession, Rfc3207_4_StartTlsRefused) {
  const char* script = R"(
    S: 220 mx.example ESMTP
    C: EHLO client.carrier.test
    S: 250-mx.example
    S: 250 STARTTLS
    C: STARTTLS
  )";
  Client may;
  may.run(script);
  may.run("S: 454 4.7.0 TLS not available due to temporary reason");
  EXPECT_EQ(may.want(), W::Message);  // plain text it is
  EXPECT_FALSE(may.s().tls_active());

  ClientConfig cfg = test_config();
  cfg.tls = TlsPolicy::Encrypt;
  Client enc(cfg);
  enc.run(script);
  enc.run(R"(
    S: 454 4.7.0 TLS not available due to temporary reason
    C: QUIT
  )");
  EXPECT_TRUE(enc.s().connection_failed());
  EXPECT_EQ(enc.s().failure_stage(), "STARTTLS");
  EXPECT_EQ(enc.s().failure_reply().code, 454);
}

TEST(ClientSession, Rfc3207_5_PlainTextAfterThe220IsRefused) {
  Client c;
  c.begin(env("a@src.example", {"r0@dst.example"}), {0});
  c.run(R"(
    S: 220 mx.example ESMTP
    C: EHLO client.carrier.test
    S: 250-mx.example
    S: 250 STARTTLS
    C: STARTTLS
    S: 220 2.0.0 go ahead
    S: 250-injected
    S: 250 PIPELINING
  )");  // response injection: bytes that would be read as if they came over TLS
  EXPECT_EQ(c.want(), W::Close);
  EXPECT_FALSE(c.s().tls_active());
  EXPECT_TRUE(c.s().connection_failed());
  EXPECT_EQ(c.outcome(0), "TempFail 451 4.5.0 STARTTLS generated");
  // Even a lone partial line after the 220 counts.
  Client d;
  d.run(R"(
    S: 220 mx.example ESMTP
    C: EHLO client.carrier.test
    S: 250-mx.example
    S: 250 STARTTLS
    C: STARTTLS
  )");
  d.server("220 go\r\n2");
  EXPECT_EQ(d.want(), W::Close);
  // And bytes arriving while the handshake is under way.
  Client e;
  e.run(R"(
    S: 220 mx.example ESMTP
    C: EHLO client.carrier.test
    S: 250-mx.example
    S: 250 STARTTLS
    C: STARTTLS
    S: 220 go
  )");
  EXPECT_EQ(e.want(), W::StartTls);
  e.server("250 x\r\n");
  EXPECT_EQ(e.want(), W::Close);
}

TEST(ClientSession, Rfc3207_HandshakeFailure) {
  Client c;
  c.begin(env("a@src.example", {"r0@dst.example"}), {0});
  c.run(R"(
    S: 220 mx.example ESMTP
    C: EHLO client.carrier.test
    S: 250-mx.example
    S: 250 STARTTLS
    C: STARTTLS
    S: 220 go
  )");
  c.s().on_tls_failed("certificate verify failed");
  EXPECT_EQ(c.sent(), "");  // no plain-text QUIT into a half-made TLS session
  EXPECT_EQ(c.want(), W::Close);
  EXPECT_TRUE(c.s().connection_failed());
  EXPECT_EQ(c.outcome(0), "TempFail 451 4.7.5 STARTTLS generated");
}

// ---------------------------------------------------------------- LMTP (RFC 2033)

ClientConfig lmtp_config() {
  ClientConfig c = test_config();
  c.lmtp = true;
  return c;
}

TEST(ClientSession, Rfc2033_4_1_LhloWithoutStartTlsOrChunking) {
  ClientConfig cfg = lmtp_config();
  cfg.tls = TlsPolicy::Verify;  // LMTP mode has no TLS: not even a required one
  Client c(cfg);
  c.begin(env("a@src.example", {"r0@dst.example"}), {0});
  c.run(R"(
    S: 220 mail.example LMTP ready
    C: LHLO client.carrier.test
    S: 250-mail.example
    S: 250-STARTTLS
    S: 250-CHUNKING
    S: 250-8BITMIME
    S: 250-ENHANCEDSTATUSCODES
    S: 250 PIPELINING
    C: MAIL FROM:<a@src.example>
    C: RCPT TO:<r0@dst.example>
    C: DATA
  )");
  EXPECT_TRUE(c.s().esmtp());
  EXPECT_FALSE(c.s().tls_active());
  EXPECT_FALSE(c.s().uses_bdat());  // CHUNKING offered, DATA used (4.2 replies follow ".")
  c.run(R"(
    S: 250 2.1.0 OK
    S: 250 2.1.5 OK
    S: 354 OK
  )");
  EXPECT_EQ(c.content(".dot\r\n", true), "..dot\r\n.\r\n");  // RFC 5321 4.5.2 as in SMTP
  c.run("S: 250 2.0.0 <r0@dst.example> Saved");
  EXPECT_EQ(c.outcome(0), "Delivered 250 2.0.0 DATA");
  EXPECT_EQ(c.want(), W::Message);
}

TEST(ClientSession, Rfc2033_4_2_OneReplyPerAcceptedRecipientInRcptOrder) {
  Client c(lmtp_config());
  c.run(R"(
    S: 220 mail.example LMTP ready
    C: LHLO client.carrier.test
    S: 250-mail.example
    S: 250-8BITMIME
    S: 250-SIZE 100000
    S: 250 PIPELINING
  )");
  ASSERT_EQ(c.want(), W::Message);
  Envelope e = env("a@src.example", {"r0@dst.example", "r1@dst.example", "r2@dst.example",
                                     "r3@dst.example"});
  e.params.body = proto::Body::EightBitMime;
  e.recipients[0].notify = proto::kNotifySuccess;  // final delivery: never "relayed"
  EXPECT_EQ(c.begin(e, {0, 1, 2, 3}, 40), 4u);
  c.run(R"(
    C: MAIL FROM:<a@src.example> SIZE=40 BODY=8BITMIME
    C: RCPT TO:<r0@dst.example>
    C: RCPT TO:<r1@dst.example>
    C: RCPT TO:<r2@dst.example>
    C: RCPT TO:<r3@dst.example>
    C: DATA
    S: 250 2.1.0 OK
    S: 250 2.1.5 OK
    S: 550 5.1.1 <r1@dst.example> User doesn't exist
    S: 250 2.1.5 OK
    S: 250 2.1.5 OK
    S: 354 OK
  )");
  EXPECT_EQ(c.outcome(1), "PermFail 550 5.1.1 RCPT");
  EXPECT_EQ(c.content("Subject: x\r\n\r\nhi\r\n", true), "Subject: x\r\n\r\nhi\r\n.\r\n");
  // Three recipients accepted: three replies awaited, each with the end-of-data timeout.
  EXPECT_EQ(c.s().replies_pending(), 3u);
  EXPECT_EQ(c.s().timeout(), 600s);
  c.run("S: 250 2.0.0 <r0@dst.example> Saved");
  EXPECT_EQ(c.outcome(0), "Delivered 250 2.0.0 DATA");
  EXPECT_EQ(c.outcome(2), "count=0");  // not decided by r0's reply
  EXPECT_EQ(c.want(), W::Reply);
  EXPECT_TRUE(c.s().transaction_open());
  c.run(R"(
    S: 452 4.2.2 <r2@dst.example> Quota exceeded (mailbox for user is full)
    S: 552 5.2.2 <r3@dst.example> Quota exceeded (mailbox for user is full)
  )");
  EXPECT_EQ(c.outcome(2), "TempFail 452 4.2.2 DATA");
  EXPECT_EQ(c.outcome(3), "PermFail 552 5.2.2 DATA");
  EXPECT_EQ(c.find(2)->reply.lines.front(),
            "<r2@dst.example> Quota exceeded (mailbox for user is full)");
  EXPECT_FALSE(c.find(0)->relayed_without_dsn);
  EXPECT_EQ(c.outcome_count(), 4u);
  EXPECT_EQ(c.want(), W::Message);
  EXPECT_FALSE(c.s().transaction_open());
}

TEST(ClientSession, Rfc2033_4_2_RecipientRefusedAtRcptGetsNoDataReplyInLockstep) {
  Client c(lmtp_config());
  c.run(R"(
    S: 220 mail.example LMTP ready
    C: LHLO client.carrier.test
    S: 250 mail.example
  )");
  c.begin(env("", {"r0@dst.example", "r1@dst.example"}), {0, 1});
  c.run(R"(
    C: MAIL FROM:<>
    S: 250 2.1.0 OK
    C: RCPT TO:<r0@dst.example>
    S: 550 5.1.1 <r0@dst.example> User doesn't exist
    C: RCPT TO:<r1@dst.example>
    S: 250 2.1.5 OK
    C: DATA
    S: 354 OK
  )");
  EXPECT_EQ(c.content("x\r\n", true), "x\r\n.\r\n");
  EXPECT_EQ(c.s().replies_pending(), 1u);  // only r1 was accepted
  c.run("S: 250 2.0.0 <r1@dst.example> Saved");
  EXPECT_EQ(c.outcome(0), "PermFail 550 5.1.1 RCPT");
  EXPECT_EQ(c.outcome(1), "Delivered 250 2.0.0 DATA");
  EXPECT_EQ(c.want(), W::Message);
  // The transaction ended with the last reply: the next one needs no RSET.
  c.begin(env("", {"r2@dst.example"}), {0});
  c.run(R"(
    C: MAIL FROM:<>
    S: 250 2.1.0 OK
    C: RCPT TO:<r2@dst.example>
  )");
}

TEST(ClientSession, Rfc2033_4_2_ConnectionLostBetweenPerRecipientReplies) {
  Client c(lmtp_config());
  c.run(R"(
    S: 220 mail.example LMTP ready
    C: LHLO client.carrier.test
    S: 250-mail.example
    S: 250 PIPELINING
  )");
  c.begin(env("a@src.example", {"r0@dst.example", "r1@dst.example", "r2@dst.example"}),
          {0, 1, 2});
  c.run(R"(
    C: MAIL FROM:<a@src.example>
    C: RCPT TO:<r0@dst.example>
    C: RCPT TO:<r1@dst.example>
    C: RCPT TO:<r2@dst.example>
    C: DATA
    S: 250 2.1.0 OK
    S: 250 2.1.5 OK
    S: 250 2.1.5 OK
    S: 250 2.1.5 OK
    S: 354 OK
  )");
  c.content("m\r\n", true);
  c.run("S: 250 2.0.0 <r0@dst.example> Saved");
  c.s().on_closed();
  EXPECT_EQ(c.sent(), "");
  EXPECT_EQ(c.want(), W::Close);
  EXPECT_FALSE(c.s().connection_failed());  // a transaction ran: not a refused connection
  EXPECT_EQ(c.outcome(0), "Delivered 250 2.0.0 DATA");
  EXPECT_EQ(c.outcome(1), "TempFail 451 4.4.2 DATA generated");
  EXPECT_EQ(c.outcome(2), "TempFail 451 4.4.2 DATA generated");
  EXPECT_EQ(c.outcome_count(), 3u);
}

TEST(ClientSession, Rfc2033_4_2_TimeoutAndMalformedReplyBetweenPerRecipientReplies) {
  for (int variant = 0; variant < 2; ++variant) {
    Client c(lmtp_config());
    c.run(R"(
      S: 220 mail.example LMTP ready
      C: LHLO client.carrier.test
      S: 250 mail.example
    )");
    c.begin(env("a@src.example", {"r0@dst.example", "r1@dst.example"}), {0, 1});
    c.run(R"(
      C: MAIL FROM:<a@src.example>
      S: 250 OK
      C: RCPT TO:<r0@dst.example>
      S: 250 OK
      C: RCPT TO:<r1@dst.example>
      S: 250 OK
      C: DATA
      S: 354 OK
    )");
    c.content("m\r\n", true);
    c.run("S: 550 5.1.1 <r0@dst.example> gone meanwhile");
    if (variant == 0) {
      c.s().on_timeout();
      EXPECT_EQ(c.outcome(1), "TempFail 451 4.4.2 DATA generated");
    } else {
      c.server("354 is no reply to the end of data\r\n");
      EXPECT_EQ(c.outcome(1), "TempFail 451 4.5.0 DATA generated");
    }
    EXPECT_EQ(c.outcome(0), "PermFail 550 5.1.1 DATA");
    EXPECT_EQ(c.want(), W::Close);
  }
}

TEST(ClientSession, Rfc2033_4_1_LhloRefusedIsAConnectionFailureWithoutHelo) {
  Client c(lmtp_config());
  c.begin(env("a@src.example", {"r0@dst.example"}), {0});
  c.run(R"(
    S: 220 mail.example LMTP ready
    C: LHLO client.carrier.test
    S: 500 5.5.1 Unknown command
    C: QUIT
  )");
  EXPECT_EQ(c.want(), W::Close);
  EXPECT_TRUE(c.s().connection_failed());
  EXPECT_EQ(c.s().failure_stage(), "LHLO");
  EXPECT_EQ(c.s().failure_reply().code, 500);
  EXPECT_EQ(c.outcome(0), "TempFail 500 5.5.1 LHLO");
}

TEST(ClientSession, Rfc2033_4_1_Lhlo4xxAndMissingExtensionsAsInSmtp) {
  Client c(lmtp_config());
  c.run(R"(
    S: 220 mail.example LMTP ready
    C: LHLO client.carrier.test
    S: 250-mail.example
    S: 250 SIZE 10
  )");
  // RFC 6152 3 / RFC 1870 6 checks apply to LMTP as to SMTP: nothing is sent.
  Envelope e = env("a@src.example", {"r0@dst.example"});
  e.params.body = proto::Body::EightBitMime;
  c.begin(e, {0}, 5);
  EXPECT_EQ(c.outcome(0), "PermFail 554 5.6.3 MAIL generated");
  c.begin(env("a@src.example", {"r0@dst.example", "r1@dst.example"}), {1}, 11);
  EXPECT_EQ(c.outcome(1), "PermFail 552 5.3.4 MAIL generated");
  EXPECT_EQ(c.sent(), "");
  EXPECT_EQ(c.want(), W::Message);

  Client d(lmtp_config());
  d.begin(env("a@src.example", {"r0@dst.example"}), {0});
  d.run(R"(
    S: 220 mail.example LMTP ready
    C: LHLO client.carrier.test
    S: 421 4.3.2 Shutting down
  )");
  EXPECT_TRUE(d.s().connection_failed());
  EXPECT_EQ(d.outcome(0), "TempFail 421 4.3.2 LHLO");
}

}  // namespace
}  // namespace carrier::session
