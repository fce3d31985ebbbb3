// carrier DKIM (RFC 6376): canonicalization of header fields and of the body (3.4), the
// streaming body hash (SHA-256) and the header-section parser the signer uses. Pure code:
// no I/O. Input line ends are CRLF (as in the spool); a bare CR or LF is ordinary content.
#pragma once
#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace carrier::dkim {

enum class Canon { Simple, Relaxed };

std::string_view canon_name(Canon c);  // "simple" | "relaxed"

// One header field as it appears in the message: `name` is the text before the colon, `value`
// everything after it up to (not including) the CRLF that ends the field; continuation lines
// (CRLF followed by WSP) stay inside `value`.
struct HeaderField {
  std::string_view name;
  std::string_view value;
};

// RFC 6376 3.4.1 / 3.4.2. Returns the canonical field including its final CRLF:
// simple: name ":" value CRLF unchanged; relaxed: lowercase name, unfolded value, runs of WSP
// as one SP, no WSP around the colon or at the end of the value.
std::string canonicalize_header(std::string_view name, std::string_view value, bool relaxed);
inline std::string canonicalize_header(const HeaderField& f, Canon c) {
  return canonicalize_header(f.name, f.value, c == Canon::Relaxed);
}

// Splits a header section (with or without the empty line that ends it) into its fields, in
// order. Lines that are not fields (no colon, or a continuation line at the very start) are
// skipped. The views point into `header_section`.
std::vector<HeaderField> parse_header_fields(std::string_view header_section);

// Splits a whole message at its first empty line: {header section including the CRLF of its last
// field, body after the empty line}. No empty line: everything is header, the body is empty.
struct MessageParts {
  std::string_view header;
  std::string_view body;
};
MessageParts split_message(std::string_view message);

// RFC 6376 3.4.3 / 3.4.4 as a stream: feed() the body in chunks of any size (a CRLF may be
// split between chunks); the canonical bytes go to the sink in pieces. Memory is bounded: only
// a count of pending empty lines and a small output buffer are kept.
class BodyCanonicalizer {
 public:
  using Sink = std::function<void(std::string_view)>;
  BodyCanonicalizer(Canon c, Sink sink);
  void feed(std::string_view chunk);
  void finish();  // flushes; call once at the end of the body

 private:
  void emit(char c);
  void content(char c);
  void end_line();
  void flush();

  Canon canon_;
  Sink sink_;
  std::string out_;
  std::uint64_t empty_lines_ = 0;  // CRLFs held back: trailing empty lines are dropped
  bool pending_cr_ = false;
  bool pending_wsp_ = false;       // relaxed: WSP seen, not yet written (one SP if more follows)
  bool line_has_content_ = false;
  bool any_output_ = false;
  bool finished_ = false;
};

std::string canonicalize_body(std::string_view body, Canon c);

// SHA-256 of the canonical body, fed in chunks (the bh= tag is its base64). Movable.
class BodyHasher {
 public:
  explicit BodyHasher(Canon c = Canon::Relaxed);
  BodyHasher(BodyHasher&&) noexcept;
  BodyHasher& operator=(BodyHasher&&) noexcept;
  ~BodyHasher();
  void update(std::string_view chunk);
  // Ends the body; returns the 32-byte digest. Call once.
  std::array<unsigned char, 32> finish();
  std::uint64_t canonical_length() const;

 private:
  struct State;
  std::unique_ptr<State> s_;
};

// One-shot helpers.
std::array<unsigned char, 32> body_hash(std::string_view body, Canon c);
std::string base64(std::string_view bytes);
inline std::string base64(const std::array<unsigned char, 32>& d) {
  return base64(std::string_view(reinterpret_cast<const char*>(d.data()), d.size()));
}

}  // namespace carrier::dkim
