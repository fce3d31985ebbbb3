// carrier filter: the MTA side of the milter protocol (Sendmail/Postfix "milter", protocol
// version 6 as Postfix speaks it), pure and sans-I/O. The I/O driver (src/server/milter_stage)
// moves bytes between a socket and a milter::Client and reads the body from the spool file;
// everything it decides is decided here, so it is unit-tested and fuzzed without a socket.
//
// Wire format: every packet is a 4-byte big-endian length, then that many bytes: one command
// byte and its data. Packets carrier reads are bounded by kMaxPacket (a bigger length is a
// protocol error, never buffered); body chunks carrier sends are at most kBodyChunk bytes.
//
// Dialogue (one milter connection per message): OPTNEG, then for the message CONNECT, HELO,
// MAIL, RCPT (each recipient), DATA, HEADER (each field), EOH, BODY (chunks), end of body
// (BODYEOB), QUIT. A step the milter asked to skip (SMFIP_NO*) is not sent; a step it said it
// will not answer (SMFIP_NR_*) is sent without waiting. Macros (SMFIC_MACRO) go before the
// command they belong to; when the milter listed the macros it wants (SMFIF_SETSYMLIST in its
// OPTNEG reply), only those are sent.
//
// Replies: continue goes on; accept ends the dialogue (the message is accepted unchanged);
// reject / tempfail / discard / replycode end it with that verdict (a refusal at RCPT refuses
// the whole message: carrier runs milters after DATA, when recipients can no longer be refused
// one by one); progress only resets the driver's timeout; skip (after a body chunk, when
// negotiated) jumps to the end of body. At the end of body, modification actions come before
// the final reply: addheader, insheader, chgheader and quarantine are collected in the
// Outcome; chgfrom, addrcpt, addrcpt_par, delrcpt and replbody are not offered in OPTNEG and,
// when a milter sends them anyway, ignored and named in Outcome::ignored (the driver logs them).
// Anything else (an unknown reply, a modification before the end of body, a malformed or
// oversize packet, the connection closed early) makes the client fail with an error text.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "proto/reply.hpp"

namespace carrier::filter::milter {

inline constexpr std::uint32_t kVersion = 6;
// Largest packet carrier reads (command byte + data): a 64 KiB body replacement or header
// value plus room for the name and index. Bigger lengths are refused.
inline constexpr std::size_t kMaxPacket = 64 * 1024 + 1024;
inline constexpr std::size_t kBodyChunk = 65535;        // SMFIC_BODY data, at most
inline constexpr std::size_t kMaxEdits = 1000;          // header edits per message
inline constexpr std::size_t kMaxHeaderName = 256;      // header field name in an edit
inline constexpr std::size_t kMaxReplyText = 4096;      // SMFIR_REPLYCODE text, all lines
inline constexpr std::size_t kMaxQuarantineReason = 1024;

// Commands (MTA -> milter).
namespace cmd {
inline constexpr char Abort = 'A', Body = 'B', Connect = 'C', Macro = 'D', BodyEob = 'E',
                      Helo = 'H', QuitNc = 'K', Header = 'L', Mail = 'M', Eoh = 'N', OptNeg = 'O',
                      Quit = 'Q', Rcpt = 'R', Data = 'T', Unknown = 'U';
}
// Replies (milter -> MTA).
namespace rep {
inline constexpr char AddRcpt = '+', DelRcpt = '-', AddRcptPar = '2', Shutdown = '4',
                      Accept = 'a', ReplBody = 'b', Continue = 'c', Discard = 'd', ChgFrom = 'e',
                      ConnFail = 'f', AddHeader = 'h', InsHeader = 'i', SetSymList = 'l',
                      ChgHeader = 'm', Progress = 'p', Quarantine = 'q', Reject = 'r',
                      Skip = 's', TempFail = 't', ReplyCode = 'y';
}
// SMFIF_*: modification actions.
namespace act {
inline constexpr std::uint32_t AddHdrs = 0x01, ChgBody = 0x02, AddRcpt = 0x04, DelRcpt = 0x08,
                               ChgHdrs = 0x10, Quarantine = 0x20, ChgFrom = 0x40,
                               AddRcptPar = 0x80, SetSymList = 0x100;
// What carrier offers: header edits, quarantine, macro lists.
inline constexpr std::uint32_t Offered = AddHdrs | ChgHdrs | Quarantine | SetSymList;
}
// SMFIP_*: protocol steps and flags.
namespace pf {
inline constexpr std::uint32_t NoConnect = 0x1, NoHelo = 0x2, NoMail = 0x4, NoRcpt = 0x8,
                               NoBody = 0x10, NoHdrs = 0x20, NoEoh = 0x40, NrHdr = 0x80,
                               NoUnknown = 0x100, NoData = 0x200, Skip = 0x400, RcptRej = 0x800,
                               NrConn = 0x1000, NrHelo = 0x2000, NrMail = 0x4000,
                               NrRcpt = 0x8000, NrData = 0x10000, NrUnkn = 0x20000,
                               NrEoh = 0x40000, NrBody = 0x80000, HdrLeadSpc = 0x100000,
                               Mds256K = 0x10000000, Mds1M = 0x20000000;
// Everything carrier can do: omit any step, not wait for any reply, skip, leading spaces.
// Not offered: RCPT_REJ (carrier never passes refused recipients) and the MDS_* sizes (carrier
// sends body chunks of at most 64 KiB).
inline constexpr std::uint32_t Offered = NoConnect | NoHelo | NoMail | NoRcpt | NoBody | NoHdrs |
                                         NoEoh | NrHdr | NoUnknown | NoData | Skip | NrConn |
                                         NrHelo | NrMail | NrRcpt | NrData | NrUnkn | NrEoh |
                                         NrBody | HdrLeadSpc;
}

struct Packet {
  char cmd = 0;
  std::string data;
};

// One packet on the wire: length (1 + data), command, data.
std::string encode(char cmd, std::string_view data = {});

// Splits a byte stream into packets. Strict: a length of 0 or above kMaxPacket is an error,
// after which the decoder stays failed. Buffers at most one packet.
class Decoder {
 public:
  // Takes bytes; returns false when the stream is malformed (see error()).
  bool feed(std::string_view bytes);
  // The next complete packet, if one is buffered.
  std::optional<Packet> next();
  bool failed() const { return !error_.empty(); }
  const std::string& error() const { return error_; }

 private:
  std::string buf_;
  std::size_t pos_ = 0;
  std::string error_;
};

// What carrier asks the milter to do with the header section. Indexes as in libmilter:
// InsHeader counts fields from the top (0: before the first; past the end: at the end);
// Change counts occurrences of `name` from 1 (0 counts as 1); an empty value deletes the field;
// changing an occurrence that does not exist adds the field at the end.
struct HeaderEdit {
  enum class Op { Add, Insert, Change } op = Op::Add;
  std::uint32_t index = 0;
  std::string name;
  std::string value;  // as the milter sent it (line breaks as LF or CRLF)
};

enum class Decision { Accept, Reject, TempFail, Discard };

struct Outcome {
  Decision decision = Decision::Accept;
  proto::Reply reply;                     // Reject / TempFail: the reply to give
  std::optional<std::string> quarantine;  // set: hold the message with this reason
  std::vector<HeaderEdit> edits;          // in the order the milter sent them
  std::vector<std::string> ignored;       // modification actions not applied ("chgfrom", ...)
  std::string at;                         // the step that decided: "connect" ... "end-of-body"
  bool header_leadspc = false;            // edits' values keep their leading space
};

using Macros = std::vector<std::pair<std::string, std::string>>;

// The message as the MTA knows it.
struct MessageInfo {
  std::string client_name;      // reverse DNS name, or "[ip]" when unknown
  char family = 'U';            // '4', '6', 'L' (unix), 'U' (unknown)
  std::uint16_t port = 0;
  std::string address;          // textual address
  std::string helo;
  std::string sender;           // "<a@example.org>", "<>" for the null sender
  std::vector<std::string> mail_args;  // ESMTP parameters "SIZE=1234", "BODY=8BITMIME"
  std::vector<std::string> rcpts;      // "<b@example.net>"
  std::string head;             // the header section, CRLF lines (the empty line may follow)
  // Macro values carrier has, per step; the client sends them all unless the milter listed
  // the ones it wants for that step. {rcpt_addr} is added per recipient by the client.
  Macros connect_macros, helo_macros, mail_macros, rcpt_macros, data_macros, eoh_macros,
      eom_macros;
};

// A header field for the milter: name, and value without the line break that ends it
// (folded lines joined by LF, as Sendmail and Postfix pass them); the leading white space of
// the value is dropped unless `leadspc`.
std::vector<std::pair<std::string, std::string>> split_header(std::string_view head, bool leadspc);

// Applies milter edits to a CRLF header section (which may end with the empty line; it is
// kept last). New fields are "Name: value" ("Name:value" with leadspc); line breaks in values
// become CRLF, continuation lines start with white space (a tab is added when they do not),
// empty lines and bare CRs are dropped so an edit can never end the header section.
void apply_header_edits(std::string& head, const std::vector<HeaderEdit>& edits, bool leadspc);

// Parses SMFIR_REPLYCODE data ("550 5.7.1 text\0", or several lines "550-...\r\n550 ...").
// nullopt when malformed: not 4xx/5xx, lines with different codes, no NUL at the end, ...
std::optional<proto::Reply> parse_replycode(std::string_view data);

class Client {
 public:
  enum class Want {
    Read,  // waiting for the milter's reply (write out() first)
    Body,  // call body() with the next chunk (at most kBodyChunk bytes) or body_end()
    Done,  // finished: write out() (QUIT) and close; see failed() / outcome()
  };

  explicit Client(MessageInfo info);

  std::string& out() { return out_; }  // bytes to write to the milter; the driver clears it
  Want want() const { return want_; }
  void on_input(std::string_view bytes);
  void body(std::string_view chunk);
  void body_end();
  // The milter closed the connection (or the driver gave up): an error unless Done.
  void on_closed(std::string why);

  bool failed() const { return !error_.empty(); }
  const std::string& error() const { return error_; }
  const Outcome& outcome() const { return outcome_; }
  // After OPTNEG: what the milter asked for.
  std::uint32_t milter_version() const { return version_; }
  std::uint32_t milter_actions() const { return actions_; }
  std::uint32_t milter_protocol() const { return protocol_; }

 private:
  enum class Step { OptNeg, Connect, Helo, Mail, Rcpt, Data, Header, Eoh, Body, Eob, Done };
  void fail(std::string why);
  void finish(Decision d, proto::Reply r);
  void advance();  // sends the next steps until one needs a reply or the body
  void send_macros(int stage, char command, Macros m);
  void drain();  // handles buffered packets while a reply is due
  void on_packet(const Packet& p);
  void on_optneg(const Packet& p);
  void on_eob_packet(const Packet& p);
  bool no(std::uint32_t f) const { return (protocol_ & f) != 0; }

  MessageInfo info_;
  std::string out_;
  Decoder dec_;
  Want want_ = Want::Read;
  Step step_ = Step::OptNeg;
  std::size_t rcpt_i_ = 0;
  std::vector<std::pair<std::string, std::string>> headers_;
  std::size_t header_i_ = 0;
  std::uint32_t version_ = 0, actions_ = 0, protocol_ = 0;
  // SMFIM_* stages 0..6 (connect, helo, envfrom, envrcpt, data, eom, eoh): the macro names
  // the milter asked for, or nullopt: send all carrier has.
  std::array<std::optional<std::vector<std::string>>, 7> wanted_;
  std::string error_;
  Outcome outcome_;
};

}  // namespace carrier::filter::milter
