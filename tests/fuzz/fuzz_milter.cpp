// Fuzz target: the milter client (src/filter/milter_proto.cpp) on untrusted milter replies.
// Input layout: byte 0 = flags (bits 0..1: number k of split sizes; bit 2: the message has no
// body; bit 3: no recipients; bit 4: unknown client family), then k split sizes, then the
// milter's bytes (its OPTNEG reply first).
// Checks:
//  - what the client sends is a well-formed packet stream (every packet at most kBodyChunk + 1
//    bytes, known commands only), OPTNEG first, QUIT last once it is done, nothing after;
//  - it never asks for more than it can be given, ends Done after on_closed(), and feeding the
//    same bytes whole or in pieces gives the same outcome;
//  - header edits of an accepted message, applied to a header section, never end the section
//    early nor leave bare CR or LF; parse_replycode gives 4xx/5xx replies without CR/LF.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "filter/milter_proto.hpp"
#include "fuzz_common.hpp"

using namespace carrier::filter::milter;

namespace {

MessageInfo info(std::uint8_t flags) {
  MessageInfo m;
  m.client_name = "client.example";
  m.family = (flags & 16) ? 'U' : '4';
  m.port = 2525;
  m.address = "192.0.2.1";
  m.helo = "helo.example";
  m.sender = "<a@example.org>";
  m.mail_args = {"SIZE=10", "BODY=8BITMIME"};
  if (!(flags & 8)) m.rcpts = {"<b@example.net>", "<c@example.net>"};
  m.head = "Received: from x\r\n\tby y\r\nSubject: s\r\nX-A: 1\r\n\r\n";
  m.connect_macros = {{"j", "mx.example"}, {"{daemon_name}", "mx.example"}};
  m.mail_macros = {{"i", "QID"}, {"{auth_authen}", "alice"}};
  m.eom_macros = {{"i", "QID"}};
  return m;
}

struct Run {
  bool failed = false;
  std::string error;
  Decision decision = Decision::Accept;
  int code = 0;
  std::size_t edits = 0;
  bool quarantine = false;
};

void check_stream(std::string_view out, bool& first, bool& quit_seen) {
  Decoder d;
  FUZZ_CHECK(d.feed(out));
  while (auto p = d.next()) {
    FUZZ_CHECK(!quit_seen);
    FUZZ_CHECK(p->data.size() <= kBodyChunk);
    FUZZ_CHECK(std::string_view("ABCDEHKLMNOQRTU").find(p->cmd) != std::string_view::npos);
    if (first) FUZZ_CHECK(p->cmd == 'O');
    first = false;
    if (p->cmd == 'Q') quit_seen = true;
  }
  FUZZ_CHECK(!d.failed());
}

Run drive(std::uint8_t flags, std::string_view in, const std::vector<std::size_t>& sizes) {
  Client c(info(flags));
  bool first = true, quit_seen = false;
  int body_chunks = 0;
  std::size_t k = 0;
  for (int steps = 0; steps < 100000; ++steps) {
    check_stream(c.out(), first, quit_seen);
    c.out().clear();
    if (c.want() == Client::Want::Done) break;
    if (c.want() == Client::Want::Body) {
      if ((flags & 4) || body_chunks >= 3) c.body_end();
      else c.body(std::string(1 + body_chunks++ * 100, 'b') + "\r\n");
      continue;
    }
    if (in.empty()) {
      c.on_closed("closed");
      continue;
    }
    std::size_t n = in.size();
    if (!sizes.empty() && sizes[k % sizes.size()] < n) n = sizes[k % sizes.size()];
    ++k;
    c.on_input(in.substr(0, n));
    in.remove_prefix(n);
  }
  FUZZ_CHECK(c.want() == Client::Want::Done);
  check_stream(c.out(), first, quit_seen);
  // Done stays done and silent.
  c.out().clear();
  c.on_input(encode('c'));
  c.body("x");
  c.body_end();
  FUZZ_CHECK(c.out().empty());

  Run r;
  r.failed = c.failed();
  r.error = c.error();
  FUZZ_CHECK(r.failed == !r.error.empty());
  if (!r.failed) {
    const auto& o = c.outcome();
    r.decision = o.decision;
    r.code = o.reply.code;
    r.edits = o.edits.size();
    r.quarantine = o.quarantine.has_value();
    FUZZ_CHECK(o.edits.size() <= kMaxEdits);
    if (o.decision == Decision::Reject) FUZZ_CHECK(o.reply.code >= 500 && o.reply.code <= 599);
    if (o.decision == Decision::TempFail) FUZZ_CHECK(o.reply.code >= 400 && o.reply.code <= 499);
    if (o.decision != Decision::Accept) FUZZ_CHECK(o.edits.empty() && !o.quarantine);
    for (const auto& l : o.reply.lines)
      FUZZ_CHECK(l.find_first_of("\r\n") == std::string::npos);
    if (o.decision == Decision::Accept) {
      std::string head = info(flags).head;
      apply_header_edits(head, o.edits, o.header_leadspc);
      const auto end = head.find("\r\n\r\n");
      FUZZ_CHECK(end == std::string::npos || end + 4 == head.size());
      for (std::size_t i = 0; i < head.size(); ++i) {
        if (head[i] == '\r') FUZZ_CHECK(i + 1 < head.size() && head[i + 1] == '\n');
        if (head[i] == '\n') FUZZ_CHECK(i > 0 && head[i - 1] == '\r');
      }
    }
  }
  return r;
}

bool same(const Run& a, const Run& b) {
  return a.failed == b.failed && a.error == b.error && a.decision == b.decision && a.code == b.code &&
         a.edits == b.edits && a.quarantine == b.quarantine;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::uint8_t flags = data[0];
  std::size_t k = flags & 3;
  if (k > size - 1) k = size - 1;
  std::vector<std::size_t> sizes;
  for (std::size_t i = 0; i < k; ++i) sizes.push_back(1 + data[1 + i]);
  std::string_view in(reinterpret_cast<const char*>(data) + 1 + k, size - 1 - k);

  const Run whole = drive(flags, in, {});
  FUZZ_CHECK(same(drive(flags, in, sizes), whole));

  if (auto r = parse_replycode(in)) {
    FUZZ_CHECK(r->code >= 400 && r->code <= 599 && !r->lines.empty());
    for (const auto& l : r->lines) FUZZ_CHECK(l.find_first_of("\r\n") == std::string::npos);
  }
  for (const auto& [n, v] : split_header(in, (flags & 32) != 0)) {
    FUZZ_CHECK(!n.empty() && n.find(':') == std::string::npos);
    FUZZ_CHECK(v.find("\r\n") == std::string::npos);
  }
  return 0;
}
