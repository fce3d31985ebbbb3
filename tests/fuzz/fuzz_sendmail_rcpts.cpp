// Fuzz target: the recipient parsing of `carrier sendmail -t` (src/sendmail): the RFC 5322 3.4
// address-list parser (address_list.hpp) on UNTRUSTED header values, and the MessageBuilder
// (message.hpp) that reads a message from standard input, takes the recipients from To:/Cc:/
// Bcc: (or Resent-*, RFC 5322 3.6.6) and removes Bcc: (RFC 5322 3.6.3).
// Input layout: byte 0 = flags (bit 0: -i, bit 1: the SMTP DATA dot rules), byte 1 = chunk size
// (1..256), then the text. Checks:
//  - parse_address_list: failure leaves the output untouched and says why; success gives at
//    most max_addresses non-empty addresses without CR, LF or NUL, and joining them with ", "
//    parses back to the same list (nothing is invented or merged);
//  - MessageBuilder: feeding in chunks gives exactly what one feed gives (output, recipients,
//    error); the output has CRLF line ends only; a successful build has no Bcc:/Resent-Bcc:
//    field left in its header section, ends the header section with an empty line, and has at
//    most max_recipients recipients, each of which parses alone to itself.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_common.hpp"
#include "sendmail/address_list.hpp"
#include "sendmail/message.hpp"

using namespace carrier::sendmail;

namespace {

constexpr std::size_t kMaxAddresses = 40;
constexpr std::size_t kMaxRecipients = 25;

void check_list(std::string_view in) {
  AddressListLimits lim;
  lim.max_addresses = kMaxAddresses;
  lim.max_length = 4096;
  std::vector<std::string> out{"sentinel"};
  std::string why;
  if (!parse_address_list(in, out, &why, lim)) {
    FUZZ_CHECK(out.size() == 1 && out[0] == "sentinel");
    FUZZ_CHECK(!why.empty());
    return;
  }
  FUZZ_CHECK(out.size() >= 1 && out[0] == "sentinel");
  out.erase(out.begin());
  FUZZ_CHECK(out.size() <= kMaxAddresses);
  std::string joined;
  for (const auto& a : out) {
    FUZZ_CHECK(!a.empty());
    FUZZ_CHECK(a.find_first_of(std::string_view("\r\n\0", 3)) == std::string::npos);
    if (!joined.empty()) joined += ", ";
    joined += a;
  }
  std::vector<std::string> again;
  std::string why2;
  FUZZ_CHECK(parse_address_list(joined, again, &why2, lim));
  FUZZ_CHECK(again == out);
}

struct Built {
  std::string out, error;
  std::vector<std::string> rcpts;
  bool ok = false;
  bool operator==(const Built&) const = default;
};

Built build(std::string_view in, std::uint8_t flags, std::size_t chunk) {
  BuildOptions o;
  o.ignore_dots = flags & 1;
  o.smtp_data = flags & 2;
  o.extract_recipients = true;
  o.from_address = "user@host.test";
  o.date_field = "Date: Mon, 23 Nov 2026 17:50:00 +0000\r\n";
  o.message_id_field = "Message-ID: <fuzz@host.test>\r\n";
  o.max_header_bytes = 2048;
  o.max_recipients = kMaxRecipients;
  MessageBuilder b(o);
  Built r;
  std::size_t pos = 0;
  while (pos < in.size() && !b.ended()) {
    const std::size_t n = std::min(chunk, in.size() - pos);
    const std::size_t used = b.feed(in.substr(pos, n), r.out);
    FUZZ_CHECK(used <= n);
    FUZZ_CHECK(used == n || b.ended());
    pos += used;
    if (used < n) break;
  }
  r.ok = b.finish(r.out);
  FUZZ_CHECK(r.ok == !b.failed());
  r.error = b.error();
  if (r.ok) r.rcpts = b.header_recipients();
  return r;
}

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

void check_built(const Built& b) {
  for (std::size_t i = 0; i < b.out.size(); ++i)
    if (b.out[i] == '\n') FUZZ_CHECK(i > 0 && b.out[i - 1] == '\r');
  if (!b.ok) {
    FUZZ_CHECK(!b.error.empty());
    return;
  }
  FUZZ_CHECK(b.rcpts.size() <= kMaxRecipients);
  for (const auto& a : b.rcpts) {
    std::vector<std::string> one;
    FUZZ_CHECK(parse_address_list(a, one, nullptr));
    FUZZ_CHECK(one.size() == 1 && one[0] == a);
  }
  // The header section: lines up to the first empty one, which must exist.
  std::string_view s = b.out;
  for (;;) {
    const std::size_t e = s.find("\r\n");
    FUZZ_CHECK(e != std::string_view::npos);
    std::string_view line = s.substr(0, e);
    s.remove_prefix(e + 2);
    if (line.empty()) break;
    std::size_t n = 0;
    while (n < line.size() && line[n] != ':' && static_cast<unsigned char>(line[n]) > 32 &&
           static_cast<unsigned char>(line[n]) < 127)
      ++n;
    std::size_t j = n;
    while (j < line.size() && (line[j] == ' ' || line[j] == '\t')) ++j;
    if (n > 0 && j < line.size() && line[j] == ':') {
      const std::string_view name = line.substr(0, n);
      FUZZ_CHECK(!ieq(name, "bcc") && !ieq(name, "resent-bcc"));
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const std::uint8_t flags = data[0];
  const std::size_t chunk = 1 + data[1];
  std::string_view in(reinterpret_cast<const char*>(data) + 2, size - 2);

  check_list(in);
  const Built whole = build(in, flags, in.size() + 1);
  check_built(whole);
  FUZZ_CHECK(build(in, flags, chunk) == whole);
  FUZZ_CHECK(build(in, flags, 1) == whole);
  return 0;
}
