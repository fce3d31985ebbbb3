// carrier proto: strict base64 (RFC 4648 4, 3.5 canonical encoding) and the SASL PLAIN
// message (RFC 4616 2) for SMTP AUTH (RFC 4954). Pure; parses UNTRUSTED input.
#include "proto/sasl.hpp"

#include <array>
#include <cstdint>

#include "proto/address.hpp"

namespace carrier::proto {

namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// Value of each byte in the RFC 4648 4 alphabet, or -1.
constexpr std::array<std::int8_t, 256> make_table() {
  std::array<std::int8_t, 256> t{};
  for (auto& v : t) v = -1;
  for (int i = 0; i < 64; ++i) t[static_cast<unsigned char>(kAlphabet[i])] = static_cast<std::int8_t>(i);
  return t;
}
constexpr auto kTable = make_table();

int value(char c) { return kTable[static_cast<unsigned char>(c)]; }

}  // namespace

std::optional<std::string> base64_decode(std::string_view in) {
  if (in.size() > kBase64MaxInput || in.size() % 4 != 0) return std::nullopt;
  std::string out;
  out.reserve(in.size() / 4 * 3);
  for (std::size_t i = 0; i < in.size(); i += 4) {
    const bool last = i + 4 == in.size();
    const int a = value(in[i]);
    const int b = value(in[i + 1]);
    if (a < 0 || b < 0) return std::nullopt;
    const std::uint32_t ab = static_cast<std::uint32_t>(a) << 18 | static_cast<std::uint32_t>(b) << 12;
    if (last && in[i + 2] == '=') {
      // "xx==": one octet; the low 4 bits of the second character are unused and must be 0.
      if (in[i + 3] != '=' || (b & 0x0f) != 0) return std::nullopt;
      out.push_back(static_cast<char>(ab >> 16));
      break;
    }
    const int c = value(in[i + 2]);
    if (c < 0) return std::nullopt;
    const std::uint32_t abc = ab | static_cast<std::uint32_t>(c) << 6;
    if (last && in[i + 3] == '=') {
      // "xxx=": two octets; the low 2 bits of the third character must be 0.
      if ((c & 0x03) != 0) return std::nullopt;
      out.push_back(static_cast<char>(abc >> 16));
      out.push_back(static_cast<char>((abc >> 8) & 0xff));
      break;
    }
    const int d = value(in[i + 3]);
    if (d < 0) return std::nullopt;
    const std::uint32_t all = abc | static_cast<std::uint32_t>(d);
    out.push_back(static_cast<char>(all >> 16));
    out.push_back(static_cast<char>((all >> 8) & 0xff));
    out.push_back(static_cast<char>(all & 0xff));
  }
  return out;
}

std::string base64_encode(std::string_view in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  std::size_t i = 0;
  auto byte = [&](std::size_t k) { return static_cast<std::uint32_t>(static_cast<unsigned char>(in[k])); };
  for (; i + 3 <= in.size(); i += 3) {
    const std::uint32_t v = byte(i) << 16 | byte(i + 1) << 8 | byte(i + 2);
    out.push_back(kAlphabet[v >> 18]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(kAlphabet[(v >> 6) & 63]);
    out.push_back(kAlphabet[v & 63]);
  }
  const std::size_t rest = in.size() - i;
  if (rest == 1) {
    const std::uint32_t v = byte(i) << 16;
    out.push_back(kAlphabet[v >> 18]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out += "==";
  } else if (rest == 2) {
    const std::uint32_t v = byte(i) << 16 | byte(i + 1) << 8;
    out.push_back(kAlphabet[v >> 18]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(kAlphabet[(v >> 6) & 63]);
    out.push_back('=');
  }
  return out;
}

std::optional<SaslPlain> parse_sasl_plain(std::string_view decoded) {
  const std::size_t n1 = decoded.find('\0');
  if (n1 == std::string_view::npos) return std::nullopt;
  const std::size_t n2 = decoded.find('\0', n1 + 1);
  if (n2 == std::string_view::npos) return std::nullopt;
  if (decoded.find('\0', n2 + 1) != std::string_view::npos) return std::nullopt;  // NUL in passwd
  const std::string_view authzid = decoded.substr(0, n1);
  const std::string_view authcid = decoded.substr(n1 + 1, n2 - n1 - 1);
  const std::string_view passwd = decoded.substr(n2 + 1);
  if (authcid.empty() || passwd.empty()) return std::nullopt;
  if (authzid.size() > kSaslPlainMaxField || authcid.size() > kSaslPlainMaxField ||
      passwd.size() > kSaslPlainMaxField)
    return std::nullopt;
  if (!is_valid_utf8(authzid) || !is_valid_utf8(authcid)) return std::nullopt;
  return SaslPlain{std::string(authzid), std::string(authcid), std::string(passwd)};
}

}  // namespace carrier::proto
