// Fuzz target: paths, mailboxes and domains (src/proto/address.cpp) on untrusted input.
// Checks the RFC 5321 4.5.3.1 limits, the RFC 6531 UTF-8 rules, and that a parsed mailbox
// rendered back as "<" + str() + ">" (or bare) parses to the same mailbox.
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_common.hpp"
#include "proto/address.hpp"

using namespace carrier::proto;

namespace {

void check_mailbox(const Mailbox& m, bool utf8) {
  FUZZ_CHECK(!m.local.empty() && !m.domain.empty());
  FUZZ_CHECK(m.local.size() <= 64);
  std::string_view d = m.domain;
  if (!m.is_address_literal() && d.back() == '.') d.remove_suffix(1);
  FUZZ_CHECK(d.size() <= 255);
  FUZZ_CHECK(is_valid_domain(m.domain, utf8));
  if (!utf8) FUZZ_CHECK(!m.needs_utf8());
  FUZZ_CHECK(is_valid_utf8(m.str()));
  for (unsigned char c : m.str()) FUZZ_CHECK(c >= 32 && c != 127);
  std::string u = m.unquoted_local();
  FUZZ_CHECK(u.size() <= m.local.size());
  if (!m.is_quoted()) FUZZ_CHECK(u == m.local);
  std::string n = normalize_domain(m.domain);
  FUZZ_CHECK(normalize_domain(n) == n || n.back() == '.');
  auto bare = parse_mailbox(m.str(), utf8);
  FUZZ_CHECK(bare && *bare == m);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  for (bool utf8 : {false, true}) {
    for (bool allow_null : {false, true}) {
      PathError e = PathError::None;
      auto p = parse_path(in, allow_null, utf8, &e);
      if (!p) {
        FUZZ_CHECK(e != PathError::None);
        if (e == PathError::NullNotAllowed) FUZZ_CHECK(!allow_null && in.substr(0, 2) == "<>");
        if (e == PathError::Utf8NotAllowed) FUZZ_CHECK(!utf8);
        continue;
      }
      FUZZ_CHECK(e == PathError::None);
      FUZZ_CHECK(p->consumed >= 2 && p->consumed <= in.size() && p->consumed <= 256);
      FUZZ_CHECK(in[0] == '<' && in[p->consumed - 1] == '>');
      if (p->mailbox.empty()) {
        FUZZ_CHECK(allow_null && p->consumed == 2 && !p->had_source_route);
        continue;
      }
      check_mailbox(p->mailbox, utf8);
      auto again = parse_path("<" + p->mailbox.str() + ">", false, utf8);
      FUZZ_CHECK(again && again->mailbox == p->mailbox && !again->had_source_route);
      // A path parses the same whatever follows it.
      std::string with_params(in.substr(0, p->consumed));
      with_params += " SIZE=1";
      auto p2 = parse_path(with_params, allow_null, utf8);
      FUZZ_CHECK(p2 && p2->consumed == p->consumed && p2->mailbox == p->mailbox);
    }
    PathError e = PathError::None;
    if (auto m = parse_mailbox(in, utf8, &e)) {
      FUZZ_CHECK(e == PathError::None);
      check_mailbox(*m, utf8);
    } else {
      FUZZ_CHECK(e != PathError::None && e != PathError::NullNotAllowed);
    }
    if (is_valid_domain(in, utf8)) {
      FUZZ_CHECK(!in.empty());
      if (!utf8) FUZZ_CHECK(is_valid_domain(in, true));
      FUZZ_CHECK(parse_mailbox("x@" + std::string(in), utf8).has_value());
    }
  }
  // UTF-8 validator and sequence decoder agree.
  bool valid = true;
  for (std::size_t i = 0; i < in.size();) {
    char32_t cp = 0;
    std::size_t len = utf8_sequence(in.substr(i), &cp);
    if (len == 0) {
      valid = false;
      break;
    }
    FUZZ_CHECK(cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF));
    FUZZ_CHECK(len == (cp < 0x80 ? 1u : cp < 0x800 ? 2u : cp < 0x10000 ? 3u : 4u));
    i += len;
  }
  FUZZ_CHECK(valid == is_valid_utf8(in));
  return 0;
}
