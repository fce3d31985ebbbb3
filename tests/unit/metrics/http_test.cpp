// carrier metrics tests: the HTTP endpoint on 127.0.0.1 (a free port) — GET /metrics in the
// text format 0.0.4 with its content type, GET /healthz "ok", 404 elsewhere, loopback only,
// stop() right after start() does not hang, and the port is free again after stop().
#include <gtest/gtest.h>
#include <httplib.h>

#include "exposition.hpp"
#include "metrics/http.hpp"
#include "metrics/metrics.hpp"

namespace carrier::metrics {
namespace {

TEST(MetricsHttp, ServesMetricsAndHealthzOnLoopback) {
  global().counter("carrier_test_http_total", "test").inc(4);
  HttpServer srv;
  auto port = srv.start("127.0.0.1", 0);
  ASSERT_TRUE(port) << port.error().message;
  ASSERT_GT(*port, 0);
  httplib::Client cli("127.0.0.1", *port);
  cli.set_read_timeout(5, 0);
  auto h = cli.Get("/healthz");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
  EXPECT_EQ(h->body, "ok\n");
  auto m = cli.Get("/metrics");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->status, 200);
  EXPECT_EQ(m->get_header_value("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  auto p = test::parse_exposition(m->body);
  EXPECT_TRUE(p.errors.empty()) << test::dump_errors(p);
  EXPECT_EQ(p.get("carrier_test_http_total"), 4.0);
  EXPECT_EQ(p.type["carrier_deliveries_total"], "counter");  // listed before any delivery
  auto nf = cli.Get("/nothing");
  ASSERT_TRUE(nf);
  EXPECT_EQ(nf->status, 404);
  srv.stop();
  srv.stop();  // idempotent
  // Stopped: nothing answers, and the port can be bound again.
  httplib::Client gone("127.0.0.1", *port);
  gone.set_connection_timeout(1, 0);
  EXPECT_FALSE(gone.Get("/healthz"));
  HttpServer again;
  auto p2 = again.start("127.0.0.1", *port);
  EXPECT_TRUE(p2) << p2.error().message;
}

TEST(MetricsHttp, RefusesAddressesThatAreNotLoopback) {
  for (const char* a : {"0.0.0.0", "::", "192.0.2.1", "10.0.0.1", "localhost", "", "128.0.0.1"}) {
    HttpServer srv;
    auto r = srv.start(a, 0);
    ASSERT_FALSE(r) << a;
    EXPECT_NE(r.error().message.find("loopback"), std::string::npos) << r.error().message;
  }
  HttpServer v6;
  if (auto r = v6.start("::1", 0); !r) {  // hosts without IPv6: a bind error, not a refusal
    EXPECT_EQ(r.error().message.find("loopback"), std::string::npos) << r.error().message;
  }
  HttpServer other;
  EXPECT_TRUE(other.start("127.0.0.2", 0));
}

TEST(MetricsHttp, StopRightAfterStartDoesNotHang) {
  for (int i = 0; i < 20; ++i) {
    HttpServer srv;
    ASSERT_TRUE(srv.start("127.0.0.1", 0));
    srv.stop();
  }
  HttpServer never;
  never.stop();
}

TEST(MetricsHttp, SecondStartIsRefused) {
  HttpServer srv;
  ASSERT_TRUE(srv.start("127.0.0.1", 0));
  auto r = srv.start("127.0.0.1", 0);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("already"), std::string::npos);
}

}  // namespace
}  // namespace carrier::metrics
