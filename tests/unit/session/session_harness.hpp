// carrier session tests: shared harness. A Smtp object owns a Config, a LocalPolicy and a
// ServerSession and feeds it events the way src/net/smtp_server.cpp does; every call returns
// the reply text the session produced, so tests read as transcripts:
//   C: MAIL FROM:<a@b.example>   S: 503 5.5.1 ...
// Every reply any test produces is logged and checked by the SessionTest fixture against
// RFC 5321 4.2 (reply syntax, multi-line form) and RFC 2034 3 / RFC 3463 2 (an enhanced status
// code, of the same class as the reply code, on every 2xx/4xx/5xx reply except the greeting
// and the replies to HELO/EHLO). Test-only code.
#pragma once
#include <gtest/gtest.h>

#include <chrono>
#include <initializer_list>
#include <ostream>
#include <regex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "proto/command.hpp"
#include "session/command_table.hpp"
#include "session/policy.hpp"
#include "session/server_session.hpp"

namespace carrier::session::test {

using State = ServerSession::State;

inline const char* state_name(State s) {
  switch (s) {
    case State::Start: return "Start";
    case State::Greeted: return "Greeted";
    case State::Mail: return "Mail";
    case State::Rcpt: return "Rcpt";
    case State::Data: return "Data";
    case State::Bdat: return "Bdat";
    case State::Closed: return "Closed";
  }
  return "?";
}

inline const char* want_name(Want w) {
  switch (w) {
    case Want::Line: return "Line";
    case Want::OpenMessage: return "OpenMessage";
    case Want::Data: return "Data";
    case Want::Bdat: return "Bdat";
    case Want::Commit: return "Commit";
    case Want::StartTls: return "StartTls";
    case Want::Authenticate: return "Authenticate";
    case Want::Close: return "Close";
  }
  return "?";
}

}  // namespace carrier::session::test

// Readable gtest output for the session's enums (found by ADL).
namespace carrier::session {
inline void PrintTo(Want w, std::ostream* os) { *os << "Want::" << test::want_name(w); }
inline void PrintTo(ServerSession::State s, std::ostream* os) { *os << "State::" << test::state_name(s); }
}  // namespace carrier::session

namespace carrier::session::test {

inline Config test_config() {
  Config c;
  c.hostname = "mx.carrier.test";
  return c;
}

// Local domains localhost and example.test; users alice, bob, carol, jürgen (UTF-8);
// aliases with nesting, outside targets and a cycle; trusted 127.0.0.0/8 and 2001:db8::/32.
inline LocalPolicyData test_policy() {
  LocalPolicyData d;
  d.domains = {"localhost", "Example.TEST."};
  d.mailboxes = {"alice", "bob", "Carol", "j\xC3\xBCrgen"};
  d.aliases = {
      {"team", {"alice", "bob"}},
      {"all", {"team", "carol"}},                        // nested: all → team → alice, bob
      {"ext", {"someone@other.test"}},                   // outside address: relayed
      {"mixed", {"alice", "x@other.test"}},
      {"Sales", {"Carol@LOCALHOST"}},                    // local-domain target, any case
      {"loop1", {"loop2"}},                              // a cycle (config rejects these;
      {"loop2", {"loop1"}},                              //  the policy must still stop)
  };
  d.recipient_delimiter = "+";
  d.trusted_networks = {"127.0.0.0/8", "2001:db8::/32"};
  return d;
}

inline ClientInfo untrusted_client() { return ClientInfo{"192.0.2.10", "client.rdns.example", 40000, false, false, "", "", {}, {}}; }
inline ClientInfo client_at(std::string ip) { return ClientInfo{std::move(ip), "", 40001, false, false, "", "", {}, {}}; }

// One reply (or several replies produced by one event) as logged for the RFC 2034 check.
struct LoggedReply {
  std::string event;  // the client line or "<event>"
  std::string text;
  bool helo_reply;    // a reply to HELO/EHLO or the greeting: no enhanced code required
};

inline std::vector<LoggedReply>& reply_log() {
  static std::vector<LoggedReply> log;
  return log;
}

inline std::vector<std::string> split_lines(std::string_view text) {
  std::vector<std::string> out;
  std::size_t i = 0;
  while (i < text.size()) {
    std::size_t e = text.find("\r\n", i);
    if (e == std::string_view::npos) {
      out.emplace_back(text.substr(i));  // unterminated: kept so the check can fail on it
      break;
    }
    out.emplace_back(text.substr(i, e - i));
    i = e + 2;
  }
  return out;
}

// RFC 5321 4.2 / 4.2.1 and RFC 2034 3 / RFC 3463 2 for one logged reply.
inline ::testing::AssertionResult reply_well_formed(const LoggedReply& r) {
  static const std::regex kLine(R"(^([2-5])([0-9][0-9])([ -])(.*)$)");
  static const std::regex kEnhanced(R"(^([245])\.([0-9]{1,3})\.([0-9]{1,3})( .*)?$)");
  if (r.text.size() < 2 || r.text.compare(r.text.size() - 2, 2, "\r\n") != 0)
    return ::testing::AssertionFailure() << "reply to " << r.event << " does not end with CRLF: "
                                         << r.text;
  auto lines = split_lines(r.text);
  std::string pending_code;  // code of a '-' continuation line awaiting its last line
  for (const auto& line : lines) {
    std::smatch m;
    if (!std::regex_match(line, m, kLine))
      return ::testing::AssertionFailure() << "reply to " << r.event << ": bad line '" << line << "'";
    const std::string code = line.substr(0, 3);
    if (!pending_code.empty() && pending_code != code)
      return ::testing::AssertionFailure() << "reply to " << r.event << ": multi-line reply changes code";
    pending_code = m[3] == "-" ? code : "";
    const bool needs_enhanced = !r.helo_reply && code[0] != '3';  // RFC 2034 3: 2xx/4xx/5xx
    if (!needs_enhanced) continue;
    const std::string text = m[4];
    std::smatch e;
    if (!std::regex_match(text, e, kEnhanced))
      return ::testing::AssertionFailure() << "reply to " << r.event
                                           << " lacks an enhanced status code: '" << line << "'";
    if (e[1].str()[0] != code[0])  // RFC 3463 2: class digit matches the reply code
      return ::testing::AssertionFailure() << "reply to " << r.event
                                           << ": enhanced code class differs: '" << line << "'";
  }
  if (!pending_code.empty())
    return ::testing::AssertionFailure() << "reply to " << r.event << " ends with a '-' line";
  return ::testing::AssertionSuccess();
}

inline std::size_t& replies_checked_total() {
  static std::size_t n = 0;
  return n;
}

// Every test that drives a session derives from this fixture: all replies it produced are
// checked when it ends.
class SessionTest : public ::testing::Test {
 protected:
  void SetUp() override { reply_log().clear(); }
  void TearDown() override {
    for (const auto& r : reply_log()) EXPECT_TRUE(reply_well_formed(r));
    replies_checked_total() += reply_log().size();
    reply_log().clear();
  }
};

inline bool is_helo_line(std::string_view line) {
  auto c = proto::parse_command(line);
  return c.verb == proto::Verb::Ehlo || c.verb == proto::Verb::Helo;
}

inline ContentReport content(std::uint64_t size) {
  ContentReport r;
  r.size = size;
  return r;
}

class Smtp {
 public:
  explicit Smtp(Config cfg = test_config(), const LocalPolicyData& pd = test_policy(),
                ClientInfo client = untrusted_client())
      : cfg_(std::move(cfg)), policy_(pd), s_(cfg_, policy_, std::move(client)) {}
  Smtp(const Smtp&) = delete;
  Smtp& operator=(const Smtp&) = delete;

  std::string connect() {
    s_.on_connect();
    return take("<connect>", true);
  }
  // C: line  → returns S: text
  std::string C(std::string_view line) {
    s_.on_line(line);
    std::string r = take(line, false);
    if (is_helo_line(line) && r.rfind("250", 0) == 0) reply_log().back().helo_reply = true;
    return r;
  }
  std::string too_long() {
    s_.on_line_too_long();
    return take("<line too long>", false);
  }
  std::string timeout() {
    s_.on_timeout();
    return take("<timeout>", false);
  }
  std::string opened(bool ok = true, bool no_space = false) {
    s_.on_message_opened(ok, no_space);
    return take("<message opened>", false);
  }
  std::string data_end(const ContentReport& r) {
    s_.on_data_end(r);
    return take("<data end>", false);
  }
  std::string chunk_end(const ContentReport& r) {
    s_.on_bdat_chunk_end(r);
    return take("<bdat chunk end>", false);
  }
  std::string committed(std::string_view id) {
    s_.on_committed(id);
    return take("<committed>", false);
  }
  std::string commit_failed(bool no_space) {
    s_.on_commit_failed(no_space);
    return take("<commit failed>", false);
  }

  // connect + EHLO
  void greet(std::string_view ehlo = "EHLO client.example") {
    connect();
    C(ehlo);
  }

  ServerSession& s() { return s_; }
  // The replies produced by an event the harness has no wrapper for (logged and checked).
  std::string replies(std::string_view what) { return take(what, false); }
  Want want() const { return s_.want(); }
  State state() const { return s_.state(); }
  const proto::Envelope& env() const { return s_.envelope(); }
  const Config& cfg() const { return cfg_; }
  const LocalPolicy& policy() const { return policy_; }

 private:
  std::string take(std::string_view what, bool helo) {
    std::string r = std::move(s_.out());
    s_.out().clear();
    if (!r.empty()) reply_log().push_back({std::string(what), r, helo});
    return r;
  }

  Config cfg_;
  LocalPolicy policy_;
  ServerSession s_;
};

// True when `got` is exactly one reply whose first line starts with `expect` followed by a
// space, '-' or the end of the line; `expect` "" means no reply at all.
inline ::testing::AssertionResult reply_is(const std::string& got, std::string_view expect) {
  if (expect.empty()) {
    if (got.empty()) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "expected no reply, got: " << got;
  }
  auto lines = split_lines(got);
  if (lines.empty()) return ::testing::AssertionFailure() << "expected '" << expect << "', got nothing";
  const std::string& first = lines.front();
  bool ok = first.rfind(expect, 0) == 0 &&
            (first.size() == expect.size() || first[expect.size()] == ' ' ||
             first[expect.size()] == '-' || expect.size() > 3);
  for (std::size_t i = 0; ok && i < lines.size(); ++i) {
    ok = lines[i].compare(0, 3, first, 0, 3) == 0;  // one reply: one code throughout
    if (i + 1 < lines.size()) ok = ok && lines[i].size() > 3 && lines[i][3] == '-';
  }
  if (ok) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "expected '" << expect << "', got: " << got;
}

// A transcript: each step sends one client line and checks the reply prefix.
struct Step {
  std::string_view client;
  std::string_view server;  // expected reply prefix ("250 2.1.0", "503 5.5.1 Error: ...", "")
};

inline void transcript(Smtp& t, std::initializer_list<Step> steps) {
  for (const auto& st : steps) {
    std::string got = t.C(st.client);
    EXPECT_TRUE(reply_is(got, st.server)) << "  C: " << st.client << "\n  S: " << got;
  }
}

inline std::string reply_code(const std::string& r) { return r.substr(0, 3); }

// Drives a fresh session into `st` through real commands (RFC 5321 3.3, RFC 3030 2).
inline void drive_to(Smtp& t, State st) {
  t.connect();
  if (st == State::Start) return;
  ASSERT_TRUE(reply_is(t.C("EHLO client.example"), "250"));
  if (st == State::Greeted) return;
  ASSERT_TRUE(reply_is(t.C("MAIL FROM:<sender@client.example>"), "250 2.1.0"));
  if (st == State::Mail) return;
  ASSERT_TRUE(reply_is(t.C("RCPT TO:<alice@localhost>"), "250 2.1.5"));
  if (st == State::Rcpt) return;
  ASSERT_EQ(st, State::Bdat);
  ASSERT_TRUE(reply_is(t.C("BDAT 4"), ""));
  ASSERT_EQ(t.want(), Want::OpenMessage);
  ASSERT_TRUE(reply_is(t.opened(), ""));
  ASSERT_EQ(t.want(), Want::Bdat);
  ASSERT_TRUE(reply_is(t.chunk_end(content(4)), "250 2.0.0"));
  ASSERT_EQ(t.want(), Want::Line);
}

}  // namespace carrier::session::test
