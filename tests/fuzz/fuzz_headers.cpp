// Fuzz target: proto::HeaderScanner (src/proto/data.hpp), which reads the header section of
// every UNTRUSTED message to count Received: fields (mail loop detection, RFC 5321 6.3), find
// Date: / Message-ID: (RFC 5322 3.6.1, 3.6.4; added by a submission server, RFC 6409 8) and
// 8-bit header bytes, and to find where the header section ends (RFC 5322 2.2, 3.5).
// Input layout: byte 0 = number k (0..7) of chunk-size bytes, then k chunk sizes (1..256), then
// the content. Checks, against a plain reference model written here from RFC 5322 2.2:
//  - fed in fuzzer-chosen chunks, byte by byte or whole, the scanner gives the same answers;
//  - received_count / has_date / has_message_id / header_has_8bit / in_body / header_end are
//    exactly the reference's (a field name, case-insensitive, then optional WSP and ':'
//    within the first 16 bytes of a line; continuation lines never count; the first empty
//    line, CRLF or a lone LF, ends the header section);
//  - feeding after the end of the header section changes nothing.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_common.hpp"
#include "proto/data.hpp"

using carrier::proto::HeaderScanner;

namespace {

struct Model {
  int received = 0;
  bool date = false, message_id = false, eight_bit = false, in_body = false;
  std::uint64_t header_end = 0;
};

// RFC 5322 2.2 field-name, compared case-insensitively; obs WSP before ':' (4.5.3). The
// scanner keeps only a line's first 16 bytes, so the colon must fall inside them.
bool names_field(std::string_view line, std::string_view name) {
  std::string_view w = line.substr(0, 16);
  if (w.size() < name.size() + 1) return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    char c = w[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != name[i]) return false;
  }
  std::size_t j = name.size();
  while (j < w.size() && (w[j] == ' ' || w[j] == '\t')) ++j;
  return j < w.size() && w[j] == ':';
}

Model reference(std::string_view s) {
  Model m;
  std::size_t pos = 0;
  while (pos < s.size()) {
    const std::size_t lf = s.find('\n', pos);
    const std::size_t end = lf == std::string_view::npos ? s.size() : lf;
    std::string_view line = s.substr(pos, end - pos);
    for (unsigned char c : line)
      if (c >= 0x80) m.eight_bit = true;
    if (lf == std::string_view::npos) break;  // an unfinished line is not judged yet
    if (line.empty() || line == "\r") {
      m.in_body = true;
      m.header_end = pos;
      break;
    }
    if (line[0] != ' ' && line[0] != '\t') {
      if (names_field(line, "received")) ++m.received;
      else if (names_field(line, "message-id")) m.message_id = true;
      else if (names_field(line, "date")) m.date = true;
    }
    pos = lf + 1;
  }
  return m;
}

void same(const HeaderScanner& h, const Model& m) {
  FUZZ_CHECK(h.received_count() == m.received);
  FUZZ_CHECK(h.has_date() == m.date);
  FUZZ_CHECK(h.has_message_id() == m.message_id);
  FUZZ_CHECK(h.header_has_8bit() == m.eight_bit);
  FUZZ_CHECK(h.in_body() == m.in_body);
  if (m.in_body) FUZZ_CHECK(h.header_end() == m.header_end);
}

HeaderScanner scan(std::string_view s, const std::vector<std::size_t>& sizes) {
  HeaderScanner h;
  std::size_t pos = 0, k = 0;
  while (pos < s.size()) {
    std::size_t n = s.size() - pos;
    if (!sizes.empty()) {
      const std::size_t want = sizes[k++ % sizes.size()];
      if (want < n) n = want;
    }
    h.feed(s.substr(pos, n));
    pos += n;
  }
  return h;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  std::size_t k = data[0] & 7;
  if (k > size - 1) k = size - 1;
  std::vector<std::size_t> sizes;
  for (std::size_t i = 0; i < k; ++i) sizes.push_back(1 + data[1 + i]);
  std::string_view in(reinterpret_cast<const char*>(data) + 1 + k, size - 1 - k);

  const Model m = reference(in);
  HeaderScanner whole = scan(in, {});
  same(whole, m);
  same(scan(in, sizes), m);
  same(scan(in, {1}), m);

  // Once in the body, more content (even header-like lines) changes nothing.
  if (whole.in_body()) {
    whole.feed("Received: x\r\nDate: y\r\nMessage-ID: <z>\r\n\xff\r\n");
    same(whole, m);
  }
  HeaderScanner r = whole;
  r.reset();
  FUZZ_CHECK(r.received_count() == 0 && !r.in_body() && !r.header_has_8bit());
  return 0;
}
