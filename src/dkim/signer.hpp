// carrier DKIM signer (RFC 6376 5; RFC 8463 for Ed25519): makes the complete DKIM-Signature
// field for a message from its header section and its body hash. Pure code: no clock (t= is
// given), no files (the key is given). A Signer is immutable and may be shared by threads.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.hpp"
#include "dkim/canon.hpp"
#include "dkim/key.hpp"

namespace carrier::dkim {

// from, to, cc, subject, date, message-id, reply-to, mime-version, content-type,
// content-transfer-encoding, in-reply-to, references
const std::vector<std::string>& default_signed_headers();

struct SignerOptions {
  std::string domain;    // d=
  std::string selector;  // s=
  // Fields to sign (case-insensitive; "from" is added when missing). Each field present in the
  // message is signed as often as it occurs; fields absent from the message are not listed.
  std::vector<std::string> headers = default_signed_headers();
  // Listed once more than they occur, so that a field of that name added later breaks the
  // signature (RFC 6376 8.15, "oversigning").
  std::vector<std::string> oversign = {"from"};
  Canon header_canon = Canon::Relaxed;
  Canon body_canon = Canon::Relaxed;
};

class Signer {
 public:
  // Checks the domain, selector and header names.
  static Result<Signer> create(SignerOptions opts, PrivateKey key);

  Algorithm algorithm() const { return key_.algorithm(); }
  const SignerOptions& options() const { return opts_; }

  // A hasher for the body with this signer's body canonicalization; feed it the body (the
  // bytes after the empty line) and pass finish() to sign().
  BodyHasher body_hasher() const { return BodyHasher(opts_.body_canon); }

  // The complete field "DKIM-Signature: v=1; a=...; ... b=...\r\n", folded (lines of at most
  // 78 characters, continuation lines start with a tab), to put before the message's first
  // field. `header_section`: the message's fields (the empty line after them is optional).
  // Fails when the message has no From: field or OpenSSL cannot sign.
  Result<std::string> sign(std::string_view header_section, const std::array<unsigned char, 32>& body_hash,
                           std::int64_t unix_time) const;

  // The same for a whole message in memory (header section, empty line, body).
  Result<std::string> sign_message(std::string_view message, std::int64_t unix_time) const;

 private:
  Signer(SignerOptions o, PrivateKey k) : opts_(std::move(o)), key_(std::move(k)) {}
  SignerOptions opts_;
  PrivateKey key_;
};

}  // namespace carrier::dkim
