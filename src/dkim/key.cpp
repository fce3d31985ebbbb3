// carrier DKIM keys: PEM loading, generation and the TXT record.
#include "dkim/key.hpp"
#include "dkim/ossl.hpp"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "dkim/canon.hpp"

namespace carrier::dkim {

namespace {

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;

// Never prompt for a pass phrase: an encrypted key is refused.
int no_password(char*, int, int, void* u) {
  *static_cast<bool*>(u) = true;
  return -1;
}

std::string openssl_reason() { return detail::openssl_reason(""); }

std::string labels_error(std::string_view s, std::string_view what) {
  if (s.empty()) return std::string(what) + " is empty";
  if (s.size() > 253) return std::string(what) + " is longer than 253 characters";
  if (s.back() == '.') return std::string(what) + " must not end with a dot";
  std::size_t start = 0;
  while (start <= s.size()) {
    std::size_t dot = s.find('.', start);
    if (dot == std::string_view::npos) dot = s.size();
    std::string_view label = s.substr(start, dot - start);
    if (label.empty()) return std::string(what) + " has an empty label";
    if (label.size() > 63) return std::string(what) + " has a label longer than 63 characters";
    for (char c : label) {
      bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
      if (!ok) {
        const auto u = static_cast<unsigned char>(c);
        std::string shown = c == ' '                ? std::string("a space")
                            : (u >= 0x21 && u < 0x7f) ? "'" + std::string(1, c) + "'"
                                                      : std::string("byte \\x") + "0123456789abcdef"[u >> 4] +
                                                            "0123456789abcdef"[u & 0xf];
        return std::string(what) + " may contain only letters, digits, hyphens and dots (found " + shown + ")";
      }
    }
    if (label.front() == '-' || label.back() == '-')
      return std::string(what) + " has a label that starts or ends with a hyphen";
    start = dot + 1;
  }
  return "";
}

}  // namespace

std::string_view algorithm_name(Algorithm a) {
  return a == Algorithm::Ed25519Sha256 ? "ed25519-sha256" : "rsa-sha256";
}
std::string_view key_type_name(Algorithm a) { return a == Algorithm::Ed25519Sha256 ? "ed25519" : "rsa"; }

Result<PrivateKey> PrivateKey::from_pem(std::string_view pem) {
  ERR_clear_error();
  if (pem.find("-----BEGIN") == std::string_view::npos)
    return Error{"not a PEM private key (no -----BEGIN line)"};
  if (pem.find("BEGIN PUBLIC KEY") != std::string_view::npos && pem.find("PRIVATE KEY") == std::string_view::npos)
    return Error{"this is a public key; signing needs the private key"};
  if (pem.find("BEGIN ENCRYPTED PRIVATE KEY") != std::string_view::npos ||
      pem.find("Proc-Type: 4,ENCRYPTED") != std::string_view::npos)
    return Error{"the private key is encrypted; carrier needs an unencrypted key (mode 0600)"};
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return Error{"out of memory"};
  bool asked = false;
  EVP_PKEY* raw = PEM_read_bio_PrivateKey(bio.get(), nullptr, no_password, &asked);
  if (!raw) {
    if (asked) {
      ERR_clear_error();
      return Error{"the private key is encrypted; carrier needs an unencrypted key (mode 0600)"};
    }
    std::string why = openssl_reason();
    return Error{"not a valid PEM private key" + (why.empty() ? "" : " (" + why + ")")};
  }
  PrivateKey k;
  k.pkey_.reset(raw, EVP_PKEY_free);
  switch (EVP_PKEY_get_base_id(raw)) {
    case EVP_PKEY_RSA: {
      k.alg_ = Algorithm::RsaSha256;
      int bits = EVP_PKEY_get_bits(raw);
      if (bits < 1024)
        return Error{"the RSA key has " + std::to_string(bits) +
                     " bits; DKIM needs at least 1024 (2048 recommended)"};
      break;
    }
    case EVP_PKEY_ED25519:
      k.alg_ = Algorithm::Ed25519Sha256;
      break;
    default: {
      const char* t = EVP_PKEY_get0_type_name(raw);
      return Error{std::string("unsupported key type ") + (t ? t : "?") +
                   "; DKIM signs with RSA or Ed25519 keys"};
    }
  }
  return k;
}

int PrivateKey::bits() const { return EVP_PKEY_get_bits(pkey_.get()); }

std::string PrivateKey::private_pem() const {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PrivateKey(bio.get(), pkey_.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1)
    return "";
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(n));
}

std::string PrivateKey::public_p() const {
  if (alg_ == Algorithm::Ed25519Sha256) {
    unsigned char raw[32];
    std::size_t n = sizeof raw;
    if (EVP_PKEY_get_raw_public_key(pkey_.get(), raw, &n) != 1 || n != 32) return "";
    return base64(std::string_view(reinterpret_cast<char*>(raw), n));
  }
  unsigned char* der = nullptr;
  int n = i2d_PUBKEY(pkey_.get(), &der);
  if (n <= 0) return "";
  std::string out = base64(std::string_view(reinterpret_cast<char*>(der), static_cast<std::size_t>(n)));
  OPENSSL_free(der);
  return out;
}

Result<PrivateKey> generate_key(KeyKind kind) {
  ERR_clear_error();
  EVP_PKEY* raw = kind == KeyKind::Ed25519 ? EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519")
                                           : EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<std::size_t>(2048));
  if (!raw) return Error{"key generation failed: " + openssl_reason()};
  std::string pem;
  {
    PrivateKey tmp;
    tmp.pkey_.reset(raw, EVP_PKEY_free);
    pem = tmp.private_pem();
  }
  // Round trip through PEM so a generated key is exactly what a loaded one is.
  return PrivateKey::from_pem(pem);
}

std::string txt_value(const PrivateKey& key) {
  return "v=DKIM1; k=" + std::string(key_type_name(key.algorithm())) + "; p=" + key.public_p();
}

std::string quoted_chunks(std::string_view value, std::size_t max) {
  std::string out;
  for (std::size_t i = 0; i < value.size() || i == 0; i += max) {
    if (!out.empty()) out.push_back(' ');
    out.push_back('"');
    out.append(value.substr(i, max));  // the value never holds '"' or '\'
    out.push_back('"');
    if (value.empty()) break;
  }
  return out;
}

std::string txt_record(const PrivateKey& key, std::string_view selector, std::string_view domain) {
  return std::string(selector) + "._domainkey." + std::string(domain) + ". IN TXT " +
         quoted_chunks(txt_value(key));
}

Result<GeneratedKey> generate(KeyKind kind, std::string_view selector, std::string_view domain) {
  if (auto e = selector_syntax_error(selector); !e.empty()) return Error{e};
  if (auto e = domain_syntax_error(domain); !e.empty()) return Error{e};
  auto key = generate_key(kind);
  if (!key) return key.error();
  GeneratedKey g{key->private_pem(), txt_record(*key, selector, domain), txt_value(*key)};
  if (g.private_pem.empty() || g.txt_value.size() <= 20) return Error{"could not encode the new key"};
  return g;
}

std::string domain_syntax_error(std::string_view d) { return labels_error(d, "the domain"); }
std::string selector_syntax_error(std::string_view s) { return labels_error(s, "the selector"); }

}  // namespace carrier::dkim
