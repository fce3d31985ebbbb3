// carrier filter: the checks a message goes through after its content was received and before
// it is committed and acknowledged (SPF, DKIM verification, DMARC, milters), and the checks of
// a client when it connects (DNSBL). The I/O layer (src/net) calls them through the two
// functions in net::ServerContext; src/server builds the stages from the configuration.
//
// A Pipeline runs its stages one after the other on a small thread pool (a stage may block
// briefly: read the spool file, verify a signature) and stops at the first refusal or discard
// (a hold lets the later stages run: the message is committed, held). Stages that wait for
// the network (DNS, a milter) call `done` later from any thread.
// Authentication results of the stages are collected in Context::auth and written as one
// Authentication-Results: header field (RFC 8601) at the top of the header section, before the
// stages that come after `Stage::kind() == Kind::Content` run (milters see it).
// The message bytes are UNTRUSTED; stages parse them with explicit limits.
#pragma once
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "proto/envelope.hpp"
#include "proto/reply.hpp"
#include "session/server_session.hpp"

namespace carrier::filter {

// One method's result for Authentication-Results (RFC 8601 2.2), e.g. method "spf", result
// "pass", props {{"smtp.mailfrom", "example.org"}}.
struct AuthResult {
  std::string method;   // "spf", "dkim", "dmarc", "iprev"
  std::string result;   // "pass", "fail", "softfail", "neutral", "none", "temperror", "permerror", ...
  std::string reason;   // optional free text (reason="..."), empty: none
  std::vector<std::pair<std::string, std::string>> props;  // ptype.property = value
  // The value of a property ("header.d"), empty when absent.
  std::string prop(std::string_view name) const;
};

// The message as received, for the stages. `head` is the header section as it will be stored
// (our Received: first), CRLF lines, including the empty line that ends it when there is one;
// at most kMaxHead bytes (head_complete false when the section was longer: stages that need
// the whole section then answer temperror/skip, never guess).
struct Message {
  static constexpr std::size_t kMaxHead = 256 * 1024;
  std::string queue_id;
  proto::Envelope envelope;
  session::ClientInfo client;
  std::string local_hostname;          // our name (authserv-id of Authentication-Results)
  std::filesystem::path file;          // spool tmp file; content at [content_offset, +content_size)
  std::uint64_t content_offset = 0;
  std::uint64_t content_size = 0;
  std::string head;
  bool head_complete = true;
  bool submission = false;             // arrived on a submission listener
};

enum class Action {
  Accept,    // go on / commit
  Reject,    // refuse with reply (5xx)
  TempFail,  // refuse with reply (4xx)
  Discard,   // acknowledge with 250, then drop (a milter's discard)
  Hold,      // commit, but hold in the queue until an operator releases it (quarantine)
};

struct Verdict {
  Action action = Action::Accept;
  proto::Reply reply;   // Reject/TempFail: the reply (filled with a default when code is 0)
  std::string reason;   // for the log (and the hold reason)
  std::string stage;    // which stage decided
};

// The work area handed from stage to stage.
struct Context {
  Message msg;
  std::vector<AuthResult> auth;
  // Stages edit the header section here (a copy of msg.head): add fields at the top, change
  // fields (milter). When it differs from msg.head at the end, the spool file is rewritten.
  std::string head;
  Verdict verdict;
  // Notes for the log line of this message ("spf=pass dkim=pass dmarc=pass milter=accept").
  std::vector<std::string> notes;
};

class Stage {
 public:
  enum class Kind {
    Auth,     // adds to Context::auth (SPF, DKIM verification, DMARC): before the A-R field
    Content,  // sees the A-R field (milters)
  };
  virtual ~Stage() = default;
  virtual const char* name() const = 0;
  virtual Kind kind() const = 0;
  // Does the check and calls done() exactly once, from any thread. A Reject, TempFail or
  // Discard set in ctx.verdict stops the pipeline; a Hold does not (later stages still run). `ctx` stays valid until done() is called.
  virtual void run(Context& ctx, std::function<void()> done) = 0;
};

// Renders "Authentication-Results: HOST;\r\n\tspf=pass smtp.mailfrom=example.org;\r\n\t..."
// (RFC 8601 2.2); "HOST; none" when results is empty. Values that are not RFC 8601 tokens are
// quoted; CR/LF never reach the header.
std::string authentication_results(std::string_view authserv_id, const std::vector<AuthResult>& results);

// Removes Authentication-Results: fields carrying our authserv-id from a header section
// (RFC 8601 5: a border MTA must not let forged results with its own id through). Returns the
// number removed.
std::size_t strip_own_authentication_results(std::string& head, std::string_view authserv_id);

class Pipeline {
 public:
  struct Options {
    int threads = 2;
    std::chrono::seconds timeout{120};  // all stages together; then 451 4.7.1 (TempFail)
    bool add_auth_results = true;       // write Authentication-Results: when any Auth stage ran
  };
  Pipeline(Options o, std::vector<std::shared_ptr<Stage>> stages);
  ~Pipeline();
  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;
  bool empty() const { return stages_.empty(); }
  // Stops the threads (at shutdown, before the I/O context the done callbacks post to goes
  // away): runs in progress never call done.
  void shutdown();
  // Runs every stage on `ctx`; done(ctx) once, from a pipeline thread, with ctx.verdict set.
  void run(std::shared_ptr<Context> ctx, std::function<void(std::shared_ptr<Context>)> done);

 private:
  struct Impl;
  std::vector<std::shared_ptr<Stage>> stages_;
  std::unique_ptr<Impl> impl_;
};

// The verdict of the connect checks (DNSBL): a refusal for every RCPT (code 0: none) and tags.
struct ConnectVerdict {
  proto::Reply refusal;
  std::vector<std::string> tags;
};

// Reads the header section of the content at [offset, offset+size) of `file` into m.head
// (bounded by Message::kMaxHead). For the net layer, and for stage tests.
bool read_head(const std::filesystem::path& file, std::uint64_t offset, std::uint64_t size,
               std::string& head, bool& complete);

}  // namespace carrier::filter
