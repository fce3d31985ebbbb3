// carrier DKIM verifier: tag-lists, DKIM-Signature fields, key records and the signature check.
// Handles UNTRUSTED bytes (message fields, DNS records) with the limits in verifier.hpp.
#include "dkim/verifier.hpp"
#include "dkim/ossl.hpp"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include <algorithm>
#include <map>

namespace carrier::dkim {

namespace {

bool is_wsp(char c) { return c == ' ' || c == '\t'; }
bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_valchar(char c) { return c >= 0x21 && c <= 0x7e && c != ';'; }

std::string lowercase(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

// FWS = [*WSP CRLF] 1*WSP: advances over it; a CRLF not followed by WSP is not FWS.
std::size_t skip_fws(std::string_view t, std::size_t pos) {
  for (;;) {
    while (pos < t.size() && is_wsp(t[pos])) ++pos;
    if (pos + 2 < t.size() && t[pos] == '\r' && t[pos + 1] == '\n' && is_wsp(t[pos + 2])) {
      pos += 2;
      continue;
    }
    return pos;
  }
}

std::string strip_fws(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v)
    if (!is_wsp(c) && c != '\r' && c != '\n') out.push_back(c);
  return out;
}

std::optional<std::uint64_t> parse_uint(std::string_view v, std::size_t max_digits) {
  if (v.empty() || v.size() > max_digits) return std::nullopt;
  std::uint64_t n = 0;
  for (char c : v) {
    if (!is_digit(c)) return std::nullopt;
    n = n * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return n;
}

// The colon-separated list of a tag value (h=, q=, k= lists), each element without FWS.
std::vector<std::string> split_list(std::string_view v) {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (;;) {
    std::size_t c = v.find(':', start);
    out.push_back(strip_fws(v.substr(start, c == std::string_view::npos ? std::string_view::npos : c - start)));
    if (c == std::string_view::npos) break;
    start = c + 1;
  }
  return out;
}

bool valid_field_name(std::string_view n) {
  return !n.empty() && std::all_of(n.begin(), n.end(), [](char c) { return c >= 33 && c <= 126 && c != ':'; });
}

bool same_name(std::string_view field_name, std::string_view lower_name) {
  while (!field_name.empty() && is_wsp(field_name.back())) field_name.remove_suffix(1);
  if (field_name.size() != lower_name.size()) return false;
  for (std::size_t i = 0; i < field_name.size(); ++i) {
    char c = field_name[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != lower_name[i]) return false;
  }
  return true;
}

using detail::openssl_reason;
using CtxFree = detail::MdCtxFree;

}  // namespace

std::optional<std::string> unbase64(std::string_view text) {
  static constexpr std::string_view kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const std::string s = strip_fws(text);
  if (s.size() % 4 != 0) return std::nullopt;
  std::string out;
  out.reserve(s.size() / 4 * 3);
  for (std::size_t i = 0; i < s.size(); i += 4) {
    unsigned v[4];
    int pad = 0;
    for (int j = 0; j < 4; ++j) {
      char c = s[i + static_cast<std::size_t>(j)];
      if (c == '=') {
        // Padding only in the last group, only at its end (x===, xx==, xxx=).
        if (i + 4 != s.size() || j < 2) return std::nullopt;
        ++pad;
        v[j] = 0;
        continue;
      }
      if (pad) return std::nullopt;
      auto p = kAlphabet.find(c);
      if (p == std::string_view::npos) return std::nullopt;
      v[j] = static_cast<unsigned>(p);
    }
    const unsigned n = (v[0] << 18) | (v[1] << 12) | (v[2] << 6) | v[3];
    out.push_back(static_cast<char>((n >> 16) & 0xff));
    if (pad < 2) out.push_back(static_cast<char>((n >> 8) & 0xff));
    if (pad < 1) out.push_back(static_cast<char>(n & 0xff));
  }
  return out;
}

Result<std::vector<Tag>> parse_tag_list(std::string_view t) {
  std::vector<Tag> tags;
  std::size_t pos = 0;
  for (;;) {
    pos = skip_fws(t, pos);
    if (pos >= t.size()) {
      if (tags.empty()) return Error{"empty tag list"};
      break;  // the end, possibly after a final ';'
    }
    if (tags.size() >= kMaxTags) return Error{"more than " + std::to_string(kMaxTags) + " tags"};
    // tag-name = ALPHA *ALNUMPUNC
    const std::size_t name_start = pos;
    if (!is_alpha(t[pos])) return Error{"bad tag name at offset " + std::to_string(pos)};
    while (pos < t.size() && (is_alpha(t[pos]) || is_digit(t[pos]) || t[pos] == '_')) ++pos;
    Tag tag;
    tag.name = std::string(t.substr(name_start, pos - name_start));
    pos = skip_fws(t, pos);
    if (pos >= t.size() || t[pos] != '=') return Error{"tag '" + tag.name + "' has no '='"};
    ++pos;
    tag.raw_begin = pos;
    pos = skip_fws(t, pos);
    // tag-value = [ tval *( 1*(WSP / FWS) tval ) ]
    std::size_t value_start = pos, value_end = pos;
    while (pos < t.size() && t[pos] != ';') {
      if (is_valchar(t[pos])) {
        ++pos;
        value_end = pos;
        continue;
      }
      std::size_t after = skip_fws(t, pos);
      if (after == pos) return Error{"bad character in the value of tag '" + tag.name + "'"};
      pos = after;
    }
    tag.value = std::string(t.substr(value_start, value_end - value_start));
    tag.raw_end = pos;
    for (const auto& other : tags)
      if (other.name == tag.name) return Error{"tag '" + tag.name + "' appears twice"};
    tags.push_back(std::move(tag));
    if (pos >= t.size()) break;
    ++pos;  // ';'
  }
  return tags;
}

Result<Signature> parse_signature(std::string_view value) {
  if (value.size() > kMaxSignatureField)
    return Error{"DKIM-Signature longer than " + std::to_string(kMaxSignatureField) + " bytes"};
  auto tags = parse_tag_list(value);
  if (!tags) return Error{"DKIM-Signature syntax: " + tags.error().message};
  std::map<std::string, std::string> m;
  for (auto& t : *tags) m[t.name] = t.value;
  for (const char* req : {"v", "a", "b", "bh", "d", "h", "s"})
    if (!m.count(req)) return Error{std::string("DKIM-Signature without the required tag ") + req + "="};
  Signature s;
  if (m["v"] != "1") return Error{"DKIM-Signature version v=" + m["v"] + " (not 1)"};

  const std::string a = lowercase(m["a"]);
  if (a == "rsa-sha256") s.algorithm = Algorithm::RsaSha256;
  else if (a == "ed25519-sha256") s.algorithm = Algorithm::Ed25519Sha256;
  else if (a == "rsa-sha1") return Error{"rsa-sha1 signatures are not accepted (RFC 8301)"};
  else return Error{"unknown algorithm a=" + m["a"]};

  if (m.count("c")) {
    const std::string c = lowercase(m["c"]);
    auto slash = c.find('/');
    auto parse_canon = [](std::string_view n, Canon& out) {
      if (n == "simple") out = Canon::Simple;
      else if (n == "relaxed") out = Canon::Relaxed;
      else return false;
      return true;
    };
    std::string_view hc = std::string_view(c).substr(0, slash);
    if (!parse_canon(hc, s.header_canon) ||
        (slash != std::string::npos && !parse_canon(std::string_view(c).substr(slash + 1), s.body_canon)))
      return Error{"unknown canonicalization c=" + m["c"]};
  }

  s.domain = lowercase(m["d"]);
  if (auto e = domain_syntax_error(s.domain); !e.empty()) return Error{"d=: " + e};
  s.selector = lowercase(m["s"]);
  if (auto e = selector_syntax_error(s.selector); !e.empty()) return Error{"s=: " + e};

  auto names = split_list(m["h"]);
  if (names.size() > kMaxSignedFields)
    return Error{"h= lists more than " + std::to_string(kMaxSignedFields) + " fields"};
  for (auto& n : names) {
    if (!valid_field_name(n)) return Error{"h= holds a bad field name"};
    s.headers.push_back(lowercase(n));
  }
  if (std::find(s.headers.begin(), s.headers.end(), "from") == s.headers.end())
    return Error{"h= does not include From (RFC 6376 5.4)"};

  s.b64_signature = strip_fws(m["b"]);
  auto b = unbase64(s.b64_signature);
  if (!b || b->empty()) return Error{"b= is not valid base64"};
  s.signature = std::move(*b);
  auto bh = unbase64(m["bh"]);
  if (!bh) return Error{"bh= is not valid base64"};
  if (bh->size() != 32) return Error{"bh= is not a SHA-256 hash"};
  s.body_hash = std::move(*bh);

  if (m.count("i")) {
    const std::string i = strip_fws(m["i"]);
    auto at = i.rfind('@');
    if (at == std::string::npos) return Error{"i= has no '@'"};
    const std::string idom = lowercase(i.substr(at + 1));
    if (idom != s.domain && !(idom.size() > s.domain.size() && idom.ends_with("." + s.domain)))
      return Error{"i= domain " + idom + " is not d= or a subdomain of it"};
    s.identity = i;
  } else {
    s.identity = "@" + s.domain;
  }
  if (m.count("l")) {
    auto l = parse_uint(m["l"], 18);
    if (!l) return Error{"bad l= value"};
    s.length = *l;
  }
  if (m.count("q")) {
    auto q = split_list(lowercase(m["q"]));
    if (std::find(q.begin(), q.end(), "dns/txt") == q.end()) return Error{"q= does not offer dns/txt"};
  }
  if (m.count("t")) {
    auto t = parse_uint(m["t"], 12);
    if (!t) return Error{"bad t= value"};
    s.timestamp = static_cast<std::int64_t>(*t);
  }
  if (m.count("x")) {
    auto x = parse_uint(m["x"], 12);
    if (!x) return Error{"bad x= value"};
    s.expires = static_cast<std::int64_t>(*x);
    if (s.timestamp && *s.expires <= *s.timestamp) return Error{"x= is not after t="};
  }
  return s;
}

Result<PublicKey> parse_key_record(std::string_view txt) {
  if (txt.size() > kMaxKeyRecord) return Error{"key record longer than " + std::to_string(kMaxKeyRecord) + " bytes"};
  auto tags = parse_tag_list(txt);
  if (!tags) return Error{"key record syntax: " + tags.error().message};
  std::map<std::string, std::string> m;
  for (auto& t : *tags) m[t.name] = t.value;
  if (m.count("v")) {
    if (tags->front().name != "v") return Error{"key record: v= is not the first tag"};
    if (m["v"] != "DKIM1") return Error{"key record version v=" + m["v"] + " (not DKIM1)"};
  }
  if (m.count("h")) {
    auto h = split_list(lowercase(m["h"]));
    if (std::find(h.begin(), h.end(), "sha256") == h.end()) return Error{"key record does not allow sha256 (h=)"};
  }
  if (m.count("s")) {
    auto sv = split_list(lowercase(m["s"]));
    if (std::find(sv.begin(), sv.end(), "*") == sv.end() && std::find(sv.begin(), sv.end(), "email") == sv.end())
      return Error{"key record is not for email (s=)"};
  }
  PublicKey k;
  if (m.count("t"))
    for (const auto& f : split_list(lowercase(m["t"]))) {
      if (f == "y") k.testing = true;
      if (f == "s") k.strict_identity = true;
    }
  const std::string kt = m.count("k") ? lowercase(m["k"]) : "rsa";
  if (kt == "rsa") k.algorithm = Algorithm::RsaSha256;
  else if (kt == "ed25519") k.algorithm = Algorithm::Ed25519Sha256;
  else return Error{"key record: unknown key type k=" + m["k"]};
  if (!m.count("p")) return Error{"key record without p="};
  if (strip_fws(m["p"]).empty()) return Error{"key revoked (empty p=)"};
  auto der = unbase64(m["p"]);
  if (!der) return Error{"key record: p= is not valid base64"};
  ERR_clear_error();
  EVP_PKEY* raw = nullptr;
  const auto* p = reinterpret_cast<const unsigned char*>(der->data());
  if (k.algorithm == Algorithm::Ed25519Sha256) {
    if (der->size() != 32) return Error{"key record: an Ed25519 key is 32 bytes (RFC 8463 4.2)"};
    raw = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, p, der->size());
  } else {
    raw = d2i_PUBKEY(nullptr, &p, static_cast<long>(der->size()));
    if (!raw) {  // some publish the bare RSAPublicKey (PKCS#1)
      ERR_clear_error();
      p = reinterpret_cast<const unsigned char*>(der->data());
      raw = d2i_PublicKey(EVP_PKEY_RSA, nullptr, &p, static_cast<long>(der->size()));
    }
  }
  if (!raw) {
    ERR_clear_error();
    return Error{"key record: p= is not a valid " + kt + " public key"};
  }
  k.pkey.reset(raw, EVP_PKEY_free);
  if (k.algorithm == Algorithm::RsaSha256) {
    if (EVP_PKEY_get_base_id(raw) != EVP_PKEY_RSA) return Error{"key record: k=rsa but p= is not an RSA key"};
    if (int bits = EVP_PKEY_get_bits(raw); bits < 1024)
      return Error{"RSA key of " + std::to_string(bits) + " bits (at least 1024, RFC 8301)"};
  }
  return k;
}

std::string_view outcome_name(Outcome o) {
  switch (o) {
    case Outcome::Pass: return "pass";
    case Outcome::Fail: return "fail";
    case Outcome::Neutral: return "neutral";
    case Outcome::Policy: return "policy";
    case Outcome::TempError: return "temperror";
    case Outcome::PermError: return "permerror";
  }
  return "permerror";
}

Verification verify(const Signature& sig, std::string_view header_section, const HeaderField& field,
                    const std::array<unsigned char, 32>& body_hash, std::uint64_t body_length,
                    std::string_view key_record, std::int64_t now) {
  auto key = parse_key_record(key_record);
  if (!key) return {Outcome::PermError, key.error().message};
  return verify(sig, header_section, field, body_hash, body_length, *key, now);
}

Verification verify(const Signature& sig, std::string_view header_section, const HeaderField& field,
                    const std::array<unsigned char, 32>& body_hash, std::uint64_t body_length,
                    const PublicKey& key, std::int64_t now) {
  if (key.algorithm != sig.algorithm)
    return {Outcome::PermError, "key type " + std::string(key_type_name(key.algorithm)) + " does not match a=" +
                                    std::string(algorithm_name(sig.algorithm))};
  if (key.strict_identity) {
    const auto at = sig.identity.rfind('@');
    if (lowercase(sig.identity.substr(at + 1)) != sig.domain)
      return {Outcome::PermError, "key record has t=s but i= is a subdomain of d="};
  }
  if (sig.expires && now > *sig.expires) return {Outcome::PermError, "signature expired"};
  if (sig.length) {
    if (body_length < *sig.length) return {Outcome::Fail, "l= is larger than the body"};
    if (body_length > *sig.length)
      return {Outcome::Policy, "l= covers " + std::to_string(*sig.length) + " of " + std::to_string(body_length) +
                                   " body bytes: content was added after signing"};
  }
  if (std::string_view(reinterpret_cast<const char*>(body_hash.data()), body_hash.size()) != sig.body_hash)
    return {Outcome::Fail, "body hash did not verify"};

  // The signed fields, each name taking its occurrences from the bottom up (RFC 6376 5.4.2);
  // a name listed more often than it occurs contributes nothing.
  const auto fields = parse_header_fields(header_section);
  std::string data;
  std::map<std::string, std::size_t> used;
  for (const auto& name : sig.headers) {
    std::size_t skip = used[name]++;
    for (auto it = fields.rbegin(); it != fields.rend(); ++it) {
      if (!same_name(it->name, name)) continue;
      if (skip-- == 0) {
        data += canonicalize_header(*it, sig.header_canon);
        break;
      }
    }
  }
  // The signature field itself with the value of b= (and the FWS around it) removed, without
  // its final CRLF (RFC 6376 3.7).
  auto tags = parse_tag_list(field.value);
  if (!tags) return {Outcome::PermError, "DKIM-Signature syntax: " + tags.error().message};
  std::string value(field.value);
  for (const auto& t : *tags)
    if (t.name == "b") value.erase(t.raw_begin, t.raw_end - t.raw_begin);
  std::string own = canonicalize_header(field.name, value, sig.header_canon == Canon::Relaxed);
  own.resize(own.size() - 2);
  data += own;

  ERR_clear_error();
  std::unique_ptr<EVP_MD_CTX, CtxFree> ctx(EVP_MD_CTX_new());
  if (!ctx) return {Outcome::TempError, "out of memory"};
  std::string input;
  const EVP_MD* md = nullptr;
  if (sig.algorithm == Algorithm::Ed25519Sha256) {
    unsigned char d[32];
    unsigned int n = 0;
    if (EVP_Digest(data.data(), data.size(), d, &n, EVP_sha256(), nullptr) != 1)
      return {Outcome::TempError, "SHA-256 failed: " + openssl_reason()};
    input.assign(reinterpret_cast<char*>(d), n);
  } else {
    md = EVP_sha256();
    input = std::move(data);
  }
  if (EVP_DigestVerifyInit(ctx.get(), nullptr, md, nullptr, key.pkey.get()) != 1)
    return {Outcome::PermError, "cannot verify with this key: " + openssl_reason()};
  const int ok = EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(sig.signature.data()),
                                  sig.signature.size(), reinterpret_cast<const unsigned char*>(input.data()),
                                  input.size());
  ERR_clear_error();
  if (ok != 1) return {Outcome::Fail, "signature did not verify"};
  return {Outcome::Pass, ""};
}

}  // namespace carrier::dkim
