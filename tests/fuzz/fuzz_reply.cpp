// Fuzz target: the SMTP client side on untrusted server input — proto::ReplyParser
// (src/proto/reply_parser.cpp) and session::ClientSession (src/session/client_session.cpp).
// Input layout: byte 0 = flags (bits 0..2: number k of split sizes; bit 3: PIPELINING off;
// bit 4: CHUNKING off; bits 5..6: TLS policy; bit 7: TLS handshake fails), byte 1 = message
// flags (bit 0: 8BITMIME body, bit 1: SMTPUTF8, bit 2: BINARYMIME, bits 3..4: NOTIFY, bit 5:
// RET/ENVID, bit 6: max 1 recipient per transaction), then k split sizes, then server bytes.
// Checks:
//  - feeding the parser in fuzzer-chosen pieces and byte by byte gives exactly the replies
//    (and the error) of one whole feed; every reply respects the syntax and the limits;
//  - a client session fed the same bytes in pieces never crashes, never takes more than it
//    asked for, gives every recipient it took exactly one result, and ends in Close after
//    on_closed(); what it sends never contains a NUL and (outside content) only CRLF lines.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_common.hpp"
#include "proto/reply_parser.hpp"
#include "session/client_session.hpp"

using namespace carrier;

namespace {

struct Parsed {
  std::vector<proto::Reply> replies;
  bool error = false;
  std::string message;
};

Parsed parse(std::string_view in, const std::vector<std::size_t>& sizes) {
  proto::ReplyParser p;
  Parsed r;
  std::size_t k = 0;
  while (!in.empty()) {
    std::size_t n = in.size();
    if (!sizes.empty() && sizes[k++ % sizes.size()] < n) n = sizes[(k - 1) % sizes.size()];
    std::string_view piece = in.substr(0, n);
    in.remove_prefix(n);
    while (!piece.empty()) {
      auto st = p.feed(piece);
      FUZZ_CHECK(st.consumed <= piece.size());
      piece.remove_prefix(st.consumed);
      if (st.status == proto::ReplyParser::Status::Error) {
        r.error = true;
        r.message = p.error();
        FUZZ_CHECK(p.failed() && !r.message.empty());
        return r;
      }
      if (st.status == proto::ReplyParser::Status::Ready) {
        r.replies.push_back(p.take());
      } else {
        FUZZ_CHECK(piece.empty());
      }
    }
  }
  return r;
}

bool same(const Parsed& a, const Parsed& b) {
  if (a.error != b.error || a.message != b.message || a.replies.size() != b.replies.size())
    return false;
  for (std::size_t i = 0; i < a.replies.size(); ++i) {
    if (a.replies[i].code != b.replies[i].code || a.replies[i].status != b.replies[i].status ||
        a.replies[i].lines != b.replies[i].lines)
      return false;
  }
  return true;
}

void check_reply(const proto::Reply& r) {
  FUZZ_CHECK(r.code >= 200 && r.code <= 599);
  FUZZ_CHECK(!r.lines.empty() && r.lines.size() <= 100);
  for (const auto& l : r.lines) {
    FUZZ_CHECK(l.size() <= 4096);
    FUZZ_CHECK(l.find('\n') == std::string::npos);
    FUZZ_CHECK(l.find('\0') == std::string::npos);
  }
  if (!r.status.empty()) {
    FUZZ_CHECK(r.status.size() >= 5 && r.status.size() <= 9);
    FUZZ_CHECK(r.status[0] == static_cast<char>('0' + r.code / 100));
  }
}

proto::Envelope make_envelope(std::uint8_t f) {
  proto::Envelope e;
  e.sender.local = (f & 2) ? "s\xC3\xBC" : "sender";
  e.sender.domain = "src.example";
  e.params.body = (f & 4) ? proto::Body::BinaryMime
                          : ((f & 1) ? proto::Body::EightBitMime : proto::Body::SevenBit);
  e.params.smtputf8 = (f & 2) != 0;
  if (f & 32) {
    e.params.ret = proto::Ret::Hdrs;
    e.params.envid = "id+1=2 x";
  }
  for (int i = 0; i < 3; ++i) {
    proto::EnvelopeRecipient r;
    r.address.local = "r" + std::to_string(i);
    r.address.domain = "dst.example";
    r.original = r.address;
    r.route = proto::RcptRoute::Relay;
    r.notify = (f >> 3) & 3;
    if (i == 1) {
      r.orcpt_type = "utf-8";
      r.orcpt = "\xC3\xA9@x.example";
    }
    e.recipients.push_back(r);
  }
  return e;
}

void run_client(std::uint8_t flags, std::uint8_t mflags, std::string_view in,
                const std::vector<std::size_t>& sizes) {
  session::ClientConfig cfg;
  cfg.helo_name = "client.example";
  cfg.use_pipelining = (flags & 8) == 0;
  cfg.use_chunking = (flags & 16) == 0;
  cfg.tls = static_cast<session::TlsPolicy>(((flags >> 5) & 3) % 3);
  cfg.max_bdat_in_flight = 2;
  if (mflags & 64) cfg.max_rcpts_per_transaction = 1;
  session::ClientSession s(cfg);
  const proto::Envelope env = make_envelope(mflags);
  const std::vector<std::size_t> all = {0, 1, 2};

  std::vector<int> results(3 * 8, 0);  // per (message, index)
  std::vector<bool> taken(3 * 8, false);
  int message = -1;
  int messages_begun = 0;
  int pieces = 0;
  bool quit_sent = false;
  std::string wire;

  auto collect = [&] {
    wire += s.out();
    s.out().clear();
    for (const auto& o : s.outcomes()) {
      FUZZ_CHECK(message >= 0 && o.index < 3);
      const std::size_t slot = static_cast<std::size_t>(message) * 3 + o.index;
      FUZZ_CHECK(taken[slot]);
      ++results[slot];
      FUZZ_CHECK(results[slot] == 1);
      FUZZ_CHECK(o.reply.code >= 200 && o.reply.code <= 599);
      FUZZ_CHECK(!o.stage.empty());
      FUZZ_CHECK(o.kind == session::RcptOutcome::Delivered ? o.reply.code < 300
                                                           : o.reply.code >= 400);
    }
    s.outcomes().clear();
  };
  auto all_decided = [&] {
    for (std::size_t i = 0; i < taken.size(); ++i)
      if (taken[i]) FUZZ_CHECK(results[i] == 1);
  };
  auto begin = [&] {
    ++messages_begun;
    ++message;
    const std::size_t n = s.begin_message(env, all, 40);
    FUZZ_CHECK(n <= 3);
    if (mflags & 64) FUZZ_CHECK(n <= 1);
    for (std::size_t i = 0; i < n; ++i) taken[static_cast<std::size_t>(message) * 3 + i] = true;
    pieces = 0;
    collect();
  };

  begin();  // queued before the greeting
  FUZZ_CHECK(s.want() == session::ClientWant::Reply);

  // Acts on want() until the session waits for the server or is closed (bounded steps).
  auto act = [&] {
    for (int steps = 0; steps < 64; ++steps) {
      collect();
      switch (s.want()) {
        case session::ClientWant::Reply:
          FUZZ_CHECK(s.replies_pending() > 0);  // never waits for nothing
          return;
        case session::ClientWant::Close: return;
        case session::ClientWant::StartTls:
          if (flags & 128)
            s.on_tls_failed("handshake");
          else
            s.on_tls_started();
          break;
        case session::ClientWant::Message:
          all_decided();
          if (messages_begun < 3) {
            begin();
          } else {
            s.quit();
            quit_sent = true;
          }
          break;
        case session::ClientWant::SendContent: {
          ++pieces;
          const bool last = pieces >= 3;
          FUZZ_CHECK(s.content_chunk(last ? "end.\r\n" : ".line\r\n", last));
          break;
        }
      }
    }
    FUZZ_CHECK(!"session did not settle in 64 steps");
  };

  act();
  std::size_t k = 0;
  while (!in.empty() && s.want() != session::ClientWant::Close) {
    std::size_t n = in.size();
    if (!sizes.empty() && sizes[k % sizes.size()] < n) n = sizes[k % sizes.size()];
    ++k;
    s.on_input(in.substr(0, n));
    in.remove_prefix(n);
    act();
  }
  if (s.want() != session::ClientWant::Close) s.on_closed();
  collect();
  FUZZ_CHECK(s.want() == session::ClientWant::Close);
  all_decided();
  FUZZ_CHECK(wire.find('\0') == std::string::npos);
  if (quit_sent) FUZZ_CHECK(wire.size() >= 6 && wire.compare(wire.size() - 6, 6, "QUIT\r\n") == 0);
  // Closed sessions stay closed and silent.
  s.on_input("220 again\r\n");
  s.quit();
  FUZZ_CHECK(s.out().empty() && s.outcomes().empty());
  FUZZ_CHECK(s.begin_message(env, all, 1) == 0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const std::uint8_t flags = data[0];
  const std::uint8_t mflags = data[1];
  std::size_t k = flags & 7;
  if (k > size - 2) k = size - 2;
  std::vector<std::size_t> sizes;
  for (std::size_t i = 0; i < k; ++i) sizes.push_back(1 + data[2 + i]);
  std::string_view in(reinterpret_cast<const char*>(data) + 2 + k, size - 2 - k);

  const Parsed whole = parse(in, {});
  for (const auto& r : whole.replies) check_reply(r);
  FUZZ_CHECK(same(parse(in, sizes), whole));
  FUZZ_CHECK(same(parse(in, {1}), whole));
  // Rendering a parsed reply and parsing it again gives it back (when re-adding the status
  // code to every line cannot push a line over the limit).
  for (const auto& r : whole.replies) {
    bool short_lines = true;
    for (const auto& l : r.lines) short_lines = short_lines && l.size() < 4000;
    if (!short_lines) continue;
    const Parsed again = parse(r.render(), {});
    FUZZ_CHECK(!again.error && again.replies.size() == 1);
    FUZZ_CHECK(again.replies[0].code == r.code && again.replies[0].status == r.status &&
               again.replies[0].lines == r.lines);
  }

  run_client(flags, mflags, in, sizes);
  return 0;
}
