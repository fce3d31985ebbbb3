// carrier filter: the milter protocol client (see milter_proto.hpp).
#include "filter/milter_proto.hpp"

#include "base/ascii.hpp"

#include <algorithm>

namespace carrier::filter::milter {

namespace {

void put32(std::string& s, std::uint32_t v) {
  s += static_cast<char>((v >> 24) & 0xff);
  s += static_cast<char>((v >> 16) & 0xff);
  s += static_cast<char>((v >> 8) & 0xff);
  s += static_cast<char>(v & 0xff);
}

std::uint32_t get32(std::string_view s, std::size_t at) {
  auto b = [&](std::size_t i) { return static_cast<std::uint32_t>(static_cast<unsigned char>(s[at + i])); };
  return (b(0) << 24) | (b(1) << 16) | (b(2) << 8) | b(3);
}

// Splits "a\0b\0" into exactly `n` NUL-terminated strings; nullopt when the count differs or
// bytes follow the last NUL.
std::optional<std::vector<std::string>> strings(std::string_view d, std::size_t n) {
  std::vector<std::string> out;
  while (!d.empty()) {
    auto z = d.find('\0');
    if (z == std::string_view::npos) return std::nullopt;
    out.emplace_back(d.substr(0, z));
    d.remove_prefix(z + 1);
  }
  if (out.size() != n) return std::nullopt;
  return out;
}

bool valid_name(std::string_view n) {
  if (n.empty() || n.size() > kMaxHeaderName) return false;
  for (char c : n) {
    auto u = static_cast<unsigned char>(c);
    if (u < 33 || u > 126 || c == ':') return false;
  }
  return true;
}


bool is_wsp(char c) { return c == ' ' || c == '\t'; }

// The header section as fields (each with its CRLF lines) and what follows them.
struct Fields {
  std::vector<std::string> fields;
  std::string rest;  // "\r\n" (the empty line) or ""
};

Fields fields_of(std::string_view head) {
  Fields f;
  std::size_t i = 0;
  while (i < head.size()) {
    auto e = head.find("\r\n", i);
    std::size_t next = e == std::string_view::npos ? head.size() : e + 2;
    std::string_view line = head.substr(i, next - i);
    if (line == "\r\n") {
      f.rest = std::string(head.substr(i));
      break;
    }
    if (is_wsp(line.front()) && !f.fields.empty()) f.fields.back() += line;
    else f.fields.emplace_back(line);
    i = next;
  }
  return f;
}

std::string_view field_name(std::string_view field) {
  auto c = field.find(':');
  if (c == std::string_view::npos) return {};
  auto n = field.substr(0, c);
  while (!n.empty() && is_wsp(n.back())) n.remove_suffix(1);
  return n;
}

std::string render_field(const std::string& name, std::string_view value, bool leadspc) {
  std::string out = name + (leadspc ? ":" : ": ");
  bool first = true;
  std::size_t i = 0;
  while (i <= value.size()) {
    auto e = value.find('\n', i);
    std::string_view line = value.substr(i, e == std::string_view::npos ? std::string_view::npos : e - i);
    std::string l;
    for (char c : line)
      if (c != '\r') l += c;
    if (first) {
      out += l;
      first = false;
    } else if (l.find_first_not_of(" \t") != std::string::npos) {
      out += "\r\n";
      if (!is_wsp(l.front())) out += '\t';
      out += l;
    }
    if (e == std::string_view::npos) break;
    i = e + 1;
  }
  out += "\r\n";
  return out;
}

}  // namespace

std::string encode(char c, std::string_view data) {
  std::string s;
  s.reserve(5 + data.size());
  put32(s, static_cast<std::uint32_t>(data.size() + 1));
  s += c;
  s.append(data);
  return s;
}

bool Decoder::feed(std::string_view bytes) {
  if (failed()) return false;
  if (pos_ > 0 && pos_ == buf_.size()) {
    buf_.clear();
    pos_ = 0;
  }
  buf_.append(bytes);
  // Check the length of the packet at the front now, so an oversize packet is refused before
  // it is buffered.
  while (buf_.size() - pos_ >= 4) {
    const std::uint32_t len = get32(buf_, pos_);
    if (len == 0) {
      error_ = "milter sent a packet of length 0";
      return false;
    }
    if (len > kMaxPacket) {
      error_ = "milter sent a packet of " + std::to_string(len) + " bytes (at most " +
               std::to_string(kMaxPacket) + ")";
      return false;
    }
    break;
  }
  return true;
}

std::optional<Packet> Decoder::next() {
  if (failed() || buf_.size() - pos_ < 4) return std::nullopt;
  const std::uint32_t len = get32(buf_, pos_);
  if (len == 0 || len > kMaxPacket) {
    error_ = len == 0 ? "milter sent a packet of length 0"
                      : "milter sent a packet of " + std::to_string(len) + " bytes (at most " +
                            std::to_string(kMaxPacket) + ")";
    return std::nullopt;
  }
  if (buf_.size() - pos_ - 4 < len) return std::nullopt;
  Packet p;
  p.cmd = buf_[pos_ + 4];
  p.data.assign(buf_, pos_ + 5, len - 1);
  pos_ += 4 + len;
  if (pos_ == buf_.size()) {
    buf_.clear();
    pos_ = 0;
  } else if (pos_ > kMaxPacket) {
    buf_.erase(0, pos_);
    pos_ = 0;
  }
  // The next packet's length, if it is there already.
  if (buf_.size() - pos_ >= 4) {
    const std::uint32_t n = get32(buf_, pos_);
    if (n == 0 || n > kMaxPacket)
      error_ = n == 0 ? "milter sent a packet of length 0"
                      : "milter sent a packet of " + std::to_string(n) + " bytes (at most " +
                            std::to_string(kMaxPacket) + ")";
  }
  return p;
}

std::vector<std::pair<std::string, std::string>> split_header(std::string_view head, bool leadspc) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& f : fields_of(head).fields) {
    auto c = f.find(':');
    if (c == std::string::npos) continue;  // not a field (cannot come from carrier's spool)
    std::string name(field_name(f));
    if (name.empty()) continue;
    std::string_view v(f);
    v.remove_prefix(c + 1);
    if (v.size() >= 2 && v.substr(v.size() - 2) == "\r\n") v.remove_suffix(2);
    if (!leadspc)
      while (!v.empty() && is_wsp(v.front())) v.remove_prefix(1);
    std::string value;
    value.reserve(v.size());
    for (char ch : v) {
      if (ch == '\n')
        while (!value.empty() && value.back() == '\r') value.pop_back();  // CRLF -> LF
      value += ch;
    }
    out.emplace_back(std::move(name), std::move(value));
  }
  return out;
}

void apply_header_edits(std::string& head, const std::vector<HeaderEdit>& edits, bool leadspc) {
  Fields f = fields_of(head);
  for (const auto& e : edits) {
    switch (e.op) {
      case HeaderEdit::Op::Add:
        f.fields.push_back(render_field(e.name, e.value, leadspc));
        break;
      case HeaderEdit::Op::Insert: {
        const std::size_t at = std::min<std::size_t>(e.index, f.fields.size());
        f.fields.insert(f.fields.begin() + static_cast<std::ptrdiff_t>(at),
                        render_field(e.name, e.value, leadspc));
        break;
      }
      case HeaderEdit::Op::Change: {
        std::uint32_t want = std::max<std::uint32_t>(e.index, 1);
        bool done = false;
        for (std::size_t i = 0; i < f.fields.size(); ++i) {
          if (!ascii_iequals(field_name(f.fields[i]), e.name)) continue;
          if (--want > 0) continue;
          if (e.value.empty()) f.fields.erase(f.fields.begin() + static_cast<std::ptrdiff_t>(i));
          else f.fields[i] = render_field(e.name, e.value, leadspc);
          done = true;
          break;
        }
        if (!done && !e.value.empty()) f.fields.push_back(render_field(e.name, e.value, leadspc));
        break;
      }
    }
  }
  std::string out;
  for (const auto& x : f.fields) out += x;
  out += f.rest;
  head = std::move(out);
}

std::optional<proto::Reply> parse_replycode(std::string_view d) {
  if (d.empty() || d.back() != '\0') return std::nullopt;
  d.remove_suffix(1);
  if (d.find('\0') != std::string_view::npos || d.size() > kMaxReplyText) return std::nullopt;
  proto::Reply r;
  std::size_t i = 0;
  std::string code;
  while (true) {
    auto e = d.find("\r\n", i);
    std::string_view line = d.substr(i, e == std::string_view::npos ? std::string_view::npos : e - i);
    if (line.size() < 3) return std::nullopt;
    for (int k = 0; k < 3; ++k)
      if (line[k] < '0' || line[k] > '9') return std::nullopt;
    if (code.empty()) code = std::string(line.substr(0, 3));
    else if (line.substr(0, 3) != code) return std::nullopt;
    const bool last = e == std::string_view::npos;
    std::string_view text;
    if (line.size() > 3) {
      if (line[3] != (last ? ' ' : '-')) return std::nullopt;
      text = line.substr(4);
    } else if (!last) {
      return std::nullopt;
    }
    // An enhanced status code (RFC 3463) of the reply's class at the start of the text.
    std::string_view status;
    {
      std::size_t j = 0, parts = 0, digits = 0;
      bool ok = !text.empty() && text[0] == code[0];
      for (; ok && j < text.size() && text[j] != ' '; ++j) {
        if (text[j] == '.') {
          if (digits == 0) ok = false;
          ++parts;
          digits = 0;
        } else if (text[j] >= '0' && text[j] <= '9' && digits < 3) {
          ++digits;
        } else {
          ok = false;
        }
      }
      if (ok && parts == 2 && digits > 0) {
        status = text.substr(0, j);
        text.remove_prefix(std::min(text.size(), j + 1));
      }
    }
    if (r.lines.empty()) r.status = std::string(status);
    std::string t;
    for (char c : text) {
      auto u = static_cast<unsigned char>(c);
      t += (u == '\t' || (u >= 0x20 && u < 0x7f)) ? c : '?';
    }
    r.lines.push_back(std::move(t));
    if (last) break;
    i = e + 2;
  }
  r.code = (code[0] - '0') * 100 + (code[1] - '0') * 10 + (code[2] - '0');
  if (r.code < 400 || r.code > 599) return std::nullopt;
  return r;
}

// ---- Client -----------------------------------------------------------------------------

Client::Client(MessageInfo info) : info_(std::move(info)) {
  std::string d;
  put32(d, kVersion);
  put32(d, act::Offered);
  put32(d, pf::Offered);
  out_ = encode(cmd::OptNeg, d);
}

void Client::fail(std::string why) {
  if (step_ == Step::Done) return;
  error_ = std::move(why);
  step_ = Step::Done;
  want_ = Want::Done;
  out_ += encode(cmd::Quit);
}

void Client::finish(Decision d, proto::Reply r) {
  outcome_.decision = d;
  outcome_.reply = std::move(r);
  outcome_.at = [this] {
    switch (step_) {
      case Step::OptNeg: return "optneg";
      case Step::Connect: return "connect";
      case Step::Helo: return "helo";
      case Step::Mail: return "mail";
      case Step::Rcpt: return "rcpt";
      case Step::Data: return "data";
      case Step::Header: return "header";
      case Step::Eoh: return "end-of-header";
      case Step::Body: return "body";
      case Step::Eob: return "end-of-body";
      case Step::Done: return "done";
    }
    return "?";
  }();
  if (d != Decision::Accept || step_ != Step::Eob) {
    outcome_.edits.clear();
    outcome_.quarantine.reset();
  }
  step_ = Step::Done;
  want_ = Want::Done;
  out_ += encode(cmd::Quit);
}

void Client::on_closed(std::string why) {
  if (step_ == Step::Done) return;
  error_ = std::move(why);
  step_ = Step::Done;
  want_ = Want::Done;
}

void Client::send_macros(int stage, char command, Macros m) {
  const auto& w = wanted_[static_cast<std::size_t>(stage)];
  std::string d(1, command);
  bool any = false;
  for (const auto& [name, value] : m) {
    if (w) {
      // Listed names may be "{name}" or "name"; single letters are listed bare.
      auto bare = [](std::string_view s) {
        if (s.size() >= 2 && s.front() == '{' && s.back() == '}') return s.substr(1, s.size() - 2);
        return s;
      };
      bool listed = false;
      for (const auto& n : *w) listed = listed || bare(n) == bare(name);
      if (!listed) continue;
    }
    if (name.find('\0') != std::string::npos || value.find('\0') != std::string::npos) continue;
    d += name;
    d += '\0';
    d += value;
    d += '\0';
    any = true;
  }
  if (any) out_ += encode(cmd::Macro, d);
}

void Client::advance() {
  // Sends steps in order; returns when one needs a reply (Read) or the body (Body).
  auto z = [](const std::string& s) {
    std::string r = s;
    r += '\0';
    return r;
  };
  while (true) {
    switch (step_) {
      case Step::OptNeg:
        step_ = Step::Connect;
        if (no(pf::NoConnect)) break;
        {
          send_macros(0, cmd::Connect, info_.connect_macros);
          std::string d = z(info_.client_name);
          d += info_.family;
          if (info_.family != 'U') {
            d += static_cast<char>((info_.port >> 8) & 0xff);
            d += static_cast<char>(info_.port & 0xff);
            d += z(info_.address);
          }
          out_ += encode(cmd::Connect, d);
        }
        if (!no(pf::NrConn)) return;
        break;
      case Step::Connect:
        step_ = Step::Helo;
        if (no(pf::NoHelo)) break;
        send_macros(1, cmd::Helo, info_.helo_macros);
        out_ += encode(cmd::Helo, z(info_.helo));
        if (!no(pf::NrHelo)) return;
        break;
      case Step::Helo:
        step_ = Step::Mail;
        if (no(pf::NoMail)) break;
        {
          send_macros(2, cmd::Mail, info_.mail_macros);
          std::string d = z(info_.sender);
          for (const auto& a : info_.mail_args) d += z(a);
          out_ += encode(cmd::Mail, d);
        }
        if (!no(pf::NrMail)) return;
        break;
      case Step::Mail:
        step_ = Step::Rcpt;
        rcpt_i_ = 0;
        [[fallthrough]];
      case Step::Rcpt:
        if (no(pf::NoRcpt) || rcpt_i_ >= info_.rcpts.size()) {
          step_ = Step::Data;
          if (no(pf::NoData) || version_ < 4) {
            step_ = Step::Header;
            header_i_ = 0;
            continue;
          }
          send_macros(4, cmd::Data, info_.data_macros);
          out_ += encode(cmd::Data);
          if (!no(pf::NrData)) return;
          step_ = Step::Header;
          header_i_ = 0;
          continue;
        }
        {
          Macros m = info_.rcpt_macros;
          std::string addr = info_.rcpts[rcpt_i_];
          if (addr.size() >= 2 && addr.front() == '<' && addr.back() == '>') addr = addr.substr(1, addr.size() - 2);
          m.emplace_back("{rcpt_addr}", addr);
          send_macros(3, cmd::Rcpt, std::move(m));
          out_ += encode(cmd::Rcpt, z(info_.rcpts[rcpt_i_]));
          ++rcpt_i_;
        }
        if (!no(pf::NrRcpt)) return;
        break;
      case Step::Data:
        step_ = Step::Header;
        header_i_ = 0;
        [[fallthrough]];
      case Step::Header:
        if (no(pf::NoHdrs) || header_i_ >= headers_.size()) {
          step_ = Step::Eoh;
          if (no(pf::NoEoh)) {
            step_ = Step::Body;
            continue;
          }
          send_macros(6, cmd::Eoh, info_.eoh_macros);
          out_ += encode(cmd::Eoh);
          if (!no(pf::NrEoh)) return;
          step_ = Step::Body;
          continue;
        }
        {
          const auto& [n, v] = headers_[header_i_++];
          out_ += encode(cmd::Header, z(n) + z(v));
        }
        if (!no(pf::NrHdr)) return;
        break;
      case Step::Eoh:
        step_ = Step::Body;
        [[fallthrough]];
      case Step::Body:
        if (no(pf::NoBody)) {
          body_end();
          return;
        }
        want_ = Want::Body;
        return;
      case Step::Eob:
      case Step::Done:
        return;
    }
  }
}

void Client::body(std::string_view chunk) {
  if (step_ != Step::Body || want_ != Want::Body) return;
  while (!chunk.empty()) {
    auto n = std::min(chunk.size(), kBodyChunk);
    out_ += encode(cmd::Body, chunk.substr(0, n));
    chunk.remove_prefix(n);
    if (!no(pf::NrBody)) {
      want_ = Want::Read;
      // A caller that gives more than kBodyChunk at once gets the rest sent after the reply:
      // keep it simple and refuse instead (the driver reads kBodyChunk at a time).
      if (!chunk.empty()) return fail("body chunk larger than " + std::to_string(kBodyChunk) + " bytes");
      return drain();
    }
  }
}

void Client::body_end() {
  if (step_ != Step::Body) return;
  step_ = Step::Eob;
  send_macros(5, cmd::BodyEob, info_.eom_macros);
  out_ += encode(cmd::BodyEob);
  want_ = Want::Read;
  drain();
}

void Client::on_input(std::string_view bytes) {
  if (step_ == Step::Done) return;
  if (!dec_.feed(bytes)) return fail(dec_.error());
  drain();
}

void Client::drain() {
  // Packets are taken only while a reply is due; what arrives while carrier sends the body
  // waits in the decoder and is read as the reply to the next step that has one (as Postfix
  // does), so the outcome never depends on how the bytes were split or timed.
  while (step_ != Step::Done && want_ == Want::Read) {
    auto p = dec_.next();
    if (!p) {
      if (dec_.failed()) fail(dec_.error());
      return;
    }
    on_packet(*p);
  }
}

void Client::on_optneg(const Packet& p) {
  if (p.cmd != cmd::OptNeg) return fail(std::string("milter answered OPTNEG with '") + p.cmd + "'");
  if (p.data.size() < 12) return fail("milter OPTNEG reply too short");
  version_ = get32(p.data, 0);
  actions_ = get32(p.data, 4);
  protocol_ = get32(p.data, 8);
  if (version_ < 2 || version_ > kVersion)
    return fail("milter speaks protocol version " + std::to_string(version_) + " (carrier: 2 to 6)");
  // Flags carrier did not offer: RCPT_REJ and MDS_* change nothing carrier sends; unknown bits
  // are ignored (Postfix does the same).
  protocol_ &= pf::Offered;
  // Macro lists (SMFIF_SETSYMLIST): stage number, then a NUL-terminated list of names
  // separated by spaces.
  std::string_view rest(p.data);
  rest.remove_prefix(12);
  while (!rest.empty()) {
    if (rest.size() < 5) return fail("milter OPTNEG reply: truncated macro list");
    const std::uint32_t stage = get32(rest, 0);
    rest.remove_prefix(4);
    auto zpos = rest.find('\0');
    if (zpos == std::string_view::npos) return fail("milter OPTNEG reply: macro list without NUL");
    if (stage >= wanted_.size())
      return fail("milter OPTNEG reply: macro list for unknown stage " + std::to_string(stage));
    std::vector<std::string> names;
    std::string_view list = rest.substr(0, zpos);
    std::size_t i = 0;
    while (i < list.size()) {
      auto sp = list.find(' ', i);
      auto tok = list.substr(i, sp == std::string_view::npos ? std::string_view::npos : sp - i);
      if (!tok.empty()) names.emplace_back(tok);
      if (sp == std::string_view::npos) break;
      i = sp + 1;
    }
    wanted_[stage] = std::move(names);
    rest.remove_prefix(zpos + 1);
  }
  outcome_.header_leadspc = no(pf::HdrLeadSpc);
  headers_ = split_header(info_.head, outcome_.header_leadspc);
  advance();
}

void Client::on_packet(const Packet& p) {
  if (step_ == Step::OptNeg) return on_optneg(p);
  if (step_ == Step::Eob) return on_eob_packet(p);
  const auto empty_or_fail = [&]() {
    if (!p.data.empty()) {
      fail(std::string("milter reply '") + p.cmd + "' with unexpected data");
      return false;
    }
    return true;
  };
  switch (p.cmd) {
    case rep::Continue:
      if (!empty_or_fail()) return;
      if (step_ == Step::Body) {
        want_ = Want::Body;
        return;
      }
      return advance();
    case rep::Progress:
      empty_or_fail();
      return;
    case rep::Skip:
      if (!empty_or_fail()) return;
      if (step_ != Step::Body || !no(pf::Skip)) return fail("milter sent SKIP outside the body");
      want_ = Want::Body;
      return body_end();
    case rep::Accept:
    case rep::Reject:
    case rep::TempFail:
    case rep::Discard:
    case rep::ReplyCode:
      return on_eob_packet(p);  // the same final replies as at the end
    default:
      return fail(std::string("milter sent '") + p.cmd + "' before the end of the body");
  }
}

void Client::on_eob_packet(const Packet& p) {
  auto need_empty = [&]() {
    if (!p.data.empty()) fail(std::string("milter reply '") + p.cmd + "' with unexpected data");
    return p.data.empty();
  };
  const bool eob = step_ == Step::Eob;
  // Not offered, not applied: named once each for the log.
  auto ignore = [&](const char* what) {
    if (std::find(outcome_.ignored.begin(), outcome_.ignored.end(), what) == outcome_.ignored.end())
      outcome_.ignored.emplace_back(what);
  };
  auto edit = [&](HeaderEdit::Op op, bool indexed) {
    std::string_view d(p.data);
    HeaderEdit e;
    e.op = op;
    if (indexed) {
      if (d.size() < 4) return fail("milter header edit without an index");
      e.index = get32(d, 0);
      d.remove_prefix(4);
    }
    auto s = strings(d, 2);
    if (!s) return fail(std::string("milter header edit '") + p.cmd + "' malformed");
    if (!valid_name((*s)[0])) return fail("milter header edit with an invalid field name");
    if (outcome_.edits.size() >= kMaxEdits)
      return fail("milter sent more than " + std::to_string(kMaxEdits) + " header edits");
    e.name = std::move((*s)[0]);
    e.value = std::move((*s)[1]);
    outcome_.edits.push_back(std::move(e));
  };
  switch (p.cmd) {
    case rep::Accept:
    case rep::Continue:
      if (!need_empty()) return;
      if (p.cmd == rep::Continue && !eob) return;  // handled by on_packet
      return finish(Decision::Accept, {});
    case rep::Reject:
      if (!need_empty()) return;
      return finish(Decision::Reject, proto::Reply(550, "5.7.1", "Command rejected"));
    case rep::TempFail:
      if (!need_empty()) return;
      return finish(Decision::TempFail,
                    proto::Reply(451, "4.7.1", "Service unavailable - try again later"));
    case rep::Discard:
      if (!need_empty()) return;
      return finish(Decision::Discard, {});
    case rep::ReplyCode: {
      auto r = parse_replycode(p.data);
      if (!r) return fail("milter sent a malformed reply code");
      const bool temp = r->code < 500;
      return finish(temp ? Decision::TempFail : Decision::Reject, std::move(*r));
    }
    case rep::Progress:
      need_empty();
      return;
    case rep::AddHeader:
      return edit(HeaderEdit::Op::Add, false);
    case rep::InsHeader:
      return edit(HeaderEdit::Op::Insert, true);
    case rep::ChgHeader:
      return edit(HeaderEdit::Op::Change, true);
    case rep::Quarantine: {
      auto s = strings(p.data, 1);
      if (!s || (*s)[0].size() > kMaxQuarantineReason) return fail("milter quarantine reason malformed");
      std::string reason;
      for (char c : (*s)[0]) {
        auto u = static_cast<unsigned char>(c);
        reason += (u >= 0x20 && u < 0x7f) ? c : ' ';
      }
      outcome_.quarantine = std::move(reason);
      return;
    }
    case rep::ChgFrom: return ignore("chgfrom");
    case rep::AddRcpt: return ignore("addrcpt");
    case rep::AddRcptPar: return ignore("addrcpt_par");
    case rep::DelRcpt: return ignore("delrcpt");
    case rep::ReplBody: return ignore("replbody");
    default:
      return fail(std::string("milter sent unknown reply '") + p.cmd + "' at the end of the body");
  }
}

}  // namespace carrier::filter::milter
