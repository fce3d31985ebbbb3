// carrier metrics: the HTTP endpoint. See http.hpp.
#include "metrics/http.hpp"

#include <httplib.h>

#include "metrics/metrics.hpp"

namespace carrier::metrics {

struct HttpServer::Impl {
  httplib::Server srv;
  std::thread thread;
};

HttpServer::HttpServer() : impl_(std::make_unique<Impl>()) {}
HttpServer::~HttpServer() { stop(); }

Result<std::uint16_t> HttpServer::start(const std::string& address, std::uint16_t port) {
  impl_->srv.Get("/metrics", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(global().render(), "text/plain; version=0.0.4; charset=utf-8");
  });
  impl_->srv.Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("ok\n", "text/plain");
  });
  int bound = port;
  if (port == 0) bound = impl_->srv.bind_to_any_port(address);
  else if (!impl_->srv.bind_to_port(address, port)) bound = -1;
  if (bound <= 0) return Error{"metrics: cannot listen on " + address + ":" + std::to_string(port)};
  impl_->thread = std::thread([this] { impl_->srv.listen_after_bind(); });
  return static_cast<std::uint16_t>(bound);
}

void HttpServer::stop() {
  if (!impl_ || !impl_->thread.joinable()) return;
  impl_->srv.stop();
  impl_->thread.join();
}

}  // namespace carrier::metrics
