// carrier admin: request handling and the socket servers. See admin.hpp.
#include "admin/admin.hpp"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <asio.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <chrono>
#include <map>

#include "proto/address.hpp"

namespace carrier::admin {

using nlohmann::json;
namespace fs = std::filesystem;
constexpr std::size_t kMaxRequest = 64 * 1024;
constexpr std::size_t kMaxHeaderBytes = 64 * 1024;
constexpr std::size_t kDefaultLimit = 1000;

namespace {

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

json error(const std::string& e) { return json{{"ok", false}, {"error", e}}; }

std::string lower(std::string s) {
  for (auto& c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return s;
}

// The message's header section as stored (our Received: first), at most kMaxHeaderBytes.
std::string headers_of(const spool::Stored& m) {
  int fd = ::open(m.path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {};
  std::string buf(static_cast<std::size_t>(std::min<std::uint64_t>(m.content_size, kMaxHeaderBytes)), '\0');
  ssize_t n = ::pread(fd, buf.data(), buf.size(), static_cast<off_t>(m.content_offset));
  ::close(fd);
  if (n <= 0) return {};
  buf.resize(static_cast<std::size_t>(n));
  auto end = buf.find("\r\n\r\n");
  if (end != std::string::npos) buf.resize(end + 2);
  return buf;
}

json item_json(const queue::QueueItem& q, const spool::Stored* m) {
  json j{{"id", q.id}, {"state", q.state}, {"attempts", q.attempts}};
  if (q.next_try)
    j["next_try"] = std::chrono::duration_cast<std::chrono::seconds>(q.next_try->time_since_epoch()).count();
  if (!q.last_error.empty()) j["last_error"] = q.last_error;
  if (m) {
    j["sender"] = m->envelope.sender.str();
    j["size"] = m->content_size;
    const std::int64_t rcv = m->envelope.received_at_ms;
    j["received"] = rcv / 1000;
    j["age_s"] = rcv ? (now_ms() - rcv) / 1000 : 0;
    json rs = json::array();
    for (std::size_t i = 0; i < m->envelope.recipients.size(); ++i) {
      const auto& r = m->envelope.recipients[i];
      const bool done = i < m->done.size() && m->done[i];
      rs.push_back(json{{"address", r.address.str()},
                        {"route", r.route == proto::RcptRoute::Local ? "local" : "relay"},
                        {"done", done}});
    }
    j["recipients"] = rs;
  }
  return j;
}

// The destination of an open recipient: its domain (lower case), or "local".
std::string destination(const proto::EnvelopeRecipient& r) {
  if (r.route == proto::RcptRoute::Local) return "local";
  return lower(proto::normalize_domain(r.address.domain));
}

bool matches_domain(const spool::Stored& m, const std::string& domain) {
  for (std::size_t i = 0; i < m.envelope.recipients.size(); ++i) {
    if (i < m.done.size() && m.done[i]) continue;
    const auto& r = m.envelope.recipients[i];
    if (lower(proto::normalize_domain(r.address.domain)) == domain || destination(r) == domain)
      return true;
  }
  return false;
}

const char* result_text(queue::Delivery::ActionResult r) {
  switch (r) {
    case queue::Delivery::ActionResult::Ok: return "ok";
    case queue::Delivery::ActionResult::NotFound: return "no such message in the queue";
    case queue::Delivery::ActionResult::Busy: return "being delivered right now; try again in a moment";
    case queue::Delivery::ActionResult::NotHeld: return "not held";
    case queue::Delivery::ActionResult::Held: return "held: release it first";
  }
  return "?";
}

}  // namespace

json handle(const Context& ctx, const json& req, bool trusted) {
  if (!req.is_object() || !req.contains("cmd") || !req["cmd"].is_string())
    return error("a request is a JSON object with a string \"cmd\"");
  if (!trusted) {
    if (ctx.token.empty() || !req.contains("token") || !req["token"].is_string() ||
        req["token"].get<std::string>() != ctx.token)
      return error("a valid token is required on the TCP admin port");
  }
  const std::string cmd = req["cmd"];
  const json args = req.contains("args") && req["args"].is_object() ? req["args"] : json::object();
  auto str_arg = [&](const char* k) -> std::string {
    return args.contains(k) && args[k].is_string() ? args[k].get<std::string>() : std::string();
  };
  if (cmd == "ping") return json{{"ok", true}, {"pong", true}};
  if (!ctx.delivery || !ctx.spool) return error("queue not available");

  if (cmd == "queue.list" || cmd == "queue.summary") {
    const std::string state = str_arg("state");
    const std::string domain = lower(str_arg("domain"));
    const std::int64_t older = args.contains("older_than") && args["older_than"].is_number_integer()
                                   ? args["older_than"].get<std::int64_t>()
                                   : 0;
    std::size_t limit = args.contains("limit") && args["limit"].is_number_unsigned()
                            ? args["limit"].get<std::size_t>()
                            : kDefaultLimit;
    if (!state.empty() && state != "active" && state != "deferred" && state != "held" &&
        state != "waiting")
      return error("state must be active, deferred, held or waiting");
    json items = json::array();
    std::map<std::string, json> dest;  // summary: destination → counts
    std::size_t total = 0;
    for (const auto& q : ctx.delivery->snapshot()) {
      if (!state.empty() && q.state != state) continue;
      auto m = ctx.spool->load(q.id);
      if (!m) continue;  // delivered and removed meanwhile
      if (!domain.empty() && !matches_domain(*m, domain)) continue;
      const std::int64_t age = m->envelope.received_at_ms ? (now_ms() - m->envelope.received_at_ms) / 1000 : 0;
      if (older > 0 && age < older) continue;
      ++total;
      if (cmd == "queue.summary") {
        for (std::size_t i = 0; i < m->envelope.recipients.size(); ++i) {
          if (i < m->done.size() && m->done[i]) continue;
          json& d = dest[destination(m->envelope.recipients[i])];
          if (d.is_null()) d = json{{"recipients", 0}, {"oldest_s", 0}, {"by_state", json::object()}};
          d["recipients"] = d["recipients"].get<int>() + 1;
          d["oldest_s"] = std::max<std::int64_t>(d["oldest_s"].get<std::int64_t>(), age);
          json& bs = d["by_state"];
          bs[q.state] = (bs.contains(q.state) ? bs[q.state].get<int>() : 0) + 1;
        }
        continue;
      }
      if (items.size() < limit) items.push_back(item_json(q, &*m));
    }
    if (cmd == "queue.summary") {
      json d = json::object();
      for (auto& [k, v] : dest) d[k] = v;
      return json{{"ok", true}, {"messages", total}, {"destinations", d}};
    }
    return json{{"ok", true}, {"total", total}, {"messages", items}};
  }

  if (cmd == "queue.show") {
    const std::string id = str_arg("id");
    queue::QueueItem qi;
    bool found = false;
    for (auto& q : ctx.delivery->snapshot())
      if (q.id == id) {
        qi = q;
        found = true;
      }
    auto m = ctx.spool->load(id);
    if (!found || !m) return error("no message " + id + " in the queue (see: carrier queue trace " + id + ")");
    json j = item_json(qi, &*m);
    j["ok"] = true;
    j["headers"] = headers_of(*m);
    j["helo"] = m->envelope.helo;
    j["client_ip"] = m->envelope.client_ip;
    j["protocol"] = m->envelope.protocol;
    j["events"] = m->events;
    return j;
  }

  if (cmd == "queue.trace") {
    const std::string id = str_arg("id");
    if (!ctx.trace) return error("no trace journal");
    json ev = json::array();
    for (const auto& e : ctx.trace->read(id)) ev.push_back(json{{"time_ms", e.unix_ms}, {"event", e.text}});
    if (ev.empty()) return error("nothing known about " + id + " (never here, or its trace expired)");
    return json{{"ok", true}, {"id", id}, {"events", ev}};
  }

  static const std::map<std::string, queue::Delivery::Action> actions = {
      {"queue.retry", queue::Delivery::Action::Retry},   {"queue.hold", queue::Delivery::Action::Hold},
      {"queue.release", queue::Delivery::Action::Release}, {"queue.delete", queue::Delivery::Action::Remove},
      {"queue.bounce", queue::Delivery::Action::Bounce}};
  if (auto a = actions.find(cmd); a != actions.end()) {
    std::vector<std::string> ids;
    const std::string id = str_arg("id");
    const std::string domain = lower(str_arg("domain"));
    const bool all = args.contains("all") && args["all"].is_boolean() && args["all"].get<bool>();
    if (!id.empty()) {
      ids.push_back(id);
    } else if (all || !domain.empty()) {
      for (const auto& q : ctx.delivery->snapshot()) {
        if (!domain.empty()) {
          auto m = ctx.spool->load(q.id);
          if (!m || !matches_domain(*m, domain)) continue;
        }
        ids.push_back(q.id);
      }
    } else {
      return error("give an id, \"all\": true or a \"domain\"");
    }
    json done = json::array(), failed = json::array();
    for (const auto& x : ids) {
      auto r = ctx.delivery->act(x, a->second);
      if (r == queue::Delivery::ActionResult::Ok) done.push_back(x);
      else failed.push_back(json{{"id", x}, {"error", result_text(r)}});
    }
    json out{{"ok", failed.empty() || !done.empty() || ids.size() > 1}, {"done", done}, {"failed", failed}};
    if (ids.size() == 1 && !failed.empty()) out["error"] = failed[0]["error"];
    return out;
  }

  if (cmd == "reload") {
    if (!ctx.reload) return error("reload not available");
    std::string e = ctx.reload();
    if (!e.empty()) return error(e);
    return json{{"ok", true}};
  }
  return error("unknown command \"" + cmd + "\"");
}

// ---- servers ------------------------------------------------------------------------------

using use_tuple_t = decltype(asio::experimental::as_tuple(asio::use_awaitable));
constexpr auto use_tuple = asio::experimental::as_tuple(asio::use_awaitable);

struct Server::Impl : std::enable_shared_from_this<Impl> {
  Impl(asio::io_context& i, Context c) : io(i), ctx(std::move(c)) {}
  asio::io_context& io;
  Context ctx;
  std::unique_ptr<asio::local::stream_protocol::acceptor> unix_acc;
  std::unique_ptr<asio::ip::tcp::acceptor> tcp_acc;
  fs::path unix_path;

  template <class Socket>
  asio::awaitable<void> serve(Socket sock, bool trusted) {
    std::string in;
    std::string buf(4096, '\0');
    asio::steady_timer deadline(io, std::chrono::seconds(30));
    deadline.async_wait([&sock](const asio::error_code& e) {
      if (!e) {
        asio::error_code ec;
        sock.close(ec);
      }
    });
    while (in.find('\n') == std::string::npos && in.size() < kMaxRequest) {
      auto [ec, n] = co_await sock.async_read_some(asio::buffer(buf), use_tuple);
      if (ec) break;
      in.append(buf.data(), n);
    }
    json reply;
    auto nl = in.find('\n');
    if (nl == std::string::npos) {
      reply = error(in.size() >= kMaxRequest ? "request too large" : "incomplete request");
    } else {
      json req = json::parse(in.substr(0, nl), nullptr, false);
      if (req.is_discarded()) reply = error("request is not valid JSON");
      else {
        try {
          reply = handle(ctx, req, trusted);
        } catch (const std::exception& e) {
          reply = error(std::string("internal error: ") + e.what());
        }
      }
    }
    std::string out = reply.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
    co_await asio::async_write(sock, asio::buffer(out), use_tuple);
    deadline.cancel();
    asio::error_code ec;
    sock.close(ec);
  }

  template <class Acceptor>
  asio::awaitable<void> accept_loop(Acceptor* acc, bool trusted) {
    auto self = shared_from_this();
    for (;;) {
      auto [ec, sock] = co_await acc->async_accept(use_tuple);
      if (ec == asio::error::operation_aborted || !acc->is_open()) co_return;
      if (ec) continue;
      asio::co_spawn(io, serve(std::move(sock), trusted), asio::detached);
    }
  }
};

Server::Server(asio::io_context& io, Context ctx) : impl_(std::make_shared<Impl>(io, std::move(ctx))) {}
Server::~Server() { stop(); }

Result<void> Server::listen_unix(const fs::path& path) {
  std::error_code fec;
  fs::remove(path, fec);  // a stale socket from an earlier run (the spool lock guards the rest)
  asio::error_code ec;
  auto acc = std::make_unique<asio::local::stream_protocol::acceptor>(impl_->io);
  asio::local::stream_protocol::endpoint ep(path.string());
  acc->open(ep.protocol(), ec);
  if (!ec) acc->bind(ep, ec);
  if (!ec) acc->listen(16, ec);
  if (ec) return Error{"admin socket " + path.string() + ": " + ec.message()};
  ::chmod(path.c_str(), 0660);
  impl_->unix_path = path;
  auto* raw = acc.get();
  impl_->unix_acc = std::move(acc);
  asio::co_spawn(impl_->io, impl_->accept_loop(raw, true), asio::detached);
  return {};
}

Result<std::string> Server::listen_tcp(const std::string& address, std::uint16_t port) {
  asio::error_code ec;
  auto addr = asio::ip::make_address(address, ec);
  if (ec || !addr.is_loopback()) return Error{"admin listen: " + address + " is not a loopback address"};
  if (impl_->ctx.token.empty()) return Error{"admin listen needs [admin] token"};
  auto acc = std::make_unique<asio::ip::tcp::acceptor>(impl_->io);
  asio::ip::tcp::endpoint ep(addr, port);
  acc->open(ep.protocol(), ec);
  if (!ec) acc->set_option(asio::ip::tcp::acceptor::reuse_address(true), ec);
  if (!ec) acc->bind(ep, ec);
  if (!ec) acc->listen(16, ec);
  if (ec) return Error{"admin listen " + address + ":" + std::to_string(port) + ": " + ec.message()};
  auto local = acc->local_endpoint();
  auto* raw = acc.get();
  impl_->tcp_acc = std::move(acc);
  asio::co_spawn(impl_->io, impl_->accept_loop(raw, false), asio::detached);
  return local.address().to_string() + ":" + std::to_string(local.port());
}

void Server::stop() {
  asio::error_code ec;
  if (impl_->unix_acc) {
    impl_->unix_acc->close(ec);
    std::error_code fec;
    fs::remove(impl_->unix_path, fec);
    impl_->unix_acc.reset();
  }
  if (impl_->tcp_acc) {
    impl_->tcp_acc->close(ec);
    impl_->tcp_acc.reset();
  }
}

Result<json> call(const fs::path& socket, const json& req) {
  asio::io_context io;
  asio::local::stream_protocol::socket s(io);
  asio::error_code ec;
  s.connect(asio::local::stream_protocol::endpoint(socket.string()), ec);
  if (ec) {
    if (ec == asio::error::not_found || ec == asio::error::connection_refused ||
        ec.value() == ENOENT)
      return Error{"carrier is not running (nothing answers on " + socket.string() + ")"};
    if (ec.value() == EACCES)
      return Error{"permission denied on " + socket.string() + " (run as root or carrier's user)"};
    return Error{"cannot reach carrier on " + socket.string() + ": " + ec.message()};
  }
  std::string out = req.dump() + "\n";
  asio::write(s, asio::buffer(out), ec);
  if (ec) return Error{"sending the request failed: " + ec.message()};
  std::string in;
  char buf[8192];
  for (;;) {
    std::size_t n = s.read_some(asio::buffer(buf), ec);
    if (n) in.append(buf, n);
    if (ec) break;
  }
  auto nl = in.find('\n');
  json reply = json::parse(in.substr(0, nl), nullptr, false);
  if (reply.is_discarded()) return Error{"carrier sent no valid reply"};
  return reply;
}

}  // namespace carrier::admin
