// Cluster key files: `security::write_key_file` (troupe keygen),
// `security::read_key_file` (--authkey-file), and the cookie of plain-TCP
// nodes (`security::load_or_create_cookie`), which is a key file too.

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include "troupe/runtime/security.hpp"

#include "openssl_util.hpp"
#include "posix_util.hpp"

namespace troupe::security {

caf::error write_key_file(const std::string& path) {
  detail::error_queue_guard errors;
  if (path.empty())
    return caf::make_error(errc::tls_config,
                           "no file name given for the cluster key");
  unsigned char bytes[detail::key_bytes];
  if (RAND_bytes(bytes, sizeof(bytes)) != 1)
    return caf::make_error(errc::tls_config, "cannot get random bytes for "
                                               + path + ": "
                                               + detail::openssl_error());
  auto text = detail::to_hex(bytes, sizeof(bytes)) + "\n";
  OPENSSL_cleanse(bytes, sizeof(bytes));
  detail::unique_fd fd{::open(
    path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, S_IRUSR | S_IWUSR)};
  if (fd.get() < 0) {
    auto code = errno;
    OPENSSL_cleanse(&text[0], text.size());
    if (code == EEXIST)
      return caf::make_error(
        errc::tls_config,
        path
          + " already exists; refusing to overwrite a cluster key (delete it "
            "first if you really want a new one)");
    return caf::make_error(errc::cannot_open_file,
                           "cannot create " + path + ": "
                             + detail::errno_text(code));
  }
  std::string error;
  // The umask may have taken bits away, never added any; make it exactly 0600.
  if (::fchmod(fd.get(), S_IRUSR | S_IWUSR) != 0)
    error = "cannot chmod 600 " + path + ": " + detail::errno_text(errno);
  size_t done = 0;
  while (error.empty() && done < text.size()) {
    auto n = ::write(fd.get(), text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      error = "cannot write " + path + ": " + detail::errno_text(errno);
    else
      done += static_cast<size_t>(n);
  }
  if (error.empty() && ::fsync(fd.get()) != 0)
    error = "cannot write " + path + ": " + detail::errno_text(errno);
  if (::close(fd.release()) != 0 && error.empty())
    error = "cannot write " + path + ": " + detail::errno_text(errno);
  OPENSSL_cleanse(&text[0], text.size());
  if (error.empty())
    return caf::none;
  ::unlink(path.c_str()); // never leave a half-written key behind
  return caf::make_error(errc::cannot_open_file, std::move(error));
}

caf::expected<std::string> read_key_file(const std::string& path) {
  auto unreadable = [&](int code) {
    return caf::make_error(errc::cannot_open_file,
                           "cannot read the cluster key " + path + ": "
                             + detail::errno_text(code));
  };
  if (path.empty())
    return caf::make_error(errc::tls_config,
                           "no file name given for the cluster key");
  detail::unique_fd fd{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (fd.get() < 0)
    return unreadable(errno);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0)
    return unreadable(errno);
  if (!S_ISREG(st.st_mode))
    return caf::make_error(errc::tls_config, "the cluster key " + path
                                               + " is not a regular file");
  if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof(mode), "%04o",
                  static_cast<unsigned>(st.st_mode & 07777));
    return caf::make_error(errc::tls_config,
                           "the cluster key " + path
                             + " is accessible by group or others (mode " + mode
                             + "); run: chmod 600 " + path);
  }
  // A key file holds 65 bytes; anything much longer is not one.
  char buf[256];
  size_t size = 0;
  for (;;) {
    auto n = ::read(fd.get(), buf + size, sizeof(buf) - size);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return unreadable(errno);
    if (n == 0 || (size += static_cast<size_t>(n)) == sizeof(buf))
      break;
  }
  std::string text{buf, size};
  OPENSSL_cleanse(buf, sizeof(buf));
  while (!text.empty()
         && std::isspace(static_cast<unsigned char>(text.back())) != 0)
    text.pop_back();
  std::vector<unsigned char> bytes;
  auto valid = detail::decode_key(text, bytes);
  OPENSSL_cleanse(bytes.data(), bytes.size());
  if (!valid) {
    OPENSSL_cleanse(&text[0], text.size());
    return caf::make_error(errc::tls_config,
                           "the cluster key " + path
                             + " is not 64 hex digits (make one with: troupe "
                               "keygen FILE)");
  }
  auto key = detail::lowercase(text);
  OPENSSL_cleanse(&text[0], text.size());
  return key;
}

std::string default_cookie_file() {
  if (const char* env = std::getenv("TROUPE_COOKIE_FILE"); env && *env)
    return env;
  if (const char* home = std::getenv("HOME"); home && *home)
    return std::string{home} + "/.troupe/cookie";
  return {};
}

caf::expected<std::string> load_or_create_cookie(const std::string& path) {
  if (path.empty())
    return caf::make_error(errc::tls_config,
                           "no cookie file: HOME is not set; give "
                           "--cookie-file F or set TROUPE_COOKIE_FILE");
  if (::access(path.c_str(), F_OK) == 0)
    return read_key_file(path);
  // Its directory, private, if it is ours to make.
  auto slash = path.rfind('/');
  if (slash != std::string::npos && slash > 0) {
    auto dir = path.substr(0, slash);
    if (::mkdir(dir.c_str(), S_IRWXU) != 0 && errno != EEXIST)
      return caf::make_error(errc::cannot_open_file,
                             "cannot create the directory " + dir
                               + " for the cookie: "
                               + detail::errno_text(errno));
  }
  // Written to a file of its own, then linked into place: link(2) fails if
  // another process got there first, and nobody reads a half-written file.
  auto tmp = path + ".tmp." + std::to_string(::getpid());
  ::unlink(tmp.c_str());
  if (auto err = write_key_file(tmp))
    return err;
  auto linked = ::link(tmp.c_str(), path.c_str());
  auto saved = errno;
  ::unlink(tmp.c_str());
  if (linked != 0 && saved != EEXIST)
    return caf::make_error(errc::cannot_open_file,
                           "cannot create the cookie file " + path + ": "
                             + detail::errno_text(saved));
  return read_key_file(path);
}

} // namespace troupe::security
