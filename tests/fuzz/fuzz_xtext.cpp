// Fuzz target: RFC 3461 4 xtext (src/proto/command.cpp xtext_encode/xtext_decode) and the
// DSN parameters that carry it (ENVID, ORCPT incl. RFC 6533 utf-8). Checks:
// decode(encode(x)) == x for any bytes; encode output is pure xchar/hexchar; a successful
// decode re-encodes to something that decodes the same; decoded DSN values are clean.
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_common.hpp"
#include "proto/command.hpp"

using namespace carrier::proto;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);

  std::string enc = xtext_encode(in);
  for (unsigned char c : enc) FUZZ_CHECK(c >= 33 && c <= 126 && c != '=');
  auto dec = xtext_decode(enc);
  FUZZ_CHECK(dec && *dec == in);

  if (auto d = xtext_decode(in)) {
    FUZZ_CHECK(d->size() <= in.size());
    auto again = xtext_decode(xtext_encode(*d));
    FUZZ_CHECK(again && *again == *d);
  }

  Extensions ext;
  // Below, the input is one parameter value only when it holds no SP (the separator).
  const bool one_value = in.find(' ') == std::string_view::npos;
  for (bool utf8 : {false, true}) {
    for (std::string_view type : {"rfc822;", "utf-8;"}) {
      std::string arg = "TO:<a@b.example> ORCPT=";
      arg += type;
      arg.append(in);
      auto r = parse_rcpt(arg, ext, utf8);
      if (auto* rt = std::get_if<RcptTo>(&r)) {
        const std::string& o = rt->params.orcpt;
        FUZZ_CHECK(!o.empty() && is_valid_utf8(o));
        for (unsigned char c : o) FUZZ_CHECK(c >= 32 && c != 127);
        if (type == "rfc822;") {
          for (unsigned char c : o) FUZZ_CHECK(c < 127);
          if (one_value) FUZZ_CHECK(xtext_decode(in) == o);
        }
      }
    }
    std::string mail = "FROM:<> ENVID=";
    mail.append(in);
    auto m = parse_mail(mail, ext);
    if (auto* mf = std::get_if<MailFrom>(&m)) {
      if (one_value) {
        FUZZ_CHECK(in.size() <= 100);
        FUZZ_CHECK(xtext_decode(in) == mf->params.envid);
      }
    }
  }
  return 0;
}
