// carrier sendmail: message input conversion and header processing (see message.hpp):
// RFC 5322 2.2/2.3 (header section, CRLF), 3.6.2/3.6.3/3.6.6 (originator, destination and
// resent fields), RFC 5321 4.5.2 (dot rules for -bs), RFC 2047 (encoded display names).
// Pure; UNTRUSTED input; bounded.
#include "sendmail/message.hpp"

#include <algorithm>

#include "sendmail/address_list.hpp"

namespace carrier::sendmail {

// ---- LineConverter ----

void LineConverter::put(char c, std::string& out) {
  if (c == '\n' && last_ != '\r') out.push_back('\r');
  out.push_back(c);
  last_ = c;
  any_ = true;
}

std::size_t LineConverter::feed(std::string_view in, std::string& out) {
  const bool dots = dot_ends_ || unstuff_;
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (ended_) return i;
    const char c = in[i];
    switch (state_) {
      case kLineStart:
        if (c == '.' && dots) {
          state_ = kDot;
          continue;
        }
        break;
      case kDot:
        if (c == '\n' && dot_ends_) {
          ended_ = true;
          return i + 1;
        }
        if (c == '\r') {
          state_ = kDotCr;
          continue;
        }
        if (!unstuff_) put('.', out);  // RFC 5321 4.5.2: the first "." is removed
        break;
      case kDotCr:
        if (c == '\n' && dot_ends_) {
          ended_ = true;
          return i + 1;
        }
        if (!unstuff_) put('.', out);
        put('\r', out);
        break;
      case kInLine:
        break;
    }
    put(c, out);
    state_ = c == '\n' ? kLineStart : kInLine;
  }
  return in.size();
}

void LineConverter::finish(std::string& out) {
  if (ended_) return;
  if (state_ == kDot || state_ == kDotCr) {
    if (!unstuff_) put('.', out);
    if (state_ == kDotCr) put('\r', out);
  }
  if (any_ && last_ != '\n') {
    if (last_ == '\r') {
      out.push_back('\n');
    } else {
      out += "\r\n";
    }
    last_ = '\n';
  }
  state_ = kLineStart;
}

// ---- helpers ----

namespace {

bool ieq(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

// RFC 5322 2.2 / 3.6.8: field-name = 1*ftext (printable ASCII except ":"), then ":" (obs-
// syntax allows white space before the colon). Returns the name, or "" when not a field line.
std::string_view field_name(std::string_view line) {
  std::size_t i = 0;
  while (i < line.size()) {
    auto c = static_cast<unsigned char>(line[i]);
    if (c == ':' || c <= 32 || c >= 127) break;
    ++i;
  }
  if (i == 0) return {};
  std::size_t j = i;
  while (j < line.size() && (line[j] == ' ' || line[j] == '\t')) ++j;
  if (j >= line.size() || line[j] != ':') return {};
  return line.substr(0, i);
}

bool is_continuation(std::string_view line) {
  return !line.empty() && (line[0] == ' ' || line[0] == '\t');
}

const char* kB64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::string base64(std::string_view s) {
  std::string out;
  std::size_t i = 0;
  for (; i + 2 < s.size(); i += 3) {
    unsigned v = static_cast<unsigned char>(s[i]) << 16 | static_cast<unsigned char>(s[i + 1]) << 8 |
                 static_cast<unsigned char>(s[i + 2]);
    out += kB64[v >> 18 & 63];
    out += kB64[v >> 12 & 63];
    out += kB64[v >> 6 & 63];
    out += kB64[v & 63];
  }
  if (i < s.size()) {
    unsigned v = static_cast<unsigned char>(s[i]) << 16;
    if (i + 1 < s.size()) v |= static_cast<unsigned char>(s[i + 1]) << 8;
    out += kB64[v >> 18 & 63];
    out += kB64[v >> 12 & 63];
    out += i + 1 < s.size() ? kB64[v >> 6 & 63] : '=';
    out += '=';
  }
  return out;
}

}  // namespace

std::string from_field(std::string_view address, std::string_view full_name) {
  std::string name;
  for (char c : full_name) {  // control characters never reach the header
    auto u = static_cast<unsigned char>(c);
    name.push_back(u < 0x20 || u == 0x7F ? ' ' : c);
  }
  while (!name.empty() && name.back() == ' ') name.pop_back();
  while (!name.empty() && name.front() == ' ') name.erase(0, 1);
  if (name.empty()) return "From: " + std::string(address) + "\r\n";
  const bool eight_bit = std::any_of(name.begin(), name.end(),
                                     [](char c) { return static_cast<unsigned char>(c) >= 0x80; });
  std::string shown;
  if (eight_bit) {
    // RFC 2047 2: encoded-words of at most 75 characters, split on UTF-8 character boundaries
    // (RFC 2047 5: each word must decode on its own); 45 input bytes → 60 base64 characters.
    std::size_t i = 0;
    while (i < name.size()) {
      std::size_t end = std::min(name.size(), i + 45);
      while (end < name.size() && end > i && (static_cast<unsigned char>(name[end]) & 0xC0) == 0x80)
        --end;
      if (end == i) end = std::min(name.size(), i + 45);
      if (!shown.empty()) shown += "\r\n ";
      shown += "=?UTF-8?B?" + base64(std::string_view(name).substr(i, end - i)) + "?=";
      i = end;
    }
  } else {
    bool plain = true;  // RFC 5322 3.2.5 phrase of atoms (and "." as obs-phrase allows)
    for (char c : name) {
      if (c == ' ') continue;
      if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            std::string_view("!#$%&'*+-/=?^_`{|}~.").find(c) != std::string_view::npos))
        plain = false;
    }
    if (plain) {
      shown = name;
    } else {
      shown = "\"";
      for (char c : name) {
        if (c == '"' || c == '\\') shown += '\\';
        shown += c;
      }
      shown += '"';
    }
  }
  return "From: " + shown + " <" + std::string(address) + ">\r\n";
}

// ---- MessageBuilder ----

MessageBuilder::MessageBuilder(BuildOptions opts)
    : opts_(std::move(opts)),
      conv_(opts_.smtp_data || !opts_.ignore_dots, opts_.smtp_data) {}

std::size_t MessageBuilder::feed(std::string_view in, std::string& out) {
  if (failed()) {
    std::string sink;  // after an error the input is read on to its end and dropped
    return conv_.feed(in, sink);
  }
  if (header_done_) return conv_.feed(in, out);
  const std::size_t used = conv_.feed(in, converted_);
  // Split complete lines off the converted text while the header section lasts.
  std::size_t pos = 0;
  while (!header_done_ && !failed()) {
    std::size_t nl = converted_.find("\r\n", pos);
    // A bare CR followed by LF never happens after conversion; lines end in CRLF.
    if (nl == std::string::npos) break;
    header_line(std::string_view(converted_).substr(pos, nl - pos), out);
    pos = nl + 2;
  }
  converted_.erase(0, pos);
  if (failed()) return used;
  if (header_done_) {
    out += converted_;  // body bytes already converted
    converted_.clear();
  } else if (header_bytes_ + converted_.size() > opts_.max_header_bytes) {
    error_ = "header section too long (limit " + std::to_string(opts_.max_header_bytes) + " bytes)";
  }
  return used;
}

void MessageBuilder::header_line(std::string_view line, std::string& out) {
  if (first_line_) {
    first_line_ = false;
    if (line.substr(0, 5) == "From ") return;  // mbox separator, not a header field
  }
  if (line.empty()) {
    end_header(out, true);
    return;
  }
  if (!field_name(line).empty() || (is_continuation(line) && !header_.empty())) {
    header_bytes_ += line.size() + 2;
    if (header_bytes_ > opts_.max_header_bytes) {
      error_ = "header section too long (limit " + std::to_string(opts_.max_header_bytes) + " bytes)";
      return;
    }
    header_.emplace_back(line);
    return;
  }
  // Not a header field: the body starts here, without the empty line (RFC 5322 2.1 wants one).
  end_header(out, false);
  if (!failed()) {
    out.append(line);
    out += "\r\n";
  }
}

void MessageBuilder::end_header(std::string& out, bool /*blank_line_seen*/) {
  header_done_ = true;
  // Fields: index of the first line and the number of lines.
  struct Field {
    std::string_view name;
    std::size_t first, count;
  };
  std::vector<Field> fields;
  for (std::size_t i = 0; i < header_.size(); ++i) {
    if (is_continuation(header_[i]) && !fields.empty()) {
      ++fields.back().count;
      continue;
    }
    fields.push_back({field_name(header_[i]), i, 1});
  }
  auto value_of = [&](const Field& f) {
    std::string v;
    for (std::size_t k = 0; k < f.count; ++k) {
      std::string_view l = header_[f.first + k];
      if (k == 0) l.remove_prefix(l.find(':') + 1);
      v.append(l);  // unfolding: CRLF removed, the white space after it kept (RFC 5322 2.2.3)
    }
    return v;
  };
  auto is = [](std::string_view n, std::initializer_list<std::string_view> names) {
    for (auto x : names)
      if (ieq(n, x)) return true;
    return false;
  };

  if (opts_.extract_recipients) {
    bool resent = false;
    for (const auto& f : fields) resent |= is(f.name, {"Resent-To", "Resent-Cc", "Resent-Bcc"});
    AddressListLimits lim;
    lim.max_addresses = opts_.max_recipients;
    lim.max_length = opts_.max_header_bytes;
    for (const auto& f : fields) {
      const bool take = resent ? is(f.name, {"Resent-To", "Resent-Cc", "Resent-Bcc"})
                               : is(f.name, {"To", "Cc", "Bcc"});
      if (!take) continue;
      std::string why;
      if (!parse_address_list(value_of(f), recipients_, &why, lim)) {
        error_ = "bad address in the " + std::string(f.name) + ": header: " + why;
        return;
      }
      if (recipients_.size() > opts_.max_recipients) {
        error_ = "too many recipients (limit " + std::to_string(opts_.max_recipients) + ")";
        return;
      }
    }
  }

  bool has_from = false, has_date = false, has_id = false;
  for (const auto& f : fields) {
    if (opts_.remove_bcc && is(f.name, {"Bcc", "Resent-Bcc"})) continue;
    has_from |= is(f.name, {"From"});
    has_date |= is(f.name, {"Date"});
    has_id |= is(f.name, {"Message-ID"});
    for (std::size_t k = 0; k < f.count; ++k) {
      out += header_[f.first + k];
      out += "\r\n";
    }
  }
  if (!has_from && !opts_.from_address.empty()) out += from_field(opts_.from_address, opts_.full_name);
  if (!has_date) out += opts_.date_field;
  if (!has_id) out += opts_.message_id_field;
  out += "\r\n";
  header_.clear();
  header_.shrink_to_fit();
}

bool MessageBuilder::finish(std::string& out) {
  if (failed()) return false;
  if (!header_done_) {
    conv_.finish(converted_);
    std::size_t pos = 0;
    while (!header_done_ && !failed()) {
      std::size_t nl = converted_.find("\r\n", pos);
      if (nl == std::string::npos) break;
      header_line(std::string_view(converted_).substr(pos, nl - pos), out);
      pos = nl + 2;
    }
    converted_.erase(0, pos);
    if (failed()) return false;
    if (!header_done_) end_header(out, false);  // only header fields (or nothing) were given
    if (failed()) return false;
    out += converted_;
    converted_.clear();
    return true;
  }
  conv_.finish(out);
  return true;
}

}  // namespace carrier::sendmail
