// carrier transport: local delivery into Maildir (https://cr.yp.to/proto/maildir.html):
// write tmp/<unique>, fsync, rename to new/<unique>,S=<size>, fsync new/. Message lines are
// converted from CRLF (as stored in the spool) to LF, and "Return-Path:" (RFC 5321 4.4) and
// "Delivered-To:" header fields are prepended. A file in new/ is always complete.
// Input: the spool file (written by us) and the recipient's mailbox name, which is checked
// again here (no '/', no leading '.', not empty) as defence in depth.
#pragma once
#include <sys/types.h>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "transport/transport.hpp"

namespace carrier::transport {

class MaildirTransport : public Transport {
 public:
  // mail_dir: root of the mailboxes (mail_dir/<mailbox>/{tmp,new,cur}); hostname: used in the
  // unique file names. chunk_size: bytes read from the spool per pread (tests use tiny ones).
  MaildirTransport(std::filesystem::path mail_dir, std::string hostname,
                   std::size_t chunk_size = 64 * 1024);

  const char* name() const override { return "maildir"; }
  // Replaces the per-delivery fsync of the file and of new/ with a shared barrier that makes
  // everything written so far on the file system durable (the spool's group commit, when the
  // mail directory is on the spool's file system). Returns 0 or an errno value.
  void set_sync_barrier(std::function<int()> barrier) { barrier_ = std::move(barrier); }
  // Mailboxes shared with a mailbox server (Dovecot runs as its own user): directories and
  // files carrier creates are given to uid:gid (needs root) and made group-readable.
  void set_owner(uid_t uid, gid_t gid) {
    owner_uid_ = uid;
    owner_gid_ = gid;
    owned_ = true;
  }
  // One Result per requested recipient: Delivered ("delivered to maildir demo/new/<file>"),
  // Deferred (4.3.0, or 4.2.2 when the disk or quota is full) or Failed (5.1.1 bad mailbox).
  std::vector<Result> deliver(const Request& req) override;

  // "<secs>.M<usecs>P<pid>Q<queue id>R<index>.<host>" with '/' and ':' in the host name
  // escaped as \057 and \072 (Maildir convention); the size suffix ",S=<n>" is added on rename.
  static std::string unique_name(std::int64_t unix_us, long pid, std::string_view queue_id,
                                 std::size_t rcpt_index, std::string_view hostname);
  // True when `mailbox` may name a directory under mail_dir.
  static bool valid_mailbox_name(std::string_view mailbox);

 private:
  std::filesystem::path mail_dir_;
  std::string hostname_;
  bool owned_ = false;
  uid_t owner_uid_ = 0;
  gid_t owner_gid_ = 0;
  std::size_t chunk_size_;
  std::function<int()> barrier_;
};

}  // namespace carrier::transport
