// carrier DKIM verifier (RFC 6376 3.2, 3.5, 3.6.1, 6; RFC 8463; RFC 8301): strict parsing of
// the DKIM-Signature field and of the key record, and the check of one signature against the
// header section, the body hash and the key record text the caller looked up. Pure code: no
// I/O, no clock (the caller gives the time). The message bytes are UNTRUSTED: every parser
// here has explicit limits.
//
// Decisions:
// - rsa-sha1 is refused (RFC 8301 3.1): permerror.
// - RSA keys below 1024 bits are refused (RFC 8301 3.2): permerror.
// - l= is honoured only when it covers the whole canonical body: a body longer than l= (content
//   added after signing, which the signature does not cover) gives "policy"; an l= larger than
//   the body gives "fail".
// - x= in the past gives permerror "signature expired"; x= not after t= is a syntax error.
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.hpp"
#include "dkim/canon.hpp"
#include "dkim/key.hpp"

namespace carrier::dkim {

// Bounds on UNTRUSTED input.
inline constexpr std::size_t kMaxSignatureField = 16 * 1024;  // one DKIM-Signature value
inline constexpr std::size_t kMaxKeyRecord = 8 * 1024;        // one key TXT record
inline constexpr std::size_t kMaxTags = 64;                   // tags in one tag-list
inline constexpr std::size_t kMaxSignedFields = 256;          // names in h=

// One tag=value pair of a tag-list (RFC 6376 3.2). The value keeps its inner FWS.
struct Tag {
  std::string name;
  std::string value;
  std::size_t raw_begin = 0;  // offsets in the text: just after '=' ...
  std::size_t raw_end = 0;    // ... and at the ';' that ends the tag (or the end of the text)
};
// Strict tag-list parsing: tag names ALPHA *(ALPHA / DIGIT / "_"), values of VALCHARs
// (%x21-3A / %x3C-7E) separated by FWS, an optional ";" at the end, no duplicate names. Fails
// with a reason. At most kMaxTags tags.
Result<std::vector<Tag>> parse_tag_list(std::string_view text);

// A parsed DKIM-Signature field.
struct Signature {
  Algorithm algorithm = Algorithm::RsaSha256;
  Canon header_canon = Canon::Simple;
  Canon body_canon = Canon::Simple;
  std::string domain;                 // d= (as written)
  std::string selector;               // s=
  std::string identity;               // i= (default "@" + d)
  std::vector<std::string> headers;   // h=, lowercase
  std::string b64_signature;          // b= without FWS (for header.b)
  std::string signature;              // b= decoded
  std::string body_hash;              // bh= decoded
  std::optional<std::uint64_t> length;  // l=
  std::optional<std::int64_t> timestamp;  // t=
  std::optional<std::int64_t> expires;    // x=
  // The DNS name of the key record: SELECTOR._domainkey.DOMAIN
  std::string key_name() const { return selector + "._domainkey." + domain; }
};

// Parses the value of a DKIM-Signature field (the text after the colon). Fails (permerror)
// with a reason: bad syntax, missing required tags (v a b bh d h s), v other than 1, an
// algorithm other than rsa-sha256 / ed25519-sha256, an unknown canonicalization, h= without
// from, i= outside d=, x= not after t=, a bad domain or selector.
Result<Signature> parse_signature(std::string_view field_value);

// The public key from a key record (RFC 6376 3.6.1): v= (DKIM1, first when present), k= (rsa,
// the default, or ed25519), h= (must allow sha256), s= (* or email), t= flags, p= (empty:
// revoked). Fails with a reason (permerror).
struct PublicKey {
  Algorithm algorithm = Algorithm::RsaSha256;
  std::shared_ptr<EVP_PKEY> pkey;
  bool testing = false;           // t=y
  bool strict_identity = false;   // t=s: i= must be exactly d=
};
Result<PublicKey> parse_key_record(std::string_view txt);

enum class Outcome { Pass, Fail, Neutral, Policy, TempError, PermError };
std::string_view outcome_name(Outcome o);  // "pass" ... "permerror" (RFC 8601 2.7.1)

struct Verification {
  Outcome outcome = Outcome::PermError;
  std::string reason;  // empty on pass
};

// Checks one signature. `header_section`: the message's fields as received; `field`: the
// DKIM-Signature field that `sig` was parsed from, as received (its b= value is blanked for the
// hash, RFC 6376 3.7); `body_hash`/`body_length`: SHA-256 and length of the whole body in the
// signature's body canonicalization; `key_record`: the TXT record text; `now`: unix seconds.
Verification verify(const Signature& sig, std::string_view header_section, const HeaderField& field,
                    const std::array<unsigned char, 32>& body_hash, std::uint64_t body_length,
                    std::string_view key_record, std::int64_t now);

// The same with a key already parsed.
Verification verify(const Signature& sig, std::string_view header_section, const HeaderField& field,
                    const std::array<unsigned char, 32>& body_hash, std::uint64_t body_length,
                    const PublicKey& key, std::int64_t now);

// Strict base64 (RFC 4648 4, padding required, FWS ignored): nullopt on anything else.
std::optional<std::string> unbase64(std::string_view text);

}  // namespace carrier::dkim
