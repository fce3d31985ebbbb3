// carrier DKIM keys: loading a PEM private key (RSA >= 1024 bits -> rsa-sha256, Ed25519 ->
// ed25519-sha256, RFC 8463), generating one, and the DNS TXT record that publishes its public
// half (RFC 6376 3.6.1). Pure code: the caller reads and writes the files.
#pragma once
#include <openssl/evp.h>

#include <memory>
#include <string>
#include <string_view>

#include "base/result.hpp"

namespace carrier::dkim {

enum class Algorithm { RsaSha256, Ed25519Sha256 };

std::string_view algorithm_name(Algorithm a);  // the a= value: "rsa-sha256" | "ed25519-sha256"
std::string_view key_type_name(Algorithm a);   // the k= value: "rsa" | "ed25519"

enum class KeyKind { Rsa2048, Ed25519 };

class PrivateKey;
Result<PrivateKey> generate_key(KeyKind kind);

class PrivateKey {
 public:
  // A PEM private key: PKCS#8 ("BEGIN PRIVATE KEY") or traditional RSA ("BEGIN RSA PRIVATE
  // KEY"). Refused, with a message saying why: encrypted keys (carrier never prompts), other
  // key types (EC, DSA, RSA-PSS), RSA below 1024 bits, anything that is not a PEM key.
  static Result<PrivateKey> from_pem(std::string_view pem);

  Algorithm algorithm() const { return alg_; }
  int bits() const;                   // RSA modulus size; 256 for Ed25519
  EVP_PKEY* get() const { return pkey_.get(); }
  std::string private_pem() const;    // PKCS#8 PEM
  // The p= value: base64 of the DER SubjectPublicKeyInfo (RSA) or of the raw 32-byte public
  // key (Ed25519, RFC 8463 4.2).
  std::string public_p() const;

 private:
  friend Result<PrivateKey> generate_key(KeyKind kind);
  std::shared_ptr<EVP_PKEY> pkey_;
  Algorithm alg_ = Algorithm::RsaSha256;
};

// "v=DKIM1; k=rsa; p=MIIB..." — the TXT record's data, unsplit.
std::string txt_value(const PrivateKey& key);
// `SELECTOR._domainkey.DOMAIN. IN TXT "chunk" "chunk"` with chunks of at most 255 characters
// (one DNS character-string each; resolvers join them).
std::string txt_record(const PrivateKey& key, std::string_view selector, std::string_view domain);
// The value split into quoted character-strings of at most `max` characters, space-separated.
std::string quoted_chunks(std::string_view value, std::size_t max = 255);

// keygen in one step: checks the selector and domain syntax, makes the key and returns its PEM
// (PKCS#8) and the TXT record (txt_record) to publish.
struct GeneratedKey {
  std::string private_pem;
  std::string txt_record;
  std::string txt_value;  // the record's data unsplit
};
Result<GeneratedKey> generate(KeyKind kind, std::string_view selector, std::string_view domain);

// d= and s= syntax (RFC 6376 3.5, 3.1): dot-separated labels of letters, digits and hyphens
// (not at a label's start or end), labels 1..63 characters, at most 253 in all, no trailing dot.
// Empty when valid, else why not.
std::string domain_syntax_error(std::string_view domain);
std::string selector_syntax_error(std::string_view selector);

}  // namespace carrier::dkim
