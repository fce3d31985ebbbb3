// carrier transport: text helpers shared by the final-delivery transports that hand a message
// to local software (Maildir files, pipe commands), which expect Unix line ends: CRLF → LF
// conversion across chunk boundaries, and header values made safe to write. Pure.
#pragma once
#include <cstring>
#include <string>
#include <string_view>

namespace carrier::transport {

// CRLF → LF; a lone CR or LF passes through. A CR seen at the end of a chunk is kept until the
// next byte is known; finish() flushes it.
class CrlfToLf {
 public:
  void feed(std::string_view in, std::string& out) {
    std::size_t i = 0;
    while (i < in.size()) {
      if (pending_cr_) {
        pending_cr_ = false;
        if (in[i] == '\n') {
          out.push_back('\n');
          ++i;
          continue;
        }
        out.push_back('\r');  // a lone CR; in[i] is handled below
      }
      const void* p = std::memchr(in.data() + i, '\r', in.size() - i);
      if (!p) {
        out.append(in.data() + i, in.size() - i);
        return;
      }
      auto j = static_cast<std::size_t>(static_cast<const char*>(p) - in.data());
      out.append(in.data() + i, j - i);
      pending_cr_ = true;
      i = j + 1;
    }
  }
  void finish(std::string& out) {
    if (pending_cr_) out.push_back('\r');
    pending_cr_ = false;
  }

 private:
  bool pending_cr_ = false;
};

// A value for a header carrier writes itself (Return-Path:, Delivered-To:): control
// characters become '?', so a value can never end the line or the header.
inline std::string header_safe(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7F) c = '?';
  }
  return out;
}

}  // namespace carrier::transport
