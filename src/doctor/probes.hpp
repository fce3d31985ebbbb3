// carrier doctor: the probes that gather what the pure checks (checks.hpp) judge: certificate
// facts through OpenSSL, a listener address (connect and read the greeting, else try to bind),
// the spool directory (create/remove a temp file, statvfs). Each is bounded in time; the
// listener probe only talks to the configured listener addresses (wildcards are probed on the
// loopback address). Reads the operator's certificate files and a peer's greeting (UNTRUSTED:
// one bounded line).
#pragma once
#include <chrono>
#include <filesystem>
#include <string>

#include "config/config.hpp"
#include "doctor/checks.hpp"

namespace carrier::doctor {

// Loads cert_file/key_file (tls::check_cert_files), then reads the leaf's validity, whether it
// is self-signed, its names and whether it matches `host` (X509_check_host, RFC 6125).
CertInfo inspect_certificate(const std::filesystem::path& cert_file, const std::filesystem::path& key_file,
                             bool generated, const std::string& host);

// Connects to the listener (timeout each step); a 220 line (read after a TLS handshake for
// tls = "implicit") is a running server. Refused: tries to bind the address and port.
// Port 0 ("any free port") is only bound.
ListenerProbe probe_listener(const config::Listener& l,
                             std::chrono::milliseconds timeout = std::chrono::milliseconds(3000));

// Writes and removes a temporary file in dir/tmp (or dir), and statvfs(dir).
SpoolProbe probe_spool(const std::filesystem::path& dir);

}  // namespace carrier::doctor
