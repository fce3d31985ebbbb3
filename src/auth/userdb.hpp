// carrier auth: the submission password file ([auth] password_file) and the sender rules of
// authenticated users. File format (one user per line, '#' comments and blank lines ignored):
//   user:hash            user:hash:sender1,sender2
// hash: crypt(3) string of an accepted method (see auth/password.hpp check_hash).
// senders: comma-separated patterns: "local@domain" (that address), "@domain" or "*@domain"
// (any local part in that domain), "*" (anything). No senders field: the user name itself
// when it is an address. The file is trusted (administrator's); user names and passwords given
// to authenticate() and senders given to sender_allowed() are UNTRUSTED (from SMTP AUTH / MAIL).
#pragma once
#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/result.hpp"
#include "proto/address.hpp"

namespace carrier::auth {

// Limits of the password file.
inline constexpr std::size_t kMaxUserName = 255;                  // octets
inline constexpr std::size_t kMaxLine = 8192;                     // octets per line
inline constexpr std::size_t kMaxFileSize = 16 * 1024 * 1024;     // octets (load)
inline constexpr std::size_t kMaxReportedErrors = 100;            // error lines in one Error

struct AuthResult {
  enum Verdict { Ok, Bad, TempFail } verdict = Bad;
  std::string user;                  // Ok: the user name as stored (domain part lower case)
  std::vector<std::string> senders;  // Ok: normalized patterns: "*", "@domain", "local@domain"
                                     //   (local part unquoted, domain lower case)
  std::string error;                 // Bad/TempFail: reason for the log (never the password)
};

// Immutable after parse/load; const member functions are safe to call from many threads.
class UserDb {
 public:
  UserDb() = default;  // no users

  // Parses the file text. source_name prefixes every error: "SOURCE:LINE: message"; all bad
  // lines are reported (up to kMaxReportedErrors), one per line of Error::message.
  static Result<UserDb> parse(std::string_view text, std::string_view source_name);
  // Reads and parses file (at most kMaxFileSize octets); errors name the file.
  static Result<UserDb> load(const std::filesystem::path& file);

  std::size_t size() const { return users_.size(); }

  // Verifies user/password with crypt_r(3). Unknown users still cost one crypt_r (against a
  // fixed yescrypt hash) so the time taken does not tell whether the user exists.
  // User names with '@' are looked up with the domain part compared case-insensitively; the
  // local part (and names without '@') are compared exactly.
  // Bad: unknown user, wrong password, empty password, password over kMaxPasswordLength
  // octets or holding a NUL. TempFail: crypt_r failed (out of memory).
  AuthResult authenticate(std::string_view user, std::string_view password) const;

 private:
  struct Entry {
    std::string hash;
    std::vector<std::string> senders;
  };
  std::unordered_map<std::string, Entry> users_;  // key: normalized user name
};

// User name as stored and looked up: the part after the last '@', if any, in lower case
// (proto::normalize_domain); everything else unchanged.
std::string normalize_user(std::string_view user);

// Whether an authenticated user may use sender as MAIL FROM. False unless u.verdict == Ok.
// The null reverse-path (empty Mailbox, "<>") is always allowed. Address patterns match with
// the domain compared case-insensitively and the local part (unquoted) compared ASCII
// case-insensitively as well, as Postfix does for smtpd_sender_login_maps: mailboxes that
// differ only in case are almost never different people, and an exact local part would make
// users fail on "Alice@" vs "alice@" for no security gain.
bool sender_allowed(const AuthResult& u, const proto::Mailbox& sender);
// Same, with the normalized patterns of AuthResult::senders.
bool sender_allowed(const std::vector<std::string>& patterns, const proto::Mailbox& sender);

}  // namespace carrier::auth
