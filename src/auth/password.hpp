// carrier auth: password hashing and verification with crypt(3) (libxcrypt): yescrypt for new
// hashes, constant-time comparison of the result. The password is untrusted input (from
// SMTP AUTH); it is never logged, copied into an error message or returned.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>

#include "base/result.hpp"

namespace carrier::auth {

// Longest password accepted anywhere (hash_password errors, authenticate answers Bad): the
// libxcrypt limit (CRYPT_MAX_PASSPHRASE_SIZE 512 counting the NUL). SASL PLAIN allows at most
// 255 (RFC 4616 2). Note that bcrypt only uses the first 72 octets.
inline constexpr std::size_t kMaxPasswordLength = 511;

// A new yescrypt hash ("$y$...") of password, with a fresh random salt and libxcrypt's default
// cost. Error when the password is empty, holds a NUL, is longer than kMaxPasswordLength, or
// libcrypt fails.
Result<std::string> hash_password(std::string_view password);

enum class Verify { Match, Mismatch, Error };

// crypt_r(password, hash) compared in constant time with hash. Thread-safe (a heap
// struct crypt_data per call, wiped before it is freed). Error: crypt_r failed (bad hash,
// out of memory). Passwords that are empty, hold a NUL or are too long give Mismatch without
// running crypt_r.
Verify verify_password(std::string_view password, const std::string& hash);

// Whether hash is a well-formed crypt(3) string of an accepted method: yescrypt "$y$",
// bcrypt "$2b$" "$2y$" "$2a$", SHA-512-crypt "$6$". Returns "" when accepted, otherwise the
// reason ("hash method not allowed; make one with: carrier passwd", "malformed ... hash").
std::string check_hash(std::string_view hash);

}  // namespace carrier::auth
