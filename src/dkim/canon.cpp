// carrier DKIM: canonicalization (RFC 6376 3.4) and the streaming body hash.
#include "dkim/canon.hpp"
#include "dkim/ossl.hpp"

#include <openssl/evp.h>

#include <stdexcept>

namespace carrier::dkim {

namespace {
bool is_wsp(char c) { return c == ' ' || c == '\t'; }
char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }
}  // namespace

std::string_view canon_name(Canon c) { return c == Canon::Relaxed ? "relaxed" : "simple"; }

std::string canonicalize_header(std::string_view name, std::string_view value, bool relaxed) {
  std::string out;
  out.reserve(name.size() + value.size() + 3);
  if (!relaxed) {
    out.append(name).append(":").append(value).append("\r\n");
    return out;
  }
  // Name: lowercase, no WSP before the colon.
  while (!name.empty() && is_wsp(name.back())) name.remove_suffix(1);
  for (char c : name) out.push_back(lower(c));
  out.push_back(':');
  // Value: unfold (drop CRLF), WSP runs -> one SP, none at the start or the end.
  bool wsp = false, started = false;
  for (std::size_t i = 0; i < value.size(); ++i) {
    char c = value[i];
    if (c == '\r' && i + 1 < value.size() && value[i + 1] == '\n') {
      ++i;
      continue;
    }
    if (is_wsp(c)) {
      wsp = true;
      continue;
    }
    if (wsp && started) out.push_back(' ');
    wsp = false;
    started = true;
    out.push_back(c);
  }
  out.append("\r\n");
  return out;
}

std::vector<HeaderField> parse_header_fields(std::string_view h) {
  std::vector<HeaderField> fields;
  std::size_t pos = 0;
  auto line_end = [&](std::size_t from, std::size_t& next) {
    std::size_t lf = h.find('\n', from);
    if (lf == std::string_view::npos) {
      next = h.size();
      return h.size();
    }
    next = lf + 1;
    return (lf > from && h[lf - 1] == '\r') ? lf - 1 : lf;
  };
  while (pos < h.size()) {
    std::size_t next;
    std::size_t end = line_end(pos, next);
    if (end == pos) break;  // the empty line: end of the header section
    if (is_wsp(h[pos])) {   // a continuation without a field before it
      pos = next;
      continue;
    }
    // Take the continuation lines.
    while (next < h.size() && is_wsp(h[next])) end = line_end(next, next);
    std::string_view field = h.substr(pos, end - pos);
    std::size_t colon = field.find(':');
    if (colon != std::string_view::npos && colon > 0)
      fields.push_back({field.substr(0, colon), field.substr(colon + 1)});
    pos = next;
  }
  return fields;
}

MessageParts split_message(std::string_view m) {
  if (m.starts_with("\r\n")) return {m.substr(0, 0), m.substr(2)};
  std::size_t p = m.find("\r\n\r\n");
  if (p == std::string_view::npos) return {m, m.substr(m.size())};
  return {m.substr(0, p + 2), m.substr(p + 4)};
}

// ---- body -------------------------------------------------------------------------------

BodyCanonicalizer::BodyCanonicalizer(Canon c, Sink sink) : canon_(c), sink_(std::move(sink)) {
  out_.reserve(16384);
}

void BodyCanonicalizer::emit(char c) {
  out_.push_back(c);
  any_output_ = true;
  if (out_.size() >= 16384) flush();
}

void BodyCanonicalizer::flush() {
  if (!out_.empty()) sink_(out_);
  out_.clear();
}

// A byte of a line that is not WSP (relaxed) or any byte (simple): the empty lines held back
// were not at the end of the body after all.
void BodyCanonicalizer::content(char c) {
  for (; empty_lines_ > 0; --empty_lines_) {
    emit('\r');
    emit('\n');
  }
  if (pending_wsp_) emit(' ');
  pending_wsp_ = false;
  line_has_content_ = true;
  emit(c);
}

void BodyCanonicalizer::end_line() {
  pending_wsp_ = false;  // relaxed: no WSP at the end of a line
  if (line_has_content_) {
    emit('\r');
    emit('\n');
  } else {
    ++empty_lines_;
  }
  line_has_content_ = false;
}

void BodyCanonicalizer::feed(std::string_view chunk) {
  const bool relaxed = canon_ == Canon::Relaxed;
  for (char c : chunk) {
    if (pending_cr_) {
      pending_cr_ = false;
      if (c == '\n') {
        end_line();
        continue;
      }
      content('\r');  // a bare CR is content
    }
    if (c == '\r') {
      pending_cr_ = true;
    } else if (relaxed && is_wsp(c)) {
      pending_wsp_ = true;
    } else {
      content(c);
    }
  }
}

void BodyCanonicalizer::finish() {
  if (finished_) return;
  finished_ = true;
  if (pending_cr_) {
    pending_cr_ = false;
    content('\r');
  }
  // A last line without CRLF gets one (3.4.3, 3.4.4); trailing WSP is dropped by end_line.
  if (line_has_content_) end_line();
  // simple: an empty body is one CRLF; relaxed: an empty body stays empty.
  if (canon_ == Canon::Simple && !any_output_) {
    emit('\r');
    emit('\n');
  }
  flush();
}

std::string canonicalize_body(std::string_view body, Canon c) {
  std::string out;
  BodyCanonicalizer bc(c, [&](std::string_view s) { out.append(s); });
  bc.feed(body);
  bc.finish();
  return out;
}

struct BodyHasher::State {
  detail::MdCtxPtr md{EVP_MD_CTX_new()};
  std::uint64_t length = 0;
  BodyCanonicalizer canon;
  explicit State(Canon c)
      : canon(c, [this](std::string_view s) {
          EVP_DigestUpdate(md.get(), s.data(), s.size());
          length += s.size();
        }) {
    if (!md || EVP_DigestInit_ex(md.get(), EVP_sha256(), nullptr) != 1)
      throw std::runtime_error("dkim: SHA-256 is not available");
  }
};

BodyHasher::BodyHasher(Canon c) : s_(std::make_unique<State>(c)) {}
BodyHasher::BodyHasher(BodyHasher&&) noexcept = default;
BodyHasher& BodyHasher::operator=(BodyHasher&&) noexcept = default;
BodyHasher::~BodyHasher() = default;

void BodyHasher::update(std::string_view chunk) { s_->canon.feed(chunk); }

std::uint64_t BodyHasher::canonical_length() const { return s_->length; }

std::array<unsigned char, 32> BodyHasher::finish() {
  s_->canon.finish();
  std::array<unsigned char, 32> d{};
  unsigned int n = 0;
  EVP_DigestFinal_ex(s_->md.get(), d.data(), &n);
  return d;
}

std::array<unsigned char, 32> body_hash(std::string_view body, Canon c) {
  BodyHasher h(c);
  h.update(body);
  return h.finish();
}

std::string base64(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(bytes.data()),
                          static_cast<int>(bytes.size()));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

}  // namespace carrier::dkim
