// carrier queue: notice helpers (see bounce.hpp) — RFC 3461 4.1 NOTIFY defaults, RFC 3463
// status codes in detail texts, the 4.4.7 expiry text, a token bucket, and writing a DSN
// (RFC 3464 / RFC 6522, built by proto/dsn) into the spool with the null reverse-path
// (RFC 5321 4.5.5). Detail texts may hold a remote reply (untrusted): only scanned here, with
// a fixed look-ahead; the DSN builder sanitises everything it writes.
#include "queue/bounce.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <future>
#include <memory>

namespace carrier::queue {

namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Length of a run of 1 to 3 digits at s[pos], 0 when there is none or it is longer.
std::size_t digits_1_3(std::string_view s, std::size_t pos) {
  std::size_t n = 0;
  while (pos + n < s.size() && is_digit(s[pos + n])) ++n;
  return n <= 3 ? n : 0;
}

// An RFC 3463 status code at the very start of s; its length, or 0.
std::size_t status_at(std::string_view s) {
  if (s.size() < 5 || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.') return 0;
  std::size_t a = digits_1_3(s, 2);
  if (a == 0 || 2 + a >= s.size() || s[2 + a] != '.') return 0;
  std::size_t b = digits_1_3(s, 3 + a);
  if (b == 0) return 0;
  std::size_t end = 3 + a + b;
  if (end < s.size() && (is_digit(s[end]) || s[end] == '.')) return 0;  // "5.1.1.2", "5.1.1234"
  return end;
}

std::string plural(std::int64_t n, const char* unit) {
  return std::to_string(n) + " " + unit + (n == 1 ? "" : "s");
}

Result<std::size_t> pread_some(int fd, char* p, std::size_t n, std::uint64_t off) {
  for (;;) {
    ssize_t r = ::pread(fd, p, n, static_cast<off_t>(off));
    if (r >= 0) return static_cast<std::size_t>(r);
    if (errno != EINTR) return sys_error("DSN: read the original");
  }
}

// Reads exactly n octets at off (the original's content is known to be that long).
Result<void> pread_exact(int fd, char* p, std::size_t n, std::uint64_t off) {
  std::size_t got = 0;
  while (got < n) {
    auto r = pread_some(fd, p + got, n - got, off + got);
    if (!r) return r.error();
    if (*r == 0) return Error{"DSN: the original message is shorter than its spool entry says", EIO};
    got += *r;
  }
  return {};
}

}  // namespace

bool wants_failure_notice(unsigned notify) {
  if (notify & proto::kNotifyNever) return false;
  return notify == proto::kNotifyNone || (notify & proto::kNotifyFailure) != 0;
}

bool wants_delay_notice(unsigned notify) {
  if (notify & proto::kNotifyNever) return false;
  return notify == proto::kNotifyNone || (notify & proto::kNotifyDelay) != 0;
}

std::string leading_status(std::string_view detail) {
  detail = detail.substr(0, 24);
  if (std::size_t n = status_at(detail)) return std::string(detail.substr(0, n));
  // An SMTP reply code first: three digits, then SP or "-" (RFC 5321 4.2).
  if (detail.size() > 4 && is_digit(detail[0]) && is_digit(detail[1]) && is_digit(detail[2]) &&
      (detail[3] == ' ' || detail[3] == '-')) {
    std::string_view rest = detail.substr(4);
    if (std::size_t n = status_at(rest)) return std::string(rest.substr(0, n));
  }
  return {};
}

bool is_smtp_reply(std::string_view d) {
  return d.size() >= 3 && d[0] >= '2' && d[0] <= '5' && is_digit(d[1]) && is_digit(d[2]) &&
         (d.size() == 3 || d[3] == ' ' || d[3] == '-');
}

Diagnostic split_diagnostic(std::string_view detail) {
  Diagnostic d;
  d.type = is_smtp_reply(detail) ? "smtp" : "X-Carrier";
  d.text = std::string(detail);
  // "<status> host WHERE said: REPLY (in reply to STAGE)", or carrier's own words about a
  // host: "<status> carrier: WORDS (host WHERE, during STAGE)"
  const std::string st = leading_status(detail);
  if (st.empty() || detail.size() <= st.size() || detail[st.size()] != ' ') return d;
  std::string_view rest = detail.substr(st.size() + 1);
  bool generated = false;
  if (rest.substr(0, 9) == "carrier: ") {
    generated = true;
    rest.remove_prefix(9);
  }
  if (generated) {
    // "carrier: WORDS (host WHERE, during STAGE)": carrier's words about that host.
    constexpr std::string_view kHost = " (host ";
    if (auto p = rest.rfind(kHost); p != std::string_view::npos) {
      std::string_view where = rest.substr(p + kHost.size());
      where = where.substr(0, std::min(where.find('['), where.find(',')));
      if (where.size() <= 255) d.remote_mta = std::string(where);
    }
    return d;  // not the peer's words: keep the whole detail
  }
  if (rest.substr(0, 5) != "host ") return d;
  rest.remove_prefix(5);
  constexpr std::string_view kSaid = " said: ";
  const auto said = rest.substr(0, 600).find(kSaid);  // WHERE is a host name, IP and port
  if (said == std::string_view::npos) return d;
  std::string_view where = rest.substr(0, said);
  std::string_view reply = rest.substr(said + kSaid.size());
  d.remote_mta = std::string(where.substr(0, where.find('[')));
  constexpr std::string_view kInReplyTo = " (in reply to ";
  if (auto p = reply.rfind(kInReplyTo); p != std::string_view::npos && reply.back() == ')')
    reply = reply.substr(0, p);
  if (!is_smtp_reply(reply)) return d;
  d.type = "smtp";
  d.text = std::string(reply);
  return d;
}

std::string describe_duration(std::chrono::seconds d) {
  const std::int64_t s = std::max<std::int64_t>(d.count(), 0);
  if (s >= 86400) return plural(s / 86400, "day");
  if (s >= 3600) return plural(s / 3600, "hour");
  if (s >= 60) return plural(s / 60, "minute");
  return plural(s, "second");
}

std::string expiry_detail(std::chrono::seconds age, std::string_view last_error) {
  std::string d = "4.4.7 message expired in the queue after " + describe_duration(age);
  if (!last_error.empty()) {
    d += ": ";
    d += last_error;
  }
  return d;
}

RateLimiter::RateLimiter(int per_minute)
    : capacity_(per_minute > 0 ? per_minute : 0), tokens_(capacity_) {}

bool RateLimiter::take(std::chrono::system_clock::time_point now) {
  if (!started_) {
    started_ = true;
    last_ = now;
  }
  if (now > last_) {
    const double elapsed = std::chrono::duration<double>(now - last_).count();
    tokens_ = std::min(capacity_, tokens_ + elapsed * capacity_ / 60.0);
    last_ = now;
  }
  if (tokens_ < 1.0) return false;
  tokens_ -= 1.0;
  return true;
}

Result<std::string> write_dsn(spool::Spool& spool, const spool::Stored& original,
                              const proto::DsnInput& in,
                              std::vector<proto::EnvelopeRecipient> recipients) {
  if (recipients.empty()) return Error{"DSN without envelope recipients", EINVAL};
  auto head = proto::dsn_head(in);
  if (!head) return head.error();
  const proto::DsnLayout layout = proto::dsn_layout(in);

  proto::Envelope env;  // sender stays empty: the null reverse-path
  env.params.body = layout.body;
  env.params.body_given = layout.body != proto::Body::SevenBit;
  env.params.smtputf8 = layout.smtputf8;
  env.recipients = std::move(recipients);
  env.received_at_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(in.now.time_since_epoch()).count();

  int fd = ::open(original.path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return sys_error("DSN: open " + original.path.string());
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};

  auto w = spool.begin(env);
  if (!w) return w.error();
  spool::Writer& out = *w;  // destroyed uncommitted on any error below: tmp file removed
  if (auto r = out.write(*head); !r) return r.error();

  std::string buf;
  if (layout.full_message) {
    buf.resize(kDsnCopyChunk);
    std::uint64_t done = 0;
    while (done < original.content_size) {
      auto n = static_cast<std::size_t>(
          std::min<std::uint64_t>(kDsnCopyChunk, original.content_size - done));
      if (auto r = pread_exact(fd, buf.data(), n, original.content_offset + done); !r)
        return r.error();
      if (auto r = out.write(std::string_view(buf.data(), n)); !r) return r.error();
      done += n;
    }
  } else {
    auto n = static_cast<std::size_t>(
        std::min<std::uint64_t>(proto::kDsnMaxHeaderSection, original.content_size));
    buf.resize(n);
    if (auto r = pread_exact(fd, buf.data(), n, original.content_offset); !r) return r.error();
    const std::size_t hdr = proto::header_section_length(buf);
    if (auto r = out.write(std::string_view(buf.data(), hdr)); !r) return r.error();
  }
  if (auto r = out.write(proto::dsn_tail(in)); !r) return r.error();

  auto done = std::make_shared<std::promise<Result<std::string>>>();
  auto fut = done->get_future();
  spool.commit(std::move(out), [done](Result<std::string> r) { done->set_value(std::move(r)); });
  return fut.get();
}

}  // namespace carrier::queue
