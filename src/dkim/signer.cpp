// carrier DKIM signer: header selection, the DKIM-Signature field and its signature.
#include "dkim/signer.hpp"
#include "dkim/ossl.hpp"

#include <openssl/err.h>
#include <openssl/evp.h>

#include <algorithm>
#include <map>

namespace carrier::dkim {

namespace {

std::string lowercase(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

bool same_name(std::string_view field_name, std::string_view lower_name) {
  while (!field_name.empty() && (field_name.back() == ' ' || field_name.back() == '\t'))
    field_name.remove_suffix(1);
  return lowercase(field_name) == lower_name;
}

// RFC 5322 ftext: printable US-ASCII except ':'.
bool valid_field_name(std::string_view n) {
  if (n.empty()) return false;
  return std::all_of(n.begin(), n.end(), [](char c) { return c >= 33 && c <= 126 && c != ':'; });
}

// Builds a header field folded at 78 columns; a break goes only where FWS is allowed.
class Folder {
 public:
  explicit Folder(std::string start) : out_(std::move(start)), col_(out_.size()) {}
  // A piece that may be preceded by a space or, when the line is full, by CRLF TAB.
  void word(std::string_view w) {
    if (col_ + 1 + w.size() > kWidth) {
      out_ += "\r\n\t";
      col_ = 8;
    } else {
      out_ += ' ';
      ++col_;
    }
    out_ += w;
    col_ += w.size();
  }
  // A piece glued to the previous one unless the line is full (then CRLF TAB).
  void glued(std::string_view w) {
    if (col_ + w.size() > kWidth) {
      out_ += "\r\n\t";
      col_ = 8;
    }
    out_ += w;
    col_ += w.size();
  }
  // Text that can be broken anywhere (base64): fills lines.
  void breakable(std::string_view s) {
    while (!s.empty()) {
      if (col_ >= kWidth) {
        out_ += "\r\n\t";
        col_ = 8;
      }
      std::size_t n = std::min(s.size(), kWidth - col_);
      out_.append(s.substr(0, n));
      col_ += n;
      s.remove_prefix(n);
    }
  }
  const std::string& str() const { return out_; }

 private:
  static constexpr std::size_t kWidth = 78;
  std::string out_;
  std::size_t col_;
};

using detail::openssl_reason;
using CtxFree = detail::MdCtxFree;

}  // namespace

const std::vector<std::string>& default_signed_headers() {
  static const std::vector<std::string> h = {
      "from",         "to",           "cc",                        "subject",     "date",      "message-id",
      "reply-to",     "mime-version", "content-type",              "content-transfer-encoding",
      "in-reply-to",  "references"};
  return h;
}

Result<Signer> Signer::create(SignerOptions o, PrivateKey key) {
  if (auto e = domain_syntax_error(o.domain); !e.empty()) return Error{e};
  if (auto e = selector_syntax_error(o.selector); !e.empty()) return Error{e};
  if (!key.get()) return Error{"no private key"};
  auto normalise = [](std::vector<std::string>& names) -> std::string {
    std::vector<std::string> out;
    for (const auto& n : names) {
      if (!valid_field_name(n)) return "not a header field name: '" + n + "'";
      std::string l = lowercase(n);
      if (std::find(out.begin(), out.end(), l) == out.end()) out.push_back(l);
    }
    names = std::move(out);
    return "";
  };
  if (auto e = normalise(o.headers); !e.empty()) return Error{e};
  if (auto e = normalise(o.oversign); !e.empty()) return Error{e};
  if (std::find(o.headers.begin(), o.headers.end(), "from") == o.headers.end())
    o.headers.insert(o.headers.begin(), "from");
  if (std::find(o.headers.begin(), o.headers.end(), "dkim-signature") != o.headers.end())
    return Error{"DKIM-Signature cannot be one of the signed fields"};
  return Signer(std::move(o), std::move(key));
}

Result<std::string> Signer::sign(std::string_view header_section, const std::array<unsigned char, 32>& bh,
                                 std::int64_t unix_time) const {
  const auto fields = parse_header_fields(header_section);
  auto count = [&](const std::string& name) {
    return static_cast<std::size_t>(
        std::count_if(fields.begin(), fields.end(), [&](const HeaderField& f) { return same_name(f.name, name); }));
  };
  if (count("from") == 0) return Error{"the message has no From: field (DKIM always signs From)"};

  // h=: each listed field as often as it occurs, oversigned names once more.
  std::vector<std::string> h;
  for (const auto& name : opts_.headers) {
    std::size_t n = count(name);
    if (std::find(opts_.oversign.begin(), opts_.oversign.end(), name) != opts_.oversign.end()) ++n;
    for (std::size_t i = 0; i < n; ++i) h.push_back(name);
  }

  // The data to sign: the selected fields, each name taking its occurrences from the bottom up
  // (RFC 6376 5.4.2); a name listed more often than it occurs adds nothing.
  std::string data;
  std::map<std::string, std::size_t> used;  // occurrences taken so far, from the bottom
  for (const auto& name : h) {
    std::size_t skip = used[name]++;
    for (auto it = fields.rbegin(); it != fields.rend(); ++it) {
      if (!same_name(it->name, name)) continue;
      if (skip-- == 0) {
        data += canonicalize_header(*it, opts_.header_canon);
        break;
      }
    }
  }

  // The field itself, with an empty b= (its value is appended after signing).
  Folder f("DKIM-Signature:");
  f.word("v=1;");
  f.word("a=" + std::string(algorithm_name(algorithm())) + ";");
  f.word("c=" + std::string(canon_name(opts_.header_canon)) + "/" + std::string(canon_name(opts_.body_canon)) + ";");
  f.word("d=" + opts_.domain + ";");
  f.word("s=" + opts_.selector + ";");
  f.word("t=" + std::to_string(unix_time) + ";");
  for (std::size_t i = 0; i < h.size(); ++i) {
    std::string piece = (i == 0 ? "h=" : "") + h[i] + (i + 1 == h.size() ? ";" : ":");
    if (i == 0) f.word(piece);
    else f.glued(piece);
  }
  f.word("bh=" + base64(bh) + ";");
  f.word("b=");
  const std::string unsigned_field = f.str();

  std::string_view uf = unsigned_field;
  const std::size_t colon = uf.find(':');
  std::string canon_sig = canonicalize_header(uf.substr(0, colon), uf.substr(colon + 1), opts_.header_canon == Canon::Relaxed);
  canon_sig.resize(canon_sig.size() - 2);  // the signature field is signed without its CRLF
  data += canon_sig;

  // Sign: rsa-sha256 signs the data with SHA-256 (PKCS#1 v1.5); ed25519-sha256 signs the
  // SHA-256 digest of the data with PureEd25519 (RFC 8463 3).
  ERR_clear_error();
  std::unique_ptr<EVP_MD_CTX, CtxFree> ctx(EVP_MD_CTX_new());
  if (!ctx) return Error{"out of memory"};
  std::string input;
  const EVP_MD* md = nullptr;
  if (algorithm() == Algorithm::Ed25519Sha256) {
    unsigned char d[32];
    unsigned int n = 0;
    if (EVP_Digest(data.data(), data.size(), d, &n, EVP_sha256(), nullptr) != 1)
      return Error{"SHA-256 failed: " + openssl_reason()};
    input.assign(reinterpret_cast<char*>(d), n);
  } else {
    md = EVP_sha256();
    input = std::move(data);
  }
  if (EVP_DigestSignInit(ctx.get(), nullptr, md, nullptr, key_.get()) != 1)
    return Error{"cannot sign with this key: " + openssl_reason()};
  std::size_t siglen = 0;
  const auto* in = reinterpret_cast<const unsigned char*>(input.data());
  if (EVP_DigestSign(ctx.get(), nullptr, &siglen, in, input.size()) != 1)
    return Error{"signing failed: " + openssl_reason()};
  std::string sig(siglen, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &siglen, in, input.size()) != 1)
    return Error{"signing failed: " + openssl_reason()};
  sig.resize(siglen);

  f.breakable(base64(sig));
  return f.str() + "\r\n";
}

Result<std::string> Signer::sign_message(std::string_view message, std::int64_t unix_time) const {
  auto parts = split_message(message);
  auto hasher = body_hasher();
  hasher.update(parts.body);
  return sign(parts.header, hasher.finish(), unix_time);
}

}  // namespace carrier::dkim
