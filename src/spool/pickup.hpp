// carrier spool/pickup: the drop directory where `carrier sendmail` leaves messages for the
// daemon (DATA_DIR/pickup), whether the daemon runs or not; the daemon imports them into the
// spool and then removes them. Nothing is lost: a file appears under its final name only when
// it is complete and durable.
//
// Layout:
//   pickup/NAME          complete messages, NAME = "<16-digit unix µs>.<pid>.<8 hex>" (so
//                        names sort oldest first)
//   pickup/tmp/NAME      being written (left over only after a crash; clean_tmp removes them)
//   pickup/corrupt/NAME  files that failed to parse (moved there, never deleted)
// Directories are created mode 0700 when missing (an existing directory keeps its mode: to let
// other local users submit, the operator makes pickup/ and pickup/tmp/ writable for them;
// read() reports the file owner's uid, which they cannot forge).
//
// File format (all header lines end in LF, at most kMaxLine bytes each):
//   CARRIER-PICKUP 1
//   uid <decimal>                  the submitting user's uid as declared by the writer
//   sender <local@domain>          "sender " (empty) for the null reverse-path <>
//   rcpt <local@domain>            1 .. max_recipients lines
//   size <20 decimal digits>       content bytes that follow
//   <empty line>
//   <content>                      the message, CRLF line ends (ready for the spool)
//
// Durability of write(): pickup/tmp/NAME (O_EXCL, 0600) written, fsync'd, renamed (never
// replacing) to pickup/NAME, pickup/ fsync'd. Content given with LF or CRLF line ends is stored
// with CRLF (a bare LF becomes CRLF, a bare CR is kept, a last line without a line end gets one).
// Bounds: recipients (1000), header lines (kMaxLine), content size (50 MiB by default).
// read() handles files from the disk as UNTRUSTED input: strict parse, bounded reads; a file
// that fails to parse is moved to corrupt/ and reported with sys_errno = EBADMSG.
#pragma once
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <istream>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.hpp"
#include "proto/address.hpp"

namespace carrier::spool {

struct PickupOptions {
  std::filesystem::path dir;                   // DATA_DIR/pickup
  std::uint64_t max_size = 50ull * 1024 * 1024;  // content bytes
  std::size_t max_recipients = 1000;
  bool fsync = true;                           // false only in tests
};

struct PickupMessage {
  std::string name;                        // file name in pickup/
  proto::Mailbox sender;                   // empty: null reverse-path
  std::vector<proto::Mailbox> recipients;  // at least one
  uid_t uid = 0;                           // as declared in the file
  uid_t owner_uid = 0;                     // owner of the file (trustworthy)
  std::int64_t mtime_ms = 0;               // when it was written (Unix ms)
  std::string content;                     // CRLF line ends
};

class Pickup;

// Streams one message into pickup/tmp/. Destroying it without commit() removes the file.
class PickupWriter {
 public:
  PickupWriter(PickupWriter&&) noexcept;
  PickupWriter& operator=(PickupWriter&&) noexcept;
  ~PickupWriter();
  // Appends content (LF or CRLF line ends; stored as CRLF). Error EFBIG past max_size.
  Result<void> write(std::string_view bytes);
  // Makes it durable under pickup/NAME; returns NAME.
  Result<std::string> commit();
  std::uint64_t content_size() const { return size_; }

 private:
  friend class Pickup;
  PickupWriter() = default;
  Result<void> flush();
  void discard();
  std::filesystem::path dir_;
  std::string name_;
  int fd_ = -1;
  int tmp_dir_fd_ = -1;
  std::string buf_;
  std::uint64_t size_ = 0;
  std::uint64_t max_size_ = 0;
  std::uint64_t size_field_offset_ = 0;
  char last_ = '\n';
  bool any_ = false;
  bool fsync_ = true;
};

class Pickup {
 public:
  static constexpr std::size_t kMaxLine = 1024;

  // Creates dir, dir/tmp and dir/corrupt (and missing parents) when needed.
  static Result<Pickup> open(PickupOptions opts);

  // Begins a message. Error EINVAL for a recipient list that is empty or too long, or an
  // address that is not a valid RFC 5321 mailbox (UTF-8 allowed).
  Result<PickupWriter> begin(const proto::Mailbox& sender,
                             const std::vector<proto::Mailbox>& recipients, uid_t uid);
  // begin + the whole stream + commit. Returns the file name.
  Result<std::string> write(const proto::Mailbox& sender,
                            const std::vector<proto::Mailbox>& recipients, std::istream& content,
                            uid_t uid);
  Result<std::string> write(const proto::Mailbox& sender,
                            const std::vector<proto::Mailbox>& recipients,
                            std::string_view content, uid_t uid);

  // Complete messages present now, oldest first (file names only).
  std::vector<std::string> list() const;
  // Reads and parses one. Errors: ENOENT (gone: another importer took it), EBADMSG (did not
  // parse; moved to corrupt/), others (I/O; left in place).
  Result<PickupMessage> read(std::string_view name);
  // Removes pickup/NAME and fsyncs pickup/ (after the message is safely in the spool).
  Result<void> remove(std::string_view name);
  // Removes files in tmp/ last modified more than `age` ago (writers that crashed). Returns
  // how many were removed.
  std::size_t clean_tmp(std::chrono::seconds age);

  const std::filesystem::path& dir() const { return opts_.dir; }
  const PickupOptions& options() const { return opts_; }

  // True when `name` could be a pickup file name (no '/', no leading '.', [A-Za-z0-9._-]).
  static bool valid_name(std::string_view name);

 private:
  explicit Pickup(PickupOptions o) : opts_(std::move(o)) {}
  Error corrupt(std::string_view name, std::string why);
  PickupOptions opts_;
};

}  // namespace carrier::spool
