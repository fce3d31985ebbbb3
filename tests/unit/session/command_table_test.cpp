// carrier session tests: the command table against the state machine. For EVERY entry of
// kCommandTable and EVERY state reachable between commands (Start, Greeted, Mail, Rcpt, Bdat,
// each reached through real commands), the command is sent and checked: refused with exactly
// 503 5.5.1 and no state change where the table does not allow it (RFC 5321 4.1.4 command
// order, 3.3 mail transaction, 4.2.4/4.3.2 reply 503; RFC 3030 2 for BDAT, whose announced
// chunk must still be read and discarded), and never 503 where it is allowed. The table
// itself is checked against the RFCs: allowed states (RFC 5321 4.1.4, RFC 3030 2, RFC 4954 4,
// RFC 3207 4) and pipeline group enders (RFC 2920 3.1).
#include <gtest/gtest.h>

#include <regex>
#include <string>

#include "session/command_table.hpp"
#include "session_harness.hpp"

namespace carrier::session::test {
namespace {

using proto::Verb;

// A syntactically valid line for each verb, so that the only reason to refuse it is the state.
std::string_view sample_line(Verb v) {
  switch (v) {
    case Verb::Helo: return "HELO client.example";
    case Verb::Ehlo: return "EHLO client.example";
    case Verb::Mail: return "MAIL FROM:<other-sender@client.example>";
    case Verb::Rcpt: return "RCPT TO:<bob@localhost>";
    case Verb::Data: return "DATA";
    case Verb::Bdat: return "BDAT 7";
    case Verb::Rset: return "RSET";
    case Verb::Noop: return "NOOP";
    case Verb::Quit: return "QUIT";
    case Verb::Vrfy: return "VRFY alice";
    case Verb::Expn: return "EXPN team";
    case Verb::Help: return "HELP";
    case Verb::StartTls: return "STARTTLS";
    case Verb::Auth: return "AUTH PLAIN AGFsaWNlAHNlY3JldA==";
    case Verb::Unknown: return "XYZZY";
  }
  return "";
}

constexpr State kBetweenCommands[] = {State::Start, State::Greeted, State::Mail, State::Rcpt,
                                      State::Bdat};

using Param = std::tuple<std::size_t, State>;

class CommandInState : public SessionTest, public ::testing::WithParamInterface<Param> {};

TEST_P(CommandInState, RefusedWith503OnlyWhereTheTableSaysSo) {
  const auto& spec = kCommandTable[std::get<0>(GetParam())];
  const State st = std::get<1>(GetParam());
  const std::string_view line = sample_line(spec.verb);
  SCOPED_TRACE(std::string(spec.name) + " in state " + state_name(st) + ": C: " + std::string(line));

  Smtp t;
  drive_to(t, st);
  ASSERT_EQ(t.state(), st);
  ASSERT_EQ(t.want(), Want::Line);
  const bool open_before = t.s().message_open();
  const auto rcpts_before = t.env().recipients.size();
  const auto sender_before = t.env().sender;
  const int errors_before = t.s().errors();

  const std::string got = t.C(line);

  if (!(spec.allowed & state_bit(st))) {
    // RFC 5321 4.1.4 / 4.3.2: out-of-order command → 503; RFC 2034/3463: 5.5.1.
    static const std::regex k503(R"(^503 5\.5\.1 [^\r\n]*\r\n$)");
    EXPECT_TRUE(std::regex_match(got, k503)) << "S: " << got;
    if (!spec.wrong_state_text.empty() && spec.verb != Verb::Mail && spec.verb != Verb::Rcpt &&
        spec.verb != Verb::Data && spec.verb != Verb::Bdat) {
      EXPECT_NE(got.find(spec.wrong_state_text), std::string::npos) << got;
    }
    EXPECT_EQ(t.state(), st) << "state changed by a refused command";
    EXPECT_EQ(t.s().errors(), errors_before + 1) << "a 503 is a client error";
    EXPECT_EQ(t.s().message_open(), open_before) << "a refused command aborted the message";
    EXPECT_EQ(t.env().recipients.size(), rcpts_before);
    EXPECT_EQ(t.env().sender, sender_before);
    if (spec.verb == Verb::Bdat) {
      // RFC 3030 2: the 7 octets announced by the refused BDAT follow the command; they are
      // read and thrown away, never parsed as commands and never stored.
      EXPECT_EQ(t.want(), Want::Bdat);
      EXPECT_EQ(t.s().bdat_remaining(), 7u);
      EXPECT_TRUE(t.s().discarding());
      EXPECT_TRUE(reply_is(t.chunk_end(content(0)), "")) << "no second reply for the chunk";
      EXPECT_EQ(t.want(), Want::Line);
      EXPECT_EQ(t.state(), st);
      EXPECT_EQ(t.s().message_open(), open_before);
      EXPECT_FALSE(t.s().discarding());
      // And the session goes on normally afterwards.
      EXPECT_TRUE(reply_is(t.C("NOOP"), "250 2.0.0"));
    } else {
      EXPECT_EQ(t.want(), Want::Line);
    }
  } else {
    // Allowed: whatever the outcome, it is not "bad sequence of commands".
    EXPECT_NE(reply_code(got), "503") << "S: " << got;
  }
}

std::string param_name(const ::testing::TestParamInfo<Param>& info) {
  return std::string(kCommandTable[std::get<0>(info.param)].name) + "_in_" +
         state_name(std::get<1>(info.param));
}

INSTANTIATE_TEST_SUITE_P(EveryCommandEveryState, CommandInState,
                         ::testing::Combine(::testing::Range<std::size_t>(0, kCommandTable.size()),
                                            ::testing::ValuesIn(kBetweenCommands)),
                         param_name);

TEST(CommandTable, EveryVerbHasExactlyOneEntry) {
  for (int v = 0; v < static_cast<int>(Verb::Unknown); ++v) {
    int n = 0;
    for (const auto& c : kCommandTable) n += c.verb == static_cast<Verb>(v);
    EXPECT_EQ(n, 1) << "verb #" << v;
  }
  EXPECT_EQ(find_command(Verb::Unknown), nullptr);
}

TEST(CommandTable, NamesParseBackToTheirVerb) {  // RFC 5321 2.4: verbs are case-insensitive
  for (const auto& c : kCommandTable) {
    EXPECT_EQ(proto::parse_command(c.name).verb, c.verb) << c.name;
    std::string lower(c.name);
    for (auto& ch : lower) ch = static_cast<char>(ch | 0x20);
    EXPECT_EQ(proto::parse_command(lower).verb, c.verb) << lower;
  }
}

// The allowed states, written down independently from the RFCs, must match the table.
TEST(CommandTable, AllowedStatesFollowTheRfcs) {
  const unsigned all = kAnyState;
  const unsigned greeted = state_bit(State::Greeted);
  struct Want_ { Verb v; unsigned allowed; const char* why; };
  const Want_ expected[] = {
      {Verb::Ehlo, all, "RFC 5321 4.1.4: EHLO may be issued at any time (resets)"},
      {Verb::Helo, all, "RFC 5321 4.1.4"},
      {Verb::Mail, greeted, "RFC 5321 4.1.4: MAIL after EHLO/HELO, not inside a transaction"},
      {Verb::Rcpt, state_bit(State::Mail) | state_bit(State::Rcpt), "RFC 5321 3.3"},
      {Verb::Data, state_bit(State::Rcpt), "RFC 5321 3.3: DATA needs a recipient"},
      {Verb::Bdat, state_bit(State::Rcpt) | state_bit(State::Bdat), "RFC 3030 2"},
      {Verb::Rset, all, "RFC 5321 4.1.1.5"},
      {Verb::Noop, all, "RFC 5321 4.1.1.9"},
      {Verb::Quit, all, "RFC 5321 4.1.1.10"},
      {Verb::Vrfy, all, "RFC 5321 4.1.4: VRFY/EXPN/HELP/NOOP any time"},
      {Verb::Expn, all, "RFC 5321 4.1.4"},
      {Verb::Help, all, "RFC 5321 4.1.4"},
      {Verb::StartTls, state_bit(State::Start) | greeted, "RFC 3207 4: not in a transaction"},
      {Verb::Auth, greeted, "RFC 4954 4: after EHLO, not during a mail transaction"},
  };
  for (const auto& e : expected) {
    const auto* c = find_command(e.v);
    ASSERT_NE(c, nullptr);
    EXPECT_EQ(c->allowed, e.allowed) << c->name << ": " << e.why;
    EXPECT_EQ(c->allowed & state_bit(State::Data), 0u) << c->name << ": no command during DATA";
    EXPECT_EQ(c->allowed & state_bit(State::Closed), 0u) << c->name;
  }
}

// RFC 2920 3.1: EHLO, DATA, VRFY, EXPN, TURN, QUIT and NOOP may only be the last command of a
// pipelined group; RSET, MAIL and RCPT may appear anywhere; RFC 3030 2 lets BDAT be pipelined;
// RFC 3207 4.2 (STARTTLS) and RFC 4954 4 (AUTH) end a group.
TEST(CommandTable, PipelineGroupEndersFollowRfc2920) {
  for (Verb v : {Verb::Ehlo, Verb::Helo, Verb::Data, Verb::Vrfy, Verb::Expn, Verb::Quit,
                 Verb::Noop, Verb::StartTls, Verb::Auth})
    EXPECT_TRUE(find_command(v)->ends_pipeline_group) << find_command(v)->name;
  for (Verb v : {Verb::Rset, Verb::Mail, Verb::Rcpt, Verb::Bdat})
    EXPECT_FALSE(find_command(v)->ends_pipeline_group) << find_command(v)->name;
}

TEST(CommandTable, RestrictedCommandsHaveAWrongStateText) {
  for (const auto& c : kCommandTable) {
    if (c.allowed != kAnyState) {
      EXPECT_FALSE(c.wrong_state_text.empty()) << c.name;
    }
  }
}

// The 503 texts name what is missing (RFC 5321 4.2: the text is for humans, but it must not
// mislead).
TEST_F(SessionTest, WrongStateTextsSayWhatIsMissing) {
  {
    Smtp t;
    t.connect();
    transcript(t, {
        {"MAIL FROM:<a@b.example>", "503 5.5.1 Error: send HELO/EHLO first"},
        {"RCPT TO:<alice@localhost>", "503 5.5.1 Error: send HELO/EHLO first"},
        {"DATA", "503 5.5.1 Error: need MAIL command"},
    });
  }
  {
    Smtp t;
    t.greet();
    transcript(t, {
        {"RCPT TO:<alice@localhost>", "503 5.5.1 Error: need MAIL command"},
        {"DATA", "503 5.5.1 Error: need MAIL command"},
        {"MAIL FROM:<a@b.example>", "250 2.1.0"},
        {"MAIL FROM:<a@b.example>", "503 5.5.1 Error: nested MAIL command"},
        {"DATA", "503 5.5.1 Error: need RCPT command"},
    });
  }
}

}  // namespace
}  // namespace carrier::session::test
