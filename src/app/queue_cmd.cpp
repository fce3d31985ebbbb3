// carrier: `carrier queue ...` — the operator's queue tools, as clients of the admin API.
// Output for people by default (one line per message, ages as 1h2m), JSON with --json.
#include "app/queue_cmd.hpp"

#include <cstdio>
#include <ctime>
#include <iostream>

#include "admin/admin.hpp"
#include "config/config.hpp"

namespace carrier::app {

using nlohmann::json;

struct QueueCli {
  CLI::App* queue = nullptr;
  std::string config_file, data_dir;
  bool as_json = false;
  // list
  CLI::App *list = nullptr, *summary = nullptr, *show = nullptr, *trace = nullptr;
  std::string domain, state, older_than;
  std::string id;
  // actions
  struct Action {
    CLI::App* cmd = nullptr;
    std::string name;
    std::string id, domain;
    bool all = false;
  };
  std::vector<Action> actions;
};

namespace {

std::string age_text(std::int64_t s) {
  if (s < 60) return std::to_string(s) + "s";
  if (s < 3600) return std::to_string(s / 60) + "m" + (s % 60 ? std::to_string(s % 60) + "s" : "");
  if (s < 86400) return std::to_string(s / 3600) + "h" + (s % 3600 / 60 ? std::to_string(s % 3600 / 60) + "m" : "");
  return std::to_string(s / 86400) + "d" + (s % 86400 / 3600 ? std::to_string(s % 86400 / 3600) + "h" : "");
}

std::string time_text(std::int64_t unix_s) {
  std::time_t t = static_cast<std::time_t>(unix_s);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

std::optional<std::filesystem::path> socket_path(const QueueCli& q) {
  config::Config cfg;
  if (!q.config_file.empty()) {
    std::vector<config::Diagnostic> diags;
    auto c = config::load_file(q.config_file, diags);
    if (!c) {
      for (const auto& d : diags) std::cerr << d.str() << "\n";
      return std::nullopt;
    }
    cfg = std::move(*c);
  } else {
    cfg = config::defaults();
  }
  if (!q.data_dir.empty()) config::apply_data_dir(cfg, q.data_dir);
  return cfg.data_dir / "admin.sock";
}

void print_list(const json& r) {
  const auto& ms = r["messages"];
  if (ms.empty()) {
    std::cout << "The queue is empty.\n";
    return;
  }
  std::printf("%-13s %-9s %7s %9s  %s\n", "ID", "STATE", "AGE", "SIZE", "SENDER -> RECIPIENTS");
  for (const auto& m : ms) {
    std::string to;
    for (const auto& rc : m.value("recipients", json::array()))
      if (!rc.value("done", false)) to += (to.empty() ? "" : ", ") + rc.value("address", std::string());
    std::printf("%-13s %-9s %7s %9s  <%s> -> %s\n", m.value("id", "").c_str(),
                m.value("state", "").c_str(), age_text(m.value("age_s", 0)).c_str(),
                std::to_string(m.value("size", 0)).c_str(), m.value("sender", "").c_str(), to.c_str());
    if (m.contains("last_error"))
      std::printf("%-13s %s\n", "", m["last_error"].get<std::string>().substr(0, 200).c_str());
  }
  std::printf("%zu message(s)%s\n", static_cast<std::size_t>(r.value("total", 0)),
              r.value("total", std::size_t{0}) > ms.size() ? " (first ones shown)" : "");
}

}  // namespace

QueueCli* add_queue_commands(CLI::App& app) {
  // Lives as long as the process (CLI11 keeps pointers into it): static storage, so it is
  // neither freed early nor reported as a leak.
  static QueueCli cli;
  auto* q = &cli;
  q->queue = app.add_subcommand("queue", "Look at and act on the running daemon's queue");
  q->queue->require_subcommand(1);
  q->queue->add_option("-c,--config", q->config_file, "The configuration the daemon runs with")
      ->check(CLI::ExistingFile);
  q->queue->add_option("-d,--data-dir", q->data_dir, "Its data directory (holds admin.sock)");
  q->queue->add_flag("--json", q->as_json, "Print the daemon's JSON reply");

  q->list = q->queue->add_subcommand("list", "Messages in the queue, oldest first");
  q->list->add_option("--domain", q->domain, "Only messages with an open recipient in DOMAIN ('local' for local ones)");
  q->list->add_option("--older-than", q->older_than, "Only messages older than this (90s, 5m, 1h, 2d)");
  q->list->add_option("--state", q->state, "active | deferred | held | waiting")
      ->check(CLI::IsMember({"active", "deferred", "held", "waiting"}));
  q->summary = q->queue->add_subcommand("summary", "Open recipients and oldest age per destination");
  q->show = q->queue->add_subcommand("show", "One message: envelope, headers, recipients, last error, next try");
  q->show->add_option("id", q->id, "Queue id")->required();
  q->trace = q->queue->add_subcommand("trace", "The life of one message: received, every attempt, the end");
  q->trace->add_option("id", q->id, "Queue id")->required();
  for (const char* name : {"retry", "hold", "release", "delete", "bounce"}) {
    QueueCli::Action a;
    a.name = name;
    q->actions.push_back(a);
  }
  for (auto& a : q->actions) {
    const char* help = a.name == "retry" ? "Try now instead of at the next scheduled time"
                     : a.name == "hold" ? "Stop delivering until released (kept across restarts)"
                     : a.name == "release" ? "Deliver a held message again"
                     : a.name == "delete" ? "Remove from the queue without telling the sender"
                                          : "Return to the sender with a delivery status notification";
    a.cmd = q->queue->add_subcommand(a.name, help);
    a.cmd->add_option("id", a.id, "Queue id");
    a.cmd->add_flag("--all", a.all, "Every message in the queue");
    a.cmd->add_option("--domain", a.domain, "Every message with an open recipient in DOMAIN");
  }
  return q;
}

int run_queue(QueueCli* q) {
  if (!q || !*q->queue) return -1;
  auto sock = socket_path(*q);
  if (!sock) return 78;  // EX_CONFIG
  json req;
  json args = json::object();
  const char* what = "";
  if (*q->list) {
    req["cmd"] = "queue.list";
    what = "list";
    if (!q->domain.empty()) args["domain"] = q->domain;
    if (!q->state.empty()) args["state"] = q->state;
    if (!q->older_than.empty()) {
      auto d = config::parse_duration(q->older_than);
      if (!d) {
        std::cerr << "carrier queue list: --older-than " << q->older_than << ": use 90s, 5m, 1h or 2d\n";
        return 64;
      }
      args["older_than"] = d->count();
    }
  } else if (*q->summary) {
    req["cmd"] = "queue.summary";
    what = "summary";
  } else if (*q->show) {
    req["cmd"] = "queue.show";
    what = "show";
    args["id"] = q->id;
  } else if (*q->trace) {
    req["cmd"] = "queue.trace";
    what = "trace";
    args["id"] = q->id;
  } else {
    for (auto& a : q->actions) {
      if (!*a.cmd) continue;
      const int given = (!a.id.empty()) + a.all + (!a.domain.empty());
      if (given != 1) {
        std::cerr << "carrier queue " << a.name << ": give exactly one of ID, --all or --domain D\n";
        return 64;
      }
      req["cmd"] = "queue." + a.name;
      what = "action";
      if (!a.id.empty()) args["id"] = a.id;
      if (a.all) args["all"] = true;
      if (!a.domain.empty()) args["domain"] = a.domain;
    }
  }
  req["args"] = args;
  auto r = admin::call(*sock, req);
  if (!r) {
    std::cerr << "carrier queue: " << r.error().message << "\n";
    return 69;  // EX_UNAVAILABLE
  }
  const json& rep = r.value();
  if (q->as_json) {
    std::cout << rep.dump(2) << "\n";
    return rep.value("ok", false) ? 0 : 1;
  }
  if (!rep.value("ok", false)) {
    std::cerr << "carrier queue: " << rep.value("error", std::string("failed")) << "\n";
    return 1;
  }
  const std::string w = what;
  if (w == "list") {
    print_list(rep);
  } else if (w == "summary") {
    const auto& d = rep["destinations"];
    if (d.empty()) std::cout << "The queue is empty.\n";
    else std::printf("%-40s %10s %8s  %s\n", "DESTINATION", "RECIPIENTS", "OLDEST", "BY STATE");
    for (auto it = d.begin(); it != d.end(); ++it) {
      std::string states;
      for (auto s = it.value()["by_state"].begin(); s != it.value()["by_state"].end(); ++s)
        states += (states.empty() ? "" : " ") + s.key() + "=" + std::to_string(s.value().get<int>());
      std::printf("%-40s %10d %8s  %s\n", it.key().c_str(), it.value()["recipients"].get<int>(),
                  age_text(it.value()["oldest_s"].get<std::int64_t>()).c_str(), states.c_str());
    }
    std::printf("%d message(s)\n", rep.value("messages", 0));
  } else if (w == "show") {
    std::printf("id:        %s\nstate:     %s (%d deferred attempt(s))\n", rep.value("id", "").c_str(),
                rep.value("state", "").c_str(), rep.value("attempts", 0));
    if (rep.contains("next_try"))
      std::printf("next try:  %s UTC\n", time_text(rep["next_try"].get<std::int64_t>()).c_str());
    if (rep.contains("last_error"))
      std::printf("last error: %s\n", rep["last_error"].get<std::string>().c_str());
    std::printf("received:  %s UTC (%s ago) from %s [%s] with %s\n",
                time_text(rep.value("received", 0)).c_str(), age_text(rep.value("age_s", 0)).c_str(),
                rep.value("helo", "").c_str(), rep.value("client_ip", "").c_str(),
                rep.value("protocol", "").c_str());
    std::printf("sender:    <%s>\nsize:      %d\nrecipients:\n", rep.value("sender", "").c_str(),
                rep.value("size", 0));
    for (const auto& rc : rep["recipients"])
      std::printf("  %-40s %s%s\n", rc.value("address", "").c_str(), rc.value("route", "").c_str(),
                  rc.value("done", false) ? " (done)" : "");
    std::printf("headers:\n%s", rep.value("headers", "").c_str());
  } else if (w == "trace") {
    for (const auto& e : rep["events"]) {
      const std::int64_t ms = e["time_ms"].get<std::int64_t>();
      std::printf("%s.%03d  %s\n", time_text(ms / 1000).c_str(), static_cast<int>(ms % 1000),
                  e["event"].get<std::string>().c_str());
    }
  } else {
    for (const auto& id : rep["done"]) std::printf("%s: ok\n", id.get<std::string>().c_str());
    for (const auto& f : rep["failed"])
      std::printf("%s: %s\n", f["id"].get<std::string>().c_str(), f["error"].get<std::string>().c_str());
    if (rep["done"].empty() && rep["failed"].empty()) std::printf("no message matched\n");
    return rep["failed"].empty() ? 0 : 1;
  }
  return 0;
}

}  // namespace carrier::app
