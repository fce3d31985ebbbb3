// carrier metrics: the HTTP endpoint. See http.hpp. Requests are UNTRUSTED: only the method
// and path are looked at; cpp-httplib parses them within its limits, a request body is
// refused past 1 KiB, reads and writes time out after 5 s, and two threads serve.
#include "metrics/http.hpp"

#include <arpa/inet.h>
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <cstring>

#include "metrics/domains.hpp"
#include "metrics/metrics.hpp"

namespace carrier::metrics {

namespace {

// 127.0.0.0/8, ::1 or ::ffff:127.x.y.z: the only addresses the endpoint may listen on.
bool is_loopback_literal(const std::string& a) {
  in_addr v4{};
  if (::inet_pton(AF_INET, a.c_str(), &v4) == 1)
    return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  if (::inet_pton(AF_INET6, a.c_str(), &v6) == 1) {
    static const unsigned char one[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (std::memcmp(v6.s6_addr, one, 16) == 0) return true;
    return std::memcmp(v6.s6_addr, mapped, 12) == 0 && v6.s6_addr[12] == 127;
  }
  return false;
}

}  // namespace

struct HttpServer::Impl {
  httplib::Server srv;
  std::thread thread;
  std::atomic<bool> done{false};  // the serving thread has returned
};

HttpServer::HttpServer() : impl_(std::make_unique<Impl>()) {}
HttpServer::~HttpServer() { stop(); }

Result<std::uint16_t> HttpServer::start(const std::string& address, std::uint16_t port) {
  if (impl_->thread.joinable()) return Error{"metrics: the HTTP endpoint is already running"};
  if (!is_loopback_literal(address))
    return Error{"metrics: refusing to listen on \"" + address +
                 "\": only a loopback address (127.0.0.0/8 or ::1) is allowed"};
  deliveries();  // carrier_deliveries_total is listed (HELP/TYPE) before the first delivery
  auto& srv = impl_->srv;
  srv.new_task_queue = [] { return new httplib::ThreadPool(2); };
  srv.set_payload_max_length(1024);
  srv.set_read_timeout(5, 0);
  srv.set_write_timeout(5, 0);
  srv.set_keep_alive_max_count(100);
  srv.Get("/metrics", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(global().render(), "text/plain; version=0.0.4; charset=utf-8");
  });
  srv.Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("ok\n", "text/plain");
  });
  int bound = port;
  if (port == 0) bound = srv.bind_to_any_port(address);
  else if (!srv.bind_to_port(address, port)) bound = -1;
  if (bound <= 0) return Error{"metrics: cannot listen on " + address + ":" + std::to_string(port)};
  impl_->done = false;
  impl_->thread = std::thread([im = impl_.get()] {
    im->srv.listen_after_bind();
    im->done = true;
  });
  return static_cast<std::uint16_t>(bound);
}

void HttpServer::stop() {
  if (!impl_ || !impl_->thread.joinable()) return;
  // httplib's stop() does nothing until listen_after_bind() is running: a stop() right after
  // start() would be lost and the join below would wait for ever.
  while (!impl_->done && !impl_->srv.is_running())
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  if (!impl_->done) impl_->srv.stop();
  impl_->thread.join();
}

}  // namespace carrier::metrics
