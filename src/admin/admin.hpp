// carrier admin: the operator's API, served by the daemon on a Unix socket (DATA_DIR/admin.sock,
// mode 0660: root and carrier's own user/group) and optionally on a loopback TCP port with a
// token. Protocol (docs/admin-api.md): one JSON object per line in, one JSON object per line
// out, then the server closes: {"cmd": "queue.list", "args": {...}, "token": "..."} →
// {"ok": true, ...} or {"ok": false, "error": "..."}. Requests are UNTRUSTED input (bounded to
// 64 KiB, every field type-checked); only root/carrier can reach the socket at all.
#pragma once
#include <filesystem>
#include <functional>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "base/result.hpp"
#include "queue/delivery.hpp"
#include "queue/trace.hpp"
#include "spool/spool.hpp"

namespace asio {
class io_context;
}

namespace carrier::admin {

struct Context {
  queue::Delivery* delivery = nullptr;
  spool::Spool* spool = nullptr;
  queue::TraceLog* trace = nullptr;
  // Validates and applies the configuration again; returns "" or the errors (file:line).
  std::function<std::string()> reload;
  std::string token;  // required from TCP clients; Unix-socket clients need none
};

// Runs one request (already parsed) and returns the reply object. `trusted`: from the Unix
// socket (no token needed).
nlohmann::json handle(const Context& ctx, const nlohmann::json& req, bool trusted);

class Server {
 public:
  Server(asio::io_context& io, Context ctx);
  ~Server();
  Result<void> listen_unix(const std::filesystem::path& path);
  // Loopback address only. Returns the bound "IP:port".
  Result<std::string> listen_tcp(const std::string& address, std::uint16_t port);
  void stop();

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

// The client side (carrier queue ...): sends one request, returns the reply. Errors say what
// went wrong in words an operator can act on ("carrier is not running (no socket at ...)").
Result<nlohmann::json> call(const std::filesystem::path& socket, const nlohmann::json& req);

}  // namespace carrier::admin
