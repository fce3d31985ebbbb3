// carrier dkim: small OpenSSL helpers shared by the key, signer, verifier and body hasher
// (internal to src/dkim).
#pragma once
#include <openssl/err.h>
#include <openssl/evp.h>

#include <memory>
#include <string>

namespace carrier::dkim::detail {

// The reason of OpenSSL's last error, clearing its error queue; `none` when there is none.
inline std::string openssl_reason(const char* none = "unknown error") {
  const unsigned long e = ERR_peek_last_error();
  ERR_clear_error();
  const char* r = e ? ERR_reason_error_string(e) : nullptr;
  return r ? r : none;
}

struct MdCtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, MdCtxFree>;

}  // namespace carrier::dkim::detail
