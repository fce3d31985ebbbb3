// carrier config tests: validate_runtime — data/spool/mail directories (missing parent, not a
// directory, derived from a data_dir still to be created) and listener checks after
// command-line overrides. Uses a private temporary directory; no network.
#include <gtest/gtest.h>

#include "test_util.hpp"

namespace carrier::config {
namespace {

namespace fs = std::filesystem;

bool has(const std::vector<Diagnostic>& d, std::string_view fragment) {
  for (auto& x : d)
    if (x.message.find(fragment) != std::string::npos) return true;
  return false;
}

TEST(ConfigRuntime, NewDataDirWithDerivedSubdirectoriesIsFine) {
  test::TempDir dir;
  Config c = defaults();
  apply_data_dir(c, dir.path() / "data");  // data, data/spool, data/mail: none exist yet
  auto d = validate_runtime(c);
  EXPECT_TRUE(d.empty()) << test::dump(d);
}

TEST(ConfigRuntime, ExistingDirectoriesAreFine) {
  test::TempDir dir;
  fs::create_directories(dir.path() / "data" / "spool");
  fs::create_directories(dir.path() / "data" / "mail");
  Config c = defaults();
  apply_data_dir(c, dir.path() / "data");
  auto d = validate_runtime(c);
  EXPECT_TRUE(d.empty()) << test::dump(d);
}

TEST(ConfigRuntime, DataDirParentMissing) {
  test::TempDir dir;
  Config c = defaults();
  apply_data_dir(c, dir.path() / "no" / "such" / "data");
  auto d = validate_runtime(c);
  ASSERT_FALSE(d.empty());
  EXPECT_EQ(d[0].line, 0);
  EXPECT_NE(d[0].message.find("[server] data_dir: parent directory"), std::string::npos)
      << test::dump(d);
  EXPECT_NE(d[0].message.find("does not exist"), std::string::npos) << test::dump(d);
  EXPECT_EQ(d[0].file, "(built-in configuration)");
}

TEST(ConfigRuntime, PathThatIsAFile) {
  test::TempDir dir;
  auto f = dir.write("data", "x");
  Config c = defaults();
  apply_data_dir(c, f);
  auto d = validate_runtime(c);
  ASSERT_FALSE(d.empty());
  EXPECT_NE(d[0].message.find("exists but is not a directory"), std::string::npos)
      << test::dump(d);
}

TEST(ConfigRuntime, ExplicitSpoolDirWithMissingParent) {
  test::TempDir dir;
  auto file = dir.write("c.toml", "[server]\ndata_dir = \"data\"\nspool_dir = \"x/y/spool\"\n");
  std::vector<Diagnostic> diags;
  auto c = load_file(file, diags);
  ASSERT_TRUE(c) << test::dump(diags);
  auto d = validate_runtime(*c);
  ASSERT_EQ(d.size(), 1u) << test::dump(d);
  EXPECT_EQ(d[0].file, file.string());
  EXPECT_NE(d[0].message.find("[server] spool_dir: parent directory"), std::string::npos)
      << test::dump(d);
}

TEST(ConfigRuntime, MailDirParentIsAFile) {
  test::TempDir dir;
  dir.write("plain", "x");
  Config c = defaults();
  apply_data_dir(c, dir.path() / "data");
  c.mail_dir = dir.path() / "plain" / "mail";
  c.mail_dir_explicit = true;
  auto d = validate_runtime(c);
  ASSERT_EQ(d.size(), 1u) << test::dump(d);
  EXPECT_NE(d[0].message.find("[local] mail_dir"), std::string::npos) << test::dump(d);
}

TEST(ConfigRuntime, DataDirOverrideRecomputesAndRevalidates) {
  test::TempDir dir;
  auto file = dir.write("c.toml", "[server]\ndata_dir = \"/nonexistent-carrier-parent/data\"\n");
  std::vector<Diagnostic> diags;
  auto c = load_file(file, diags);  // load does not look at the disk
  ASSERT_TRUE(c) << test::dump(diags);
  EXPECT_TRUE(has(validate_runtime(*c), "does not exist"));
  apply_data_dir(*c, dir.path() / "override");  // as --data-dir would
  auto d = validate_runtime(*c);
  EXPECT_TRUE(d.empty()) << test::dump(d);
  EXPECT_EQ(c->spool_dir, dir.path() / "override" / "spool");
}

TEST(ConfigRuntime, ListenerChecksAfterOverrides) {
  test::TempDir dir;
  Config c = defaults();
  apply_data_dir(c, dir.path() / "data");
  c.listeners = {Listener{"127.0.0.1", 2525, "a"}, Listener{"127.0.0.1", 2525, "b"}};
  EXPECT_TRUE(has(validate_runtime(c), "duplicate listener 127.0.0.1:2525"));
  c.listeners = {Listener{"::1", 25, "a"}, Listener{"0::1", 25, "b"}};
  EXPECT_TRUE(has(validate_runtime(c), "duplicate listener [::1]:25"));
  c.listeners = {Listener{"127.0.0.1", 0, "a"}, Listener{"127.0.0.1", 0, "b"}};
  EXPECT_TRUE(validate_runtime(c).empty());
  c.listeners = {Listener{"localhost", 25, "a"}};
  EXPECT_TRUE(has(validate_runtime(c), "is not an IP address"));
  c.listeners.clear();
  EXPECT_TRUE(has(validate_runtime(c), "no listener configured"));
}

}  // namespace
}  // namespace carrier::config
