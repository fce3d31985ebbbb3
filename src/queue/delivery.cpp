// carrier queue: the local delivery queue (see delivery.hpp). Worker threads take message ids
// from a run queue, deliver the recipients still without a final result, record the results
// in the spool (state/ID) and remove the message when every recipient is done. Deferred
// messages go to a time-ordered schedule (exponential backoff with ±10 % jitter, by the
// injected clock) that a scheduler thread drains. Log lines: "<ID>: key=value ...".
// No untrusted input beyond what the spool already vetted.
#include "queue/delivery.hpp"

#include <algorithm>
#include <cerrno>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace carrier::queue {

using namespace std::chrono;

namespace {

using Status = spool::RecipientResult::Status;

const char* status_word(Status s) {
  switch (s) {
    case Status::Delivered: return "delivered";
    case Status::Deferred: return "deferred";
    case Status::Failed: return "failed";
  }
  return "deferred";
}

// One recipient's outcome of this attempt, logged after the queue state was updated (the
// deferral line carries the retry time).
struct Line {
  std::string to;         // "to=<a@b>" (+ " orig_to=<...>")
  const char* relay;      // transport name
  Status status;
  std::string detail;
};

std::string who(const proto::EnvelopeRecipient& r) {
  std::string s = "to=<" + r.address.str() + ">";
  if (!r.original.empty() && !(r.original == r.address)) s += " orig_to=<" + r.original.str() + ">";
  return s;
}

// What one attempt at a message came to.
struct Outcome {
  enum Kind { Done, Retry, Wait, Forget } kind = Retry;
  std::vector<Line> lines;
  std::vector<std::string> relay_waiting;  // addresses waiting for a relay transport
  std::string problem;                      // load failure text (Retry/Forget without lines)
  double delay = 0;                         // seconds since the message was received
};

}  // namespace

Delivery::Delivery(spool::Spool& spool, transport::Transport& local, Options opts)
    : spool_(spool), local_(local), opts_(opts), rng_(std::random_device{}()) {
  if (!opts_.clock) opts_.clock = &SystemClock::instance();
  if (opts_.threads < 1) opts_.threads = 1;
}

Delivery::~Delivery() { stop(); }

void Delivery::start() {
  auto ids = spool_.list();
  std::lock_guard lk(mu_);
  if (started_ || stopping_) return;
  started_ = true;
  for (auto& id : ids) {
    auto [it, fresh] = entries_.try_emplace(id);
    if (fresh) enqueue_locked(it->first, it->second);
  }
  if (!ids.empty()) spdlog::info("queue: {} message(s) in the spool at start", ids.size());
  for (int i = 0; i < opts_.threads; ++i) workers_.emplace_back([this] { worker_loop(); });
  scheduler_ = std::thread([this] { scheduler_loop(); });
}

void Delivery::submit(std::string id) {
  if (!is_valid_queue_id(id)) {
    spdlog::warn("queue: ignoring invalid queue id \"{}\"", id);
    return;
  }
  std::lock_guard lk(mu_);
  if (stopping_) return;  // stays in the spool; found again at the next start
  auto [it, fresh] = entries_.try_emplace(std::move(id));
  if (fresh) enqueue_locked(it->first, it->second);
}

void Delivery::stop() {
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
  }
  work_cv_.notify_all();
  sched_cv_.notify_all();
  for (auto& t : workers_)
    if (t.joinable()) t.join();
  if (scheduler_.joinable()) scheduler_.join();
  idle_cv_.notify_all();
}

Delivery::Stats Delivery::stats() const {
  std::lock_guard lk(mu_);
  return Stats{n_delivered_, n_deferred_, n_failed_, entries_.size()};
}

void Delivery::set_relay(transport::Transport* relay) {
  std::lock_guard lk(mu_);
  relay_ = relay;
  if (!relay_) return;
  for (auto& [id, e] : entries_)
    if (e.state == State::Waiting) enqueue_locked(id, e);
}

void Delivery::wake_all() {
  std::lock_guard lk(mu_);
  schedule_.clear();
  for (auto& [id, e] : entries_)
    if (e.state == State::Scheduled || e.state == State::Waiting) enqueue_locked(id, e);
}

void Delivery::poll_due() {
  std::lock_guard lk(mu_);
  queue_due_locked(opts_.clock->now());
}

bool Delivery::wait_idle(std::chrono::milliseconds timeout) {
  std::unique_lock lk(mu_);
  return idle_cv_.wait_for(lk, timeout, [&] { return run_.empty() && running_ == 0; });
}

std::optional<std::chrono::system_clock::time_point> Delivery::next_try(std::string_view id) const {
  std::lock_guard lk(mu_);
  auto it = entries_.find(id);
  if (it == entries_.end() || it->second.state != State::Scheduled) return std::nullopt;
  return it->second.due;
}

void Delivery::enqueue_locked(const std::string& id, Entry& e) {
  e.state = State::Queued;
  run_.push_back(id);
  work_cv_.notify_one();
}

void Delivery::queue_due_locked(TimePoint now) {
  while (!schedule_.empty() && schedule_.begin()->first <= now) {
    auto node = schedule_.extract(schedule_.begin());
    auto it = entries_.find(node.value().second);
    if (it != entries_.end() && it->second.state == State::Scheduled)
      enqueue_locked(it->first, it->second);
  }
}

std::chrono::seconds Delivery::backoff_locked(int attempts) {
  const auto max = std::max(opts_.retry_max, seconds(0));
  auto d = std::min(std::max(opts_.retry_initial, seconds(0)), max);
  for (int i = 1; i < attempts && d < max; ++i) d = std::min(d * 2, max);
  std::uniform_real_distribution<double> jitter(0.9, 1.1);
  auto s = static_cast<std::int64_t>(static_cast<double>(d.count()) * jitter(rng_) + 0.5);
  return seconds(std::max<std::int64_t>(s, 1));  // never a busy retry loop
}

void Delivery::scheduler_loop() {
  std::unique_lock lk(mu_);
  while (!stopping_) {
    auto now = opts_.clock->now();
    queue_due_locked(now);
    if (schedule_.empty()) {
      sched_cv_.wait(lk);
    } else {
      // Re-check at least every minute (clock steps; a clock that is not the system's).
      auto wait = std::min<std::chrono::system_clock::duration>(schedule_.begin()->first - now,
                                                               minutes(1));
      sched_cv_.wait_for(lk, wait);
    }
  }
}

void Delivery::worker_loop() {
  std::unique_lock lk(mu_);
  for (;;) {
    work_cv_.wait(lk, [&] { return stopping_ || !run_.empty(); });
    if (stopping_) return;
    std::string id = std::move(run_.front());
    run_.pop_front();
    auto it = entries_.find(id);
    if (it == entries_.end() || it->second.state != State::Queued) continue;
    it->second.state = State::Running;
    ++running_;
    lk.unlock();
    process(id);
    lk.lock();
    --running_;
    if (run_.empty() && running_ == 0) idle_cv_.notify_all();
  }
}

void Delivery::process(const std::string& id) {
  Outcome out;
  try {
    auto loaded = spool_.load(id);
    if (!loaded) {
      const Error& e = loaded.error();
      // Gone (removed by an operator), corrupt (moved to corrupt/ by the spool) or not an id:
      // nothing left to deliver. Anything else (EIO, EMFILE...) is retried.
      out.kind = (e.sys_errno == ENOENT || e.sys_errno == 0 || e.sys_errno == EINVAL)
                     ? Outcome::Forget
                     : Outcome::Retry;
      out.problem = e.message;
    } else {
      const spool::Stored& msg = *loaded;
      const auto& rcpts = msg.envelope.recipients;
      std::vector<bool> done = msg.done;
      done.resize(rcpts.size(), false);
      auto received_ms = msg.envelope.received_at_ms ? msg.envelope.received_at_ms
                                                     : queue_id_time_ms(id);
      std::vector<std::size_t> local, relay;
      for (std::size_t i = 0; i < rcpts.size(); ++i) {
        if (done[i]) continue;
        (rcpts[i].route == proto::RcptRoute::Local ? local : relay).push_back(i);
      }
      transport::Transport* relay_tr;
      {
        std::lock_guard lk(mu_);
        relay_tr = relay_;
      }

      std::vector<spool::RecipientResult> records;
      bool any_deferred = false;
      auto run = [&](transport::Transport& tr, const std::vector<std::size_t>& which) {
        if (which.empty()) return;
        transport::Request req{&msg, which};
        std::vector<transport::Result> results;
        try {
          results = tr.deliver(req);
        } catch (const std::exception& e) {
          results.clear();
          spdlog::error("{}: transport {} threw: {}", id, tr.name(), e.what());
        }
        auto now_ms = duration_cast<milliseconds>(opts_.clock->now().time_since_epoch()).count();
        out.delay = static_cast<double>(std::max<std::int64_t>(0, now_ms - received_ms)) / 1000.0;
        for (std::size_t idx : which) {
          auto r = std::find_if(results.begin(), results.end(),
                                [&](const transport::Result& x) { return x.index == idx; });
          spool::RecipientResult rr;
          rr.index = idx;
          if (r == results.end()) {
            rr.status = Status::Deferred;
            rr.detail = std::string("4.3.0 ") + tr.name() + ": no result for this recipient";
          } else {
            rr.status = r->status;
            rr.detail = r->detail;
          }
          if (rr.status == Status::Deferred) any_deferred = true;
          else done[idx] = true;
          out.lines.push_back(Line{who(rcpts[idx]), tr.name(), rr.status, rr.detail});
          records.push_back(std::move(rr));
        }
      };
      run(local_, local);
      if (relay_tr) run(*relay_tr, relay);
      else
        for (std::size_t idx : relay) out.relay_waiting.push_back("<" + rcpts[idx].address.str() + ">");

      const bool all_done = std::all_of(done.begin(), done.end(), [](bool b) { return b; });
      // The state file matters only while the message stays in the spool (a restart must not
      // repeat finished recipients). A message finished now is removed at once: the log lines
      // are its record, and the file write would be created and unlinked for nothing.
      if (!records.empty() && !all_done)
        if (auto r = spool_.record(id, records, false); !r)
          spdlog::warn("{}: cannot record results: {}", id, r.error().message);

      if (all_done) {
        out.kind = Outcome::Done;
      } else if (any_deferred) {
        out.kind = Outcome::Retry;
      } else {
        out.kind = Outcome::Wait;  // only relay recipients are left
      }
    }
  } catch (const std::exception& e) {
    out = Outcome{};
    out.kind = Outcome::Retry;
    out.problem = std::string("delivery attempt failed: ") + e.what();
  }

  bool removed = false;
  if (out.kind == Outcome::Done) {
    auto r = spool_.remove(id);
    removed = r.ok();
    if (!r) spdlog::error("{}: cannot remove from the spool: {}", id, r.error().message);
  }

  // Queue state and counters, then the log lines (they carry next_try).
  std::chrono::seconds next{0};
  bool log_relay = false;
  {
    std::lock_guard lk(mu_);
    for (const auto& l : out.lines) {
      if (l.status == Status::Delivered) ++n_delivered_;
      else if (l.status == Status::Failed) ++n_failed_;
      else ++n_deferred_;
    }
    auto it = entries_.find(id);
    if (it != entries_.end()) {
      Entry& e = it->second;
      switch (out.kind) {
        case Outcome::Done:
        case Outcome::Forget:
          entries_.erase(it);
          break;
        case Outcome::Retry:
          next = backoff_locked(++e.attempts);
          e.state = State::Scheduled;
          e.due = opts_.clock->now() + next;
          schedule_.emplace(e.due, id);
          sched_cv_.notify_all();
          break;
        case Outcome::Wait:
          e.state = State::Waiting;
          if (relay_) enqueue_locked(it->first, e);  // a relay was set meanwhile
          break;
      }
      if (!out.relay_waiting.empty() && !e.relay_logged && out.kind != Outcome::Done &&
          out.kind != Outcome::Forget) {
        e.relay_logged = true;
        log_relay = true;
      }
    }
  }

  for (const auto& l : out.lines) {
    std::string line = fmt::format("{}: {} relay={} delay={:.3f} status={} ({})", id, l.to,
                                   l.relay, out.delay, status_word(l.status), l.detail);
    if (l.status == Status::Deferred) {
      if (out.kind == Outcome::Retry) line += fmt::format(" next_try={}s", next.count());
      spdlog::info("{}", line);
    } else if (l.status == Status::Failed) {
      spdlog::warn("{}", line);
    } else {
      spdlog::info("{}", line);
    }
  }
  if (log_relay) {
    std::string list;
    for (const auto& a : out.relay_waiting) list += (list.empty() ? "" : ", ") + a;
    spdlog::info("{}: waiting for relay: {}", id, list);
  }
  if (!out.problem.empty()) {
    if (out.kind == Outcome::Retry)
      spdlog::warn("{}: {} next_try={}s", id, out.problem, next.count());
    else
      spdlog::warn("{}: {}; dropped from the queue", id, out.problem);
  }
  if (removed) spdlog::info("{}: removed", id);
}

}  // namespace carrier::queue
