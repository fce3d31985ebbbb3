// carrier queue: the local delivery queue (see delivery.hpp). Worker threads take message ids
// from a run queue, deliver the recipients still without a final result, record the results
// in the spool (state/ID) and remove the message when every recipient is done. Deferred
// messages go to a time-ordered schedule (exponential backoff with ±10 % jitter, by the
// injected clock) that a scheduler thread drains. After each attempt: expiry (RFC 3463 4.4.7),
// then one failure DSN for the recipients that failed (RFC 3464, RFC 3461 4.1 NOTIFY,
// RFC 5321 6.1 null sender), then at most one delay DSN per message; each DSN is a new spool
// message submitted to this queue. Log lines: "<ID>: key=value ...".
// No untrusted input beyond what the spool already vetted (detail texts that hold a remote
// reply go to the DSN builder, which sanitises them).
#include "queue/delivery.hpp"
#include "base/thread_name.hpp"

#include "metrics/domains.hpp"

#include <algorithm>
#include <cerrno>
#include <exception>

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
  std::size_t index;      // envelope recipient
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

std::int64_t unix_ms(std::chrono::system_clock::time_point t) {
  return duration_cast<milliseconds>(t.time_since_epoch()).count();
}

// The state event that marks a message whose delay notice was considered.
constexpr std::string_view kDelayEvent = "delay-notice";

bool has_event(const std::vector<std::string>& events, std::string_view name) {
  return std::any_of(events.begin(), events.end(), [&](const std::string& e) {
    return e.compare(0, name.size(), name) == 0 && (e.size() == name.size() || e[name.size()] == ' ');
  });
}

}  // namespace

struct Delivery::Note {
  spdlog::level::level_enum level;
  std::string text;
};

struct Delivery::Notice {
  proto::DsnAction action = proto::DsnAction::Failed;
  std::vector<std::pair<std::size_t, std::string>> rcpts;  // envelope index, detail text
  std::int64_t received_ms = 0;
  TimePoint now{};
};

namespace {

// What one attempt at a message came to.
struct Outcome {
  enum Kind { Done, Retry, Wait, Forget, Hold } kind = Retry;
  std::vector<Line> lines;
  std::vector<std::string> relay_waiting;  // addresses waiting for a relay transport
  std::string problem;                      // load failure text (Retry/Forget without lines)
  double delay = 0;                         // seconds since the message was received
  bool delay_noticed = false;               // the delay notice was considered now
  std::vector<std::string> notices;         // ids of DSNs written, to submit
};

}  // namespace

Delivery::Delivery(spool::Spool& spool, transport::Transport& local, Options opts)
    : spool_(spool),
      local_(local),
      opts_(std::move(opts)),
      rng_(std::random_device{}()),
      notice_limit_(opts_.max_bounces_per_minute) {
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
  for (int i = 0; i < opts_.threads; ++i) workers_.emplace_back([this] {
      set_thread_name("delivery");
      worker_loop();
    });
  scheduler_ = std::thread([this] {
    set_thread_name("queue-sched");
    scheduler_loop();
  });
}

void Delivery::submit(std::string id, std::unique_ptr<spool::Stored> loaded) {
  if (!is_valid_queue_id(id)) {
    spdlog::warn("queue: ignoring invalid queue id \"{}\"", id);
    return;
  }
  std::lock_guard lk(mu_);
  if (stopping_) return;  // stays in the spool; found again at the next start
  auto [it, fresh] = entries_.try_emplace(std::move(id));
  if (!fresh) return;
  if (loaded && loaded->id == it->first && preloaded_ < kMaxPreloaded) {
    it->second.preload = std::move(loaded);
    ++preloaded_;
  }
  enqueue_locked(it->first, it->second);
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

namespace {
constexpr std::string_view kHeldEvent = "held";
constexpr std::string_view kReleasedEvent = "released";
// The operator's last word on holding: the later of "held" / "released" in the state file.
bool held_in(const std::vector<std::string>& events) {
  for (auto it = events.rbegin(); it != events.rend(); ++it) {
    if (*it == kHeldEvent) return true;
    if (*it == kReleasedEvent) return false;
  }
  return false;
}
}  // namespace

Delivery::ActionResult Delivery::act(std::string_view id, Action a) {
  std::string trace_text;
  ActionResult res = ActionResult::Ok;
  bool remove = false;
  {
    std::lock_guard lk(mu_);
    auto it = entries_.find(id);
    if (it == entries_.end()) return ActionResult::NotFound;
    Entry& e = it->second;
    const std::string key = it->first;
    // The operator may change the state file (held, released): read it from the spool.
    if (e.preload) {
      e.preload.reset();
      --preloaded_;
    }
    auto unschedule = [&] {
      if (e.state == State::Scheduled) schedule_.erase({e.due, key});
      if (e.state == State::Queued) {
        run_.erase(std::remove(run_.begin(), run_.end(), key), run_.end());
        parked_.erase(std::remove(parked_.begin(), parked_.end(), key), parked_.end());
      }
    };
    switch (a) {
      case Action::Retry:
        if (e.state == State::Held) return ActionResult::Held;
        if (e.state == State::Scheduled || e.state == State::Waiting) {
          unschedule();
          enqueue_locked(key, e);
        }
        trace_text = "retry asked by the operator";
        break;
      case Action::Hold:
        if (e.state == State::Running) {
          e.hold = true;  // applied when this attempt ends
        } else if (e.state != State::Held) {
          unschedule();
          e.state = State::Held;
        }
        if (auto r = spool_.record_event(key, kHeldEvent, true); !r)
          spdlog::warn("{}: cannot record the hold: {}", key, r.error().message);
        trace_text = "held by the operator";
        break;
      case Action::Release:
        if (e.state != State::Held && !e.hold) return ActionResult::NotHeld;
        e.hold = false;
        if (auto r = spool_.record_event(key, kReleasedEvent, true); !r)
          spdlog::warn("{}: cannot record the release: {}", key, r.error().message);
        if (e.state == State::Held) enqueue_locked(key, e);
        trace_text = "released by the operator";
        break;
      case Action::Remove:
        if (e.state == State::Running) return ActionResult::Busy;
        unschedule();
        entries_.erase(it);
        remove = true;
        trace_text = "deleted by the operator (no notice to the sender)";
        break;
      case Action::Bounce:
        if (e.state == State::Running) return ActionResult::Busy;
        if (e.state == State::Held) {
          if (auto r = spool_.record_event(key, kReleasedEvent, true); !r)
            spdlog::warn("{}: cannot record the release: {}", key, r.error().message);
        }
        unschedule();
        e.bounce = true;
        e.hold = false;
        enqueue_locked(key, e);
        trace_text = "returned to the sender by the operator";
        break;
    }
  }
  if (remove) {
    if (auto r = spool_.remove(id); !r) {
      spdlog::error("{}: cannot remove from the spool: {}", id, r.error().message);
      res = ActionResult::Busy;
    }
  }
  spdlog::info("{}: {}", id, trace_text);
  if (opts_.trace) opts_.trace->append(id, trace_text);
  return res;
}

std::vector<QueueItem> Delivery::snapshot() const {
  std::lock_guard lk(mu_);
  std::vector<QueueItem> out;
  out.reserve(entries_.size());
  for (const auto& [id, e] : entries_) {
    QueueItem q;
    q.id = id;
    switch (e.state) {
      case State::Queued:
      case State::Running: q.state = e.hold ? "held" : "active"; break;
      case State::Scheduled: q.state = "deferred"; q.next_try = e.due; break;
      case State::Waiting: q.state = "waiting"; break;
      case State::Held: q.state = "held"; break;
    }
    q.attempts = e.attempts;
    q.last_error = e.last_error;
    out.push_back(std::move(q));
  }
  return out;
}

void Delivery::poll_due() {
  std::lock_guard lk(mu_);
  queue_due_locked(opts_.clock->now());
}

bool Delivery::wait_idle(std::chrono::milliseconds timeout) {
  std::unique_lock lk(mu_);
  return idle_cv_.wait_for(lk, timeout,
                           [&] { return run_.empty() && running_ == 0 && parked_.empty(); });
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
    // Attempts whose relay has answered come first. When stopping, the workers stay until the
    // relay has answered every attempt handed to it (its stop() ends them at once): a result
    // already obtained (a local delivery in the same attempt) is always recorded.
    work_cv_.wait(lk, [&] {
      return !finish_.empty() || (stopping_ ? in_flight_ == 0 : !run_.empty());
    });
    if (!finish_.empty()) {
      auto a = std::move(finish_.front());
      finish_.pop_front();
      lk.unlock();
      finish(std::move(a));
      lk.lock();
    } else {
      if (stopping_) return;
      std::string id = std::move(run_.front());
      run_.pop_front();
      auto it = entries_.find(id);
      if (it == entries_.end() || it->second.state != State::Queued) continue;
      it->second.state = State::Running;
      ++running_;
      lk.unlock();
      const Begin b = begin(id);
      lk.lock();
      if (b == Begin::Later) continue;  // finish() ends this attempt when the relay answers
    }
    --running_;
    if (run_.empty() && running_ == 0) idle_cv_.notify_all();
  }
}

std::optional<std::string> Delivery::send_notice(const spool::Stored& msg, const Notice& n,
                                                 std::vector<Note>& notes) {
  using proto::DsnAction;
  const std::string& id = msg.id;
  const proto::Envelope& env = msg.envelope;
  const char* what = n.action == DsnAction::Failed    ? "non-delivery notification"
                     : n.action == DsnAction::Delayed ? "delay notification"
                                                      : "delivery notification";
  const std::string sender = env.sender.str();

  std::vector<proto::EnvelopeRecipient> to;
  if (opts_.classify) {
    try {
      to = opts_.classify(env.sender);
    } catch (const std::exception& e) {
      to.clear();
      notes.push_back({spdlog::level::err, fmt::format("{}: classify <{}> threw: {}", id, sender,
                                                       e.what())});
    }
  } else {
    proto::EnvelopeRecipient r;
    r.address = env.sender;
    r.original = env.sender;
    r.route = proto::RcptRoute::Relay;
    to.push_back(std::move(r));
  }
  if (to.empty()) {
    notes.push_back({spdlog::level::warn,
                     fmt::format("{}: no sender {}: <{}> cannot receive mail", id, what, sender)});
    return std::nullopt;
  }

  std::string seed;
  {
    std::lock_guard lk(mu_);
    if (!notice_limit_.take(n.now)) {
      notes.push_back({spdlog::level::warn,
                       fmt::format("{}: no sender {} to <{}>: limit of {} notices per minute "
                                   "reached",
                                   id, what, sender, opts_.max_bounces_per_minute)});
      return std::nullopt;
    }
    seed = fmt::format("{:016x}{:016x}", rng_(), rng_());  // unpredictable boundary
  }

  proto::DsnInput in;
  in.reporting_mta = opts_.hostname;
  in.envid = env.params.envid;
  in.ret = env.params.ret;
  in.original_smtputf8 = env.params.smtputf8;
  in.original_body = env.params.body;
  in.sender = env.sender;
  in.arrival_ms = n.received_ms;
  in.queue_id = id;
  in.now = n.now;
  in.boundary_seed = std::move(seed);
  const std::int64_t now_ms = unix_ms(n.now);
  for (const auto& [idx, detail] : n.rcpts) {
    const proto::EnvelopeRecipient& rc = env.recipients[idx];
    proto::DsnRecipient dr;
    dr.final_recipient = rc.address;
    dr.orcpt_type = rc.orcpt_type;
    dr.orcpt = rc.orcpt;
    dr.action = n.action;
    // RFC 3463: the class must fit the action (a delay is 4.x.x; a failure 5.x.x, or 4.x.x
    // for a transient error that lasted too long).
    std::string st = leading_status(detail);
    if (n.action == DsnAction::Delayed) {
      if (st.empty() || st[0] != '4') st = "4.0.0";
    } else if (n.action == DsnAction::Delivered || n.action == DsnAction::Relayed) {
      if (st.empty() || st[0] != '2') st = "2.0.0";
    } else if (st.empty() || st[0] == '2') {
      st = "5.0.0";
    }
    dr.status = std::move(st);
    Diagnostic diag = split_diagnostic(detail);
    dr.remote_mta = std::move(diag.remote_mta);
    dr.diagnostic_type = std::move(diag.type);
    dr.diagnostic = std::move(diag.text);
    dr.last_attempt_ms = now_ms;
    if (n.action == DsnAction::Delayed && opts_.max_lifetime > seconds(0))
      dr.will_retry_until_ms =
          n.received_ms + duration_cast<milliseconds>(opts_.max_lifetime).count();
    in.recipients.push_back(std::move(dr));
  }

  auto written = write_dsn(spool_, msg, in, std::move(to));
  if (!written) {
    notes.push_back({spdlog::level::err, fmt::format("{}: cannot create the sender {}: {}", id,
                                                     what, written.error().message)});
    return std::nullopt;
  }
  notes.push_back({spdlog::level::info, fmt::format("{}: sender {}: {}", id, what, *written)});
  return std::move(written.value());
}

// One attempt at one message: begin() (a worker thread) loads it and delivers the local
// recipients; the relay recipients go to the relay transport without holding the thread
// (deliver_async); finish() (a worker thread again, once the relay has answered) records the
// results, sends the notices and updates the queue.
struct Delivery::Attempt {
  std::string id;
  Outcome out;
  std::vector<Note> notes;
  bool delay_noticed = false;
  bool bounce = false;
  std::optional<spool::Stored> msg;  // loaded and to be delivered; empty: `out` is final
  std::vector<bool> done;
  std::int64_t received_ms = 0;
  std::vector<std::size_t> relay;    // relay recipients handed to relay_tr
  transport::Transport* relay_tr = nullptr;
  std::vector<transport::Result> relay_results;
  std::atomic<bool> handed{false};   // the second of begin() and the relay's callback finishes
  std::vector<spool::RecipientResult> records;
  std::vector<std::pair<std::size_t, std::string>> delivered_ok, relayed_ok;  // NOTIFY=SUCCESS
  bool any_deferred = false;
};

void Delivery::absorb(Attempt& a, transport::Transport& tr, const std::vector<std::size_t>& which,
                      std::vector<transport::Result> results) {
  const auto& rcpts = a.msg->envelope.recipients;
  auto now_ms = unix_ms(opts_.clock->now());
  a.out.delay = static_cast<double>(std::max<std::int64_t>(0, now_ms - a.received_ms)) / 1000.0;
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
    if (rr.status == Status::Deferred) a.any_deferred = true;
    else a.done[idx] = true;
    // RFC 3461 5.2.2 / 5.2.3: NOTIFY=SUCCESS asks for a notice on final delivery here,
    // or when relayed to a host that will not send one itself.
    if (rr.status == Status::Delivered && (rcpts[idx].notify & proto::kNotifySuccess)) {
      if (rcpts[idx].route == proto::RcptRoute::Local)
        a.delivered_ok.emplace_back(idx, rr.detail);
      else if (r != results.end() && r->relayed)
        a.relayed_ok.emplace_back(idx, rr.detail);
    }
    a.out.lines.push_back(Line{idx, who(rcpts[idx]), tr.name(), rr.status, rr.detail});
    a.records.push_back(std::move(rr));
  }
}

Delivery::Begin Delivery::begin(const std::string& id) {
  auto a = std::make_shared<Attempt>();
  bool reserved = false;  // counted in in_flight_ for the relay part, not yet handed over
  a->id = id;
  Outcome& out = a->out;
  std::unique_ptr<spool::Stored> preload;
  {
    std::lock_guard lk(mu_);
    if (auto it = entries_.find(id); it != entries_.end()) {
      a->delay_noticed = it->second.delay_noticed;
      a->bounce = it->second.bounce;
      it->second.bounce = false;
      if (it->second.preload) {
        preload = std::move(it->second.preload);
        --preloaded_;
      }
    }
  }
  try {
    // Just committed by the receiver: no need to read it back.
    Result<spool::Stored> loaded =
        preload ? Result<spool::Stored>(std::move(*preload)) : spool_.load(id);
    if (!loaded) {
      const Error& e = loaded.error();
      // Gone (removed by an operator), corrupt (moved to corrupt/ by the spool) or not an id:
      // nothing left to deliver. Anything else (EIO, EMFILE...) is retried.
      out.kind = (e.sys_errno == ENOENT || e.sys_errno == 0 || e.sys_errno == EINVAL)
                     ? Outcome::Forget
                     : Outcome::Retry;
      out.problem = e.message;
    } else if (!a->bounce && held_in(loaded->events)) {
      out.kind = Outcome::Hold;  // held by the operator (also across restarts)
    } else {
      a->msg.emplace(std::move(*loaded));
      const spool::Stored& msg = *a->msg;
      const auto& rcpts = msg.envelope.recipients;
      a->done = msg.done;
      a->done.resize(rcpts.size(), false);
      a->received_ms = msg.envelope.received_at_ms ? msg.envelope.received_at_ms
                                                   : queue_id_time_ms(id);
      std::vector<std::size_t> local, relay;
      for (std::size_t i = 0; i < rcpts.size(); ++i) {
        if (a->done[i]) continue;
        (rcpts[i].route == proto::RcptRoute::Local ? local : relay).push_back(i);
      }
      transport::Transport* relay_tr;
      {
        std::lock_guard lk(mu_);
        relay_tr = relay_;
        // At most max_relay_in_flight attempts wait on the relay at once (each holds its
        // loaded message): beyond that this one waits, unloaded, for one to end (parked_).
        if (!relay.empty() && relay_tr && !a->bounce) {
          if (in_flight_ >= opts_.max_relay_in_flight) {
            if (auto it = entries_.find(id); it != entries_.end()) it->second.state = State::Queued;
            parked_.push_back(id);
            return Begin::Parked;
          }
          ++in_flight_;
          reserved = true;
        }
      }
      if (a->bounce) {
        // carrier queue bounce: every open recipient fails now; the notice below tells the
        // sender (RFC 3464 with the operator's reason).
        relay.insert(relay.end(), local.begin(), local.end());
        for (std::size_t idx : relay) {
          const std::string detail = "5.0.0 returned to the sender by the postmaster";
          a->records.push_back(spool::RecipientResult{idx, Status::Failed, detail});
          out.lines.push_back(Line{idx, who(rcpts[idx]), "none", Status::Failed, detail});
          a->done[idx] = true;
        }
        relay.clear();
        local.clear();
      }
      if (!local.empty()) {
        std::vector<transport::Result> results;
        try {
          results = local_.deliver(transport::Request{&msg, local});
        } catch (const std::exception& e) {
          results.clear();
          spdlog::error("{}: transport {} threw: {}", id, local_.name(), e.what());
        }
        absorb(*a, local_, local, std::move(results));
      }
      if (!relay.empty() && !relay_tr) {
        for (std::size_t idx : relay) out.relay_waiting.push_back("<" + rcpts[idx].address.str() + ">");
      } else if (!relay.empty()) {
        a->relay = std::move(relay);
        a->relay_tr = relay_tr;
        reserved = false;  // from here the relay's callback (or the lines below) releases it
        bool threw = false;
        try {
          relay_tr->deliver_async(transport::Request{&msg, a->relay},
                                  [this, a](std::vector<transport::Result> results) {
                                    a->relay_results = std::move(results);
                                    if (!a->handed.exchange(true)) return;  // begin() finishes
                                    bool all;
                                    {
                                      std::lock_guard lk(mu_);
                                      --in_flight_;
                                      unpark_locked();
                                      finish_.push_back(a);
                                      // Stopping: every worker waits for in_flight_ == 0.
                                      all = stopping_;
                                    }
                                    // One finish() needs one worker: waking all of them
                                    // per relayed message made each fight for mu_.
                                    if (all) work_cv_.notify_all();
                                    else work_cv_.notify_one();
                                  });
        } catch (const std::exception& e) {
          spdlog::error("{}: transport {} threw: {}", id, relay_tr->name(), e.what());
          a->relay_results.clear();
          threw = true;
        }
        if (!threw && !a->handed.exchange(true)) return Begin::Later;  // the callback queues finish()
        std::lock_guard lk(mu_);
        --in_flight_;
        unpark_locked();
      }
    }
  } catch (const std::exception& e) {
    a->msg.reset();
    out = Outcome{};
    out.kind = Outcome::Retry;
    out.problem = std::string("delivery attempt failed: ") + e.what();
  }
  if (reserved) {  // an exception before the relay was asked
    std::lock_guard lk(mu_);
    --in_flight_;
    unpark_locked();
  }
  finish(std::move(a));
  return Begin::Finished;
}

void Delivery::unpark_locked() {
  // One slot freed: the longest-parked message that is still waiting goes first in line.
  while (!parked_.empty()) {
    std::string id = std::move(parked_.front());
    parked_.pop_front();
    auto it = entries_.find(id);
    if (it == entries_.end() || it->second.state != State::Queued) continue;  // removed, held
    run_.push_front(std::move(id));
    work_cv_.notify_one();
    return;
  }
  if (run_.empty() && running_ == 0) idle_cv_.notify_all();
}

void Delivery::finish(std::shared_ptr<Attempt> ap) {
  Attempt& a = *ap;
  const std::string& id = a.id;
  Outcome& out = a.out;
  std::vector<Note>& notes = a.notes;
  try {
    if (a.msg) {
      if (a.relay_tr) absorb(a, *a.relay_tr, a.relay, std::move(a.relay_results));
      const spool::Stored& msg = *a.msg;
      const auto& rcpts = msg.envelope.recipients;
      std::vector<bool>& done = a.done;
      std::vector<spool::RecipientResult>& records = a.records;
      const std::int64_t received_ms = a.received_ms;
      const bool any_deferred = a.any_deferred;
      const bool delay_noticed = a.delay_noticed;
      auto& delivered_ok = a.delivered_ok;
      auto& relayed_ok = a.relayed_ok;

      bool all_done = std::all_of(done.begin(), done.end(), [](bool b) { return b; });
      if (all_done) {
        out.kind = Outcome::Done;
      } else if (any_deferred) {
        out.kind = Outcome::Retry;
      } else {
        out.kind = Outcome::Wait;  // only relay recipients are left
      }

      const TimePoint now = opts_.clock->now();
      const auto age = seconds(std::max<std::int64_t>(0, unix_ms(now) - received_ms) / 1000);

      // Expiry: a retry would be scheduled, but the message is too old. Every recipient still
      // open fails with 4.4.7 and its last error (RFC 3463 4.4.7); the message is finished.
      if (out.kind == Outcome::Retry && opts_.max_lifetime > seconds(0) &&
          age > opts_.max_lifetime) {
        for (std::size_t i = 0; i < rcpts.size(); ++i) {
          if (done[i]) continue;
          auto rec = std::find_if(records.begin(), records.end(),
                                  [&](const spool::RecipientResult& x) { return x.index == i; });
          const std::string detail =
              expiry_detail(age, rec != records.end() ? std::string_view(rec->detail)
                                                      : "no relay transport to deliver it");
          if (rec != records.end()) {
            rec->status = Status::Failed;
            rec->detail = detail;
          } else {
            records.push_back(spool::RecipientResult{i, Status::Failed, detail});
          }
          auto line = std::find_if(out.lines.begin(), out.lines.end(),
                                   [&](const Line& l) { return l.index == i; });
          if (line != out.lines.end()) {
            line->status = Status::Failed;
            line->detail = detail;
          } else {
            out.lines.push_back(Line{i, who(rcpts[i]), "none", Status::Failed, detail});
          }
          done[i] = true;
        }
        out.relay_waiting.clear();
        out.delay = static_cast<double>(std::max<std::int64_t>(0, unix_ms(now) - received_ms)) /
                    1000.0;
        out.kind = Outcome::Done;
        all_done = true;
      }

      // One failure notice for every recipient that failed in this attempt.
      bool notified = false;  // a notice was written: record the results even when done
      const bool null_sender = msg.envelope.sender.empty();
      Notice failure{proto::DsnAction::Failed, {}, received_ms, now};
      for (const auto& rr : records) {
        if (rr.status != Status::Failed) continue;
        const auto& rc = rcpts[rr.index];
        if (null_sender)
          notes.push_back({spdlog::level::info,
                           fmt::format("{}: {} status=failed; no bounce: null sender", id,
                                       who(rc))});
        else if (!wants_failure_notice(rc.notify))
          notes.push_back({spdlog::level::info,
                           fmt::format("{}: {} status=failed; no bounce: NOTIFY excludes FAILURE",
                                       id, who(rc))});
        else
          failure.rcpts.emplace_back(rr.index, rr.detail);
      }
      if (!failure.rcpts.empty())
        if (auto dsn = send_notice(msg, failure, notes)) {
          out.notices.push_back(std::move(*dsn));
          notified = true;
        }

      // Success notices (RFC 3461 5.2.2, 5.2.3): one for "delivered", one for "relayed".
      if (!null_sender) {
        for (auto* list : {&delivered_ok, &relayed_ok}) {
          if (list->empty()) continue;
          Notice ok{list == &delivered_ok ? proto::DsnAction::Delivered : proto::DsnAction::Relayed,
                    *list, received_ms, now};
          if (auto dsn = send_notice(msg, ok, notes)) {
            out.notices.push_back(std::move(*dsn));
            notified = true;
          }
        }
      }

      // One delay notice per message, when it is rescheduled after delay_warning.
      if (out.kind == Outcome::Retry && !null_sender && opts_.delay_warning > seconds(0) &&
          age > opts_.delay_warning && !delay_noticed && !has_event(msg.events, kDelayEvent)) {
        out.delay_noticed = true;
        Notice delay{proto::DsnAction::Delayed, {}, received_ms, now};
        for (const auto& rr : records)
          if (rr.status == Status::Deferred && wants_delay_notice(rcpts[rr.index].notify))
            delay.rcpts.emplace_back(rr.index, rr.detail);
        if (!delay.rcpts.empty()) {
          auto dsn = send_notice(msg, delay, notes);
          // Considered once, sent or not (a skipped warning is not worth a second try).
          std::string event(kDelayEvent);
          event += ' ';
          event += dsn ? *dsn : std::string("skipped");
          if (auto r = spool_.record_event(id, event); !r)
            spdlog::warn("{}: cannot record the delay notice: {}", id, r.error().message);
          if (dsn) out.notices.push_back(std::move(*dsn));
        }
      }

      // The state file matters only while the message stays in the spool (a restart must not
      // repeat finished recipients). A message finished now is removed at once: the log lines
      // are its record, and the file write would be created and unlinked for nothing — unless
      // a notice was written (a crash before the removal must not send it twice).
      if (!records.empty() && (!all_done || notified))
        if (auto r = spool_.record(id, records, false); !r)
          spdlog::warn("{}: cannot record results: {}", id, r.error().message);
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
      if (out.delay_noticed) e.delay_noticed = true;
      for (const auto& l : out.lines)
        if (l.status == Status::Deferred) e.last_error = l.detail;
      if (e.hold && out.kind != Outcome::Done && out.kind != Outcome::Forget) {
        out.kind = Outcome::Hold;  // the operator asked for a hold during this attempt
        e.hold = false;
      }
      switch (out.kind) {
        case Outcome::Hold:
          e.state = State::Held;
          break;
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

  // Metrics: one count per recipient result, by transport, outcome and destination domain
  // (the busiest domains by count, the rest as "other": metrics/domains.hpp), and the time
  // from receipt to delivery.
  {
    static auto& to_delivery = metrics::global().histogram(
        "carrier_time_to_delivery_seconds", "Time from the 250 to final delivery, per recipient",
        {0.01, 0.05, 0.1, 0.5, 1, 5, 30, 60, 300, 1800, 3600, 14400, 86400});
    for (const auto& l : out.lines) {
      const auto outcome = l.status == Status::Delivered ? metrics::Outcome::Delivered
                           : l.status == Status::Deferred ? metrics::Outcome::Deferred
                           : l.detail.rfind("4.4.7 ", 0) == 0 ? metrics::Outcome::Expired
                                                              : metrics::Outcome::Bounced;
      // l.to is "to=<local@domain>" maybe followed by " orig_to=<...>": the domain of to=.
      std::string_view to = std::string_view(l.to).substr(0, l.to.find('>'));
      const auto at = to.rfind('@');
      metrics::count_delivery(l.relay, outcome, at == std::string_view::npos ? "" : to.substr(at + 1));
      if (l.status == Status::Delivered) to_delivery.observe(out.delay);
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
  for (const auto& n : notes) spdlog::log(n.level, "{}", n.text);
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
  if (opts_.trace) {
    std::vector<std::string> ev;
    for (const auto& l : out.lines)
      ev.push_back(fmt::format("{} relay={} delay={:.3f} status={} ({})", l.to, l.relay,
                               out.delay, status_word(l.status), l.detail));
    if (out.kind == Outcome::Retry && !out.lines.empty())
      ev.push_back(fmt::format("next try in {}s", next.count()));
    if (out.kind == Outcome::Hold) ev.push_back("held: not delivered until released");
    for (const auto& n : out.notices) ev.push_back("notice to the sender: " + n);
    if (removed) ev.push_back("done: removed from the queue");
    std::vector<std::string_view> views(ev.begin(), ev.end());
    opts_.trace->append_all(id, views);
  }
  for (auto& dsn : out.notices) submit(std::move(dsn));
}

}  // namespace carrier::queue
