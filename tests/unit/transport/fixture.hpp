// carrier transport tests: shared fixtures — a temporary directory removed at scope exit (even
// when a test left it read-only), reading a file whole, and a spool-like message file (header
// bytes, then the content at content_offset) as transports receive it. Test-only code.
#pragma once
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "proto/envelope.hpp"
#include "spool/spool.hpp"

namespace carrier::transport::test {

class TempDir {
 public:
  explicit TempDir(const char* prefix = "carrier-transport") {
    std::string t = (std::filesystem::temp_directory_path() / (std::string(prefix) + "-XXXXXX")).string();
    if (!::mkdtemp(t.data())) throw std::runtime_error("mkdtemp");
    path_ = t;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::permissions(path_, std::filesystem::perms::owner_all,
                                 std::filesystem::perm_options::add, ec);
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

inline std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A spool-like file: some header bytes, then the content at content_offset.
struct Message {
  spool::Stored stored;
  Message(const std::filesystem::path& dir, std::string_view content,
          std::vector<proto::EnvelopeRecipient> rcpts, proto::Mailbox sender = {"alice", "example.org"}) {
    stored.id = "0G4X7PN1Q2AB";
    stored.path = dir / "spoolfile";
    const std::string head = "CARRIER-SPOOL 1 2\n{}\n";
    std::ofstream(stored.path, std::ios::binary) << head << content;
    stored.content_offset = head.size();
    stored.content_size = content.size();
    stored.envelope.sender = std::move(sender);
    stored.envelope.recipients = std::move(rcpts);
    stored.done.assign(stored.envelope.recipients.size(), false);
  }
};

}  // namespace carrier::transport::test
