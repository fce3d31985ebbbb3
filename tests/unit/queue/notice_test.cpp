// Unit tests of the notices the delivery queue sends to a message's sender: failure DSNs
// (RFC 3464 multipart/report, RFC 6522; one per attempt for all failed recipients), the null
// sender and NOTIFY rules (RFC 5321 6.1, RFC 3461 4.1), RET=FULL/HDRS (RFC 3461 4.3), expiry
// (RFC 3463 4.4.7), delay notices once per message, the notice rate limit, routing of the
// notice through the same queue, the spool's event lines, and the pure helpers of bounce.hpp.
#include "queue/bounce.hpp"

#include <map>

#include "fixture.hpp"
#include "queue/delivery.hpp"

using namespace carrier_queue_test;
using proto::DsnAction;

namespace {

// A parsed DSN: the top-level header fields, the three parts (header + body each) and the
// per-recipient field groups of the delivery-status part (RFC 3464 2.1).
struct Part {
  std::map<std::string, std::string> header;  // lower-case names, unfolded values
  std::string body;
};
struct ParsedDsn {
  std::map<std::string, std::string> header;
  std::vector<Part> parts;
  std::map<std::string, std::string> per_message;
  std::vector<std::map<std::string, std::string>> per_recipient;
  bool closed = false;  // the closing boundary was found
};

std::string lower(std::string s) {
  for (auto& c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return s;
}

// "Name: value" lines (RFC 5322 2.2.3 folding undone) → map.
std::map<std::string, std::string> fields(std::string_view text) {
  std::map<std::string, std::string> out;
  std::string last;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t e = text.find("\r\n", pos);
    if (e == std::string_view::npos) e = text.size();
    std::string_view line = text.substr(pos, e - pos);
    pos = e + 2;
    if (line.empty()) continue;
    if ((line[0] == ' ' || line[0] == '\t') && !last.empty()) {
      out[last] += " " + std::string(line.substr(1));
      continue;
    }
    auto colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    last = lower(std::string(line.substr(0, colon)));
    std::string_view v = line.substr(colon + 1);
    while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
    out[last] = std::string(v);
  }
  return out;
}

// Splits header and body at the first empty line.
std::pair<std::string, std::string> split_head(std::string_view s) {
  auto p = s.find("\r\n\r\n");
  if (p == std::string_view::npos) return {std::string(s), {}};
  return {std::string(s.substr(0, p + 2)), std::string(s.substr(p + 4))};
}

ParsedDsn parse_dsn(const std::string& msg) {
  ParsedDsn d;
  auto [head, body] = split_head(msg);
  d.header = fields(head);
  const std::string& ct = d.header["content-type"];
  auto b = ct.find("boundary=\"");
  if (b == std::string::npos) return d;
  auto be = ct.find('"', b + 10);
  const std::string boundary = ct.substr(b + 10, be - b - 10);
  const std::string delim = "\r\n--" + boundary;
  std::string rest = "\r\n" + body;
  std::size_t pos = rest.find(delim);
  while (pos != std::string::npos) {
    std::size_t start = pos + delim.size();
    if (rest.compare(start, 2, "--") == 0) {
      d.closed = true;
      break;
    }
    start += 2;  // CRLF after the boundary
    std::size_t next = rest.find(delim, start);
    std::string_view part(rest.data() + start,
                          (next == std::string::npos ? rest.size() : next) - start);
    auto [ph, pb] = split_head(part);
    d.parts.push_back(Part{fields(ph), pb});
    pos = next;
  }
  if (d.parts.size() >= 2) {
    std::string_view st = d.parts[1].body;
    std::size_t p = 0;
    bool first = true;
    while (p < st.size()) {
      std::size_t e = st.find("\r\n\r\n", p);
      std::string_view group = st.substr(p, (e == std::string_view::npos ? st.size() : e) - p);
      if (!group.empty()) {
        if (first) d.per_message = fields(std::string(group) + "\r\n");
        else d.per_recipient.push_back(fields(std::string(group) + "\r\n"));
      }
      first = false;
      if (e == std::string_view::npos) break;
      p = e + 4;
    }
  }
  return d;
}

// Classifies every sender as remote: the notice waits in the spool (no relay transport) where
// the test can read it.
queue::ClassifyFn remote_sender() {
  return [](const proto::Mailbox& m) {
    proto::EnvelopeRecipient r;
    r.address = m;
    r.original = m;
    r.route = proto::RcptRoute::Relay;
    return std::vector<proto::EnvelopeRecipient>{r};
  };
}

proto::EnvelopeRecipient with_notify(proto::EnvelopeRecipient r, unsigned notify) {
  r.notify = notify;
  return r;
}

const std::string kBody =
    "Received: from client.example by mx.test; Fri, 15 Jan 2027 08:00:00 +0000\r\n"
    "Subject: quarterly report\r\n"
    "From: alice@example.org\r\n"
    "\r\n"
    "BODY-LINE-ONE secret figures\r\n"
    "BODY-LINE-TWO\r\n";

class NoticeTest : public DeliveryTest {
 protected:
  queue::Options opts() {
    queue::Options o;
    o.clock = &clock_;
    o.hostname = "mx.test";
    o.classify = remote_sender();
    return o;
  }
};

}  // namespace

// ---- failure notices ------------------------------------------------------------------------

TEST_F(NoticeTest, PermanentFailuresOfOneAttemptMakeOneDsnToTheSenderFromTheNullSender) {
  // RFC 3464 2.1 / RFC 6522: one multipart/report for the failed recipients of one attempt,
  // sent with the null reverse-path (RFC 5321 4.5.5, RFC 3461 6.1).
  FakeTransport t("fake", [](const transport::Request& req, int) {
    std::vector<TResult> out;
    for (auto i : req.recipients) {
      if (i == 0) out.push_back({i, Status::Failed, "550 5.1.1 <bob@localhost>: user unknown"});
      else if (i == 1) out.push_back({i, Status::Failed, "5.2.2 mailbox full for good"});
      else out.push_back({i, Status::Delivered, "ok"});
    }
    return out;
  });
  queue::Delivery d(*spool_, t, opts());
  d.start();
  auto bob = rcpt("bob", "localhost");
  bob.orcpt_type = "rfc822";
  bob.orcpt = "Bob@LocalHost";
  std::string id = put({bob, rcpt("carol", "localhost"), rcpt("demo", "localhost")}, kBody);
  d.submit(id);
  ASSERT_TRUE(d.wait_idle(10s));
  EXPECT_FALSE(in_spool(id));  // finished: every recipient has a final result

  auto dsn = notices();
  ASSERT_EQ(dsn.size(), 1u) << logs_.dump();
  EXPECT_EQ(logs_.count(id + ": sender non-delivery notification: " + dsn[0]), 1) << logs_.dump();
  auto stored = spool_->load(dsn[0]);
  ASSERT_TRUE(stored.ok());
  EXPECT_TRUE(stored->envelope.sender.empty());  // never bounced again (RFC 5321 6.1)
  ASSERT_EQ(stored->envelope.recipients.size(), 1u);
  EXPECT_EQ(stored->envelope.recipients[0].address.str(), "alice@example.org");
  EXPECT_EQ(stored->envelope.recipients[0].route, proto::RcptRoute::Relay);
  EXPECT_EQ(stored->envelope.received_at_ms, 1'800'000'000'000);

  const std::string text = content(dsn[0]);
  ParsedDsn p = parse_dsn(text);
  EXPECT_EQ(p.header["from"], "Mail Delivery System <MAILER-DAEMON@mx.test>");
  EXPECT_EQ(p.header["to"], "<alice@example.org>");
  EXPECT_EQ(p.header["subject"], "Undelivered Mail Returned to Sender");
  EXPECT_EQ(p.header["auto-submitted"], "auto-replied");  // RFC 3834 5
  EXPECT_EQ(p.header.count("received"), 0u);
  EXPECT_EQ(p.header["content-type"].rfind("multipart/report; report-type=delivery-status;", 0),
            0u)
      << p.header["content-type"];
  ASSERT_EQ(p.parts.size(), 3u) << text;
  EXPECT_TRUE(p.closed) << text;
  EXPECT_EQ(p.parts[0].header["content-type"], "text/plain; charset=us-ascii");
  EXPECT_EQ(p.parts[1].header["content-type"], "message/delivery-status");
  EXPECT_EQ(p.parts[2].header["content-type"], "text/rfc822-headers");
  EXPECT_EQ(p.per_message["reporting-mta"], "dns; mx.test");
  EXPECT_EQ(p.per_message["x-carrier-queue-id"], id);
  EXPECT_EQ(p.per_message["arrival-date"], "Fri, 15 Jan 2027 08:00:00 +0000");

  // RFC 3464 2.3: one group per failed recipient, none for the delivered one.
  ASSERT_EQ(p.per_recipient.size(), 2u) << text;
  auto& g0 = p.per_recipient[0];
  EXPECT_EQ(g0["original-recipient"], "rfc822; Bob@LocalHost");  // 2.3.1, from ORCPT
  EXPECT_EQ(g0["final-recipient"], "rfc822; bob@localhost");
  EXPECT_EQ(g0["action"], "failed");
  EXPECT_EQ(g0["status"], "5.1.1");  // RFC 3463, after the reply code
  EXPECT_EQ(g0["diagnostic-code"], "smtp; 550 5.1.1 <bob@localhost>: user unknown");
  EXPECT_EQ(g0["last-attempt-date"], "Fri, 15 Jan 2027 08:00:00 +0000");
  auto& g1 = p.per_recipient[1];
  EXPECT_EQ(g1.count("original-recipient"), 0u);
  EXPECT_EQ(g1["final-recipient"], "rfc822; carol@localhost");
  EXPECT_EQ(g1["status"], "5.2.2");
  EXPECT_EQ(g1["diagnostic-code"], "X-Carrier; 5.2.2 mailbox full for good");

  // RET not given: the header section only (RFC 3461 4.3 leaves the default to the MTA).
  EXPECT_EQ(p.parts[2].body, kBody.substr(0, kBody.find("\r\n\r\n") + 4));
  EXPECT_EQ(p.parts[2].body.find("BODY-LINE-ONE"), std::string::npos);
  EXPECT_NE(p.parts[0].body.find("<bob@localhost>"), std::string::npos);

  auto st = d.stats();
  EXPECT_EQ(st.failed, 2u);
  EXPECT_EQ(st.delivered, 1u);
  EXPECT_EQ(st.pending, 1u);  // the notice, waiting for a relay transport
}

TEST_F(NoticeTest, RelayFailureNamesTheRemoteMtaAndQuotesItsReply) {
  // RFC 3464 2.3.5 Remote-MTA and 2.3.6 Diagnostic-Code "smtp; <the peer's reply>", from the
  // SMTP relay transport's detail text.
  FakeTransport local("fake", always(Status::Delivered, "ok"));
  FakeTransport relay("smtp", [](const transport::Request& req, int call) {
    // The message fails; the notice (the second call) is deferred, so it stays readable.
    return call == 0 ? all(req, Status::Failed,
                           "5.1.1 host mx.remote.example[192.0.2.7]:25 said: 550 5.1.1 "
                           "<zed@remote.example>: no such user (in reply to RCPT)")
                     : all(req, Status::Deferred, "4.4.1 host unreachable");
  });
  queue::Delivery d(*spool_, local, opts());
  d.set_relay(&relay);
  d.start();
  std::string id = put({rcpt("zed", "remote.example", proto::RcptRoute::Relay)});
  d.submit(id);
  ASSERT_TRUE(d.wait_idle(10s));
  auto dsn = notices();
  ASSERT_EQ(dsn.size(), 1u) << logs_.dump();
  // The notice to alice@example.org went to the (fake) relay as well.
  ASSERT_EQ(relay.calls(), 2);
  EXPECT_EQ(relay.requests()[1].first, dsn[0]);
  ParsedDsn p = parse_dsn(content(dsn[0]));
  ASSERT_EQ(p.per_recipient.size(), 1u);
  auto& g = p.per_recipient[0];
  EXPECT_EQ(g["status"], "5.1.1");
  EXPECT_EQ(g["remote-mta"], "dns; mx.remote.example");
  EXPECT_EQ(g["diagnostic-code"], "smtp; 550 5.1.1 <zed@remote.example>: no such user");
}

TEST_F(NoticeTest, RetFullReturnsTheWholeMessage) {
  // RFC 3461 4.3: RET=FULL — the whole message as message/rfc822.
  FakeTransport t("fake", always(Status::Failed, "5.1.1 no such user"));
  queue::Delivery d(*spool_, t, opts());
  d.start();
  proto::Envelope env;
  env.sender = {"alice", "example.org"};
  env.params.ret = proto::Ret::Full;
  env.params.envid = "ENV-42";
  env.recipients = {rcpt("bob", "localhost")};
  std::string id = put_env(env, kBody);
  d.submit(id);
  ASSERT_TRUE(d.wait_idle(10s));
  auto dsn = notices();
  ASSERT_EQ(dsn.size(), 1u) << logs_.dump();
  const std::string text = content(dsn[0]);
  ParsedDsn p = parse_dsn(text);
  ASSERT_EQ(p.parts.size(), 3u) << text;
  EXPECT_TRUE(p.closed);
  EXPECT_EQ(p.parts[2].header["content-type"], "message/rfc822");
  EXPECT_EQ(p.parts[2].body, kBody);  // byte for byte, then the closing boundary
  EXPECT_EQ(p.per_message["original-envelope-id"], "ENV-42");  // RFC 3464 2.2.1
}

TEST_F(NoticeTest, RetHdrsReturnsTheHeaderSectionOnly) {
  // RFC 3461 4.3: RET=HDRS — the header section (text/rfc822-headers), no body line.
  FakeTransport t("fake", always(Status::Failed, "5.1.1 no such user"));
  queue::Delivery d(*spool_, t, opts());
  d.start();
  proto::Envelope env;
  env.sender = {"alice", "example.org"};
  env.params.ret = proto::Ret::Hdrs;
  env.recipients = {rcpt("bob", "localhost")};
  std::string id = put_env(env, kBody);
  d.submit(id);
  ASSERT_TRUE(d.wait_idle(10s));
  auto dsn = notices();
  ASSERT_EQ(dsn.size(), 1u) << logs_.dump();
  ParsedDsn p = parse_dsn(content(dsn[0]));
  ASSERT_EQ(p.parts.size(), 3u);
  EXPECT_EQ(p.parts[2].header["content-type"], "text/rfc822-headers");
  EXPECT_EQ(p.parts[2].body, kBody.substr(0, kBody.find("\r\n\r\n") + 4));
  EXPECT_EQ(p.parts[2].body.find("BODY-LINE"), std::string::npos);
}

TEST_F(NoticeTest, LargeMessageIsCopiedInChunksWithRetFull) {
  FakeTransport t("fake", always(Status::Failed, "5.1.1 no such user"));
  queue::Delivery d(*spool_, t, opts());
  d.start();
  proto::Envelope env;
  env.sender = {"alice", "example.org"};
  env.params.ret = proto::Ret::Full;
  env.recipients = {rcpt("bob", "localhost")};
  std::string body = "Subject: big\r\n\r\n";
  for (int i = 0; body.size() < 3 * queue::kDsnCopyChunk + 123; ++i)
    body += "line " + std::to_string(i) + " of a big message\r\n";
  std::string id = put_env(env, body);
  d.submit(id);
  ASSERT_TRUE(d.wait_idle(10s));
  auto dsn = notices();
  ASSERT_EQ(dsn.size(), 1u) << logs_.dump();
  ParsedDsn p = parse_dsn(content(dsn[0]));
  ASSERT_EQ(p.parts.size(), 3u);
  EXPECT_EQ(p.parts[2].body, body);
}

TEST_F(NoticeTest, NullSenderIsNeverBounced) {
  // RFC 5321 6.1 / 4.5.5: a message from <> (itself a notice) gets no notice.
  FakeTransport t("fake", always(Status::Failed, "5.1.1 no such user"));
  queue::Delivery d(*spool_, t, opts());
  d.start();
  proto::Envelope env;  // sender <>
  env.recipients = {rcpt("bob", "localhost")};
  std::string id = put_env(env);
  d.submit(id);
  ASSERT_TRUE(d.wait_idle(10s));
  EXPECT_FALSE(in_spool(id));
  EXPECT_TRUE(spool_->list().empty());
  EXPECT_EQ(logs_.count(id + ": to=<bob@localhost> status=failed; no bounce: null sender"), 1)
      << logs_.dump();
  EXPECT_EQ(logs_.count("notification"), 0) << logs_.dump();
}

TEST_F(NoticeTest, NotifyNeverOrWithoutFailureGetsNoDsn) {
  // RFC 3461 4.1: NEVER — no notice; SUCCESS or DELAY alone — no failure notice.
  FakeTransport t("fake", always(Status::Failed, "5.1.1 no such user"));
  queue::Delivery d(*spool_, t, opts());
  d.start();
  std::string a = put({with_notify(rcpt("bob", "localhost"), proto::kNotifyNever)});
  std::string b = put({with_notify(rcpt("bob", "localhost"),
                                   proto::kNotifySuccess | proto::kNotifyDelay)});
  d.submit(a);
  d.submit(b);
  ASSERT_TRUE(d.wait_idle(10s));
  EXPECT_TRUE(spool_->list().empty()) << logs_.dump();
  EXPECT_EQ(logs_.count(a + ": to=<bob@localhost> status=failed; no bounce: NOTIFY excludes FAILURE"),
            1)
      << logs_.dump();
  EXPECT_EQ(logs_.count(b + ": to=<bob@localhost> status=failed; no bounce: NOTIFY excludes FAILURE"),
            1)
      << logs_.dump();
}

TEST_F(NoticeTest, OnlyRecipientsAskingForFailureNoticesAreReported) {
  // RFC 3461 4.1: NOTIFY=FAILURE and no NOTIFY both ask for failures; NEVER does not.
  FakeTransport t("fake", always(Status::Failed, "5.1.1 no such user"));
  queue::Delivery d(*spool_, t, opts());
  d.start();
  std::string id = put({with_notify(rcpt("never", "localhost"), proto::kNotifyNever),
                        with_notify(rcpt("failure", "localhost"), proto::kNotifyFailure),
                        rcpt("unset", "localhost")});
  d.submit(id);
  ASSERT_TRUE(d.wait_idle(10s));
  auto dsn = notices();
  ASSERT_EQ(dsn.size(), 1u) << logs_.dump();
  ParsedDsn p = parse_dsn(content(dsn[0]));
  ASSERT_EQ(p.per_recipient.size(), 2u);
  EXPECT_EQ(p.per_recipient[0]["final-recipient"], "rfc822; failure@localhost");
  EXPECT_EQ(p.per_recipient[1]["final-recipient"], "rfc822; unset@localhost");
}

TEST_F(NoticeTest, StatusDefaultsTo500WhenTheDetailHasNoCode) {
  FakeTransport t("fake", always(Status::Failed, "mailbox is a directory of fish"));
  queue::Delivery d(*spool_, t, opts());
  d.start();
  std::string id = put({rcpt("bob", "localhost")});
  d.submit(id);
  ASSERT_TRUE(d.wait_idle(10s));
  auto dsn = notices();
  ASSERT_EQ(dsn.size(), 1u);
  ParsedDsn p = parse_dsn(content(dsn[0]));
  ASSERT_EQ(p.per_recipient.size(), 1u);
  EXPECT_EQ(p.per_recipient[0]["status"], "5.0.0");  // RFC 3463 3.1 other undefined status
  EXPECT_EQ(p.per_recipient[0]["diagnostic-code"], "X-Carrier; mailbox is a directory of fish");
}

TEST_F(NoticeTest, LocalSenderGetsTheNoticeThroughTheSameQueueAndItIsNeverBouncedAgain) {
  // The notice is an ordinary spool message delivered by the queue; when it fails too, its
  // null sender stops the loop (RFC 5321 6.1).
  FakeTransport t("fake", always(Status::Failed, "5.1.1 no such user"));
  std::vector<std::string> classified;
  std::mutex mu;
  auto o = opts();
  o.classify = [&](const proto::Mailbox& m) {
    std::lock_guard lk(mu);
    classified.push_back(m.str());
    return std::vector<proto::EnvelopeRecipient>{rcpt("alice", "localhost")};
  };
  queue::Delivery d(*spool_, t, o);
  d.start();
  std::string id = put({rcpt("bob", "localhost")});
  d.submit(id);
  ASSERT_TRUE(d.wait_idle(10s));
  auto reqs = t.requests();
  ASSERT_EQ(reqs.size(), 2u) << logs_.dump();  // the message, then the notice
  EXPECT_EQ(reqs[0].first, id);
  const std::string dsn = reqs[1].first;
  EXPECT_EQ(logs_.count(id + ": sender non-delivery notification: " + dsn), 1) << logs_.dump();
  EXPECT_EQ(logs_.count(dsn + ": to=<alice@localhost> status=failed; no bounce: null sender"), 1)
      << logs_.dump();
  EXPECT_TRUE(spool_->list().empty());
  EXPECT_EQ(classified, std::vector<std::string>{"alice@example.org"});
}

TEST_F(NoticeTest, SenderThatCannotReceiveMailIsLoggedAndDropped) {
  FakeTransport t("fake", always(Status::Failed, "5.1.1 no such user"));
  auto o = opts();
  o.classify = [](const proto::Mailbox&) { return std::vector<proto::EnvelopeRecipient>{}; };
  queue::Delivery d(*spool_, t, o);
  d.start();
  std::string id = put({rcpt("bob", "localhost")});
  d.submit(id);
  ASSERT_TRUE(d.wait_idle(10s));
  EXPECT_TRUE(spool_->list().empty());
  EXPECT_EQ(logs_.count(id + ": no sender non-delivery notification: <alice@example.org> cannot "
                             "receive mail"),
            1)
      << logs_.dump();
}

// ---- expiry ---------------------------------------------------------------------------------

TEST_F(NoticeTest, MessageOlderThanMaxLifetimeFailsWith447AndIsBounced) {
  // RFC 3463 4.4.7 delivery time expired; RFC 5321 4.5.4.1 give up after a while and report.
  FakeTransport t("fake", always(Status::Deferred, "4.2.2 mailbox full"));
  auto o = opts();
  o.max_lifetime = 2h;
  o.delay_warning = 0s;  // no delay notice in this test
  o.retry_initial = 1800s;
  o.retry_max = 1800s;
  queue::Delivery d(*spool_, t, o);
  d.start();
  std::string id = put({rcpt("bob", "localhost"), rcpt("carol", "localhost")}, kBody);
  d.submit(id);
  ASSERT_TRUE(d.wait_idle(10s));
  // Retries within the lifetime: still deferred, nothing sent.
  for (int i = 0; i < 3; ++i) {
    clock_.advance(40min);
    d.poll_due();
    ASSERT_TRUE(d.wait_idle(10s));
    ASSERT_TRUE(in_spool(id));
    EXPECT_TRUE(notices().empty());
  }
  clock_.advance(1h);  // 3 h 0 min old now, past the 2 h lifetime
  d.poll_due();
  ASSERT_TRUE(d.wait_idle(10s));
  EXPECT_FALSE(in_spool(id));
  EXPECT_FALSE(d.next_try(id).has_value());
  const std::string detail = "4.4.7 message expired in the queue after 3 hours: 4.2.2 mailbox full";
  EXPECT_EQ(logs_.count(id + ": to=<bob@localhost> relay=fake delay=10800.000 status=failed (" +
                        detail + ")"),
            1)
      << logs_.dump();
  EXPECT_EQ(logs_.count("status=failed (" + detail + ")"), 2) << logs_.dump();
  auto dsn = notices();
  ASSERT_EQ(dsn.size(), 1u) << logs_.dump();
  ParsedDsn p = parse_dsn(content(dsn[0]));
  ASSERT_EQ(p.per_recipient.size(), 2u);
  for (auto& g : p.per_recipient) {
    EXPECT_EQ(g["action"], "failed");
    EXPECT_EQ(g["status"], "4.4.7");
    EXPECT_EQ(g["diagnostic-code"], "X-Carrier; " + detail);
  }
  auto st = d.stats();
  EXPECT_EQ(st.failed, 2u);
  EXPECT_EQ(st.deferred, 8u);  // 2 recipients × 4 attempts within the lifetime
}

TEST_F(NoticeTest, ExpiryFailsRecipientsWaitingForARelayToo) {
  // Local deferred + a relay recipient with no relay transport: the whole message expires.
  FakeTransport t("fake", always(Status::Deferred, "4.2.2 mailbox full"));
  auto o = opts();
  o.max_lifetime = 1h;
  o.delay_warning = 0s;
  queue::Delivery d(*spool_, t, o);
  d.start();
  std::string id =
      put({rcpt("bob", "localhost"), rcpt("zed", "remote.example", proto::RcptRoute::Relay)});
  clock_.advance(2h);  // e.g. the server was down: the first attempt is already too late
  d.submit(id);
  ASSERT_TRUE(d.wait_idle(10s));
  EXPECT_FALSE(in_spool(id));
  EXPECT_EQ(logs_.count(id + ": to=<zed@remote.example> relay=none delay=7200.000 status=failed "
                             "(4.4.7 message expired in the queue after 2 hours: no relay "
                             "transport to deliver it)"),
            1)
      << logs_.dump();
  auto dsn = notices();
  ASSERT_EQ(dsn.size(), 1u);
  EXPECT_EQ(parse_dsn(content(dsn[0])).per_recipient.size(), 2u);
}

TEST_F(NoticeTest, ExpiredMessageFromTheNullSenderIsDroppedWithoutNotice) {
  FakeTransport t("fake", always(Status::Deferred, "4.2.2 mailbox full"));
  auto o = opts();
  o.max_lifetime = 1h;
  queue::Delivery d(*spool_, t, o);
  d.start();
  proto::Envelope env;
  env.recipients = {rcpt("bob", "localhost")};
  std::string id = put_env(env);
  clock_.advance(2h);
  d.submit(id);
  ASSERT_TRUE(d.wait_idle(10s));
  EXPECT_TRUE(spool_->list().empty());
  EXPECT_EQ(logs_.count(id + ": to=<bob@localhost> status=failed; no bounce: null sender"), 1)
      << logs_.dump();
}

// ---- delay notices --------------------------------------------------------------------------

TEST_F(NoticeTest, DelayNoticeIsSentOnceAfterDelayWarning) {
  // RFC 3464 2.3.3 action "delayed", 2.3.8 Will-Retry-Until; RFC 3461 4.1: no NOTIFY = the
  // MTA may send delay notices.
  FakeTransport t("fake", [](const transport::Request& req, int) {
    std::vector<TResult> out;
    for (auto i : req.recipients)
      out.push_back(i == 2 ? TResult{i, Status::Delivered, "ok"}
                           : TResult{i, Status::Deferred, "451 4.2.2 mailbox full"});
    return out;
  });
  auto o = opts();
  o.delay_warning = 4h;
  o.max_lifetime = 120h;
  o.retry_initial = 3600s;
  o.retry_max = 3600s;
  auto d = std::make_unique<queue::Delivery>(*spool_, t, o);
  d->start();
  std::string id = put({rcpt("bob", "localhost"), with_notify(rcpt("dan", "localhost"),
                                                             proto::kNotifyDelay |
                                                                 proto::kNotifyFailure),
                        rcpt("carol", "localhost")},
                       kBody);
  d->submit(id);
  ASSERT_TRUE(d->wait_idle(10s));
  for (int i = 0; i < 3; ++i) {  // 1.5, 3, 4.5 hours: the third retry is past 4 h
    clock_.advance(90min);
    d->poll_due();
    ASSERT_TRUE(d->wait_idle(10s));
    EXPECT_EQ(notices().size(), i < 2 ? 0u : 1u) << "retry " << i << "\n" << logs_.dump();
  }
  auto dsn = notices();
  ASSERT_EQ(dsn.size(), 1u);
  EXPECT_EQ(logs_.count(id + ": sender delay notification: " + dsn[0]), 1) << logs_.dump();
  ParsedDsn p = parse_dsn(content(dsn[0]));
  EXPECT_EQ(p.header["subject"], "Delivery Status Notification (Delay)");
  ASSERT_EQ(p.per_recipient.size(), 2u) << content(dsn[0]);  // not the delivered one
  EXPECT_EQ(p.per_recipient[0]["final-recipient"], "rfc822; bob@localhost");
  EXPECT_EQ(p.per_recipient[1]["final-recipient"], "rfc822; dan@localhost");
  for (auto& g : p.per_recipient) {
    EXPECT_EQ(g["action"], "delayed");
    EXPECT_EQ(g["status"], "4.2.2");
    EXPECT_EQ(g["diagnostic-code"], "smtp; 451 4.2.2 mailbox full");
    // received 2027-01-15 08:00:00 + 120 h
    EXPECT_EQ(g["will-retry-until"], "Wed, 20 Jan 2027 08:00:00 +0000");
  }
  EXPECT_EQ(p.parts[2].header["content-type"], "text/rfc822-headers");
  auto loaded = spool_->load(id);
  ASSERT_TRUE(loaded.ok());
  EXPECT_EQ(loaded->events, std::vector<std::string>{"delay-notice " + dsn[0]});  // persisted

  // Later retries: no second notice.
  clock_.advance(90min);
  d->poll_due();
  ASSERT_TRUE(d->wait_idle(10s));
  EXPECT_EQ(notices().size(), 1u) << logs_.dump();

  // Nor after a restart (the marker is in the state file).
  d->stop();
  d = std::make_unique<queue::Delivery>(*spool_, t, o);
  d->start();
  ASSERT_TRUE(d->wait_idle(10s));
  EXPECT_TRUE(d->next_try(id).has_value());
  EXPECT_EQ(notices().size(), 1u) << logs_.dump();
  EXPECT_EQ(logs_.count("delay notification"), 1) << logs_.dump();
}

TEST_F(NoticeTest, NoDelayNoticeForNotifyFailureOnlyOrNever) {
  // RFC 3461 4.1: delay notices only when NOTIFY names DELAY or is absent.
  FakeTransport t("fake", always(Status::Deferred, "4.2.2 mailbox full"));
  auto o = opts();
  o.delay_warning = 1h;
  queue::Delivery d(*spool_, t, o);
  d.start();
  std::string id = put({with_notify(rcpt("bob", "localhost"), proto::kNotifyFailure),
                        with_notify(rcpt("carol", "localhost"), proto::kNotifyNever),
                        with_notify(rcpt("dan", "localhost"), proto::kNotifySuccess)});
  clock_.advance(2h);
  d.submit(id);
  ASSERT_TRUE(d.wait_idle(10s));
  EXPECT_TRUE(d.next_try(id).has_value());
  EXPECT_TRUE(notices().empty()) << logs_.dump();
  EXPECT_EQ(logs_.count("notification"), 0) << logs_.dump();
}

TEST_F(NoticeTest, DelayWarningZeroDisablesDelayNotices) {
  FakeTransport t("fake", always(Status::Deferred, "4.2.2 mailbox full"));
  auto o = opts();
  o.delay_warning = 0s;
  queue::Delivery d(*spool_, t, o);
  d.start();
  std::string id = put({rcpt("bob", "localhost")});
  clock_.advance(24h);
  d.submit(id);
  ASSERT_TRUE(d.wait_idle(10s));
  EXPECT_TRUE(in_spool(id));
  EXPECT_TRUE(notices().empty()) << logs_.dump();
}

// ---- rate limit -----------------------------------------------------------------------------

TEST_F(NoticeTest, NoticesAreCappedPerMinute) {
  // Backscatter defence: at most max_bounces_per_minute notices; the failures are still logged.
  FakeTransport t("fake", always(Status::Failed, "5.1.1 no such user"));
  auto o = opts();
  o.max_bounces_per_minute = 2;
  o.threads = 1;
  queue::Delivery d(*spool_, t, o);
  d.start();
  std::vector<std::string> ids;
  for (int i = 0; i < 4; ++i) ids.push_back(put({rcpt("bob", "localhost")}));
  for (auto& id : ids) d.submit(id);
  ASSERT_TRUE(d.wait_idle(10s));
  EXPECT_EQ(notices().size(), 2u) << logs_.dump();
  EXPECT_EQ(logs_.count("status=failed (5.1.1 no such user)"), 4) << logs_.dump();
  EXPECT_EQ(logs_.count(ids[2] + ": no sender non-delivery notification to <alice@example.org>: "
                                 "limit of 2 notices per minute reached"),
            1)
      << logs_.dump();
  EXPECT_EQ(logs_.count("limit of 2 notices per minute reached"), 2) << logs_.dump();
  for (const auto& id : ids) EXPECT_FALSE(in_spool(id));

  clock_.advance(30s);  // refilled at 2 per minute: one more
  std::string a = put({rcpt("bob", "localhost")});
  std::string b = put({rcpt("bob", "localhost")});
  d.submit(a);
  d.submit(b);
  ASSERT_TRUE(d.wait_idle(10s));
  EXPECT_EQ(notices().size(), 3u) << logs_.dump();
  EXPECT_EQ(logs_.count("limit of 2 notices per minute reached"), 3) << logs_.dump();
}

// ---- spool events ---------------------------------------------------------------------------

TEST_F(NoticeTest, SpoolEventsAreKeptApartFromRecipientResults) {
  std::string id = put({rcpt("bob", "localhost"), rcpt("carol", "localhost")});
  ASSERT_TRUE(spool_->record_event(id, "first\r\nline").ok());
  ASSERT_TRUE(spool_->record(id, {{1, Status::Delivered, "ok"}}).ok());
  ASSERT_TRUE(spool_->record_event(id, "second").ok());
  auto m = spool_->load(id);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->events, (std::vector<std::string>{"first  line", "second"}));
  EXPECT_EQ(m->done, (std::vector<bool>{false, true}));
  EXPECT_FALSE(spool_->record_event("../etc/passwd", "x").ok());
}

TEST_F(NoticeTest, SpoolKeepsAtMostKMaxEvents) {
  std::string id = put({rcpt("bob", "localhost")});
  for (std::size_t i = 0; i < spool::Stored::kMaxEvents + 5; ++i)
    ASSERT_TRUE(spool_->record_event(id, "e" + std::to_string(i)).ok());
  auto m = spool_->load(id);
  ASSERT_TRUE(m.ok());
  ASSERT_EQ(m->events.size(), spool::Stored::kMaxEvents);
  EXPECT_EQ(m->events.front(), "e0");
}

// ---- pure helpers -------------------------------------------------------------------------

TEST(NoticeHelpers, NotifyDefaultsOfRfc3461) {
  // RFC 3461 4.1: absent NOTIFY = failures (and, at the MTA's option, delays) are reported.
  EXPECT_TRUE(queue::wants_failure_notice(proto::kNotifyNone));
  EXPECT_TRUE(queue::wants_delay_notice(proto::kNotifyNone));
  EXPECT_FALSE(queue::wants_failure_notice(proto::kNotifyNever));
  EXPECT_FALSE(queue::wants_delay_notice(proto::kNotifyNever));
  EXPECT_TRUE(queue::wants_failure_notice(proto::kNotifyFailure));
  EXPECT_FALSE(queue::wants_delay_notice(proto::kNotifyFailure));
  EXPECT_FALSE(queue::wants_failure_notice(proto::kNotifySuccess));
  EXPECT_FALSE(queue::wants_delay_notice(proto::kNotifySuccess));
  EXPECT_FALSE(queue::wants_failure_notice(proto::kNotifyDelay));
  EXPECT_TRUE(queue::wants_delay_notice(proto::kNotifyDelay | proto::kNotifySuccess));
  EXPECT_FALSE(queue::wants_failure_notice(proto::kNotifyNever | proto::kNotifyFailure));
}

TEST(NoticeHelpers, LeadingStatusFindsTheRfc3463Code) {
  EXPECT_EQ(queue::leading_status("5.1.1 user unknown"), "5.1.1");
  EXPECT_EQ(queue::leading_status("550 5.1.1 <x@y>: user unknown"), "5.1.1");
  EXPECT_EQ(queue::leading_status("550-5.7.1 policy"), "5.7.1");
  EXPECT_EQ(queue::leading_status("4.4.7 expired"), "4.4.7");
  EXPECT_EQ(queue::leading_status("5.123.999"), "5.123.999");
  EXPECT_EQ(queue::leading_status("451 4.3.0"), "4.3.0");
  EXPECT_EQ(queue::leading_status("550 user unknown"), "");
  EXPECT_EQ(queue::leading_status("3.1.1 not a class"), "");
  EXPECT_EQ(queue::leading_status("5.1234.1 too long"), "");
  EXPECT_EQ(queue::leading_status("5.1.1234"), "");
  EXPECT_EQ(queue::leading_status("5.1.1.1"), "");
  EXPECT_EQ(queue::leading_status("5.1"), "");
  EXPECT_EQ(queue::leading_status(" 5.1.1 leading space"), "");
  EXPECT_EQ(queue::leading_status("maildir: 5.1.1 later"), "");
  EXPECT_EQ(queue::leading_status(""), "");
  EXPECT_EQ(queue::leading_status(std::string(100000, '5')), "");
}

TEST(NoticeHelpers, SmtpReplyDetection) {
  // RFC 3464 2.3.6 diagnostic-type "smtp" for a reply from an SMTP peer (RFC 5321 4.2).
  EXPECT_TRUE(queue::is_smtp_reply("550 5.1.1 user unknown"));
  EXPECT_TRUE(queue::is_smtp_reply("451-first line"));
  EXPECT_TRUE(queue::is_smtp_reply("554"));
  EXPECT_FALSE(queue::is_smtp_reply("5.1.1 user unknown"));
  EXPECT_FALSE(queue::is_smtp_reply("5500 no"));
  EXPECT_FALSE(queue::is_smtp_reply("650 no such class"));
  EXPECT_FALSE(queue::is_smtp_reply(""));
}

TEST(NoticeHelpers, SplitDiagnosticOfTheRelayTransport) {
  // RFC 3464 2.3.5 / 2.3.6.
  auto d = queue::split_diagnostic(
      "5.1.1 host mx.example.net[192.0.2.1]:25 said: 550 5.1.1 <a@b>: unknown (in reply to RCPT)");
  EXPECT_EQ(d.remote_mta, "mx.example.net");
  EXPECT_EQ(d.type, "smtp");
  EXPECT_EQ(d.text, "550 5.1.1 <a@b>: unknown");
  // Made up by carrier: the host is known, the words are not the peer's.
  d = queue::split_diagnostic("5.3.4 carrier: message too big for the peer (host "
                              "mx.example.net[192.0.2.1]:25, during MAIL)");
  EXPECT_EQ(d.remote_mta, "mx.example.net");
  EXPECT_EQ(d.type, "X-Carrier");
  EXPECT_EQ(d.text.rfind("5.3.4 carrier: message too big", 0), 0u);
  d = queue::split_diagnostic("4.4.2 carrier: timeout waiting for the server (host 192.0.2.7[192.0.2.7]:25, during DATA)");
  EXPECT_EQ(d.remote_mta, "192.0.2.7");
  EXPECT_EQ(d.type, "X-Carrier");
  // A plain reply, a local reason, and things that only look similar.
  d = queue::split_diagnostic("550 5.7.1 go away");
  EXPECT_EQ(d.remote_mta, "");
  EXPECT_EQ(d.type, "smtp");
  EXPECT_EQ(d.text, "550 5.7.1 go away");
  d = queue::split_diagnostic("5.1.1 maildir: invalid mailbox name");
  EXPECT_EQ(d.remote_mta, "");
  EXPECT_EQ(d.type, "X-Carrier");
  EXPECT_EQ(d.text, "5.1.1 maildir: invalid mailbox name");
  d = queue::split_diagnostic("5.1.1 host x said: not a reply");
  EXPECT_EQ(d.remote_mta, "x");
  EXPECT_EQ(d.type, "X-Carrier");
  EXPECT_EQ(d.text, "5.1.1 host x said: not a reply");
  d = queue::split_diagnostic("5.1.1 host " + std::string(5000, 'h') + " said: 550 x");
  EXPECT_EQ(d.remote_mta, "");  // no " said: " within the look-ahead
  EXPECT_EQ(queue::split_diagnostic("").type, "X-Carrier");
}

TEST(NoticeHelpers, ExpiryDetailAndDurations) {
  EXPECT_EQ(queue::describe_duration(5 * 24h), "5 days");
  EXPECT_EQ(queue::describe_duration(24h + 23h), "1 day");
  EXPECT_EQ(queue::describe_duration(2h + 59min), "2 hours");
  EXPECT_EQ(queue::describe_duration(1min), "1 minute");
  EXPECT_EQ(queue::describe_duration(59s), "59 seconds");
  EXPECT_EQ(queue::describe_duration(-5s), "0 seconds");
  EXPECT_EQ(queue::expiry_detail(5 * 24h, "451 4.3.0 try later"),
            "4.4.7 message expired in the queue after 5 days: 451 4.3.0 try later");
  EXPECT_EQ(queue::expiry_detail(5 * 24h, ""), "4.4.7 message expired in the queue after 5 days");
}

TEST(NoticeHelpers, RateLimiterIsATokenBucket) {
  const auto t0 = std::chrono::system_clock::time_point(1'800'000'000s);
  queue::RateLimiter r(3);
  EXPECT_TRUE(r.take(t0));
  EXPECT_TRUE(r.take(t0));
  EXPECT_TRUE(r.take(t0));
  EXPECT_FALSE(r.take(t0));  // a burst of at most 3
  EXPECT_FALSE(r.take(t0 + 19s));
  EXPECT_TRUE(r.take(t0 + 20s));  // 3 per minute: one every 20 s
  EXPECT_FALSE(r.take(t0 + 21s));
  EXPECT_FALSE(r.take(t0 - 1h));  // a clock step back gives nothing
  EXPECT_TRUE(r.take(t0 + 1h));   // refilled, but never beyond the burst size
  EXPECT_TRUE(r.take(t0 + 1h));
  EXPECT_TRUE(r.take(t0 + 1h));
  EXPECT_FALSE(r.take(t0 + 1h));
  queue::RateLimiter none(0);
  EXPECT_FALSE(none.take(t0));
  EXPECT_FALSE(none.take(t0 + 24h));
}
