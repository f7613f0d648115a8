// TCP connects bounded by a deadline (see tcp_connect.hpp).

#include "tcp_connect.hpp"

#include <cerrno>
#include <cstring>
#include <memory>

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>

#include "troupe/runtime/errc.hpp"

namespace troupe::detail {

int wait_fd(int fd, short events, clock_type::time_point deadline) {
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - clock_type::now());
    if (left.count() < 0)
      left = std::chrono::milliseconds{0};
    pollfd pfd{fd, events, 0};
    auto rc = ::poll(&pfd, 1, static_cast<int>(left.count()));
    if (rc > 0)
      return 1;
    if (rc == 0)
      return 0;
    if (errno != EINTR)
      return -1;
  }
}

caf::expected<unique_fd> connect_tcp(const std::string& host, uint16_t port,
                                     std::chrono::milliseconds timeout,
                                     clock_type::time_point deadline) {
  auto fail = [](std::string why) {
    return caf::make_error(errc::connect_failed, std::move(why));
  };
  auto name = host;
  if (name.size() > 2 && name.front() == '[' && name.back() == ']')
    name = name.substr(1, name.size() - 2);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  auto service = std::to_string(port);
  auto rc = ::getaddrinfo(name.c_str(), service.c_str(), &hints, &found);
  if (rc != 0)
    return fail("cannot resolve host " + host + ": "
                + lowercase(rc == EAI_SYSTEM ? std::strerror(errno)
                                             : ::gai_strerror(rc)));
  std::unique_ptr<addrinfo, void (*)(addrinfo*)> guard{found, ::freeaddrinfo};
  std::string error = "cannot resolve host " + host + ": no addresses";
  for (auto* ai = found; ai != nullptr; ai = ai->ai_next) {
    unique_fd fd{::socket(ai->ai_family,
                          ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                          ai->ai_protocol)};
    if (fd.get() < 0) {
      error = errno_text(errno);
      continue;
    }
    if (::connect(fd.get(), ai->ai_addr, ai->ai_addrlen) != 0) {
      if (errno != EINPROGRESS) {
        error = errno_text(errno);
        continue;
      }
      auto ready = wait_fd(fd.get(), POLLOUT, deadline);
      if (ready == 0)
        return fail("timed out after " + std::to_string(timeout.count())
                    + " ms");
      if (ready < 0) {
        error = errno_text(errno);
        continue;
      }
      int so_error = 0;
      socklen_t len = sizeof(so_error);
      if (::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &so_error, &len) != 0)
        so_error = errno;
      if (so_error != 0) {
        error = errno_text(so_error);
        continue;
      }
    }
    return fd;
  }
  return fail(std::move(error));
}

} // namespace troupe::detail
