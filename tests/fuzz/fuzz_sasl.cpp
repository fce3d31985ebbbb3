// Fuzz target: SMTP AUTH byte-level parsing (src/proto/sasl.cpp): strict base64 of RFC 4648 4
// and the SASL PLAIN message of RFC 4616 2. Checks: encode(x) always decodes back to x;
// a successful decode is canonical (re-encodes to the exact input, RFC 4648 3.5); a parsed
// PLAIN message rebuilds the input exactly and obeys the field rules.
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_common.hpp"
#include "proto/address.hpp"
#include "proto/sasl.hpp"

using namespace carrier::proto;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);

  const std::string enc = base64_encode(in);
  FUZZ_CHECK(enc.size() % 4 == 0 && enc.size() == (in.size() + 2) / 3 * 4);
  if (enc.size() <= kBase64MaxInput) {
    auto back = base64_decode(enc);
    FUZZ_CHECK(back && *back == in);
  }

  if (auto dec = base64_decode(in)) {
    FUZZ_CHECK(in.size() <= kBase64MaxInput);
    FUZZ_CHECK(base64_encode(*dec) == in);
  }

  if (auto p = parse_sasl_plain(in)) {
    FUZZ_CHECK(!p->authcid.empty() && !p->password.empty());
    FUZZ_CHECK(p->authzid.size() <= kSaslPlainMaxField && p->authcid.size() <= kSaslPlainMaxField &&
               p->password.size() <= kSaslPlainMaxField);
    FUZZ_CHECK(is_valid_utf8(p->authcid) && is_valid_utf8(p->authzid));
    std::string rebuilt = p->authzid;
    rebuilt += '\0';
    rebuilt += p->authcid;
    rebuilt += '\0';
    rebuilt += p->password;
    FUZZ_CHECK(rebuilt == in);
    FUZZ_CHECK(p->password.find('\0') == std::string::npos);
  }
  return 0;
}
