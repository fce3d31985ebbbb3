// carrier proto: SMTP command lines (RFC 5321 4.1) and their ESMTP parameters
// (RFC 1870 SIZE, RFC 6152 8BITMIME, RFC 3030 CHUNKING/BINARYMIME, RFC 6531 SMTPUTF8,
// RFC 3461 DSN). Parses UNTRUSTED input; never throws; every error maps to a reply.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "proto/address.hpp"
#include "proto/reply.hpp"

namespace carrier::proto {

enum class Verb {
  Helo, Ehlo, Mail, Rcpt, Data, Bdat, Rset, Noop, Quit, Vrfy, Expn, Help, StartTls, Auth,
  Unknown,
};

struct Command {
  Verb verb = Verb::Unknown;
  std::string_view name;  // the verb as sent (for logs), points into the input line
  std::string_view arg;   // everything after the verb and ONE space ("" when none)
};

// Splits a command line (CRLF already removed). Verbs are case-insensitive (RFC 5321 2.4).
// "MAIL FROM:" and "RCPT TO:" are recognised by their 4-letter verb; the "FROM:"/"TO:" part
// belongs to arg. Never fails: an unknown verb gives Verb::Unknown.
Command parse_command(std::string_view line);

enum class Body { SevenBit, EightBitMime, BinaryMime };
enum class Ret { Unset, Full, Hdrs };

struct MailParams {
  std::optional<std::uint64_t> size;  // SIZE=
  Body body = Body::SevenBit;         // BODY=
  bool body_given = false;
  bool smtputf8 = false;              // SMTPUTF8
  Ret ret = Ret::Unset;               // RET=
  std::string envid;                  // ENVID= (xtext-decoded)
  std::string auth;                   // AUTH= (xtext-decoded; "<>" kept as is)
};

struct MailFrom {
  Mailbox sender;  // empty: null reverse-path <>
  MailParams params;
};

// NOTIFY bits (RFC 3461 4.1). never excludes the others.
enum Notify : unsigned { kNotifyNone = 0, kNotifySuccess = 1, kNotifyFailure = 2, kNotifyDelay = 4,
                         kNotifyNever = 8 };

struct RcptParams {
  unsigned notify = kNotifyNone;  // 0: not given (RFC 3461 default applies)
  std::string orcpt_type;          // "rfc822" / "utf-8"
  std::string orcpt;               // xtext-decoded original recipient
};

struct RcptTo {
  Mailbox rcpt;
  RcptParams params;
};

struct Bdat {
  std::uint64_t size = 0;
  bool last = false;
};

// What the server advertises; parameters of extensions not offered are rejected.
struct Extensions {
  bool size = true;
  std::uint64_t max_size = 0;  // SIZE limit, 0 = none
  bool eightbitmime = true;
  bool smtputf8 = true;
  bool chunking = true;  // and BINARYMIME
  bool dsn = true;
  bool auth = false;
};

// A parse failure carries the full reply to send (501 5.5.2 / 501 5.5.4 / 555 5.5.4 /
// 552 5.3.4 for SIZE over the limit / 501 5.1.7 bad sender / 501 5.1.3 bad recipient / ...).
using MailResult = std::variant<MailFrom, Reply>;
using RcptResult = std::variant<RcptTo, Reply>;
using BdatResult = std::variant<Bdat, Reply>;

// arg: text after "MAIL " — must start with "FROM:" (case-insensitive). One optional space after
// the colon is tolerated (common client behaviour). Params per RFC 5321 4.1.2 esmtp-param,
// each keyword at most once; unknown keyword: 555 5.5.4.
MailResult parse_mail(std::string_view arg, const Extensions& ext);
// arg: text after "RCPT " — must start with "TO:". SMTPUTF8 status comes from the MAIL command.
RcptResult parse_rcpt(std::string_view arg, const Extensions& ext, bool smtputf8);
// arg: "<size> [LAST]" (RFC 3030 2).
BdatResult parse_bdat(std::string_view arg);
// EHLO/HELO argument: a domain or address literal (RFC 5321 4.1.1.1). Liberal: any printable
// ASCII word is accepted for HELO-name logging, but it must be non-empty and contain no
// control characters or spaces. Returns false when unacceptable (501 5.5.4).
bool valid_helo_arg(std::string_view arg);

// RFC 3461 4: xtext = *( xchar / "+" 2HEXCHAR ); decode, or nullopt when malformed.
std::optional<std::string> xtext_decode(std::string_view s);
std::string xtext_encode(std::string_view s);

}  // namespace carrier::proto
