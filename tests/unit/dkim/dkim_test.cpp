// carrier DKIM: canonicalization (RFC 6376 3.4, with the examples of 3.4.5), the streaming body
// hash, the DKIM-Signature field, sign + verify round trips (verified here with OpenSSL
// EVP_DigestVerify and the public key taken from the TXT record), keys and their errors.
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <map>
#include <sstream>

#include "dkim/canon.hpp"
#include "dkim/key.hpp"
#include "dkim/signer.hpp"

using namespace carrier::dkim;

namespace {

// RFC 6376 3.4.5.
const std::string kRfcMessage =
    "A: X\r\n"
    "B : Y\t\r\n"
    "\tZ  \r\n"
    "\r\n"
    " C \r\n"
    "D \t E\r\n"
    "\r\n"
    "\r\n";

std::string canon_headers(std::string_view header, Canon c) {
  std::string out;
  for (const auto& f : parse_header_fields(header)) out += canonicalize_header(f, c);
  return out;
}

std::string unbase64(std::string_view s) {
  std::string clean;
  for (char c : s)
    if (c != ' ' && c != '\t' && c != '\r' && c != '\n') clean.push_back(c);
  std::string out(clean.size(), '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(clean.data()), static_cast<int>(clean.size()));
  if (n < 0) return "";
  std::size_t len = static_cast<std::size_t>(n);
  if (clean.size() >= 1 && clean.back() == '=') --len;
  if (clean.size() >= 2 && clean[clean.size() - 2] == '=') --len;
  out.resize(len);
  return out;
}

std::string trim_all_wsp(std::string_view s) {
  std::string out;
  for (char c : s)
    if (c != ' ' && c != '\t' && c != '\r' && c != '\n') out.push_back(c);
  return out;
}

std::map<std::string, std::string> tags(std::string_view value) {
  std::map<std::string, std::string> t;
  std::string v(value);
  std::stringstream ss(v);
  std::string item;
  while (std::getline(ss, item, ';')) {
    auto eq = item.find('=');
    if (eq == std::string::npos) continue;
    t[trim_all_wsp(item.substr(0, eq))] = trim_all_wsp(item.substr(eq + 1));
  }
  return t;
}

// The public key from a TXT record's p= (as a verifier builds it).
EVP_PKEY* public_from_txt(const std::string& txt) {
  auto t = tags(txt);
  std::string p = unbase64(t["p"]);
  if (t["k"] == "ed25519")
    return EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr,
                                       reinterpret_cast<const unsigned char*>(p.data()), p.size());
  const unsigned char* d = reinterpret_cast<const unsigned char*>(p.data());
  return d2i_PUBKEY(nullptr, &d, static_cast<long>(p.size()));
}

// A small verifier written from RFC 6376 6.1.3, independent of the signer.
bool verify(const std::string& signed_message, const std::string& txt) {
  auto parts = split_message(signed_message);
  auto fields = parse_header_fields(parts.header);
  if (fields.empty() || fields[0].name != "DKIM-Signature") return false;
  auto t = tags(fields[0].value);
  const std::string c_tag = t["c"];
  const Canon hc = c_tag.starts_with("relaxed") ? Canon::Relaxed : Canon::Simple;
  const Canon bc = c_tag.ends_with("/relaxed") ? Canon::Relaxed : Canon::Simple;
  if (base64(body_hash(parts.body, bc)) != t["bh"]) return false;
  std::vector<std::string> h;
  {
    std::stringstream ss(t["h"]);
    std::string n;
    while (std::getline(ss, n, ':')) h.push_back(n);
  }
  std::string data;
  std::map<std::string, int> used;
  for (const auto& name : h) {
    int skip = used[name]++;
    for (auto it = fields.rbegin(); it != fields.rend() - 1; ++it) {
      std::string ln(it->name);
      for (auto& c : ln) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (ln != name) continue;
      if (skip-- == 0) {
        data += canonicalize_header(*it, hc);
        break;
      }
    }
  }
  std::string v(fields[0].value);
  auto b = v.find("b=", v.find("bh=") + 3);
  while (b != std::string::npos && b > 0 && v[b - 1] != ';' && v[b - 1] != ' ' && v[b - 1] != '\t')
    b = v.find("b=", b + 1);
  if (b == std::string::npos) return false;
  auto end = v.find(';', b);
  std::string stripped = v.substr(0, b + 2) + (end == std::string::npos ? "" : v.substr(end));
  std::string c = canonicalize_header(fields[0].name, stripped, hc == Canon::Relaxed);
  data += c.substr(0, c.size() - 2);
  std::string sig = unbase64(t["b"]);

  EVP_PKEY* pub = public_from_txt(txt);
  if (!pub) return false;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  bool ok;
  if (t["a"] == "ed25519-sha256") {
    unsigned char d[32];
    unsigned n = 0;
    EVP_Digest(data.data(), data.size(), d, &n, EVP_sha256(), nullptr);
    ok = EVP_DigestVerifyInit(ctx, nullptr, nullptr, nullptr, pub) == 1 &&
         EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char*>(sig.data()), sig.size(), d, n) == 1;
  } else {
    ok = t["a"] == "rsa-sha256" && EVP_DigestVerifyInit(ctx, nullptr, EVP_sha256(), nullptr, pub) == 1 &&
         EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                          reinterpret_cast<const unsigned char*>(data.data()), data.size()) == 1;
  }
  EVP_MD_CTX_free(ctx);
  EVP_PKEY_free(pub);
  return ok;
}

const std::string kMessage =
    "From: Alice <alice@example.com>\r\n"
    "To: bob@example.org,\r\n"
    "    carol@example.org\r\n"
    "Subject:   Hello    there  \r\n"
    "Date: Mon, 1 Jan 2024 10:00:00 +0000\r\n"
    "Message-ID: <1@example.com>\r\n"
    "X-Not-Signed: yes\r\n"
    "\r\n"
    "Hi Bob,  \r\n"
    "\r\n"
    "  this line has WSP  \t \r\n"
    "\r\n"
    "\r\n";

Signer make_signer(const PrivateKey& key) {
  SignerOptions o;
  o.domain = "example.com";
  o.selector = "sel2024";
  auto s = Signer::create(o, key);
  EXPECT_TRUE(s.ok()) << (s.ok() ? "" : s.error().message);
  return std::move(s).value();
}

const PrivateKey& rsa_key() {
  static PrivateKey k = generate_key(KeyKind::Rsa2048).value();
  return k;
}
const PrivateKey& ed_key() {
  static PrivateKey k = generate_key(KeyKind::Ed25519).value();
  return k;
}

std::string pem_of(EVP_PKEY* k, const EVP_CIPHER* cipher = nullptr) {
  BIO* bio = BIO_new(BIO_s_mem());
  unsigned char pass[] = "secret";
  PEM_write_bio_PrivateKey(bio, k, cipher, cipher ? pass : nullptr, cipher ? 6 : 0, nullptr, nullptr);
  char* d = nullptr;
  long n = BIO_get_mem_data(bio, &d);
  std::string out(d, static_cast<std::size_t>(n));
  BIO_free(bio);
  return out;
}

}  // namespace

// ---- canonicalization --------------------------------------------------------------------

TEST(DkimCanon, Rfc6376Example345Relaxed) {
  auto p = split_message(kRfcMessage);
  EXPECT_EQ(canon_headers(p.header, Canon::Relaxed), "a:X\r\nb:Y Z\r\n");
  EXPECT_EQ(canonicalize_body(p.body, Canon::Relaxed), " C\r\nD E\r\n");
}

TEST(DkimCanon, Rfc6376Example345Simple) {
  auto p = split_message(kRfcMessage);
  EXPECT_EQ(canon_headers(p.header, Canon::Simple), "A: X\r\nB : Y\t\r\n\tZ  \r\n");
  EXPECT_EQ(canonicalize_body(p.body, Canon::Simple), " C \r\nD \t E\r\n");
}

TEST(DkimCanon, RelaxedHeaderDetails) {
  EXPECT_EQ(canonicalize_header("SUBJect", "  a \t b\r\n\t c  ", true), "subject:a b c\r\n");
  EXPECT_EQ(canonicalize_header("Subject \t", " x", true), "subject:x\r\n");
  EXPECT_EQ(canonicalize_header("X-Empty", "   ", true), "x-empty:\r\n");
  EXPECT_EQ(canonicalize_header("X-Empty", "", false), "X-Empty:\r\n");
}

TEST(DkimCanon, EmptyBodyHashesAreTheKnownValues) {
  // SHA-256 of "\r\n" (simple) and of "" (relaxed): the values every DKIM implementation has.
  EXPECT_EQ(base64(body_hash("", Canon::Simple)), "frcCV1k9oG9oKj3dpUqdJg1PxRT2RSN/XKdLCPjaYaY=");
  EXPECT_EQ(base64(body_hash("", Canon::Relaxed)), "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
  // Only empty lines (and, relaxed, lines of WSP) are an empty body too.
  EXPECT_EQ(base64(body_hash("\r\n\r\n\r\n", Canon::Simple)), "frcCV1k9oG9oKj3dpUqdJg1PxRT2RSN/XKdLCPjaYaY=");
  EXPECT_EQ(base64(body_hash("\r\n \t\r\n  \r\n", Canon::Relaxed)), "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
  EXPECT_NE(base64(body_hash(" \r\n", Canon::Simple)), "frcCV1k9oG9oKj3dpUqdJg1PxRT2RSN/XKdLCPjaYaY=");
}

TEST(DkimCanon, BodyEdgeCases) {
  EXPECT_EQ(canonicalize_body("abc", Canon::Simple), "abc\r\n");
  EXPECT_EQ(canonicalize_body("abc  ", Canon::Relaxed), "abc\r\n");
  EXPECT_EQ(canonicalize_body("a\r\n\r\nb\r\n\r\n", Canon::Simple), "a\r\n\r\nb\r\n");
  EXPECT_EQ(canonicalize_body("a\r\n \r\nb", Canon::Relaxed), "a\r\n\r\nb\r\n");
  EXPECT_EQ(canonicalize_body("a\rb\nc\r\n", Canon::Relaxed), "a\rb\nc\r\n");  // bare CR/LF: content
  EXPECT_EQ(canonicalize_body("x\r", Canon::Simple), "x\r\r\n");
  EXPECT_EQ(canonicalize_body("\t lead\r\n", Canon::Relaxed), " lead\r\n");
}

TEST(DkimCanon, StreamingEqualsOneShotForEveryChunkSize) {
  std::string body;
  for (int i = 0; i < 300; ++i) {
    body += (i % 7 == 0) ? "\r\n" : (i % 5 == 0) ? " \t \r\n" : "line " + std::to_string(i) + "  with\t\tWSP \r\n";
    if (i % 11 == 0) body += "\r";
  }
  body += "\r\n\r\n \r\n";
  for (Canon c : {Canon::Simple, Canon::Relaxed}) {
    const std::string whole = canonicalize_body(body, c);
    const auto digest = body_hash(body, c);
    for (std::size_t step : {1u, 2u, 3u, 7u, 64u, 4096u}) {
      std::string out;
      BodyCanonicalizer bc(c, [&](std::string_view s) { out.append(s); });
      BodyHasher h(c);
      for (std::size_t i = 0; i < body.size(); i += step) {
        bc.feed(std::string_view(body).substr(i, step));
        h.update(std::string_view(body).substr(i, step));
      }
      bc.finish();
      EXPECT_EQ(out, whole) << "step " << step;
      EXPECT_EQ(h.finish(), digest) << "step " << step;
      EXPECT_EQ(h.canonical_length(), whole.size());  // complete once finish() flushed
    }
  }
}

TEST(DkimCanon, LargeBodyStreams) {
  BodyHasher h(Canon::Relaxed);
  std::string chunk(65536, 'x');
  for (std::size_t i = 0; i < chunk.size(); i += 80) chunk[i] = '\n', chunk[i - (i ? 1 : 0)] = i ? '\r' : 'x';
  for (int i = 0; i < 64; ++i) h.update(chunk);  // 4 MiB
  auto d = h.finish();
  EXPECT_GT(h.canonical_length(), 4000000u);
  EXPECT_EQ(base64(d).size(), 44u);
}

TEST(DkimCanon, HeaderParsing) {
  auto f = parse_header_fields("A: 1\r\nB: 2\r\n  cont\r\n\r\nBody: no\r\n");
  ASSERT_EQ(f.size(), 2u);
  EXPECT_EQ(f[0].name, "A");
  EXPECT_EQ(f[0].value, " 1");
  EXPECT_EQ(f[1].value, " 2\r\n  cont");
  auto p = split_message("A: 1\r\n\r\nbody");
  EXPECT_EQ(p.header, "A: 1\r\n");
  EXPECT_EQ(p.body, "body");
  EXPECT_EQ(split_message("A: 1\r\n").body, "");
}

// ---- signing -----------------------------------------------------------------------------

TEST(DkimSign, FieldShape) {
  auto s = make_signer(rsa_key());
  auto r = s.sign_message(kMessage, 1700000000);
  ASSERT_TRUE(r.ok()) << r.error().message;
  const std::string& f = *r;
  EXPECT_TRUE(f.starts_with("DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.com;")) << f;
  EXPECT_TRUE(f.ends_with("\r\n"));
  // Folded: every line at most 78 characters, continuation lines start with a tab.
  std::size_t start = 0, lines = 0;
  while (start < f.size()) {
    std::size_t e = f.find("\r\n", start);
    ASSERT_NE(e, std::string::npos);
    EXPECT_LE(e - start, 78u) << f;
    if (lines++ > 0) {
      EXPECT_EQ(f[start], '\t') << f;
    }
    start = e + 2;
  }
  EXPECT_GT(lines, 3u);
  auto fields = parse_header_fields(f);
  ASSERT_EQ(fields.size(), 1u);
  auto t = tags(fields[0].value);
  EXPECT_EQ(t["s"], "sel2024");
  EXPECT_EQ(t["t"], "1700000000");
  // Listed fields present in the message, From oversigned; absent ones not listed.
  EXPECT_EQ(t["h"], "from:from:to:subject:date:message-id");
  auto p = split_message(kMessage);
  EXPECT_EQ(t["bh"], base64(body_hash(p.body, Canon::Relaxed)));
  EXPECT_EQ(unbase64(t["b"]).size(), 256u);  // RSA 2048
  EXPECT_EQ(t.size(), 9u);                    // v a c d s t h bh b
}

TEST(DkimSign, RsaRoundTrip) {
  auto s = make_signer(rsa_key());
  auto r = s.sign_message(kMessage, 1700000000);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(verify(*r + kMessage, txt_value(rsa_key())));
  // Changes the signature covers break it.
  std::string body_changed = *r + kMessage;
  body_changed.replace(body_changed.find("Hi Bob"), 6, "Hi Rob");
  EXPECT_FALSE(verify(body_changed, txt_value(rsa_key())));
  std::string subject_changed = *r + kMessage;
  subject_changed.replace(subject_changed.find("Hello"), 5, "Howdy");
  EXPECT_FALSE(verify(subject_changed, txt_value(rsa_key())));
  // An added From: (oversigned) breaks it.
  std::string from_added = *r + "From: mallory@example.net\r\n" + kMessage;
  EXPECT_FALSE(verify(from_added, txt_value(rsa_key())));
  // Changes relaxed canonicalization ignores do not: refolding, WSP, an unsigned field.
  std::string refolded = *r + kMessage;
  refolded.replace(refolded.find("Subject:   Hello"), 16, "Subject: Hello");
  refolded.replace(refolded.find("X-Not-Signed: yes"), 17, "X-Not-Signed: no");
  EXPECT_TRUE(verify(refolded, txt_value(rsa_key())));
  // Another key does not verify it.
  auto other = generate_key(KeyKind::Rsa2048);
  ASSERT_TRUE(other.ok());
  EXPECT_FALSE(verify(*r + kMessage, txt_value(*other)));
}

TEST(DkimSign, Ed25519RoundTrip) {
  auto s = make_signer(ed_key());
  EXPECT_EQ(s.algorithm(), Algorithm::Ed25519Sha256);
  auto r = s.sign_message(kMessage, 42);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_NE(r->find("a=ed25519-sha256;"), std::string::npos);
  auto t = tags(parse_header_fields(*r)[0].value);
  EXPECT_EQ(unbase64(t["b"]).size(), 64u);
  EXPECT_TRUE(verify(*r + kMessage, txt_value(ed_key())));
  std::string changed = *r + kMessage;
  changed.replace(changed.find("Date: Mon"), 9, "Date: Tue");
  EXPECT_FALSE(verify(changed, txt_value(ed_key())));
}

TEST(DkimSign, StreamedBodyHashGivesTheSameSignature) {
  // Ed25519 signatures are deterministic: the streamed path must sign the same bytes.
  auto s = make_signer(ed_key());
  auto p = split_message(kMessage);
  auto h = s.body_hasher();
  for (char c : p.body) h.update(std::string_view(&c, 1));
  auto streamed = s.sign(p.header, h.finish(), 7);
  auto whole = s.sign_message(kMessage, 7);
  ASSERT_TRUE(streamed.ok() && whole.ok());
  EXPECT_EQ(*streamed, *whole);
}

TEST(DkimSign, SimpleCanonicalization) {
  SignerOptions o;
  o.domain = "example.com";
  o.selector = "s";
  o.header_canon = Canon::Simple;
  o.body_canon = Canon::Simple;
  auto s = Signer::create(o, rsa_key());
  ASSERT_TRUE(s.ok());
  auto r = s->sign_message(kMessage, 5);
  ASSERT_TRUE(r.ok());
  EXPECT_NE(r->find("c=simple/simple;"), std::string::npos);
  EXPECT_TRUE(verify(*r + kMessage, txt_value(rsa_key())));
  // simple: whitespace changes break it.
  std::string refolded = *r + kMessage;
  refolded.replace(refolded.find("Subject:   Hello"), 16, "Subject: Hello");
  EXPECT_FALSE(verify(refolded, txt_value(rsa_key())));
}

TEST(DkimSign, RepeatedFieldsAreSignedEachTime) {
  auto s = make_signer(ed_key());
  std::string m = "From: a@example.com\r\nTo: b@example.org\r\nTo: c@example.org\r\nCc: d@example.org\r\n\r\nx\r\n";
  auto r = s.sign_message(m, 1);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(tags(parse_header_fields(*r)[0].value)["h"], "from:from:to:to:cc");
  EXPECT_TRUE(verify(*r + m, txt_value(ed_key())));
}

TEST(DkimSign, CustomHeadersAndNoFrom) {
  SignerOptions o;
  o.domain = "example.com";
  o.selector = "s";
  o.headers = {"Subject", "subject", "X-Custom"};
  auto s = Signer::create(o, ed_key());
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->options().headers, (std::vector<std::string>{"from", "subject", "x-custom"}));
  auto r = s->sign_message("Subject: a\r\nX-Custom: b\r\n\r\n", 1);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("no From"), std::string::npos);
  o.headers = {"bad name"};
  EXPECT_FALSE(Signer::create(o, ed_key()).ok());
  o.headers = {"dkim-signature"};
  EXPECT_FALSE(Signer::create(o, ed_key()).ok());
}

TEST(DkimSign, DomainAndSelectorSyntax) {
  EXPECT_EQ(domain_syntax_error("example.com"), "");
  EXPECT_EQ(domain_syntax_error("mail-1.EXAMPLE.co.uk"), "");
  EXPECT_EQ(selector_syntax_error("2024a.brisbane"), "");
  EXPECT_NE(domain_syntax_error(""), "");
  EXPECT_NE(domain_syntax_error("example.com."), "");
  EXPECT_NE(domain_syntax_error("exa mple.com"), "");
  EXPECT_NE(domain_syntax_error("-x.com"), "");
  EXPECT_NE(domain_syntax_error("a..com"), "");
  EXPECT_NE(domain_syntax_error(std::string(64, 'a') + ".com"), "");
  EXPECT_NE(selector_syntax_error("sel;x"), "");
  EXPECT_NE(selector_syntax_error("s_1"), "");
  SignerOptions o;
  o.domain = "bad domain";
  o.selector = "s";
  auto s = Signer::create(o, ed_key());
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("domain"), std::string::npos);
}

// ---- keys --------------------------------------------------------------------------------

TEST(DkimKey, PemRoundTripAndTxtRecord) {
  for (const PrivateKey* k : {&rsa_key(), &ed_key()}) {
    auto again = PrivateKey::from_pem(k->private_pem());
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(again->public_p(), k->public_p());
    EXPECT_TRUE(k->private_pem().starts_with("-----BEGIN PRIVATE KEY-----\n"));
  }
  EXPECT_EQ(rsa_key().bits(), 2048);
  EXPECT_EQ(unbase64(ed_key().public_p()).size(), 32u);
  EXPECT_TRUE(txt_value(ed_key()).starts_with("v=DKIM1; k=ed25519; p="));
  EXPECT_TRUE(txt_value(rsa_key()).starts_with("v=DKIM1; k=rsa; p=MIIB"));

  const std::string rec = txt_record(rsa_key(), "sel", "example.com");
  const std::string prefix = "sel._domainkey.example.com. IN TXT ";
  ASSERT_TRUE(rec.starts_with(prefix)) << rec;
  // Quoted chunks of at most 255 characters that join to the value.
  std::string joined, rest = rec.substr(prefix.size());
  int chunks = 0;
  while (!rest.empty()) {
    ASSERT_EQ(rest[0], '"');
    auto close = rest.find('"', 1);
    ASSERT_NE(close, std::string::npos);
    EXPECT_LE(close - 1, 255u);
    joined += rest.substr(1, close - 1);
    ++chunks;
    rest = rest.substr(close + 1);
    if (!rest.empty() && rest[0] == ' ') rest = rest.substr(1);
  }
  EXPECT_EQ(chunks, 2);
  EXPECT_EQ(joined, txt_value(rsa_key()));
  EXPECT_EQ(quoted_chunks("abc", 2), "\"ab\" \"c\"");
  EXPECT_EQ(quoted_chunks(""), "\"\"");
}

TEST(DkimKey, GenerateChecksNames) {
  auto g = generate(KeyKind::Ed25519, "sel", "example.com");
  ASSERT_TRUE(g.ok());
  EXPECT_TRUE(g->txt_record.starts_with("sel._domainkey.example.com. IN TXT \"v=DKIM1; k=ed25519; p="));
  EXPECT_FALSE(generate(KeyKind::Ed25519, "sel", "bad_domain").ok());
  EXPECT_FALSE(generate(KeyKind::Ed25519, "", "example.com").ok());
}

TEST(DkimKey, BadKeysSayWhy) {
  auto msg = [](std::string_view pem) {
    auto r = PrivateKey::from_pem(pem);
    return r.ok() ? std::string("ok") : r.error().message;
  };
  EXPECT_NE(msg("hello").find("not a PEM"), std::string::npos);
  EXPECT_NE(msg("").find("not a PEM"), std::string::npos);
  EXPECT_NE(msg("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").find("not a valid PEM"),
            std::string::npos);
  // A truncated key.
  std::string pem = rsa_key().private_pem();
  EXPECT_NE(msg(pem.substr(0, pem.size() / 2)), "ok");

  EVP_PKEY* ec = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
  ASSERT_NE(ec, nullptr);
  EXPECT_NE(msg(pem_of(ec)).find("unsupported key type EC"), std::string::npos) << msg(pem_of(ec));
  EVP_PKEY_free(ec);

  EVP_PKEY* small = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<std::size_t>(512));
  ASSERT_NE(small, nullptr);
  EXPECT_NE(msg(pem_of(small)).find("512 bits"), std::string::npos) << msg(pem_of(small));
  // Encrypted: refused, never a pass phrase prompt.
  EXPECT_NE(msg(pem_of(small, EVP_aes_128_cbc())).find("encrypted"), std::string::npos);
  // A public key.
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PUBKEY(bio, rsa_key().get());
  char* d = nullptr;
  long n = BIO_get_mem_data(bio, &d);
  EXPECT_NE(msg(std::string(d, static_cast<std::size_t>(n))).find("public key"), std::string::npos);
  BIO_free(bio);
  EVP_PKEY_free(small);
}
