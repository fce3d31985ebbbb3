// TraceLog: events appended one at a time or together read back in order, per message id.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "queue/trace.hpp"

namespace fs = std::filesystem;
using carrier::queue::TraceLog;

namespace {
fs::path fresh_dir(const char* name) {
  fs::path d = fs::temp_directory_path() / (std::string("carrier-trace-") + name + "-" +
                                            std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}
}  // namespace

TEST(TraceLog, AppendAllWritesEachEventAsItsOwnLineInOrder) {
  const fs::path dir = fresh_dir("all");
  {
    TraceLog t(dir, std::chrono::hours(24));
    t.append("0AAAAAAAAAAA", "received from x");
    const std::string_view evs[] = {"to=<a@b> status=delivered", "with\r\nnewline",
                                    "done: removed from the queue"};
    t.append_all("0BBBBBBBBBBB", evs);
    t.append_all("0AAAAAAAAAAA", {});  // nothing
    t.append("0AAAAAAAAAAA", "last");
    auto b = t.read("0BBBBBBBBBBB");
    ASSERT_EQ(b.size(), 3u);
    EXPECT_EQ(b[0].text, "to=<a@b> status=delivered");
    EXPECT_EQ(b[1].text, "with  newline");
    EXPECT_EQ(b[2].text, "done: removed from the queue");
    EXPECT_EQ(b[0].unix_ms, b[2].unix_ms);
    auto a = t.read("0AAAAAAAAAAA");
    ASSERT_EQ(a.size(), 2u);
    EXPECT_EQ(a[0].text, "received from x");
    EXPECT_EQ(a[1].text, "last");
  }
  // One journal file, one line per event.
  std::size_t files = 0, lines = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    ++files;
    std::ifstream in(e.path());
    for (std::string l; std::getline(in, l);) ++lines;
  }
  EXPECT_EQ(files, 1u);
  EXPECT_EQ(lines, 5u);
  fs::remove_all(dir);
}
