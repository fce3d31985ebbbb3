// carrier DKIM verifier: tag-list and DKIM-Signature parsing (strict, bounded), key records,
// sign -> verify round trips for rsa-sha256 and ed25519-sha256 in every canonicalization, and
// tampering (header, body, added From:, whitespace under simple), expiry, l= and rsa-sha1.
#include <gtest/gtest.h>

#include "dkim/canon.hpp"
#include "dkim/key.hpp"
#include "dkim/signer.hpp"
#include "dkim/verifier.hpp"

using namespace carrier::dkim;

namespace {

const std::string kMessage =
    "From: Alice <alice@example.org>\r\n"
    "To: bob@example.net\r\n"
    "Subject: Hello   there\r\n"
    "Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
    "Message-ID: <1@example.org>\r\n"
    "\r\n"
    "Hi Bob,\r\n"
    "\r\n"
    "how are  you?\r\n"
    "\r\n\r\n";

const PrivateKey& rsa_key() {
  static PrivateKey k = *generate_key(KeyKind::Rsa2048);
  return k;
}
const PrivateKey& ed_key() {
  static PrivateKey k = *generate_key(KeyKind::Ed25519);
  return k;
}

std::string sign(const std::string& msg, const PrivateKey& key, Canon hc = Canon::Relaxed,
                 Canon bc = Canon::Relaxed, std::int64_t t = 1700000000) {
  SignerOptions o;
  o.domain = "example.org";
  o.selector = "s1";
  o.header_canon = hc;
  o.body_canon = bc;
  auto s = Signer::create(o, key);
  EXPECT_TRUE(s) << s.error().message;
  auto f = s->sign_message(msg, t);
  EXPECT_TRUE(f) << f.error().message;
  return *f + msg;
}

// Verifies the first DKIM-Signature of `signed_msg` with `record`.
Verification check(const std::string& signed_msg, const std::string& record, std::int64_t now = 1700000100,
                   Signature* out = nullptr) {
  auto parts = split_message(signed_msg);
  for (const auto& f : parse_header_fields(parts.header)) {
    std::string n(f.name);
    for (auto& c : n) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (n != "dkim-signature") continue;
    auto sig = parse_signature(f.value);
    if (!sig) return {Outcome::PermError, sig.error().message};
    if (out) *out = *sig;
    BodyHasher h(sig->body_canon);
    h.update(parts.body);
    auto digest = h.finish();
    return verify(*sig, parts.header, f, digest, h.canonical_length(), record, now);
  }
  return {Outcome::PermError, "no signature"};
}

std::string replace(std::string s, const std::string& from, const std::string& to) {
  auto p = s.find(from);
  EXPECT_NE(p, std::string::npos) << from;
  if (p != std::string::npos) s.replace(p, from.size(), to);
  return s;
}

}  // namespace

TEST(DkimTagList, ParsesStrictly) {
  auto t = parse_tag_list(" v=1; a = rsa-sha256 ;\r\n\tb=abc\r\n def; ");
  ASSERT_TRUE(t) << t.error().message;
  ASSERT_EQ(t->size(), 3u);
  EXPECT_EQ((*t)[1].name, "a");
  EXPECT_EQ((*t)[1].value, "rsa-sha256");
  EXPECT_EQ((*t)[2].value, "abc\r\n def");
  EXPECT_FALSE(parse_tag_list("v=1;;a=b"));          // empty tag-spec
  EXPECT_FALSE(parse_tag_list("v=1; v=1"));          // duplicate
  EXPECT_FALSE(parse_tag_list("1v=1"));              // name starts with a digit
  EXPECT_FALSE(parse_tag_list("v 1"));               // no '='
  EXPECT_FALSE(parse_tag_list("v=1\r\nb=2"));        // CRLF without WSP is not FWS
  EXPECT_FALSE(parse_tag_list("v=a\x01" "b"));       // control character
  EXPECT_FALSE(parse_tag_list("v=\xc3\xa9"));        // 8-bit
  EXPECT_FALSE(parse_tag_list(""));
  std::string many;
  for (int i = 0; i < 65; ++i) many += "t" + std::to_string(i) + "=x;";
  EXPECT_FALSE(parse_tag_list(many));
}

TEST(DkimBase64, Strict) {
  EXPECT_EQ(*unbase64("aGVsbG8="), "hello");
  EXPECT_EQ(*unbase64("aGVs\r\n bG8="), "hello");
  EXPECT_FALSE(unbase64("aGVsbG8"));    // no padding
  EXPECT_FALSE(unbase64("aG=sbG8="));   // padding inside
  EXPECT_FALSE(unbase64("aGVsbG8*"));
}

TEST(DkimVerify, RoundTripsEveryAlgorithmAndCanonicalization) {
  for (const PrivateKey* key : {&rsa_key(), &ed_key()})
    for (Canon hc : {Canon::Simple, Canon::Relaxed})
      for (Canon bc : {Canon::Simple, Canon::Relaxed}) {
        auto v = check(sign(kMessage, *key, hc, bc), txt_value(*key));
        EXPECT_EQ(v.outcome, Outcome::Pass) << algorithm_name(key->algorithm()) << " " << canon_name(hc) << "/"
                                            << canon_name(bc) << ": " << v.reason;
      }
}

TEST(DkimVerify, TamperingIsDetected) {
  for (const PrivateKey* key : {&rsa_key(), &ed_key()}) {
    const std::string rec = txt_value(*key);
    const std::string m = sign(kMessage, *key);
    auto v = check(replace(m, "Subject: Hello", "Subject: Hallo"), rec);
    EXPECT_EQ(v.outcome, Outcome::Fail);
    EXPECT_EQ(v.reason, "signature did not verify");
    v = check(replace(m, "how are", "who are"), rec);
    EXPECT_EQ(v.outcome, Outcome::Fail);
    EXPECT_EQ(v.reason, "body hash did not verify");
    // A second From: added below the signature (From is oversigned).
    v = check(replace(m, "To: bob", "From: mallory@evil.test\r\nTo: bob"), rec);
    EXPECT_EQ(v.outcome, Outcome::Fail);
    // One character of b= changed.
    std::string bad = m;
    auto b = bad.find(" b=");
    ASSERT_NE(b, std::string::npos);
    bad[b + 5] = bad[b + 5] == 'A' ? 'B' : 'A';
    v = check(bad, rec);
    EXPECT_EQ(v.outcome, Outcome::Fail);
    // Another key.
    v = check(m, txt_value(*generate_key(key == &rsa_key() ? KeyKind::Rsa2048 : KeyKind::Ed25519)));
    EXPECT_EQ(v.outcome, Outcome::Fail);
  }
}

TEST(DkimVerify, RelaxedToleratesWhitespaceSimpleDoesNot) {
  const std::string rec = txt_value(rsa_key());
  auto relaxed = sign(kMessage, rsa_key(), Canon::Relaxed, Canon::Relaxed);
  EXPECT_EQ(check(replace(relaxed, "Subject: Hello   there", "subject:Hello there "), rec).outcome, Outcome::Pass);
  EXPECT_EQ(check(replace(relaxed, "how are  you?", "how are you?  "), rec).outcome, Outcome::Pass);
  auto simple = sign(kMessage, rsa_key(), Canon::Simple, Canon::Simple);
  EXPECT_EQ(check(replace(simple, "Subject: Hello   there", "Subject: Hello there"), rec).outcome, Outcome::Fail);
  EXPECT_EQ(check(replace(simple, "how are  you?", "how are you?"), rec).outcome, Outcome::Fail);
  // Trailing empty lines do not count in either.
  EXPECT_EQ(check(simple + "\r\n\r\n", rec).outcome, Outcome::Pass);
}

TEST(DkimVerify, ExpiryLengthAndKeyMismatch) {
  const std::string rec = txt_value(rsa_key());
  const std::string m = sign(kMessage, rsa_key());
  Signature sig;
  ASSERT_EQ(check(m, rec, 1700000100, &sig).outcome, Outcome::Pass);
  auto parts = split_message(m);
  auto fields = parse_header_fields(parts.header);
  BodyHasher h(sig.body_canon);
  h.update(parts.body);
  auto digest = h.finish();
  const auto len = h.canonical_length();

  Signature s2 = sig;
  s2.expires = 1700000050;
  auto v = verify(s2, parts.header, fields[0], digest, len, rec, 1700000100);
  EXPECT_EQ(v.outcome, Outcome::PermError);
  EXPECT_EQ(v.reason, "signature expired");

  s2 = sig;
  s2.length = len - 5;  // content after the signed length
  EXPECT_EQ(verify(s2, parts.header, fields[0], digest, len, rec, 1700000100).outcome, Outcome::Policy);
  s2.length = len + 5;
  EXPECT_EQ(verify(s2, parts.header, fields[0], digest, len, rec, 1700000100).outcome, Outcome::Fail);

  // An RSA signature against an Ed25519 key record.
  v = verify(sig, parts.header, fields[0], digest, len, txt_value(ed_key()), 1700000100);
  EXPECT_EQ(v.outcome, Outcome::PermError);
}

TEST(DkimSignatureParse, RefusesWhatItMust) {
  const std::string base = "v=1; a=rsa-sha256; d=example.org; s=s1; h=from:to; bh=" +
                           base64(std::string(32, 'x')) + "; b=" + base64(std::string("sig"));
  auto ok = parse_signature(base);
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_EQ(ok->headers, (std::vector<std::string>{"from", "to"}));
  EXPECT_EQ(ok->identity, "@example.org");
  EXPECT_EQ(ok->key_name(), "s1._domainkey.example.org");
  EXPECT_EQ(ok->header_canon, Canon::Simple);

  auto err = [&](const std::string& v) {
    auto s = parse_signature(v);
    return s ? std::string("(parsed)") : s.error().message;
  };
  EXPECT_NE(err(replace(base, "a=rsa-sha256", "a=rsa-sha1")).find("RFC 8301"), std::string::npos);
  EXPECT_NE(err(replace(base, "a=rsa-sha256", "a=foo")).find("unknown algorithm"), std::string::npos);
  EXPECT_NE(err(replace(base, "v=1", "v=2")).find("version"), std::string::npos);
  EXPECT_NE(err(replace(base, "h=from:to", "h=to:subject")).find("From"), std::string::npos);
  EXPECT_NE(err(replace(base, "d=example.org;", "")).find("d="), std::string::npos);
  EXPECT_NE(err(base + "; i=a@other.org").find("i="), std::string::npos);
  EXPECT_TRUE(parse_signature(base + "; i=a@sub.example.org"));
  EXPECT_NE(err(base + "; t=200; x=100").find("x="), std::string::npos);
  EXPECT_NE(err(base + "; c=relaxed/odd").find("canonicalization"), std::string::npos);
  EXPECT_NE(err(base + "; q=http").find("q="), std::string::npos);
  EXPECT_NE(err(replace(base, "bh=", "bh=AAAA")).find("bh="), std::string::npos);
  EXPECT_NE(err(base + "; l=x").find("l="), std::string::npos);
  EXPECT_NE(err(base + "; d=again.org").find("twice"), std::string::npos);
  EXPECT_NE(err(base + std::string(kMaxSignatureField, ' ')).find("longer"), std::string::npos);
  EXPECT_TRUE(parse_signature(base + "; z=unknown|tags; foo=bar"));  // unknown tags are ignored
  auto c = parse_signature(base + "; c=relaxed");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->header_canon, Canon::Relaxed);
  EXPECT_EQ(c->body_canon, Canon::Simple);
}

TEST(DkimKeyRecord, Parses) {
  EXPECT_TRUE(parse_key_record(txt_value(rsa_key())));
  auto ed = parse_key_record(txt_value(ed_key()));
  ASSERT_TRUE(ed);
  EXPECT_EQ(ed->algorithm, Algorithm::Ed25519Sha256);
  // k= defaults to rsa; no v= is fine.
  EXPECT_TRUE(parse_key_record("p=" + rsa_key().public_p()));
  auto err = [](const std::string& r) {
    auto k = parse_key_record(r);
    return k ? std::string("(parsed)") : k.error().message;
  };
  EXPECT_NE(err("v=DKIM1; k=rsa; p=").find("revoked"), std::string::npos);
  EXPECT_NE(err("k=rsa; v=DKIM1; p=" + rsa_key().public_p()).find("first"), std::string::npos);
  EXPECT_NE(err("v=DKIM1; h=sha1; p=" + rsa_key().public_p()).find("sha256"), std::string::npos);
  EXPECT_NE(err("v=DKIM1; k=ed25519; p=" + rsa_key().public_p()).find("32 bytes"), std::string::npos);
  EXPECT_NE(err("v=DKIM1; k=dsa; p=AAAA").find("unknown key type"), std::string::npos);
  EXPECT_NE(err("v=DKIM1; s=web; p=" + rsa_key().public_p()).find("email"), std::string::npos);
  EXPECT_NE(err("v=DKIM1; p=AAAA").find("not a valid"), std::string::npos);
  EXPECT_TRUE(parse_key_record("v=DKIM1; t=y:s; s=email; h=sha1:sha256; p=" + rsa_key().public_p())->strict_identity);
}
