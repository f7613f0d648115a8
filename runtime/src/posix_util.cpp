// POSIX helpers shared by the security and TCP sources (see posix_util.hpp).

#include "posix_util.hpp"

#include <cctype>
#include <cerrno>
#include <cstring>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "troupe/runtime/errc.hpp"

namespace troupe::detail {

void unique_fd::reset(int fd) {
  if (fd_ >= 0)
    ::close(fd_);
  fd_ = fd;
}

std::string errno_text(int code) {
  std::string text = std::strerror(code);
  if (!text.empty())
    text[0]
      = static_cast<char>(std::tolower(static_cast<unsigned char>(text[0])));
  return text;
}

std::string lowercase(std::string text) {
  for (auto& ch : text)
    ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return text;
}

caf::expected<std::string> read_small_file(const std::string& path,
                                           const char* what) {
  auto fail = [](std::string text) {
    return caf::make_error(errc::cannot_open_file, std::move(text));
  };
  if (path.empty())
    return fail(std::string{"no file given for the "} + what);
  unique_fd fd{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (fd.get() < 0)
    return fail(std::string{"cannot read the "} + what + " " + path + ": "
                + errno_text(errno));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0)
    return fail(std::string{"cannot read the "} + what + " " + path + ": "
                + errno_text(errno));
  if (!S_ISREG(st.st_mode))
    return fail(std::string{"cannot read the "} + what + " " + path
                + ": not a regular file");
  constexpr off_t max_size = 1 << 20;
  if (st.st_size > max_size)
    return fail(std::string{"the "} + what + " " + path
                + " is too large (more than 1 MiB)");
  std::string out;
  char buf[4096];
  for (;;) {
    auto n = ::read(fd.get(), buf, sizeof(buf));
    if (n == 0)
      break;
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return fail(std::string{"cannot read the "} + what + " " + path + ": "
                  + errno_text(errno));
    }
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > static_cast<size_t>(max_size))
      return fail(std::string{"the "} + what + " " + path
                  + " is too large (more than 1 MiB)");
  }
  return out;
}

caf::error write_private_file(const std::string& path,
                              const std::string& text) {
  auto fail = [](std::string what) {
    return caf::make_error(errc::cannot_open_file, std::move(what));
  };
  unique_fd fd{::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
                      S_IRUSR | S_IWUSR)};
  if (fd.get() < 0)
    return fail("cannot create " + path + ": " + errno_text(errno));
  // The file may have existed with a wider mode; O_CREAT's mode would not
  // apply then.
  if (::fchmod(fd.get(), S_IRUSR | S_IWUSR) != 0)
    return fail("cannot chmod 600 " + path + ": " + errno_text(errno));
  size_t done = 0;
  while (done < text.size()) {
    auto n = ::write(fd.get(), text.data() + done, text.size() - done);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return fail("cannot write " + path + ": " + errno_text(errno));
    }
    done += static_cast<size_t>(n);
  }
  if (::close(fd.release()) != 0)
    return fail("cannot write " + path + ": " + errno_text(errno));
  return caf::none;
}

} // namespace troupe::detail
