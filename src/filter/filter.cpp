// carrier filter: the message check pipeline, Authentication-Results rendering (RFC 8601 2.2)
// and removal of forged results carrying our authserv-id (RFC 8601 5). Handles UNTRUSTED
// header bytes (bounded by Message::kMaxHead).
#include "filter/filter.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/thread_pool.hpp>
#include <atomic>
#include <mutex>

#include "base/ascii.hpp"

namespace carrier::filter {

std::string AuthResult::prop(std::string_view name) const {
  for (const auto& [k, v] : props)
    if (k == name) return v;
  return {};
}

namespace {

bool token_char(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-./=?^_`{|}~").find(c) != std::string_view::npos;
}

// RFC 8601 2.2 pvalue: a token, or local-part@domain; anything else as a quoted-string.
std::string pvalue(std::string_view v) {
  bool plain = !v.empty();
  std::size_t ats = 0;
  for (char c : v) {
    if (c == '@') {
      if (++ats > 1) plain = false;
    } else if (!token_char(c)) {
      plain = false;
    }
  }
  if (plain && v.front() != '@' && v.back() != '@') return std::string(v);
  std::string q = "\"";
  for (char c : v) {
    if (c == '\r' || c == '\n' || static_cast<unsigned char>(c) < 0x20 || c == 0x7f) continue;
    if (c == '"' || c == '\\') q += '\\';
    q += c;
  }
  q += '"';
  return q;
}

std::string clean(std::string_view v) {
  std::string s;
  for (char c : v)
    if (c != '\r' && c != '\n' && (static_cast<unsigned char>(c) >= 0x20 || c == '\t')) s += c;
  return s;
}

}  // namespace

std::string authentication_results(std::string_view authserv_id,
                                   const std::vector<AuthResult>& results) {
  std::string h = "Authentication-Results: " + clean(authserv_id);
  if (results.empty()) return h + "; none\r\n";
  for (const auto& r : results) {
    h += ";\r\n\t";
    h += clean(r.method) + "=" + clean(r.result);
    if (!r.reason.empty()) h += " reason=" + pvalue(r.reason);
    for (const auto& [k, v] : r.props) {
      if (v.empty()) continue;
      h += ' ';
      h += clean(k) + "=" + pvalue(v);
    }
  }
  h += "\r\n";
  return h;
}

std::size_t strip_own_authentication_results(std::string& head, std::string_view authserv_id) {
  constexpr std::string_view name = "authentication-results:";
  std::size_t removed = 0, pos = 0;
  while (pos < head.size()) {
    // One field: this line and its continuation lines (starting with SP or HTAB).
    std::size_t end = pos;
    for (;;) {
      std::size_t nl = head.find('\n', end);
      end = nl == std::string::npos ? head.size() : nl + 1;
      if (end >= head.size() || (head[end] != ' ' && head[end] != '\t')) break;
    }
    std::string_view field(head.data() + pos, end - pos);
    if (field == "\r\n" || field == "\n") break;  // end of the header section
    bool own = false;
    if (field.size() > name.size() && ascii_iequals(field.substr(0, name.size()), name)) {
      std::string_view rest = field.substr(name.size());
      std::size_t i = 0;
      while (i < rest.size() && (rest[i] == ' ' || rest[i] == '\t' || rest[i] == '\r' || rest[i] == '\n')) ++i;
      std::size_t j = i;
      while (j < rest.size() && rest[j] != ';' && rest[j] != ' ' && rest[j] != '\t' &&
             rest[j] != '\r' && rest[j] != '\n' && rest[j] != '(')
        ++j;
      own = ascii_iequals(rest.substr(i, j - i), authserv_id);
    }
    if (own) {
      head.erase(pos, end - pos);
      ++removed;
    } else {
      pos = end;
    }
  }
  return removed;
}

bool read_head(const std::filesystem::path& file, std::uint64_t offset, std::uint64_t size,
               std::string& head, bool& complete) {
  head.clear();
  complete = false;
  int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(size, Message::kMaxHead));
  head.resize(want);
  std::size_t got = 0;
  while (got < want) {
    ssize_t n = ::pread(fd, head.data() + got, want - got, static_cast<off_t>(offset + got));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<std::size_t>(n);
  }
  ::close(fd);
  head.resize(got);
  if (got < want) return false;
  // The section ends at the first empty line (kept in head).
  std::size_t end = std::string::npos;
  if (head.rfind("\r\n", 0) == 0) end = 2;
  else if (auto p = head.find("\r\n\r\n"); p != std::string::npos) end = p + 4;
  if (end != std::string::npos) {
    head.resize(end);
    complete = true;
  } else {
    complete = want == size;  // no body: the whole content is the header section
  }
  return true;
}

struct Pipeline::Impl {
  Options opts;
  asio::thread_pool pool;
  explicit Impl(Options o) : opts(o), pool(static_cast<std::size_t>(std::max(1, o.threads))) {}
};

Pipeline::Pipeline(Options o, std::vector<std::shared_ptr<Stage>> stages)
    : stages_(std::move(stages)), impl_(std::make_unique<Impl>(o)) {}

void Pipeline::shutdown() {
  impl_->pool.stop();
  impl_->pool.join();
}

Pipeline::~Pipeline() {
  impl_->pool.stop();  // pending timeouts are work too: do not wait for them
  impl_->pool.join();
}

namespace {

// One run: the stages in order; `finished` makes sure done() is called once even when the
// timeout and a late stage race.
struct Run : std::enable_shared_from_this<Run> {
  std::shared_ptr<Context> ctx;
  std::function<void(std::shared_ptr<Context>)> done;
  const std::vector<std::shared_ptr<Stage>>* stages = nullptr;
  asio::thread_pool* pool = nullptr;
  bool add_ar = true;
  bool ar_written = false;
  std::atomic<bool> finished{false};
  std::unique_ptr<asio::steady_timer> timer;
  std::mutex mu;

  void finish() {
    if (finished.exchange(true)) return;
    // The timer belongs to the pool's executor, but a stage may keep this Run alive (through
    // its callback) after the pool is gone: destroy the timer now, while the pool exists.
    timer.reset();
    auto d = std::move(done);
    d(ctx);
  }

  void write_ar() {
    if (ar_written) return;
    ar_written = true;
    if (!add_ar || ctx->auth.empty()) return;
    ctx->head.insert(0, authentication_results(ctx->msg.local_hostname, ctx->auth));
  }

  // A refusal or a discard ends the checks. A hold does not: the message will be committed
  // (held), so the later stages still run on it — a milter may still refuse it, and DKIM
  // signing must still sign it, or a released message would leave unsigned.
  static bool ends(Action a) { return a == Action::Reject || a == Action::TempFail || a == Action::Discard; }

  void step(std::size_t i) {
    if (finished) return;
    if (ends(ctx->verdict.action) || i >= stages->size()) {
      if (ctx->verdict.action == Action::Accept || ctx->verdict.action == Action::Hold) write_ar();
      finish();
      return;
    }
    Stage& st = *(*stages)[i];
    if (st.kind() == Stage::Kind::Content) write_ar();
    auto self = shared_from_this();
    asio::post(*pool, [self, i, &st] {
      if (self->finished) return;
      // The verdict so far (Accept, or a Hold by an earlier stage): a stage that changes it
      // and does not name itself is named here.
      const Action before = self->ctx->verdict.action;
      const std::string before_stage = self->ctx->verdict.stage;
      st.run(*self->ctx, [self, i, name = st.name(), before, before_stage] {
        auto& v = self->ctx->verdict;
        if (v.action != Action::Accept && (v.stage.empty() || (v.action != before && v.stage == before_stage)))
          v.stage = name;
        asio::post(*self->pool, [self, i] { self->step(i + 1); });
      });
    });
  }
};

}  // namespace

void Pipeline::run(std::shared_ptr<Context> ctx, std::function<void(std::shared_ptr<Context>)> done) {
  auto r = std::make_shared<Run>();
  r->ctx = std::move(ctx);
  r->done = std::move(done);
  r->stages = &stages_;
  r->pool = &impl_->pool;
  r->add_ar = impl_->opts.add_auth_results;
  if (r->ctx->head.empty()) r->ctx->head = r->ctx->msg.head;
  r->timer = std::make_unique<asio::steady_timer>(impl_->pool.get_executor(), impl_->opts.timeout);
  r->timer->async_wait([r](const asio::error_code& ec) {
    if (ec || r->finished) return;
    // A stage may still be working on r->ctx: answer with a fresh context instead.
    auto t = std::make_shared<Context>();
    t->msg = r->ctx->msg;
    t->head = t->msg.head;
    t->verdict.action = Action::TempFail;
    t->verdict.reply = proto::Reply(451, "4.7.1", "Error: message checks timed out, try again later");
    t->verdict.reason = "message checks timed out";
    t->verdict.stage = "pipeline";
    if (r->finished.exchange(true)) return;
    r->timer.reset();  // as in finish(): not after the pool is destroyed
    auto d = std::move(r->done);
    d(t);
  });
  r->step(0);
}

}  // namespace carrier::filter
