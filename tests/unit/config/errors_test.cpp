// carrier config tests: every class of configuration error, each with its exact line, and
// several errors reported together. Limits cite RFC 5321 4.5.3.1.4, 4.5.3.1.8 and 4.5.3.2.
#include <gtest/gtest.h>

#include "test_util.hpp"

namespace carrier::config {
namespace {

using test::expect_one_error;
using test::load;

// --- TOML syntax ------------------------------------------------------------------------------

TEST(ConfigErrors, SyntaxErrorCarriesTomlppPosition) {
  auto l = load("[server]\nhostname = \"a\"\n[limits\nmax_errors = 3\n");
  EXPECT_FALSE(l.config);
  ASSERT_EQ(l.diags.size(), 1u) << test::dump(l.diags);
  EXPECT_EQ(l.diags[0].line, 3);
  EXPECT_GT(l.diags[0].column, 0);
  EXPECT_FALSE(l.diags[0].message.empty());
}

TEST(ConfigErrors, UnterminatedString) {
  auto l = load("# c\n\n[server]\nhostname = \"mx\n");
  ASSERT_EQ(l.diags.size(), 1u) << test::dump(l.diags);
  EXPECT_EQ(l.diags[0].line, 4);
}

TEST(ConfigErrors, DuplicateKeyIsASyntaxError) {
  auto l = load("[limits]\nmax_errors = 3\nmax_errors = 4\n");
  ASSERT_EQ(l.diags.size(), 1u) << test::dump(l.diags);
  EXPECT_EQ(l.diags[0].line, 3);
}

TEST(ConfigErrors, InvalidUtf8) {
  auto l = load("[server]\nhostname = \"\xff\xfe\"\n");
  EXPECT_FALSE(l.config);
  ASSERT_EQ(l.diags.size(), 1u) << test::dump(l.diags);
  EXPECT_EQ(l.diags[0].line, 2);
}

// --- unknown keys and sections ----------------------------------------------------------------

TEST(ConfigErrors, UnknownKeyInServer) {
  expect_one_error("[server]\nhostname = \"mx.example.test\"\nhost_name = \"x\"\n", 3,
                   "unknown key 'host_name' in [server]");
}

TEST(ConfigErrors, UnknownKeyInEachSection) {
  expect_one_error("[limits]\nmax_size = 1\n", 2, "unknown key 'max_size' in [limits]");
  expect_one_error("[local]\n\nusers = []\n", 3, "unknown key 'users' in [local]");
  expect_one_error("[relay]\ntrusted = []\n", 2, "unknown key 'trusted' in [relay]");
  expect_one_error("[[listener]]\naddress = \"127.0.0.1:25\"\nport = 25\n", 3,
                   "unknown key 'port' in [[listener]]");
}

TEST(ConfigErrors, UnknownSubtableOfLocal) {
  expect_one_error("[local]\n[local.alias]\nx = [\"demo\"]\n", 2, "unknown key 'alias' in [local]");
}

TEST(ConfigErrors, UnknownSection) {
  expect_one_error("[server]\n\n[smtp]\nport = 25\n", 3, "unknown section [smtp]");
  expect_one_error("[[listeners]]\naddress = \"127.0.0.1:25\"\n", 1, "unknown section [listeners]");
}

TEST(ConfigErrors, UnknownTopLevelKey) {
  expect_one_error("# x\nhostname = \"mx\"\n", 2, "unknown key 'hostname' at top level");
}

// --- wrong types ------------------------------------------------------------------------------

TEST(ConfigErrors, ExpectedStringGotInteger) {
  expect_one_error("[server]\nhostname = 5\n", 2,
                   "[server] hostname: expected a string, got an integer");
}

TEST(ConfigErrors, ExpectedIntegerGotStringOrFloat) {
  expect_one_error("[limits]\nmax_recipients = \"100\"\n", 2,
                   "[limits] max_recipients: expected an integer, got a string");
  expect_one_error("[server]\ndelivery_threads = 2.5\n", 2,
                   "expected an integer, got a floating-point number");
}

TEST(ConfigErrors, ExpectedArray) {
  expect_one_error("[local]\ndomains = \"example.test\"\n", 2,
                   "[local] domains: expected an array of strings, got a string");
}

TEST(ConfigErrors, ArrayElementOfWrongTypeIsReportedAtTheElement) {
  expect_one_error("[relay]\ntrusted_networks = [\n  \"10.0.0.0/8\",\n  true,\n]\n", 4,
                   "[relay] trusted_networks: expected a string, got a boolean");
}

TEST(ConfigErrors, SectionThatIsNotATable) {
  expect_one_error("server = 1\n", 1, "[server]: expected a table, got an integer");
  expect_one_error("[local]\naliases = [\"x\"]\n", 2, "expected a table, got an array");
}

TEST(ConfigErrors, ListenerWrittenAsSingleTable) {
  expect_one_error("[listener]\naddress = \"127.0.0.1:25\"\n", 1, "write [[listener]]");
}

TEST(ConfigErrors, BooleanForDuration) {
  expect_one_error("[limits]\ndata_timeout = true\n", 2,
                   "data_timeout: expected a duration (integer seconds or a string like \"5m\"), "
                   "got a boolean");
}

TEST(ConfigErrors, ControlCharacterInString) {
  expect_one_error("[server]\nhostname = \"mx\\u0000.example\"\n", 2,
                   "must not contain control characters");
}

// --- listener addresses -----------------------------------------------------------------------

TEST(ConfigErrors, ListenerHostNameIsNotAnIpLiteral) {
  expect_one_error("[[listener]]\naddress = \"localhost:25\"\n", 2, "is not an IPv4 address");
}

TEST(ConfigErrors, ListenerBadPort) {
  expect_one_error("[[listener]]\naddress = \"127.0.0.1:65536\"\n", 2,
                   "port must be a number from 0 to 65535");
  expect_one_error("[[listener]]\naddress = \"127.0.0.1:smtp\"\n", 2,
                   "port must be a number from 0 to 65535");
}

TEST(ConfigErrors, ListenerMissingPort) {
  expect_one_error("[[listener]]\naddress = \"127.0.0.1\"\n", 2, "missing port");
  expect_one_error("[[listener]]\naddress = \"[::1]\"\n", 2, "missing port");
}

TEST(ConfigErrors, ListenerIpv6WithoutBrackets) {
  expect_one_error("[[listener]]\naddress = \"::1:25\"\n", 2, "must be written in brackets");
}

TEST(ConfigErrors, ListenerMissingAddress) {
  expect_one_error("# a\n[[listener]]\nname = \"x\"\n", 2, "missing required key 'address'");
}

TEST(ConfigErrors, ListenerBadName) {
  expect_one_error("[[listener]]\naddress = \"127.0.0.1:25\"\nname = \"a b\"\n", 3,
                   "[[listener]] name: must be 1 to 64 letters");
}

TEST(ConfigErrors, DuplicateListener) {
  expect_one_error(
      "[[listener]]\naddress = \"127.0.0.1:2525\"\n[[listener]]\naddress = \"127.0.0.1:2525\"\n", 4,
      "duplicate listener address \"127.0.0.1:2525\" (already used on line 2)");
}

TEST(ConfigErrors, DuplicateListenerDifferentSpellingOfTheSameIpv6) {
  expect_one_error("[[listener]]\naddress = \"[::1]:25\"\n[[listener]]\naddress = \"[0:0::1]:25\"\n",
                   4, "duplicate listener");
}

TEST(ConfigErrors, PortZeroListenersAreNotDuplicates) {
  auto l = load("[[listener]]\naddress = \"127.0.0.1:0\"\n[[listener]]\naddress = \"127.0.0.1:0\"\n");
  ASSERT_TRUE(l.config) << test::dump(l.diags);
  EXPECT_EQ(l.config->listeners.size(), 2u);
}

// --- CIDRs ------------------------------------------------------------------------------------

TEST(ConfigErrors, CidrBadAddress) {
  expect_one_error("[relay]\ntrusted_networks = [\"10.0.0.256/8\"]\n", 2,
                   "invalid network \"10.0.0.256/8\": '10.0.0.256' is not an IPv4 or IPv6 address");
}

TEST(ConfigErrors, CidrPrefixOutOfRange) {
  expect_one_error("[relay]\ntrusted_networks = [\"10.0.0.0/33\"]\n", 2,
                   "prefix length 33 is larger than 32");
  expect_one_error("[relay]\ntrusted_networks = [\"fd00::/129\"]\n", 2,
                   "prefix length 129 is larger than 128");
  expect_one_error("[relay]\ntrusted_networks = [\"10.0.0.0/x\"]\n", 2, "is not a number");
}

TEST(ConfigErrors, CidrMissingPrefixOrHostBits) {
  expect_one_error("[relay]\ntrusted_networks = [\"10.0.0.1\"]\n", 2, "missing '/prefix'");
  expect_one_error("[relay]\ntrusted_networks = [\"192.168.1.5/24\"]\n", 2, "bits set after");
}

// --- domains ----------------------------------------------------------------------------------

TEST(ConfigErrors, BadLocalDomain) {
  expect_one_error("[local]\ndomains = [\n\"example.test\",\n\"bad_domain.test\"\n]\n", 4,
                   "[local] domains: \"bad_domain.test\" is not a valid domain name");
}

TEST(ConfigErrors, IpAddressIsNotADomain) {
  expect_one_error("[local]\ndomains = [\"127.0.0.1\"]\n", 2, "last label is all digits");
}

TEST(ConfigErrors, DuplicateDomainAfterLowerCasing) {
  expect_one_error("[local]\ndomains = [\"a.test\", \"A.TEST\"]\n", 2, "listed twice");
}

TEST(ConfigErrors, BadHostname) {
  expect_one_error("[server]\nhostname = \"mx..example\"\n", 2,
                   "[server] hostname: \"mx..example\" is not a valid host name");
  expect_one_error("[server]\nhostname = \"mx.example.\"\n", 2, "must not end with '.'");
}

// --- durations and sizes ----------------------------------------------------------------------

TEST(ConfigErrors, BadDurationString) {
  expect_one_error("[server]\nretry_initial = \"1 m\"\n", 2,
                   "[server] retry_initial: invalid duration \"1 m\"");
  expect_one_error("[limits]\ncommand_timeout = \"5min\"\n", 2, "invalid duration");
  expect_one_error("[limits]\ncommand_timeout = \"300\"\n", 2, "invalid duration");
}

TEST(ConfigErrors, DurationOutOfRange) {
  // RFC 5321 4.5.3.2 timeouts: zero would disconnect every client at once.
  expect_one_error("[limits]\ncommand_timeout = 0\n", 2, "must be at least 1s, got 0s");
  expect_one_error("[limits]\ncommand_timeout = -5\n", 2, "must not be negative");
  expect_one_error("[limits]\ndata_timeout = \"2d\"\n", 2, "must be at most 1d, got 2d");
  expect_one_error("[limits]\ndata_timeout = 9223372036854775807\n", 2, "must be at most 1d");
  expect_one_error("[server]\nretry_max = \"31d\"\n", 2, "must be at most 30d");
}

TEST(ConfigErrors, RetryMaxSmallerThanInitial) {
  expect_one_error("[server]\nretry_initial = \"2h\"\nretry_max = \"1h\"\n", 3,
                   "must not be smaller than retry_initial");
  // retry_max left at its default (1h): the error points at retry_initial.
  expect_one_error("[server]\n\nretry_initial = \"2h\"\n", 3, "retry_max");
}

TEST(ConfigErrors, BadSizeString) {
  expect_one_error("[limits]\nmax_message_size = \"50MB\"\n", 2,
                   "[limits] max_message_size: invalid size \"50MB\"");
  expect_one_error("[limits]\nmax_message_size = \"1.5M\"\n", 2, "invalid size");
}

TEST(ConfigErrors, SizeOutOfRange) {
  expect_one_error("[limits]\nmax_message_size = 1023\n", 2,
                   "must be at least 1K, got 1023 bytes");
  expect_one_error("[limits]\nmax_message_size = \"65G\"\n", 2, "must be at most 64G, got 65G");
  expect_one_error("[limits]\nmax_message_size = -1\n", 2, "must not be negative");
}

// --- integer limits ---------------------------------------------------------------------------

TEST(ConfigErrors, MaxRecipientsBelowRfcMinimum) {
  // RFC 5321 4.5.3.1.8: a server must accept at least 100 recipients.
  auto l = load("[server]\nhostname = \"mx.example.test\"\n\n\n\n[limits]\nmax_recipients = 5\n");
  ASSERT_EQ(l.diags.size(), 1u) << test::dump(l.diags);
  EXPECT_EQ(l.diags[0].str(),
            "carrier.toml:7:18: [limits] max_recipients: must be at least 100 (RFC 5321 "
            "4.5.3.1.8), got 5");
}

TEST(ConfigErrors, CommandLineLimitBounds) {
  // RFC 5321 4.5.3.1.4: command lines of 512 octets must be accepted.
  expect_one_error("[limits]\nmax_command_line = 511\n", 2,
                   "must be at least 512 (RFC 5321 4.5.3.1.4), got 511");
  expect_one_error("[limits]\nmax_command_line = 65537\n", 2, "must be at most 65536");
}

TEST(ConfigErrors, OtherIntegerBounds) {
  expect_one_error("[server]\ndelivery_threads = 0\n", 2, "must be at least 1");
  expect_one_error("[server]\ndelivery_threads = 257\n", 2, "must be at most 256");
  expect_one_error("[limits]\nmax_connections = 0\n", 2, "max_connections: must be at least 1");
  expect_one_error("[limits]\nmax_connections_per_ip = 0\n", 2, "must be at least 1");
  expect_one_error("[limits]\nmax_received_headers = 0\n", 2, "must be at least 1");
}

// --- enums ------------------------------------------------------------------------------------

TEST(ConfigErrors, EnumListsAllowedValues) {
  expect_one_error("[server]\nlog_format = \"xml\"\n", 2,
                   "[server] log_format: must be one of \"text\", \"json\", got \"xml\"");
  expect_one_error("[server]\nlog_level = \"INFO\"\n", 2,
                   "must be one of \"trace\", \"debug\", \"info\", \"warn\", \"error\"");
  expect_one_error("[server]\nbare_newline = \"accept\"\n", 2,
                   "must be one of \"reject\", \"normalize\"");
}

TEST(ConfigErrors, BadRecipientDelimiter) {
  expect_one_error("[local]\nrecipient_delimiter = \"++\"\n", 2,
                   "must be one of \"+\", \"-\", \"_\", \"=\" or \"\"");
  expect_one_error("[local]\nrecipient_delimiter = \"#\"\n", 2, "must be one of");
}

// --- mailboxes and aliases --------------------------------------------------------------------

TEST(ConfigErrors, BadMailboxNames) {
  expect_one_error("[local]\nmailboxes = [\"ok\", \".hidden\"]\n", 2, "must not start with '.'");
  expect_one_error("[local]\nmailboxes = [\"a/b\"]\n", 2, "may contain only lower-case letters");
  expect_one_error("[local]\nmailboxes = [\"\"]\n", 2, "empty name");
  expect_one_error("[local]\nmailboxes = [\"" + std::string(65, 'a') + "\"]\n", 2,
                   "longer than 64 characters");
  expect_one_error("[local]\nmailboxes = [\"Demo\", \"demo\"]\n", 2, "listed twice");
}

TEST(ConfigErrors, MailboxNamesAreLowerCased) {
  auto l = load("[local]\nmailboxes = [\"JOHN\"]\n");
  ASSERT_TRUE(l.config) << test::dump(l.diags);
  EXPECT_EQ(l.config->mailboxes, std::vector<std::string>{"john"});
}

TEST(ConfigErrors, AliasToUnknownName) {
  expect_one_error("[local]\nmailboxes = [\"demo\"]\n[local.aliases]\nabuse = [\"demo\", \"nobody\"]\n",
                   4, "[local.aliases] abuse: target \"nobody\" is neither a mailbox, an alias nor");
}

TEST(ConfigErrors, AliasToBadAddress) {
  expect_one_error("[local.aliases]\nx = [\"a..b@example.test\"]\n", 2, "is not a valid address");
  expect_one_error("[local.aliases]\nx = [\"a@bad_domain\"]\n", 2, "is not a valid address");
  expect_one_error("[local.aliases]\nx = [\"@example.test\"]\n", 2, "empty local part");
}

TEST(ConfigErrors, AliasWithoutTargetsOrBadName) {
  expect_one_error("[local.aliases]\nx = []\n", 2, "must list at least one target");
  expect_one_error("[local.aliases]\n\"a b\" = [\"demo\"]\n", 2, "is not a valid alias name");
  expect_one_error("[local.aliases]\nx = \"demo\"\n", 2, "expected an array of strings");
}

TEST(ConfigErrors, AliasNameCaseInsensitiveDuplicate) {
  auto l = load("[local.aliases]\nabuse = [\"demo\"]\nABUSE = [\"demo\"]\n");
  EXPECT_FALSE(l.config);
  ASSERT_EQ(l.diags.size(), 1u) << test::dump(l.diags);
  EXPECT_NE(l.diags[0].message.find("defined twice"), std::string::npos);
}

TEST(ConfigErrors, AliasThatIsAlsoAMailbox) {
  expect_one_error("[local]\nmailboxes = [\"demo\"]\n[local.aliases]\ndemo = [\"postmaster\"]\n", 4,
                   "is both a mailbox and an alias");
}

TEST(ConfigErrors, AliasSelfLoop) {
  expect_one_error("[local.aliases]\nloop = [\"loop\"]\n", 2, "alias loop loop -> loop");
}

TEST(ConfigErrors, AliasCycleOfThree) {
  auto l = load("[local.aliases]\na = [\"b\"]\nb = [\"c\"]\nc = [\"a\", \"demo\"]\n");
  EXPECT_FALSE(l.config);
  ASSERT_EQ(l.diags.size(), 1u) << test::dump(l.diags);
  EXPECT_EQ(l.diags[0].line, 4);
  EXPECT_NE(l.diags[0].message.find("alias loop a -> b -> c -> a"), std::string::npos)
      << test::dump(l.diags);
}

TEST(ConfigErrors, AliasDiamondIsNotALoop) {
  auto l = load("[local.aliases]\na = [\"b\", \"c\"]\nb = [\"d\"]\nc = [\"d\"]\nd = [\"demo\"]\n");
  ASSERT_TRUE(l.config) << test::dump(l.diags);
}

// --- several errors at once -------------------------------------------------------------------

TEST(ConfigErrors, AllErrorsAreReportedInLineOrder) {
  constexpr std::string_view text = R"([server]
hostname = 42
log_level = "loud"
delivery_threads = 0
colour = "blue"

[[listener]]
address = "example.com:25"

[limits]
max_recipients = 10
max_message_size = "big"

[local]
domains = ["ok.test", "-bad.test"]
mailboxes = ["demo"]

[local.aliases]
x = ["ghost"]

[relay]
trusted_networks = ["10.0.0.0/40"]

[extra]
)";
  auto l = load(text);
  EXPECT_FALSE(l.config);
  std::vector<int> lines;
  for (auto& d : l.diags) lines.push_back(d.line);
  EXPECT_EQ(lines, (std::vector<int>{2, 3, 4, 5, 8, 11, 12, 15, 19, 22, 24}))
      << test::dump(l.diags);
  for (auto& d : l.diags) EXPECT_EQ(d.file, "carrier.toml");
}

}  // namespace
}  // namespace carrier::config
