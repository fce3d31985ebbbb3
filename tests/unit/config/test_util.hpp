// carrier config tests: shared helpers (load from text, find a diagnostic by line, temporary
// directories). Test-only code; no untrusted input.
#pragma once
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"

namespace carrier::config::test {

struct Loaded {
  std::optional<Config> config;
  std::vector<Diagnostic> diags;
};

inline Loaded load(std::string_view text) {
  Loaded l;
  l.config = load_string(text, "carrier.toml", l.diags);
  return l;
}

inline std::string dump(const std::vector<Diagnostic>& d) {
  std::string s;
  for (const auto& x : d) s += "  " + x.str() + "\n";
  return s;
}

// Asserts that loading `text` fails with exactly one diagnostic, on `line`, whose message
// contains `fragment`.
inline void expect_one_error(std::string_view text, int line, std::string_view fragment) {
  auto l = load(text);
  EXPECT_FALSE(l.config.has_value());
  ASSERT_EQ(l.diags.size(), 1u) << dump(l.diags);
  EXPECT_EQ(l.diags[0].file, "carrier.toml");
  EXPECT_EQ(l.diags[0].line, line) << dump(l.diags);
  EXPECT_NE(l.diags[0].message.find(fragment), std::string::npos)
      << "expected '" << fragment << "' in:\n"
      << dump(l.diags);
}

// A fresh empty directory under the system temp dir, removed at scope exit.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "carrier-config-XXXXXX").string();
    char* p = mkdtemp(tmpl.data());
    if (p) path_ = p;
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path write(const std::string& name, std::string_view text) const {
    auto p = path_ / name;
    std::ofstream(p, std::ios::binary) << text;
    return p;
  }

 private:
  std::filesystem::path path_;
};

}  // namespace carrier::config::test
