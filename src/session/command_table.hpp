// carrier session: the SMTP command table (after Postfix's smtpd_cmd_table and OpenSMTPD's
// commands[]): every command the server knows, the states in which it is allowed, and flags.
// ServerSession dispatches through it, and the unit tests iterate over it to prove that every
// command is refused with 503 5.5.1 in every state where it is not allowed (RFC 5321 4.1.4,
// 3.3). Pure data.
#pragma once
#include <array>
#include <string_view>

#include "proto/command.hpp"
#include "session/server_session.hpp"

namespace carrier::session {

constexpr unsigned state_bit(ServerSession::State s) { return 1u << static_cast<unsigned>(s); }

using S = ServerSession::State;
constexpr unsigned kAnyState = state_bit(S::Start) | state_bit(S::Greeted) | state_bit(S::Mail) |
                               state_bit(S::Rcpt) | state_bit(S::Bdat);

struct CommandSpec {
  proto::Verb verb;
  std::string_view name;
  unsigned allowed;         // states in which the command is accepted
  bool ends_pipeline_group; // RFC 2920 3.1: reply must be flushed before reading on
  std::string_view wrong_state_text;  // text of the 503 5.5.1 when not allowed
};

inline constexpr std::array<CommandSpec, 14> kCommandTable{{
    {proto::Verb::Ehlo, "EHLO", kAnyState, true, ""},
    {proto::Verb::Helo, "HELO", kAnyState, true, ""},
    {proto::Verb::Mail, "MAIL", state_bit(S::Greeted), false, "Error: send HELO/EHLO first"},
    {proto::Verb::Rcpt, "RCPT", state_bit(S::Mail) | state_bit(S::Rcpt), false,
     "Error: need MAIL command"},
    {proto::Verb::Data, "DATA", state_bit(S::Rcpt), true, "Error: need RCPT command"},
    {proto::Verb::Bdat, "BDAT", state_bit(S::Rcpt) | state_bit(S::Bdat), false,
     "Error: need RCPT command"},
    {proto::Verb::Rset, "RSET", kAnyState, false, ""},
    {proto::Verb::Noop, "NOOP", kAnyState, true, ""},
    {proto::Verb::Quit, "QUIT", kAnyState, true, ""},
    {proto::Verb::Vrfy, "VRFY", kAnyState, true, ""},
    {proto::Verb::Expn, "EXPN", kAnyState, true, ""},
    {proto::Verb::Help, "HELP", kAnyState, true, ""},
    {proto::Verb::StartTls, "STARTTLS", state_bit(S::Start) | state_bit(S::Greeted), true,
     "Error: STARTTLS not allowed in a mail transaction"},
    {proto::Verb::Auth, "AUTH", state_bit(S::Greeted), true,
     "Error: AUTH only after EHLO and outside a mail transaction"},
}};

constexpr const CommandSpec* find_command(proto::Verb v) {
  for (const auto& c : kCommandTable)
    if (c.verb == v) return &c;
  return nullptr;
}

}  // namespace carrier::session
