// carrier queue: the local delivery queue. Takes committed messages from the spool (at start:
// everything left there; then each newly committed one), hands local recipients to the local
// transport and relay recipients to the relay transport (when one is set), records every
// result in the spool's state file and removes the message once every recipient has a final
// result. Temporary failures are retried with exponential backoff (±10 % jitter) on an
// injectable clock. A message is at any time in exactly one of: queued, in progress,
// scheduled for retry, waiting for a relay — never delivered twice concurrently.
// Notices to the sender (RFC 3464 DSNs, built by proto/dsn, written into the spool as new
// messages with the null reverse-path and delivered through this same queue):
//   - failure: the recipients that failed permanently in one attempt at a message, together,
//     in one DSN — unless the sender is <> (RFC 5321 6.1: never bounce a bounce) or the
//     recipient's NOTIFY excludes FAILURE (RFC 3461 4.1; no NOTIFY = report failures);
//   - expiry: a message older than max_lifetime when a retry would be scheduled: its
//     remaining recipients fail with 4.4.7 (RFC 3463) and are reported as above;
//   - delay: once per message, when a retry is scheduled and the message is older than
//     delay_warning, for the deferred recipients whose NOTIFY names DELAY or is absent;
//   - at most max_bounces_per_minute notices in total (token bucket; backscatter defence).
// No untrusted input beyond what the spool already vetted (a transport's detail text may hold
// a remote reply: it is passed to the DSN builder, which sanitises it).
#pragma once
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "base/clock.hpp"
#include "queue/bounce.hpp"
#include "queue/trace.hpp"
#include "spool/spool.hpp"
#include "transport/transport.hpp"

namespace carrier::queue {

// Where a notice to `sender` goes: the envelope recipients of the DSN (a local address may be
// an alias of several mailboxes; a remote one is one Relay recipient). Empty: nobody can
// receive it (e.g. an unknown local user); the notice is dropped and logged.
using ClassifyFn = std::function<std::vector<proto::EnvelopeRecipient>(const proto::Mailbox& sender)>;

struct Options {
  int threads = 4;
  std::chrono::seconds retry_initial{60};
  std::chrono::seconds retry_max{3600};
  const Clock* clock = &SystemClock::instance();
  // Reporting-MTA of the DSNs, their From: MAILER-DAEMON@hostname and Message-ID domain.
  std::string hostname = "localhost";
  // A message still undelivered this long after it was received fails with 4.4.7 when its
  // next retry would be scheduled. <= 0: never.
  std::chrono::seconds max_lifetime{5 * 24 * 3600};
  // One delay notice per message once it is this old and still deferred. <= 0: none.
  std::chrono::seconds delay_warning{4 * 3600};
  // Notices (failure and delay DSNs together) generated per minute at most; more are skipped
  // and logged. <= 0: none at all.
  int max_bounces_per_minute = 60;
  // Routes a notice to the original sender. Unset: every sender is remote (one Relay
  // recipient). Called on delivery threads: must be thread-safe.
  ClassifyFn classify;
  // The trace journal (carrier queue trace); null: none.
  TraceLog* trace = nullptr;
  // Attempts waiting on the relay at once (each holds its loaded envelope; the relay's own
  // connection limits apply below this). More wait in line, unloaded, and go first when one
  // ends. A backlog of 100,000 messages thus never holds 100,000 envelopes in memory.
  int max_relay_in_flight = 1000;
};

// What an operator sees of one message in the queue (carrier queue list / show).
struct QueueItem {
  std::string id;
  std::string state;   // "active" (queued or being delivered), "deferred", "waiting", "held"
  int attempts = 0;    // deferred attempts so far
  std::optional<std::chrono::system_clock::time_point> next_try;
  std::string last_error;  // the last deferral's reason, if any
};

class Delivery {
 public:
  Delivery(spool::Spool& spool, transport::Transport& local, Options opts);
  ~Delivery();  // stop()
  Delivery(const Delivery&) = delete;
  Delivery& operator=(const Delivery&) = delete;

  // Starts the worker and scheduler threads and enqueues everything already in the spool
  // (recovery after a crash or restart). Call once.
  void start();
  // A newly committed message. Ignored when the id is already known (queued, in progress,
  // scheduled or waiting) or after stop() (it stays in the spool for the next start).
  // `loaded`: the message as the spool would load it (what the receiver just committed); its
  // first attempt then skips reading the file back. Kept for at most kMaxPreloaded queued
  // messages at a time (beyond that they are read from the spool like any other).
  void submit(std::string id, std::unique_ptr<spool::Stored> loaded = nullptr);
  static constexpr std::size_t kMaxPreloaded = 1024;
  // Finishes the deliveries in progress, then stops. Undelivered messages stay in the spool.
  void stop();

  struct Stats {
    std::uint64_t delivered;  // recipients delivered since start
    std::uint64_t deferred;   // recipient deferrals since start (one per failed attempt)
    std::uint64_t failed;     // recipients failed permanently since start
    std::uint64_t pending;    // messages known now: queued, in progress, scheduled or waiting
  };
  Stats stats() const;

  // The relay transport for Relay recipients; null: they wait (logged once per message). Setting
  // one re-queues the messages that were waiting for it.
  void set_relay(transport::Transport* relay);
  // Retries every scheduled (deferred) and waiting message now.
  void wake_all();
  // Queues the scheduled messages whose retry time has come by the injected clock (the
  // scheduler thread does this by itself; tests with a ManualClock call it after advance()).
  void poll_due();
  // Waits until nothing is queued or in progress (scheduled/waiting messages may remain).
  // True when idle before the timeout.
  bool wait_idle(std::chrono::milliseconds timeout);
  // When a scheduled message is due next, by the injected clock; nullopt when not scheduled.
  std::optional<std::chrono::system_clock::time_point> next_try(std::string_view id) const;

  // Operator actions (carrier queue ...). Held messages are not delivered until released; the
  // hold survives restarts (an event in the message's state file). bounce: every recipient
  // not yet delivered fails with 5.0.0 and the sender gets a DSN. remove: gone, no DSN.
  enum class Action { Retry, Hold, Release, Remove, Bounce };
  enum class ActionResult { Ok, NotFound, Busy, NotHeld, Held };
  ActionResult act(std::string_view id, Action a);
  std::vector<QueueItem> snapshot() const;

 private:
  enum class State { Queued, Running, Scheduled, Waiting, Held };
  struct Entry {
    State state = State::Queued;
    int attempts = 0;                              // deferred attempts so far
    std::chrono::system_clock::time_point due{};   // when Scheduled
    bool relay_logged = false;                     // "waiting for relay" logged once
    bool delay_noticed = false;                    // a delay notice was considered
    bool bounce = false;                           // operator: return to sender on next run
    bool hold = false;                             // operator: hold when this run ends
    std::string last_error;                        // last deferral reason (for queue show)
    std::unique_ptr<spool::Stored> preload;        // first attempt: the message as committed
  };
  using TimePoint = std::chrono::system_clock::time_point;
  struct Notice;  // one notice to one message's sender (delivery.cpp)
  struct Note;    // one log line about notices, logged after the attempt's result lines

  struct Attempt;  // one attempt at one message (delivery.cpp)
  void worker_loop();
  void scheduler_loop();
  // Starts an attempt. Later: its relay part is under way (finish() runs when it answers);
  // Parked: max_relay_in_flight attempts are already with the relay, it waits in parked_.
  enum class Begin { Finished, Later, Parked };
  Begin begin(const std::string& id);
  void unpark_locked();
  void finish(std::shared_ptr<Attempt> a);
  void absorb(Attempt& a, transport::Transport& tr, const std::vector<std::size_t>& which,
              std::vector<transport::Result> results);
  void enqueue_locked(const std::string& id, Entry& e);
  void queue_due_locked(TimePoint now);
  std::chrono::seconds backoff_locked(int attempts);
  // Builds, writes and returns the id of one DSN (nullopt when skipped); log lines to `notes`.
  std::optional<std::string> send_notice(const spool::Stored& msg, const Notice& n,
                                         std::vector<Note>& notes);

  spool::Spool& spool_;
  transport::Transport& local_;
  Options opts_;

  mutable std::mutex mu_;
  std::condition_variable work_cv_;   // workers: run_ non-empty or stopping
  std::condition_variable sched_cv_;  // scheduler: schedule changed or stopping
  std::condition_variable idle_cv_;   // wait_idle()
  std::map<std::string, Entry, std::less<>> entries_;
  std::deque<std::string> run_;
  std::set<std::pair<TimePoint, std::string>> schedule_;
  int running_ = 0;     // attempts begun and not finished (including those in the relay)
  int in_flight_ = 0;   // attempts whose relay part has not answered yet
  std::size_t preloaded_ = 0;  // entries holding a preload (at most kMaxPreloaded)
  std::deque<std::shared_ptr<Attempt>> finish_;  // attempts whose relay has answered
  std::deque<std::string> parked_;  // queued, waiting for room with the relay (not loaded)
  bool started_ = false;
  bool stopping_ = false;
  transport::Transport* relay_ = nullptr;
  std::mt19937_64 rng_;
  RateLimiter notice_limit_;  // with mu_
  std::uint64_t n_delivered_ = 0, n_deferred_ = 0, n_failed_ = 0;
  std::vector<std::thread> workers_;
  std::thread scheduler_;
};

}  // namespace carrier::queue
