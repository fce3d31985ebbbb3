// carrier metrics: the HTTP endpoint on a loopback address — GET /metrics (Prometheus text
// format 0.0.4 from metrics::global()) and GET /healthz ("ok", 200 while the process serves).
// cpp-httplib on its own threads; anything else is 404. Requests are untrusted but only paths
// are looked at (bounded: 1 KiB body, 5 s timeouts, two serving threads). start() refuses an
// address that is not loopback (127.0.0.0/8, ::1).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "base/result.hpp"

namespace carrier::metrics {

class HttpServer {
 public:
  HttpServer();
  ~HttpServer();  // stop()
  // Binds address:port (port 0: any free one) and serves; returns the bound port. Errors: not
  // a loopback IP literal, already started, cannot bind.
  Result<std::uint16_t> start(const std::string& address, std::uint16_t port);
  // Stops serving and joins the thread; safe right after start() and when never started.
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace carrier::metrics
