// carrier spool: durable storage of accepted messages, one file per message (Postfix style).
//
// Layout under the spool directory (created on open):
//   tmp/ID            being received (when no recycled file is free): envelope header +
//                     content, streamed during DATA/BDAT
//   free/F<ID>        recycled files of delivered messages, named "F" + the queue id of the
//                     message that last used them (content meaningless): a new message
//                     takes one and is written where it lies (overwrite, truncate at commit),
//                     instead of creating a file, which saves inode and block allocation and
//                     the discard of an unlink — on ext4 without a journal the inode search
//                     alone was a third of the CPU time per message (docs/performance.md); a
//                     file whose writer gives up goes back to the pool
//   queue/ID          committed: fdatasync'd, renamed from tmp/ID or free/F<old ID> (one
//                     rename), queue/ fsync'd → then 250
//   state/ID          append-only log of per-recipient results (delivered, deferred, failed)
//                     and per-message events (record_event)
// A committed file is never rewritten: it is "CARRIER-SPOOL 1 <envelope_bytes>\n", the envelope
// as one line of JSON, "\n", then the message content exactly as received (CRLF lines, dots
// unstuffed, our Received: first). Operators can read it with less and grep.
//
// Durability (the 250 promise): commit() = fdatasync(file) → rename(tmp/ID or
// free/F<old ID> → queue/ID) → fsync(queue/). The directory fsync is shared by all commits
// waiting at the same moment (group commit): the first committer to arrive while none runs
// fsyncs queue/ once for every rename done so far (leader/follower). fdatasync runs on a pool
// of threads so concurrent commits overlap on disk.
// On open(), files left in tmp/ (never acknowledged) are removed; files in free/ are spares,
// whatever they hold (a message being received there when the process stopped was never
// acknowledged either).
// Handles no untrusted input beyond the message bytes, which it stores opaquely; the envelope
// JSON is parsed back with strict checks (a corrupt file is moved to corrupt/, never lost).
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/queue_id.hpp"
#include "base/result.hpp"
#include "proto/envelope.hpp"

namespace carrier::spool {

class Spool;
struct Stored;

// Streams one message into a recycled file in free/, or a new one in tmp/. Not thread-safe;
// one per transaction. Destroying a Writer that was not committed gives its file up (abort).
class Writer {
 public:
  Writer(Writer&&) noexcept;
  Writer& operator=(Writer&&) noexcept;
  ~Writer();
  const std::string& id() const { return id_; }
  // Appends content bytes (buffered; written to the file in large blocks).
  Result<void> write(std::string_view bytes);
  std::uint64_t content_size() const { return content_size_; }
  void abort();  // give the file up now: a new one is removed, a recycled one goes back to the pool
  // For the message checks before commit (src/filter): writes out the buffer so the file at
  // path() holds the content from content_offset() on (a recycled file may hold stale bytes
  // after content_offset() + content_size(): read only that many).
  Result<void> flush();
  std::filesystem::path path() const;
  std::uint64_t content_offset() const { return file_bytes_ - content_size_; }
  // The message as load() will return it once committed, for `env`, the envelope given to
  // begin() (no recipient done, no events).
  Stored stored(const proto::Envelope& env) const;
  // Replaces the first `old_len` bytes of the content (the header section as received) with
  // `new_head` (header fields added or changed by the checks): a new tmp file with the rest
  // copied inside the kernel (copy_file_range), renamed over the old one.
  Result<void> rewrite_head(std::uint64_t old_len, std::string_view new_head);

 private:
  friend class Spool;
  Writer() = default;
  Spool* spool_ = nullptr;
  std::string id_;
  int fd_ = -1;
  std::string buf_;
  std::uint64_t content_size_ = 0;
  Error deferred_error_;
  bool failed_ = false;
  bool recycled_ = false;          // a recycled file: truncate to file_bytes_ at commit
  std::string free_name_;          // the file is free/<free_name_> (recycled), else tmp/ID
  std::uint64_t file_bytes_ = 0;   // bytes handed to the file so far (header + content)
};

// A committed message, read back.
struct Stored {
  std::string id;
  proto::Envelope envelope;
  std::filesystem::path path;        // queue/ID
  std::uint64_t content_offset = 0;  // where the message content begins in the file
  std::uint64_t content_size = 0;
  std::vector<bool> done;            // per envelope recipient: a final result is recorded
  std::vector<std::string> events;   // texts of record_event() lines, oldest first (at most
                                     // kMaxEvents; later ones are not kept)
  static constexpr std::size_t kMaxEvents = 64;
};

// One line in state/ID.
struct RecipientResult {
  std::size_t index = 0;       // index into envelope.recipients
  enum class Status { Delivered, Deferred, Failed } status = Status::Deferred;
  std::string detail;          // e.g. "maildir demo/new/…" or the error text / remote reply
};

// How commits are made durable.
//   File:       per message fdatasync(file) on a pool of threads, rename, then one fsync(queue/)
//               shared by every rename waiting (group commit of the directory).
//   Filesystem: group commit of everything: one thread runs rounds of syncfs() on the spool's
//               file system. A round makes every message written before it data-durable (they
//               are then renamed into queue/) and every rename done before it durable (those
//               are then acknowledged). Each message takes two rounds; each round is shared by
//               all commits pending at that moment, so the disk sees a few flushes per batch
//               instead of two per message. syncfs also flushes unrelated dirty data on that
//               file system: best with the spool on its own file system.
// Both keep the invariant: a name in queue/ is only ever given to data that is durable.
enum class SyncMode { File, Filesystem };

struct Options {
  std::filesystem::path dir;
  int sync_threads = 16;     // fdatasync pool size (SyncMode::File); writers in Filesystem mode
  SyncMode sync_mode = SyncMode::File;
  bool fsync = true;         // false only for tests that measure something else; never default
};

class Spool {
 public:
  static Result<std::unique_ptr<Spool>> open(const Options& opts);
  ~Spool();

  // Begins a message: new id, tmp/ID created with O_EXCL, envelope header written.
  Result<Writer> begin(const proto::Envelope& env);
  // Makes the message durable. `done` runs on a spool thread (never the caller's) once the
  // message is durable (ok) or failed (the tmp file is then removed). The caller posts back to
  // its own thread.
  void commit(Writer&& w, std::function<void(Result<std::string> id)> done);

  // Committed messages present now (at startup: everything to deliver), oldest first.
  std::vector<std::string> list() const;
  Result<Stored> load(std::string_view id) const;
  // Appends results to state/ID (one write; fdatasync only when `sync`).
  Result<void> record(std::string_view id, const std::vector<RecipientResult>& results,
                      bool sync = false);
  // Appends one event line "<unix_ms> event <text>" to state/ID (CR/LF in text become spaces;
  // fdatasync only when `sync`). For per-message facts the queue must remember across
  // restarts (e.g. "a delay notice was sent"); load() returns them in Stored::events.
  Result<void> record_event(std::string_view id, std::string_view text, bool sync = false);
  // Removes queue/ID and state/ID (after every recipient has a final result).
  Result<void> remove(std::string_view id);

  const std::filesystem::path& dir() const;
  // Blocks until everything written to the spool's file system before the call is durable
  // (one shared syncfs round in SyncMode::Filesystem; a plain syncfs otherwise). For other
  // writers on the same file system (Maildir delivery) to share the spool's group commit.
  Result<void> sync_barrier();
  // True when `p` is on the same file system as the spool (so sync_barrier() covers it).
  bool same_filesystem(const std::filesystem::path& p) const;
  QueueIdGenerator& ids();

 private:
  friend class Writer;
  Spool() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace carrier::spool
