// Fuzz target: SMTP command lines and ESMTP parameters (src/proto/command.cpp) on untrusted
// input. Checks: no crash / UB; every failure is a well-formed reply of the documented codes;
// accepted addresses honour the SMTPUTF8 rule (RFC 6531 3.5) and re-parse identically.
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_common.hpp"
#include "proto/command.hpp"

using namespace carrier::proto;

namespace {

void check_reply(const Reply& r) {
  FUZZ_CHECK(r.code == 501 || r.code == 552 || r.code == 553 || r.code == 555);
  FUZZ_CHECK(r.status.size() == 5 && r.status[0] == '5');
  FUZZ_CHECK(r.lines.size() == 1 && !r.lines[0].empty());
  std::string text = r.render();
  // Exactly one line: the only CR/LF are the final CRLF (client bytes never leak CRLF).
  FUZZ_CHECK(text.find_first_of("\r\n") == text.size() - 2);
  for (unsigned char c : r.lines[0]) FUZZ_CHECK(c >= 32 && c < 127);
}

void check_mailbox(const Mailbox& m, bool utf8) {
  FUZZ_CHECK(!m.local.empty() && !m.domain.empty());
  if (!utf8) FUZZ_CHECK(!m.needs_utf8());
  auto again = parse_path("<" + m.str() + ">", false, utf8);
  FUZZ_CHECK(again && again->mailbox == m);
}

void run(std::string_view in, bool utf8) {
  Extensions ext;
  ext.auth = true;
  ext.smtputf8 = utf8;
  ext.max_size = utf8 ? 1000000 : 0;

  auto m = parse_mail(in, ext);
  if (auto* r = std::get_if<Reply>(&m)) {
    check_reply(*r);
  } else {
    const MailFrom& mf = std::get<MailFrom>(m);
    if (!mf.sender.empty()) check_mailbox(mf.sender, mf.params.smtputf8);
    if (mf.params.smtputf8) FUZZ_CHECK(utf8);
    if (mf.params.size && ext.max_size) FUZZ_CHECK(*mf.params.size <= ext.max_size);
    for (unsigned char c : mf.params.envid) FUZZ_CHECK(c >= 32 && c < 127);
  }

  auto r = parse_rcpt(in, ext, utf8);
  if (auto* rep = std::get_if<Reply>(&r)) {
    check_reply(*rep);
  } else {
    const RcptTo& rt = std::get<RcptTo>(r);
    check_mailbox(rt.rcpt, utf8);
    unsigned n = rt.params.notify;
    FUZZ_CHECK(!(n & kNotifyNever) || n == kNotifyNever);
    FUZZ_CHECK(rt.params.orcpt.empty() == rt.params.orcpt_type.empty());
    FUZZ_CHECK(is_valid_utf8(rt.params.orcpt));
    for (unsigned char c : rt.params.orcpt) FUZZ_CHECK(c >= 32 && c != 127);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);

  Command c = parse_command(in);
  FUZZ_CHECK(c.name.data() == in.data());
  FUZZ_CHECK(c.name.find(' ') == std::string_view::npos);
  if (c.name.size() < in.size()) {
    FUZZ_CHECK(in[c.name.size()] == ' ');
    FUZZ_CHECK(c.arg.data() == in.data() + c.name.size() + 1);
    FUZZ_CHECK(c.arg.size() == in.size() - c.name.size() - 1);
  } else {
    FUZZ_CHECK(c.arg.empty());
  }
  if (c.verb != Verb::Unknown) FUZZ_CHECK(c.name.size() == 4 || c.name.size() == 8);

  for (bool utf8 : {false, true}) {
    run(in, utf8);
    run(c.arg, utf8);
  }

  auto b = parse_bdat(in);
  if (auto* rep = std::get_if<Reply>(&b)) check_reply(*rep);

  if (valid_helo_arg(in)) {
    FUZZ_CHECK(!in.empty() && in.size() <= 255);
    for (unsigned char ch : in) FUZZ_CHECK(ch > 32 && ch < 127);
  }
  return 0;
}
