// TCP reachability probes and loopback addresses (troupe/runtime/tcp.hpp).

#include "troupe/runtime/tcp.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include "posix_util.hpp"
#include "tcp_connect.hpp"

namespace troupe {

caf::error probe_tcp(const std::string& host, uint16_t port,
                     std::chrono::milliseconds timeout) {
  auto deadline = detail::clock_type::now() + timeout;
  auto fd = detail::connect_tcp(host, port, timeout, deadline);
  if (!fd)
    return std::move(fd.error());
  return caf::none;
}

bool is_loopback(const std::string& host) {
  auto name = detail::lowercase(host);
  if (name.size() > 2 && name.front() == '[' && name.back() == ']')
    name = name.substr(1, name.size() - 2);
  if (name.size() > 1 && name.back() == '.')
    name.pop_back();
  if (name == "localhost" || name == "ip6-localhost" || name == "ip6-loopback")
    return true;
  in_addr v4{};
  if (::inet_pton(AF_INET, name.c_str(), &v4) == 1)
    return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  if (::inet_pton(AF_INET6, name.c_str(), &v6) != 1)
    return false;
  // ::1, or ::ffff:127.x.y.z (an IPv4 loopback address mapped to IPv6).
  const auto* b = v6.s6_addr;
  auto zeros = [b](int from, int to) {
    for (auto i = from; i < to; ++i)
      if (b[i] != 0)
        return false;
    return true;
  };
  if (zeros(0, 15) && b[15] == 1)
    return true;
  return zeros(0, 10) && b[10] == 0xff && b[11] == 0xff && b[12] == 127;
}

} // namespace troupe
