// carrier proto: the DATA byte stream — end of data and dot-unstuffing (RFC 5321 4.1.1.4,
// 4.5.2), defended against SMTP smuggling (only <CRLF>.<CRLF> ends the data); the header
// section scan for Received: counting (RFC 5321 6.3 loop detection, RFC 5322 2.2 header
// section); dot-stuffing for sending (RFC 5321 4.5.2). Handles UNTRUSTED input on the hot
// path: chunks are scanned with memchr and copied in runs, never byte by byte through calls.
#include "proto/data.hpp"

#include <cstring>

namespace carrier::proto {

namespace {

// DotDecoder states (state_ holds one of these). "Line start" is only ever after a real CRLF
// (or at the very beginning of the data): a bare LF or bare CR never starts a line here.
enum State : int {
  kMid = 0,        // inside a line
  kLineStart = 1,  // right after CRLF (or at the start of the data)
  kCr = 2,         // last byte was a CR (already copied to the output), inside a line
  kDot = 3,        // line start, then "." (held back: unstuffing may drop it)
  kDotCr = 4,      // line start, ".", CR (both held back: this may be the terminator)
  kDone = 5,       // <CRLF>.<CRLF> seen
};

}  // namespace

void DotDecoder::reset() {
  state_ = kLineStart;
  bare_newline_ = false;
  done_ = false;
}

DotDecoder::Step DotDecoder::feed(std::string_view in, std::string& out) {
  if (done_ || state_ == kDone) return {0, true};
  const char* p = in.data();
  const std::size_t n = in.size();
  std::size_t i = 0;    // next input byte to examine
  std::size_t run = 0;  // start of the pending verbatim run [run, i) not yet appended
  int st = state_;
  bool bare = false;
  const bool normalize = policy_ == BareNewline::Normalize;

  auto flush = [&](std::size_t end) {
    if (end > run) out.append(p + run, end - run);
    run = end;
  };
  // A bare LF at index k: flagged; under Normalize it becomes CRLF. The line does NOT start
  // afterwards (a following "." is neither unstuffed nor a terminator).
  auto bare_lf = [&](std::size_t k) {
    bare = true;
    if (normalize) {
      flush(k);
      out += '\r';  // the LF itself stays in the run
    }
  };

  while (i < n) {
    switch (st) {
      case kMid: {
        // One pass per line: find the LF, then look for CRs before it.
        const char* lfp = static_cast<const char*>(std::memchr(p + i, '\n', n - i));
        const std::size_t end = lfp ? static_cast<std::size_t>(lfp - p) : n;
        std::size_t j = i;
        while (j < end) {
          const char* crp = static_cast<const char*>(std::memchr(p + j, '\r', end - j));
          if (!crp) break;
          std::size_t c = static_cast<std::size_t>(crp - p);
          if (c + 1 == end) break;  // CR right before the LF, or the last byte of the input
          bare = true;              // CR followed by something other than LF: kept as is
          j = c + 1;
        }
        if (lfp) {
          if (end > i && p[end - 1] == '\r') {
            st = kLineStart;  // CRLF: copied verbatim
          } else {
            bare_lf(end);
          }
          i = end + 1;
        } else {
          if (p[n - 1] == '\r') st = kCr;  // n > i here; the CR is in the run
          i = n;
        }
        break;
      }
      case kLineStart: {
        char c = p[i];
        if (c == '.') {
          flush(i);
          run = i + 1;  // hold the dot back
          st = kDot;
          ++i;
        } else if (c == '\r') {
          st = kCr;
          ++i;
        } else if (c == '\n') {
          bare_lf(i);
          st = kMid;
          ++i;
        } else {
          st = kMid;
        }
        break;
      }
      case kCr: {
        if (p[i] == '\n') {
          st = kLineStart;
          ++i;
        } else {
          bare = true;  // the CR before was bare; this byte is examined inside the line
          st = kMid;
        }
        break;
      }
      case kDot: {
        char c = p[i];
        if (c == '\r') {
          flush(i);
          run = i + 1;  // hold the CR back too
          st = kDotCr;
          ++i;
        } else if (c == '\n') {
          // "." + bare LF: the dot is removed (RFC 5321 4.5.2), the LF is a bare LF.
          bare_lf(i);
          st = kMid;
          ++i;
        } else {
          // ".." -> "." and ".x" -> "x": the first dot is dropped, this byte is kept.
          st = kMid;
          if (c == '.') ++i;
        }
        break;
      }
      case kDotCr: {
        if (p[i] == '\n') {
          // <CRLF>.<CRLF>: the end of the data. Nothing after it is consumed.
          // Nothing is pending: the "." and the CR were held back, and run == i.
          state_ = kDone;
          done_ = true;
          if (bare) bare_newline_ = true;
          return {i + 1, true};
        }
        // The held CR was bare: emit it (the held dot stays dropped) and go on in the line.
        flush(i);
        out += '\r';
        bare = true;
        st = kMid;
        break;
      }
      default:
        return {0, true};
    }
  }
  flush(n);
  state_ = st;
  if (bare) bare_newline_ = true;
  return {n, false};
}

// --- HeaderScanner ---------------------------------------------------------------------

namespace {

constexpr std::size_t kKeep = 16;  // bytes of a line kept (see data.hpp)

bool is_received_field(std::string_view start) {
  // "Received" (case-insensitive), optional WSP, then ':' (RFC 5322 3.6.7, 2.2; obs-optional
  // WSP before the colon is tolerated as in RFC 5322 4.5.3).
  static constexpr std::string_view kName = "received";
  if (start.size() < kName.size() + 1) return false;
  for (std::size_t i = 0; i < kName.size(); ++i) {
    char c = start[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c | 0x20);
    if (c != kName[i]) return false;
  }
  for (std::size_t i = kName.size(); i < start.size(); ++i) {
    if (start[i] == ':') return true;
    if (start[i] != ' ' && start[i] != '\t') return false;
  }
  return false;
}

}  // namespace

void HeaderScanner::feed(std::string_view content) {
  std::size_t i = 0;
  const std::size_t n = content.size();
  while (i < n && !in_body_) {
    unsigned char c = static_cast<unsigned char>(content[i]);
    if (c >= 0x80) eight_bit_ = true;
    if (c == '\n') {
      // End of a header line. An empty line ("\r\n", or a lone "\n") ends the header section.
      // line_start_ holds the whole line when it is shorter than kKeep.
      if (line_start_.empty() || line_start_ == "\r") {
        in_body_ = true;
      } else if (line_start_.front() != ' ' && line_start_.front() != '\t' &&
                 is_received_field(line_start_)) {
        ++received_;  // continuation lines (leading WSP) never count
      }
      line_start_.clear();
      at_line_start_ = true;
      prev_cr_ = false;
      ++i;
      continue;
    }
    at_line_start_ = false;
    prev_cr_ = c == '\r';
    if (line_start_.size() < kKeep) {
      line_start_ += static_cast<char>(c);
      ++i;
      continue;
    }
    // Beyond the kept prefix: skip to the next LF, only checking for 8-bit bytes.
    const char* lfp = static_cast<const char*>(std::memchr(content.data() + i, '\n', n - i));
    std::size_t end = lfp ? static_cast<std::size_t>(lfp - content.data()) : n;
    for (std::size_t k = i; k < end && !eight_bit_; ++k)
      if (static_cast<unsigned char>(content[k]) >= 0x80) eight_bit_ = true;
    if (end > i) prev_cr_ = content[end - 1] == '\r';
    i = end;
  }
}

// --- dot_stuff -------------------------------------------------------------------------

void dot_stuff(std::string_view content, std::string& out, bool& at_line_start) {
  // A "." that starts a line gets a second one in front. A line starts after LF — and, to be
  // safe towards receivers that treat a bare CR or bare LF as a line end (the smuggling
  // problem), after any CR or LF: in CRLF text the byte after CR is LF, so only bare CRs add
  // extra stuffing.
  const char* p = content.data();
  const std::size_t n = content.size();
  if (n == 0) return;
  std::size_t run = 0;
  std::size_t i = 0;
  while (i < n) {
    const char* dp = static_cast<const char*>(std::memchr(p + i, '.', n - i));
    if (!dp) break;
    std::size_t d = static_cast<std::size_t>(dp - p);
    bool line_start = d == 0 ? at_line_start : (p[d - 1] == '\n' || p[d - 1] == '\r');
    if (line_start) {
      out.append(p + run, d - run);
      out += '.';
      run = d;  // the original dot follows in the next run
    }
    i = d + 1;
  }
  out.append(p + run, n - run);
  at_line_start = p[n - 1] == '\n' || p[n - 1] == '\r';
}

}  // namespace carrier::proto
