// carrier sendmail: RFC 5322 3.4 address lists as found in To:/Cc:/Bcc: header fields and in
// sendmail's recipient arguments: mailboxes with or without display names, angle addresses
// (an obsolete source route "<@a,@b:x@y>" is dropped, RFC 5322 4.4), groups
// ("friends: a@x, b@y;", empty groups such as "undisclosed-recipients:;"), comments (nested,
// RFC 5322 3.2.2), quoted strings and domain literals; empty list elements are skipped
// (obs-addr-list, RFC 5322 4.4). UTF-8 is allowed in words (RFC 6532 3.2). Pure; parses
// UNTRUSTED input with explicit bounds (value length, comment depth, number of addresses);
// never throws.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace carrier::sendmail {

struct AddressListLimits {
  std::size_t max_length = 256 * 1024;  // bytes of the (unfolded) value
  std::size_t max_addresses = 1000;
  int max_comment_depth = 32;
};

// Appends the addr-spec of every mailbox in `value` to `out`, as written ("local@domain",
// the local part quoted if it was; "local" alone when it had no domain — the caller qualifies
// it). CR and LF count as white space (a folded value may be given as is). Returns false with
// *error set when the value is not an address list; `out` is then left as it was.
bool parse_address_list(std::string_view value, std::vector<std::string>& out, std::string* error,
                        const AddressListLimits& limits = {});

}  // namespace carrier::sendmail
