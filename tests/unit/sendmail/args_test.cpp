// Unit tests of the sendmail command line (sendmail/args.hpp): the options programs pass to
// /usr/sbin/sendmail, bundling, glued and separate values, permutation, "--", ignored options
// and usage errors.
#include "sendmail/args.hpp"

#include <gtest/gtest.h>

using namespace carrier::sendmail;

namespace {

Args ok(std::vector<std::string> v) {
  auto r = parse_args(v);
  if (auto* e = std::get_if<ArgsError>(&r)) {
    ADD_FAILURE() << e->message;
    return {};
  }
  return std::get<Args>(r);
}

std::string error(std::vector<std::string> v) {
  auto r = parse_args(v);
  auto* e = std::get_if<ArgsError>(&r);
  return e ? e->message : std::string("(no error)");
}

}  // namespace

TEST(SendmailArgs, Defaults) {
  Args a = ok({"bob@example.net"});
  EXPECT_EQ(a.mode, Mode::Message);
  EXPECT_FALSE(a.extract_recipients);
  EXPECT_FALSE(a.ignore_dots);
  EXPECT_FALSE(a.sender);
  EXPECT_FALSE(a.full_name);
  EXPECT_EQ(a.recipients, std::vector<std::string>{"bob@example.net"});
}

TEST(SendmailArgs, CommonInvocations) {
  // PHP's mail(): "sendmail -t -i"; git send-email, mutt: "-oi -oem -f addr -- rcpts".
  Args a = ok({"-t", "-i"});
  EXPECT_TRUE(a.extract_recipients);
  EXPECT_TRUE(a.ignore_dots);
  EXPECT_TRUE(a.recipients.empty());
  Args b = ok({"-oi", "-oem", "-f", "alice@example.org", "--", "bob@example.net", "-carol"});
  EXPECT_TRUE(b.ignore_dots);
  EXPECT_EQ(b.sender, "alice@example.org");
  EXPECT_EQ(b.recipients, (std::vector<std::string>{"bob@example.net", "-carol"}));
  Args c = ok({"-ti"});  // bundled flags
  EXPECT_TRUE(c.extract_recipients);
  EXPECT_TRUE(c.ignore_dots);
  Args d = ok({"-falice@example.org", "-FAlice Liddell", "bob"});  // glued values
  EXPECT_EQ(d.sender, "alice@example.org");
  EXPECT_EQ(d.full_name, "Alice Liddell");
  Args e = ok({"-tfalice@x.y"});  // a flag, then an option taking the rest
  EXPECT_TRUE(e.extract_recipients);
  EXPECT_EQ(e.sender, "alice@x.y");
  Args f = ok({"-r", "<>", "bob"});
  EXPECT_EQ(f.sender, "<>");
}

TEST(SendmailArgs, ModesAndConfig) {
  EXPECT_EQ(ok({"-bs"}).mode, Mode::Smtp);
  EXPECT_EQ(ok({"-bs", "-bm", "x"}).mode, Mode::Message);
  Args a = ok({"-C", "/etc/carrier.toml", "--data-dir=/var/lib/carrier", "x"});
  EXPECT_EQ(a.config_file, "/etc/carrier.toml");
  EXPECT_EQ(a.data_dir, "/var/lib/carrier");
  Args b = ok({"--config", "c.toml", "--data-dir", "d", "-Cother.toml", "x"});
  EXPECT_EQ(b.config_file, "other.toml");
  EXPECT_EQ(b.data_dir, "d");
  EXPECT_TRUE(ok({"--help"}).help);
}

TEST(SendmailArgs, RecipientsBeforeOptionsArePermuted) {
  Args a = ok({"bob@example.net", "-f", "alice@example.org", "carol@example.net", "-i"});
  EXPECT_EQ(a.recipients, (std::vector<std::string>{"bob@example.net", "carol@example.net"}));
  EXPECT_EQ(a.sender, "alice@example.org");
  EXPECT_TRUE(a.ignore_dots);
}

TEST(SendmailArgs, IgnoredOptions) {
  Args a = ok({"-odb", "-oQ/tmp", "-O", "DeliveryMode=b", "-B", "8BITMIME", "-N", "never",
               "-R", "hdrs", "-V", "envid", "-L", "tag", "-X", "/tmp/log", "-h", "5", "-v",
               "-m", "-n", "-G", "-U", "-em", "-B8BITMIME", "bob"});
  EXPECT_EQ(a.recipients, std::vector<std::string>{"bob"});
  EXPECT_FALSE(a.ignore_dots);  // -oQ... is not -oi
  EXPECT_EQ(a.mode, Mode::Message);
}

TEST(SendmailArgs, UsageErrors) {
  EXPECT_EQ(error({"-bp"}), "-bp is not supported (only -bm and -bs)");
  EXPECT_EQ(error({"-bd"}), "-bd is not supported (only -bm and -bs)");
  EXPECT_NE(error({"-q"}).find("-q"), std::string::npos);
  EXPECT_EQ(error({"-Z"}), "unknown option -Z");
  EXPECT_EQ(error({"-d0.1"}), "unknown option -d");
  EXPECT_EQ(error({"-f"}), "option -f needs a value");
  EXPECT_EQ(error({"--config"}), "option --config needs a value");
  EXPECT_EQ(error({"--verbose"}), "unknown option --verbose");
  EXPECT_NE(std::string(usage()).find("-bs"), std::string::npos);
}
