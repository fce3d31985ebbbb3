// carrier auth: crypt(3) hashing/verification (libxcrypt crypt_r, crypt_gensalt_ra,
// crypt_checksalt) and the structural check of the accepted hash formats. The password is
// untrusted input; hashes come from the administrator's password file.
#include "auth/password.hpp"

#include <crypt.h>

#include <cstdlib>
#include <cstring>
#include <memory>

namespace carrier::auth {

static_assert(kMaxPasswordLength < CRYPT_MAX_PASSPHRASE_SIZE);

namespace {

struct CryptDataFree {
  void operator()(crypt_data* d) const {
    explicit_bzero(d, sizeof *d);  // it held the password and intermediate state
    std::free(d);
  }
};
using CryptData = std::unique_ptr<crypt_data, CryptDataFree>;

// Zeroed, as crypt_r requires before first use; nullptr when out of memory.
CryptData new_crypt_data() { return CryptData(static_cast<crypt_data*>(std::calloc(1, sizeof(crypt_data)))); }

bool usable_password(std::string_view p) {
  return !p.empty() && p.size() <= kMaxPasswordLength && p.find('\0') == std::string_view::npos;
}

// Constant-time for equal lengths (the length of a hash of a given method is public).
bool ct_equal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  volatile unsigned char diff = 0;
  for (std::size_t i = 0; i < a.size(); ++i)
    diff = diff | static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

bool is_crypt64(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '/';
}

// Takes a run of crypt64 characters (at least min, at most max) ending at '$' or the end.
bool take_run(std::string_view& s, std::size_t min, std::size_t max, bool dollar_after) {
  std::size_t n = 0;
  while (n < s.size() && is_crypt64(s[n])) ++n;
  if (n < min || n > max) return false;
  s.remove_prefix(n);
  if (dollar_after) {
    if (s.empty() || s.front() != '$') return false;
    s.remove_prefix(1);
  }
  return true;
}

bool well_formed_sha512(std::string_view s) {  // after "$6$"
  if (s.starts_with("rounds=")) {
    s.remove_prefix(7);
    std::size_t n = 0;
    while (n < s.size() && s[n] >= '0' && s[n] <= '9') ++n;
    if (n == 0 || n > 10 || n == s.size() || s[n] != '$') return false;
    s.remove_prefix(n + 1);
  }
  return take_run(s, 1, 16, true) && take_run(s, 86, 86, false) && s.empty();
}

bool well_formed_bcrypt(std::string_view s) {  // after "$2b$"
  if (s.size() != 2 + 1 + 53 || s[0] < '0' || s[0] > '3' || s[1] < '0' || s[1] > '9' || s[2] != '$')
    return false;
  const int cost = (s[0] - '0') * 10 + (s[1] - '0');
  if (cost < 4 || cost > 31) return false;
  s.remove_prefix(3);
  return take_run(s, 53, 53, false) && s.empty();
}

bool well_formed_yescrypt(std::string_view s) {  // after "$y$": params$salt$hash
  return take_run(s, 1, 64, true) && take_run(s, 1, 86, true) && take_run(s, 43, 43, false) &&
         s.empty();
}

}  // namespace

std::string check_hash(std::string_view hash) {
  const char* method = nullptr;
  bool ok = false;
  if (hash.starts_with("$y$")) {
    method = "yescrypt";
    ok = well_formed_yescrypt(hash.substr(3));
  } else if (hash.starts_with("$2b$") || hash.starts_with("$2y$") || hash.starts_with("$2a$")) {
    method = "bcrypt";
    ok = well_formed_bcrypt(hash.substr(4));
  } else if (hash.starts_with("$6$")) {
    method = "SHA-512-crypt";
    ok = well_formed_sha512(hash.substr(3));
  } else {
    return "hash method not allowed; make one with: carrier passwd";
  }
  // The structural check above only lets crypt64 characters and '$' through, so hash holds
  // no NUL and can be passed to libcrypt as a C string.
  if (ok) ok = crypt_checksalt(std::string(hash).c_str()) == CRYPT_SALT_OK;
  if (!ok) return std::string("malformed ") + method + " hash";
  return {};
}

Result<std::string> hash_password(std::string_view password) {
  if (password.empty()) return Error{"empty password"};
  if (password.size() > kMaxPasswordLength)
    return Error{"password longer than " + std::to_string(kMaxPasswordLength) + " octets"};
  if (password.find('\0') != std::string_view::npos) return Error{"password contains a NUL"};
  std::unique_ptr<char, decltype(&std::free)> salt(crypt_gensalt_ra("$y$", 0, nullptr, 0), &std::free);
  if (!salt) return sys_error("crypt_gensalt_ra($y$)");
  CryptData data = new_crypt_data();
  if (!data) return Error{"out of memory"};
  const std::string pw(password);
  errno = 0;
  const char* out = crypt_r(pw.c_str(), salt.get(), data.get());
  if (out == nullptr || out[0] == '*') return sys_error("crypt_r");
  return std::string(out);
}

Verify verify_password(std::string_view password, const std::string& hash) {
  if (!usable_password(password)) return Verify::Mismatch;
  CryptData data = new_crypt_data();
  if (!data) return Verify::Error;
  std::string pw(password);
  const char* out = crypt_r(pw.c_str(), hash.c_str(), data.get());
  explicit_bzero(pw.data(), pw.size());
  if (out == nullptr || out[0] == '*') return Verify::Error;
  return ct_equal(out, hash) ? Verify::Match : Verify::Mismatch;
}

}  // namespace carrier::auth
