// Fuzz target: the whole SMTP server state machine (src/session/server_session.cpp) driven by
// untrusted input, including STARTTLS, AUTH PLAIN/LOGIN exchanges, DATA/BDAT and submission
// rules. The input is split into lines; a line's first byte also picks which event the I/O
// layer reports when the session is waiting for something other than a line (message opened,
// data end, BDAT chunk end, commit, TLS up, credential verdict). Checks: no crash / UB; every
// reply the session produces is CRLF-terminated lines starting with a 3-digit code; the line
// limit is explicit; passwords never survive a verdict; a closed session stays closed.
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_common.hpp"
#include "session/policy.hpp"
#include "session/server_session.hpp"

using namespace carrier;
using namespace carrier::session;

namespace {

void check_out(const std::string& out) {
  std::size_t i = 0;
  while (i < out.size()) {
    std::size_t e = out.find("\r\n", i);
    FUZZ_CHECK(e != std::string::npos);
    FUZZ_CHECK(e - i >= 3);
    for (int k = 0; k < 3; ++k) FUZZ_CHECK(out[i + k] >= '0' && out[i + k] <= '9');
    FUZZ_CHECK(e - i == 3 || out[i + 3] == ' ' || out[i + 3] == '-');
    for (std::size_t k = i; k < e; ++k) FUZZ_CHECK(out[k] != '\r' && out[k] != '\n');
    i = e + 2;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const LocalPolicyData pd = [] {
    LocalPolicyData d;
    d.domains = {"example.test"};
    d.mailboxes = {"alice", "postmaster"};
    d.aliases = {{"team", {"alice", "x@elsewhere.test"}}};
    VirtualDomainData v;
    v.domain = "hosted.test";
    v.mailboxes = {"bob"};
    v.catch_all = "bob";
    d.virtual_domains = {v};
    return d;
  }();
  static const LocalPolicy policy(pd);
  Config cfg;
  cfg.hostname = "mx.fuzz.test";
  const std::uint8_t flags = size ? data[0] : 0;
  cfg.starttls_available = flags & 1;
  cfg.submission = flags & 2;
  cfg.auth_available = flags & 2;
  cfg.auth_plaintext_loopback = flags & 4;
  cfg.chunking = !(flags & 8);
  cfg.limits.max_errors = 1000;
  cfg.sender_allowed = [](const AuthIdentity& who, const proto::Mailbox& m) {
    return m.str().empty() || m.str() == who.user;
  };
  ServerSession s(cfg, policy, ClientInfo{"127.0.0.1", "", 1, false, (flags & 16) != 0, "", "", {}, {}});
  s.on_connect();
  check_out(s.out());
  s.out().clear();
  std::string_view in(reinterpret_cast<const char*>(data), size);
  if (!in.empty()) in.remove_prefix(1);
  while (!in.empty() && s.want() != Want::Close) {
    auto nl = in.find('\n');
    std::string_view line = in.substr(0, nl);
    in.remove_prefix(nl == std::string_view::npos ? in.size() : nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    const unsigned char sel = line.empty() ? 0 : static_cast<unsigned char>(line[0]);
    switch (s.want()) {
      case Want::Line:
        if (line.size() + 2 > s.line_limit()) s.on_line_too_long();
        else s.on_line(line);
        break;
      case Want::OpenMessage: s.on_message_opened(sel % 5 != 0, sel % 7 == 0); break;
      case Want::Data:
      case Want::Bdat: {
        ContentReport r;
        r.size = line.size();
        r.too_big = sel % 11 == 0;
        r.bare_newline = sel % 13 == 0;
        r.received_count = sel % 17 == 0 ? 500 : 1;
        if (s.want() == Want::Data) s.on_data_end(r);
        else s.on_bdat_chunk_end(r);
        break;
      }
      case Want::Commit:
        if (sel % 9 == 0) s.on_commit_failed(sel % 2 == 0);
        else s.on_committed("0ABCDEFGHJKM");
        break;
      case Want::StartTls: s.on_tls_started("using TLSv1.3 with cipher X (256/256 bits)"); break;
      case Want::Authenticate: {
        using V = ServerSession::AuthVerdict;
        const V v = sel % 4 == 0 ? V::Ok : sel % 4 == 1 ? V::Bad : sel % 4 == 2 ? V::TempFail
                                                                               : V::Throttled;
        s.on_auth_result(v, AuthIdentity{"alice@example.test", {}});
        FUZZ_CHECK(s.auth_request().password.empty());
        break;
      }
      case Want::Close: break;
    }
    check_out(s.out());
    s.out().clear();
    s.events().clear();
  }
  return 0;
}
