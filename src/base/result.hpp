// carrier base: Result<T>, a value or an Error (C++20 has no std::expected).
// Environment failures (disk full, peer down) travel as Error values; callers decide
// whether they become a 4xx reply, a retry or a log line. No untrusted input here.
#pragma once
#include <cerrno>
#include <string>
#include <utility>
#include <variant>

namespace carrier {

struct Error {
  std::string message;  // human-readable, says what failed and where
  int sys_errno = 0;    // errno when a system call failed, else 0
  // True when the failure is about space or quota (ENOSPC, EDQUOT): callers answer 452 4.3.1.
  bool no_space() const { return sys_errno == ENOSPC || sys_errno == EDQUOT; }
};

Error sys_error(std::string what, int err = errno);

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T v) : v_(std::move(v)) {}
  Result(Error e) : v_(std::move(e)) {}
  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() { return value(); }
  const Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error e) : err_(std::move(e)), ok_(false) {}
  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const { return err_; }

 private:
  Error err_;
  bool ok_ = true;
};

}  // namespace carrier
