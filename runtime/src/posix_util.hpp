#pragma once

// Private: POSIX helpers shared by the security and TCP sources: an owned
// file descriptor, errno as text, and small private files read and written
// whole.

#include <string>

#include <caf/error.hpp>
#include <caf/expected.hpp>

namespace troupe::detail {

/// Owns a file descriptor and closes it on destruction. Not thread-safe.
class unique_fd {
public:
  unique_fd() = default;

  explicit unique_fd(int fd) : fd_(fd) {}

  unique_fd(const unique_fd&) = delete;
  unique_fd& operator=(const unique_fd&) = delete;

  unique_fd(unique_fd&& other) noexcept : fd_(other.release()) {}

  unique_fd& operator=(unique_fd&& other) noexcept {
    reset(other.release());
    return *this;
  }

  ~unique_fd() {
    reset();
  }

  int get() const {
    return fd_;
  }

  int release() {
    auto fd = fd_;
    fd_ = -1;
    return fd;
  }

  void reset(int fd = -1);

private:
  int fd_ = -1;
};

/// Returns strerror(code) starting with a lowercase letter, to fit
/// mid-sentence.
std::string errno_text(int code);

/// Returns `text` in ASCII lowercase.
std::string lowercase(std::string text);

/// Reads the whole regular file at `path` (at most 1 MiB); `what` names it in
/// messages ("CA certificate"). Returns the contents, or
/// `errc::cannot_open_file` with "cannot read the <what> <path>: <reason>"
/// (or "no file given for the <what>", "the <what> <path> is too large ...").
[[nodiscard]] caf::expected<std::string>
read_small_file(const std::string& path, const char* what);

/// Writes `text` to `path`, created or truncated, with mode 0600. Returns
/// `errc::cannot_open_file` naming the file and the cause on failure.
[[nodiscard]] caf::error write_private_file(const std::string& path,
                                            const std::string& text);

} // namespace troupe::detail
