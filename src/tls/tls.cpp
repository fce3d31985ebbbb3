// carrier tls: contexts, certificate checks, self-signed certificates. See tls.hpp.
// RFC 3207, RFC 8314, RFC 6066 3 (SNI), RFC 6125 (host name checks, done by OpenSSL).
#include "tls/tls.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <asio/ssl.hpp>
#include <cstdio>

namespace carrier::tls {
namespace {

std::string ssl_errors() {
  std::string r;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!r.empty()) r += "; ";
    r += buf;
  }
  return r.empty() ? "unknown OpenSSL error" : r;
}

struct FileCloser {
  void operator()(FILE* f) const { std::fclose(f); }
};
using File = std::unique_ptr<FILE, FileCloser>;

Result<File> open_read(const std::filesystem::path& p) {
  FILE* f = std::fopen(p.c_str(), "rb");
  if (!f) return sys_error("cannot read " + p.string());
  return File(f);
}

std::vector<std::string> cert_names(X509* x) {
  std::vector<std::string> names;
  auto* sans = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(x, NID_subject_alt_name, nullptr, nullptr));
  if (sans) {
    for (int i = 0; i < sk_GENERAL_NAME_num(sans); ++i) {
      const GENERAL_NAME* g = sk_GENERAL_NAME_value(sans, i);
      if (g->type == GEN_DNS) {
        const unsigned char* d = ASN1_STRING_get0_data(g->d.dNSName);
        names.emplace_back(reinterpret_cast<const char*>(d), ASN1_STRING_length(g->d.dNSName));
      }
    }
    GENERAL_NAMES_free(sans);
  }
  if (names.empty()) {
    char cn[256];
    if (X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof cn) > 0)
      names.emplace_back(cn);
  }
  return names;
}

bool inet_pton_any(const std::string& s, unsigned char* buf) {
  return ::inet_pton(AF_INET, s.c_str(), buf) == 1 || ::inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

void harden(SSL_CTX* c) {
  // TLS 1.2 and 1.3 only (RFC 8996 retires 1.0/1.1); no renegotiation, no compression.
  SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
  SSL_CTX_set_options(c, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                             SSL_OP_CIPHER_SERVER_PREFERENCE);
}

}  // namespace

Result<std::vector<std::string>> check_cert_files(const CertFiles& f) {
  auto cf = open_read(f.cert_file);
  if (!cf) return cf.error();
  auto kf = open_read(f.key_file);
  if (!kf) return kf.error();
  ERR_clear_error();
  X509* x = PEM_read_X509(cf->get(), nullptr, nullptr, nullptr);
  if (!x) return Error{f.cert_file.string() + ": not a PEM certificate (" + ssl_errors() + ")"};
  std::unique_ptr<X509, decltype(&X509_free)> xc(x, X509_free);
  EVP_PKEY* k = PEM_read_PrivateKey(kf->get(), nullptr, nullptr, nullptr);
  if (!k) return Error{f.key_file.string() + ": not a PEM private key (" + ssl_errors() + ")"};
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> kc(k, EVP_PKEY_free);
  if (X509_check_private_key(x, k) != 1) {
    ERR_clear_error();
    return Error{f.key_file.string() + ": private key does not match the certificate " +
                 f.cert_file.string()};
  }
  return cert_names(x);
}

Result<void> make_self_signed(const CertFiles& out, const std::string& host) {
  ERR_clear_error();
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(EVP_EC_gen("P-256"), EVP_PKEY_free);
  if (!key) return Error{"cannot make a key: " + ssl_errors()};
  std::unique_ptr<X509, decltype(&X509_free)> x(X509_new(), X509_free);
  X509_set_version(x.get(), 2);  // v3
  unsigned char serial[16];
  RAND_bytes(serial, sizeof serial);
  serial[0] &= 0x7f;
  BIGNUM* bn = BN_bin2bn(serial, sizeof serial, nullptr);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x.get()));
  BN_free(bn);
  X509_gmtime_adj(X509_getm_notBefore(x.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x.get()), 10L * 365 * 24 * 3600);
  X509_set_pubkey(x.get(), key.get());
  X509_NAME* name = X509_get_subject_name(x.get());
  const std::string cn = host.substr(0, 64);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_set_issuer_name(x.get(), name);
  X509V3_CTX v3;
  X509V3_set_ctx_nodb(&v3);
  X509V3_set_ctx(&v3, x.get(), x.get(), nullptr, nullptr, 0);
  const std::string san = "DNS:" + host;
  if (X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &v3, NID_subject_alt_name, san.c_str())) {
    X509_add_ext(x.get(), ext, -1);
    X509_EXTENSION_free(ext);
  }
  if (!X509_sign(x.get(), key.get(), EVP_sha256())) return Error{"cannot sign: " + ssl_errors()};

  auto write = [](const std::filesystem::path& p, mode_t mode, auto&& fn) -> Result<void> {
    const std::string tmp = p.string() + ".tmp";
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0) return sys_error("cannot write " + tmp);
    FILE* f = ::fdopen(fd, "wb");
    if (!f) {
      ::close(fd);
      return sys_error("cannot write " + tmp);
    }
    bool ok = fn(f) == 1;
    ok = std::fflush(f) == 0 && ::fsync(fileno(f)) == 0 && ok;
    std::fclose(f);
    if (!ok || ::rename(tmp.c_str(), p.c_str()) != 0) {
      ::unlink(tmp.c_str());
      return sys_error("cannot write " + p.string());
    }
    return {};
  };
  if (auto r = write(out.key_file, 0600, [&](FILE* f) {
        return PEM_write_PrivateKey(f, key.get(), nullptr, nullptr, 0, nullptr, nullptr);
      });
      !r)
    return r;
  return write(out.cert_file, 0644, [&](FILE* f) { return PEM_write_X509(f, x.get()); });
}

// ---- server -------------------------------------------------------------------------------

ServerTls::~ServerTls() = default;

asio::ssl::context& ServerTls::context() { return *ctxs_.front(); }

int ServerTls::on_servername(SSL* ssl, int*, void* arg) {
  auto* self = static_cast<ServerTls*>(arg);
  const char* sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (!sni || self->ctxs_.size() < 2) return SSL_TLSEXT_ERR_OK;  // the default certificate
  for (std::size_t i = 1; i < self->ctxs_.size(); ++i) {
    X509* leaf = SSL_CTX_get0_certificate(self->ctxs_[i]->native_handle());
    if (leaf && X509_check_host(leaf, sni, 0, 0, nullptr) == 1) {
      SSL_set_SSL_CTX(ssl, self->ctxs_[i]->native_handle());
      break;
    }
  }
  return SSL_TLSEXT_ERR_OK;
}

Result<std::shared_ptr<ServerTls>> ServerTls::load(const std::vector<CertFiles>& certs) {
  if (certs.empty()) return Error{"no certificate configured"};
  std::shared_ptr<ServerTls> t(new ServerTls());
  for (const auto& f : certs) {
    auto names = check_cert_files(f);
    if (!names) return names.error();
    auto ctx = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_server);
    SSL_CTX* c = ctx->native_handle();
    harden(c);
    ERR_clear_error();
    if (SSL_CTX_use_certificate_chain_file(c, f.cert_file.c_str()) != 1)
      return Error{f.cert_file.string() + ": " + ssl_errors()};
    if (SSL_CTX_use_PrivateKey_file(c, f.key_file.c_str(), SSL_FILETYPE_PEM) != 1)
      return Error{f.key_file.string() + ": " + ssl_errors()};
    if (SSL_CTX_check_private_key(c) != 1)
      return Error{f.key_file.string() + ": private key does not match " + f.cert_file.string()};
    t->ctxs_.push_back(std::move(ctx));
    t->names_.push_back(std::move(names).value());
  }
  SSL_CTX* def = t->ctxs_.front()->native_handle();
  SSL_CTX_set_tlsext_servername_callback(def, &ServerTls::on_servername);
  SSL_CTX_set_tlsext_servername_arg(def, t.get());
  return t;
}

// ---- client -------------------------------------------------------------------------------

ClientTls::~ClientTls() = default;
asio::ssl::context& ClientTls::any() { return *any_; }
asio::ssl::context& ClientTls::verifying() { return *verify_; }

Result<std::shared_ptr<ClientTls>> ClientTls::create(const std::filesystem::path& ca_file) {
  std::shared_ptr<ClientTls> t(new ClientTls());
  t->any_ = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_client);
  harden(t->any_->native_handle());
  SSL_CTX_set_verify(t->any_->native_handle(), SSL_VERIFY_NONE, nullptr);
  t->verify_ = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_client);
  SSL_CTX* v = t->verify_->native_handle();
  harden(v);
  SSL_CTX_set_verify(v, SSL_VERIFY_PEER, nullptr);
  ERR_clear_error();
  if (!ca_file.empty()) {
    if (SSL_CTX_load_verify_locations(v, ca_file.c_str(), nullptr) != 1)
      return Error{"tls_ca_file " + ca_file.string() + ": " + ssl_errors()};
  } else if (SSL_CTX_set_default_verify_paths(v) != 1) {
    return Error{"cannot load the system CA store: " + ssl_errors()};
  }
  return t;
}

void prepare_client(SSL* ssl, const std::string& name, bool verify) {
  std::string n = name;
  if (!n.empty() && n.back() == '.') n.pop_back();
  unsigned char buf[16];
  const bool ip = inet_pton_any(n, buf);
  if (!ip && !n.empty()) SSL_set_tlsext_host_name(ssl, n.c_str());  // RFC 6066 3: no IPs
  if (!verify) return;
  X509_VERIFY_PARAM* p = SSL_get0_param(ssl);
  if (ip) X509_VERIFY_PARAM_set1_ip_asc(p, n.c_str());
  else {
    X509_VERIFY_PARAM_set_hostflags(p, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    X509_VERIFY_PARAM_set1_host(p, n.c_str(), 0);
  }
}

std::string describe(SSL* ssl) {
  const SSL_CIPHER* c = SSL_get_current_cipher(ssl);
  int alg_bits = 0;
  const int bits = c ? SSL_CIPHER_get_bits(c, &alg_bits) : 0;
  std::string r = "using ";
  r += SSL_get_version(ssl);
  r += " with cipher ";
  r += c ? SSL_CIPHER_get_name(c) : "unknown";
  r += " (" + std::to_string(bits) + "/" + std::to_string(alg_bits) + " bits)";
  return r;
}

std::string handshake_error(SSL* ssl, const std::string& asio_message) {
  std::string r = asio_message;
  if (ssl) {
    long v = SSL_get_verify_result(ssl);
    if (v != X509_V_OK) {
      r += ": ";
      r += X509_verify_cert_error_string(v);
    }
  }
  return r;
}

}  // namespace carrier::tls
