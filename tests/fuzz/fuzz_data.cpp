// Fuzz target: the DATA stream decoder, header scanner and dot-stuffer (src/proto/data.cpp)
// on untrusted input. Input layout: byte 0 = flags (bit 0: Normalize policy; bits 1..3: number
// of chunk-size bytes k), then k chunk sizes, then the stream. Checks:
//  - feeding in fuzzer-chosen chunks or byte by byte gives exactly what one feed gives;
//  - the data ends at the FIRST <CRLF>.<CRLF> (the DATA command's CRLF counts before byte 0)
//    and nowhere else — no fake terminator (bare CR/LF forms) ever ends it;
//  - Normalize output has no bare LF; clean Reject output survives dot_stuff + decode;
//  - HeaderScanner gives the same answer whole and byte by byte.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_common.hpp"
#include "proto/data.hpp"

using namespace carrier::proto;

namespace {

struct Result {
  std::string out;
  std::size_t consumed = 0;
  bool done = false;
  bool bare = false;
  bool operator==(const Result&) const = default;
};

Result decode(std::string_view in, BareNewline policy, const std::vector<std::size_t>& sizes) {
  DotDecoder dec(policy);
  Result r;
  std::size_t pos = 0, k = 0;
  while (pos < in.size() && !r.done) {
    std::size_t n = in.size() - pos;
    if (!sizes.empty()) {
      std::size_t want = sizes[k++ % sizes.size()];
      if (want < n) n = want;
    }
    auto step = dec.feed(in.substr(pos, n), r.out);
    FUZZ_CHECK(step.consumed <= n);
    FUZZ_CHECK(step.done || step.consumed == n);
    FUZZ_CHECK(step.done == dec.done());
    pos += step.consumed;
    r.done = step.done;
  }
  if (r.done) {  // after done nothing more is taken
    auto again = dec.feed(in.substr(pos), r.out);
    FUZZ_CHECK(again.done && again.consumed == 0);
  }
  r.consumed = pos;
  r.bare = dec.saw_bare_newline();
  return r;
}

void scan_check(std::string_view content) {
  HeaderScanner whole;
  whole.feed(content);
  HeaderScanner bytes;
  for (char c : content) bytes.feed(std::string_view(&c, 1));
  FUZZ_CHECK(whole.received_count() == bytes.received_count());
  FUZZ_CHECK(whole.in_body() == bytes.in_body());
  FUZZ_CHECK(whole.header_has_8bit() == bytes.header_has_8bit());
  FUZZ_CHECK(whole.received_count() >= 0);
  FUZZ_CHECK(static_cast<std::size_t>(whole.received_count()) <= content.size() / 10 + 1);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const BareNewline policy = (data[0] & 1) ? BareNewline::Normalize : BareNewline::Reject;
  std::size_t k = (data[0] >> 1) & 7;
  if (k > size - 1) k = size - 1;
  std::vector<std::size_t> sizes;
  for (std::size_t i = 0; i < k; ++i) sizes.push_back(1 + data[1 + i]);
  std::string_view in(reinterpret_cast<const char*>(data) + 1 + k, size - 1 - k);

  const Result whole = decode(in, policy, {});
  FUZZ_CHECK(decode(in, policy, sizes) == whole);
  FUZZ_CHECK(decode(in, policy, {1}) == whole);

  // The end of data is exactly the first <CRLF>.<CRLF>, counting the DATA command's CRLF.
  std::string framed = "\r\n";
  framed.append(in);
  std::size_t first = framed.find("\r\n.\r\n");
  if (whole.done) {
    FUZZ_CHECK(first != std::string::npos && whole.consumed == first + 3);
  } else {
    FUZZ_CHECK(first == std::string::npos && whole.consumed == in.size());
  }

  std::string_view taken = in.substr(0, whole.consumed);
  bool has_bare = false;
  for (std::size_t i = 0; i < taken.size(); ++i) {
    if (taken[i] == '\r' && (i + 1 >= taken.size() || taken[i + 1] != '\n')) {
      // A CR at the very end of unfinished input may still get its LF.
      if (!(i + 1 == taken.size() && !whole.done)) has_bare = true;
    }
    if (taken[i] == '\n' && (i == 0 || taken[i - 1] != '\r')) has_bare = true;
  }
  FUZZ_CHECK(has_bare == whole.bare);

  if (policy == BareNewline::Normalize) {
    for (std::size_t i = 0; i < whole.out.size(); ++i)
      if (whole.out[i] == '\n') FUZZ_CHECK(i > 0 && whole.out[i - 1] == '\r');
    FUZZ_CHECK(whole.out.size() <= 2 * whole.consumed);
  } else {
    FUZZ_CHECK(whole.out.size() <= whole.consumed);
  }

  // Clean content round-trips through dot_stuff and the decoder (RFC 5321 4.5.2).
  if (whole.done && !whole.bare) {
    FUZZ_CHECK(whole.out.empty() ||
               (whole.out.size() >= 2 && whole.out.compare(whole.out.size() - 2, 2, "\r\n") == 0));
    std::string wire;
    bool ls = true;
    dot_stuff(whole.out, wire, ls);
    wire += ".\r\n";
    Result back = decode(wire, BareNewline::Reject, {});
    FUZZ_CHECK(back.done && back.consumed == wire.size() && back.out == whole.out && !back.bare);
  }

  // dot_stuff never lets a line start with a single '.' followed by CR/LF/end.
  {
    std::string wire;
    bool ls = true;
    dot_stuff(in, wire, ls);
    FUZZ_CHECK(wire.find("\r\n.\r\n") == std::string::npos);
    FUZZ_CHECK(wire.rfind(".\r\n", 0) != 0);
    FUZZ_CHECK(wire.find("\n.\n") == std::string::npos);
    FUZZ_CHECK(wire.find("\r.\r") == std::string::npos);
  }

  scan_check(whole.out);
  scan_check(in);
  return 0;
}
