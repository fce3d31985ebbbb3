// carrier proto: the DATA byte stream — end of data and dot-unstuffing (RFC 5321 4.1.1.4,
// 4.5.2), defended against SMTP smuggling (only <CRLF>.<CRLF> ends the data); the header
// section scan for Received: counting (RFC 5321 6.3 loop detection, RFC 5322 2.2 header
// section); dot-stuffing for sending (RFC 5321 4.5.2). Handles UNTRUSTED input on the hot
// path: chunks are scanned with memchr and copied in runs, never byte by byte through calls.
#include "proto/data.hpp"

#include <algorithm>
#include <bit>
#include <cstdint>
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

// First CR or LF in [p, end), or end. Eight bytes at a time (SWAR "has zero byte" test on
// the word XOR the pattern) on little-endian targets; this is the hot loop of DATA.
inline const char* find_cr_or_lf(const char* p, const char* end) {
  if constexpr (std::endian::native == std::endian::little) {
    constexpr std::uint64_t kOnes = 0x0101010101010101ULL;
    constexpr std::uint64_t kHigh = 0x8080808080808080ULL;
    while (end - p >= 8) {
      std::uint64_t w;
      std::memcpy(&w, p, 8);
      const std::uint64_t a = w ^ (kOnes * '\r');
      const std::uint64_t b = w ^ (kOnes * '\n');
      // The lowest flagged byte is exact (borrows only run towards higher bytes).
      const std::uint64_t z = ((a - kOnes) & ~a & kHigh) | ((b - kOnes) & ~b & kHigh);
      if (z) return p + (std::countr_zero(z) >> 3);
      p += 8;
    }
  }
  while (p < end && *p != '\r' && *p != '\n') ++p;
  return p;
}

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
        // Scan line after line while nothing but CRLF line ends and ordinary line starts
        // occur: those bytes are copied verbatim, as one run.
        const char* q = p + i;
        const char* const e = p + n;
        while (true) {
          q = find_cr_or_lf(q, e);
          if (q == e) {
            i = n;
            break;
          }
          if (*q == '\n') {  // an LF not preceded by CR: bare
            bare_lf(static_cast<std::size_t>(q - p));
            ++q;
            continue;
          }
          if (q + 1 == e) {  // CR as the last byte: its LF may come in the next feed
            st = kCr;
            i = n;
            break;
          }
          if (q[1] != '\n') {  // CR followed by something else: bare, kept as is
            bare = true;
            ++q;
            continue;
          }
          q += 2;  // CRLF: a line starts
          if (q < e && *q != '.' && *q != '\r' && *q != '\n') continue;
          st = kLineStart;
          i = static_cast<std::size_t>(q - p);
          break;
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

// True when the line starts with the field name kName (lower case), case-insensitively,
// then optional WSP and ':' (RFC 5322 2.2; obs-optional WSP before the colon is tolerated as
// in RFC 5322 4.5.3).
bool is_field(std::string_view start, std::string_view kName) {
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
  const char* const data = content.data();
  const std::size_t n = content.size();
  std::size_t i = 0;
  while (i < n && !in_body_) {
    // The rest of the current line within this chunk: [i, end).
    const char* lfp = static_cast<const char*>(std::memchr(data + i, '\n', n - i));
    const std::size_t end = lfp ? static_cast<std::size_t>(lfp - data) : n;
    if (!eight_bit_) {
      unsigned char acc = 0;
      for (std::size_t k = i; k < end; ++k) acc |= static_cast<unsigned char>(data[k]);
      if (acc & 0x80) eight_bit_ = true;
    }
    if (line_start_.size() < kKeep) {
      std::size_t take = std::min(kKeep - line_start_.size(), end - i);
      line_start_.append(data + i, take);
    }
    if (at_line_start_) line_begin_ = fed_ + i;
    if (end > i) {
      at_line_start_ = false;
      prev_cr_ = data[end - 1] == '\r';
    }
    if (!lfp) break;
    // End of a header line. An empty line ("\r\n", or a lone "\n") ends the header section;
    // line_start_ holds the whole line when it is shorter than kKeep.
    if (line_start_.empty() || line_start_ == "\r") {
      in_body_ = true;
      header_end_ = line_begin_;
    } else if (line_start_.front() != ' ' && line_start_.front() != '\t') {
      // continuation lines (leading WSP) never count
      if (is_field(line_start_, "received")) ++received_;
      else if (is_field(line_start_, "message-id")) has_message_id_ = true;
      else if (is_field(line_start_, "date")) has_date_ = true;
    }
    line_start_.clear();
    at_line_start_ = true;
    prev_cr_ = false;
    i = end + 1;
  }
  fed_ += n;
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
