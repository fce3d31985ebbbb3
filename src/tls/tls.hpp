// carrier tls: OpenSSL 3 contexts for both directions, through asio::ssl.
//   Server (RFC 3207 STARTTLS, RFC 8314 implicit TLS): one context per configured
//   certificate; the first is the default and the others are chosen by SNI (RFC 6066 3) from
//   the names in each certificate (subjectAltName, else CN). A ServerTls is immutable; a
//   reload builds a new one and swaps it into a TlsStore, while connections keep the one they
//   started with (shared_ptr), so no session is dropped.
//   Client (relay): "may"/"encrypt" accept any certificate; "verify" checks the chain against
//   a CA file or the system store and the host name (RFC 6125 via OpenSSL's X509_check_host).
// TLS 1.2 and 1.3 only, OpenSSL's secure defaults otherwise. Handles UNTRUSTED input only
// through OpenSSL (handshakes) and the operator's certificate files.
#pragma once
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "base/result.hpp"

namespace asio::ssl {
class context;
}
typedef struct ssl_st SSL;

namespace carrier::tls {

struct CertFiles {
  std::filesystem::path cert_file;  // PEM chain, leaf first
  std::filesystem::path key_file;   // PEM private key
};

// Reads and checks one pair: both readable, valid PEM, the key matches the certificate.
// Returns the certificate's host names (subjectAltName DNS entries, else the CN).
Result<std::vector<std::string>> check_cert_files(const CertFiles& f);

// Writes a self-signed certificate (EC P-256, SHA-256, 10 years, subjectAltName DNS:host) and
// its key (mode 0600), each written to a temporary file and renamed into place.
Result<void> make_self_signed(const CertFiles& out, const std::string& host);

class ServerTls {
 public:
  // certs[0] is the default. Errors name the file and what is wrong.
  static Result<std::shared_ptr<ServerTls>> load(const std::vector<CertFiles>& certs);
  ~ServerTls();
  asio::ssl::context& context();  // the default; SNI switches to another one per handshake
  const std::vector<std::vector<std::string>>& names() const { return names_; }

 private:
  ServerTls() = default;
  static int on_servername(SSL* ssl, int* alert, void* arg);
  std::vector<std::unique_ptr<asio::ssl::context>> ctxs_;
  std::vector<std::vector<std::string>> names_;
};

// The server certificates in use; replace() on reload. Thread-safe.
class TlsStore {
 public:
  std::shared_ptr<ServerTls> get() const {
    std::lock_guard lk(mu_);
    return cur_;
  }
  void replace(std::shared_ptr<ServerTls> t) {
    std::lock_guard lk(mu_);
    cur_ = std::move(t);
  }

 private:
  mutable std::mutex mu_;
  std::shared_ptr<ServerTls> cur_;
};

class ClientTls {
 public:
  // ca_file empty: the system store (OpenSSL's default paths) for "verify".
  static Result<std::shared_ptr<ClientTls>> create(const std::filesystem::path& ca_file);
  ~ClientTls();
  asio::ssl::context& any();       // no certificate check (may, encrypt)
  asio::ssl::context& verifying(); // chain checked; call expect_host() on each connection

 private:
  ClientTls() = default;
  std::unique_ptr<asio::ssl::context> any_, verify_;
};

// Per connection, before the client handshake: SNI (when name is a host name) and, when
// verify, the name (or IP literal) the certificate must match.
void prepare_client(SSL* ssl, const std::string& name, bool verify);

// "using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)" (as Postfix writes it).
std::string describe(SSL* ssl);
// Why a handshake failed: the OpenSSL error, plus the certificate check result when one
// failed ("certificate verify failed: hostname mismatch").
std::string handshake_error(SSL* ssl, const std::string& asio_message);

}  // namespace carrier::tls
