// carrier: `carrier dkim keygen DOMAIN SELECTOR` and `carrier dkim sign`. Exit status 0, or 1
// with one line on stderr saying what was wrong.
#include "app/dkim_cmd.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <iostream>

#include "dkim/key.hpp"
#include "dkim/signer.hpp"

namespace carrier::app {

struct DkimCli {
  CLI::App* dkim = nullptr;
  CLI::App* keygen = nullptr;
  CLI::App* sign = nullptr;
  // keygen
  std::string domain, selector, algorithm = "rsa", out;
  // sign
  std::string s_domain, s_selector, key_file, headers;
  std::int64_t timestamp = -1;
};

namespace {

constexpr std::size_t kMaxKeyFile = 1 << 20;

// Writes a new file with mode 0600; never replaces an existing one (O_EXCL, no symlinks).
bool write_private(const std::string& path, const std::string& data, std::string& why) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) {
    why = errno == EEXIST ? path + " already exists; not overwriting it (move it away or give --out)"
                          : "cannot create " + path + ": " + std::strerror(errno);
    return false;
  }
  bool ok = ::fchmod(fd, 0600) == 0;
  std::size_t done = 0;
  while (ok && done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) ok = false;
    else done += static_cast<std::size_t>(n);
  }
  ok = ok && ::fsync(fd) == 0;
  int err = errno;
  if (::close(fd) != 0 && ok) {
    ok = false;
    err = errno;
  }
  if (!ok) {
    why = "cannot write " + path + ": " + std::strerror(err);
    ::unlink(path.c_str());
  }
  return ok;
}

bool read_key_file(const std::string& path, std::string& out, std::string& why) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    why = "cannot read " + path + ": " + std::strerror(errno);
    return false;
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    why = path + " is not a regular file";
    ::close(fd);
    return false;
  }
  if (static_cast<std::size_t>(st.st_size) > kMaxKeyFile) {
    why = path + " is too large to be a private key";
    ::close(fd);
    return false;
  }
  if (st.st_mode & 0077)
    std::cerr << "carrier dkim: warning: " << path << " can be read by other users; chmod 600 it\n";
  char buf[8192];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      why = "cannot read " + path + ": " + std::strerror(errno);
      ::close(fd);
      return false;
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
    if (out.size() > kMaxKeyFile) break;
  }
  ::close(fd);
  return true;
}

// The whole of standard input, line ends made CRLF (a bare LF becomes CRLF).
bool read_message(std::string& out, std::string& why) {
  std::string raw;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(STDIN_FILENO, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      why = std::string("cannot read standard input: ") + std::strerror(errno);
      return false;
    }
    if (n == 0) break;
    raw.append(buf, static_cast<std::size_t>(n));
  }
  out.reserve(raw.size() + raw.size() / 32);
  for (std::size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] == '\n' && (i == 0 || raw[i - 1] != '\r')) out.push_back('\r');
    out.push_back(raw[i]);
  }
  return true;
}

bool write_all(std::string_view s) {
  while (!s.empty()) {
    ssize_t n = ::write(STDOUT_FILENO, s.data(), s.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    s.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

int fail(const char* cmd, const std::string& why) {
  std::cerr << "carrier dkim " << cmd << ": " << why << "\n";
  return 1;
}

int cmd_keygen(const DkimCli& d) {
  auto kind = d.algorithm == "ed25519" ? dkim::KeyKind::Ed25519 : dkim::KeyKind::Rsa2048;
  if (auto e = dkim::domain_syntax_error(d.domain); !e.empty()) return fail("keygen", e + ": '" + d.domain + "'");
  if (auto e = dkim::selector_syntax_error(d.selector); !e.empty())
    return fail("keygen", e + ": '" + d.selector + "'");
  const std::string path = d.out.empty() ? d.selector + "." + d.domain + ".key" : d.out;
  if (::access(path.c_str(), F_OK) == 0)  // checked before the (slow) RSA key generation too
    return fail("keygen", path + " already exists; not overwriting it (move it away or give --out)");
  auto g = dkim::generate(kind, d.selector, d.domain);
  if (!g) return fail("keygen", g.error().message);
  std::string why;
  if (!write_private(path, g->private_pem, why)) return fail("keygen", why);
  std::cerr << "carrier dkim keygen: " << (kind == dkim::KeyKind::Ed25519 ? "Ed25519" : "RSA 2048-bit")
            << " private key written to " << path << " (mode 0600); publish this TXT record:\n";
  std::cout << g->txt_record << "\n";
  return 0;
}

int cmd_sign(const DkimCli& d) {
  std::string pem, why;
  if (!read_key_file(d.key_file, pem, why)) return fail("sign", why);
  auto key = dkim::PrivateKey::from_pem(pem);
  std::fill(pem.begin(), pem.end(), '\0');
  if (!key) return fail("sign", d.key_file + ": " + key.error().message);
  dkim::SignerOptions o;
  o.domain = d.s_domain;
  o.selector = d.s_selector;
  if (!d.headers.empty()) {
    o.headers.clear();
    std::size_t start = 0;
    while (start <= d.headers.size()) {
      std::size_t comma = d.headers.find(',', start);
      if (comma == std::string::npos) comma = d.headers.size();
      std::string name = d.headers.substr(start, comma - start);
      while (!name.empty() && name.back() == ' ') name.pop_back();
      while (!name.empty() && name.front() == ' ') name.erase(0, 1);
      if (!name.empty()) o.headers.push_back(name);
      start = comma + 1;
    }
  }
  auto signer = dkim::Signer::create(std::move(o), std::move(key).value());
  if (!signer) return fail("sign", signer.error().message);
  std::string message;
  if (!read_message(message, why)) return fail("sign", why);
  if (message.empty()) return fail("sign", "no message on standard input");
  const std::int64_t t = d.timestamp >= 0 ? d.timestamp : static_cast<std::int64_t>(std::time(nullptr));
  auto field = signer->sign_message(message, t);
  if (!field) return fail("sign", field.error().message);
  if (!write_all(*field) || !write_all(message)) return fail("sign", std::string("cannot write: ") + std::strerror(errno));
  return 0;
}

}  // namespace

DkimCli* add_dkim_commands(CLI::App& app) {
  static DkimCli d;
  d.dkim = app.add_subcommand("dkim", "DKIM keys: make a key and its DNS record, sign a message to test it");
  d.dkim->require_subcommand(1);

  d.keygen = d.dkim->add_subcommand(
      "keygen", "Make a DKIM private key (written with mode 0600, never over an existing file) and "
                "print the DNS TXT record SELECTOR._domainkey.DOMAIN to publish");
  d.keygen->add_option("domain", d.domain, "The signing domain (d=), e.g. example.com")->required();
  d.keygen->add_option("selector", d.selector, "The selector (s=), e.g. 2024a")->required();
  d.keygen->add_option("-a,--algorithm", d.algorithm, "rsa (2048 bits, rsa-sha256; default) or ed25519 (RFC 8463)")
      ->check(CLI::IsMember({"rsa", "ed25519"}));
  d.keygen->add_option("-o,--out", d.out, "Private key file (default: SELECTOR.DOMAIN.key in the current directory)");

  d.sign = d.dkim->add_subcommand(
      "sign", "Read a message on standard input, write it with a DKIM-Signature field prepended "
              "(relaxed/relaxed; line ends become CRLF)");
  d.sign->add_option("-d,--domain", d.s_domain, "The signing domain (d=)")->required();
  d.sign->add_option("-s,--selector", d.s_selector, "The selector (s=)")->required();
  d.sign->add_option("-k,--key", d.key_file, "PEM private key file (RSA >= 1024 bits or Ed25519)")->required();
  d.sign->add_option("--headers", d.headers,
                     "Comma-separated fields to sign (default: from,to,cc,subject,date,message-id,reply-to,"
                     "mime-version,content-type,content-transfer-encoding,in-reply-to,references; From "
                     "is always signed and oversigned)");
  d.sign->add_option("--timestamp", d.timestamp, "t= as Unix seconds (default: now)")->check(CLI::NonNegativeNumber);
  return &d;
}

int run_dkim(DkimCli* d) {
  if (!d || !*d->dkim) return -1;
  if (*d->keygen) return cmd_keygen(*d);
  if (*d->sign) return cmd_sign(*d);
  return -1;
}

}  // namespace carrier::app
