#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <catch2/catch.hpp>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "process.hpp"

namespace troupe::test {

namespace {

using std::chrono::milliseconds;
using clock = std::chrono::steady_clock;

// Generous: CI also runs the examples under AddressSanitizer.
constexpr auto timeout = std::chrono::seconds(30);

// Returns a TCP socket bound to 127.0.0.1 on a port the OS chooses, and that
// port; throws if the OS refuses.
int bind_loopback(uint16_t& port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    throw std::runtime_error("socket() failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  auto* sa = reinterpret_cast<sockaddr*>(&addr);
  if (::bind(fd, sa, len) != 0 || ::getsockname(fd, sa, &len) != 0) {
    ::close(fd);
    throw std::runtime_error("bind() failed");
  }
  port = ntohs(addr.sin_port);
  return fd;
}

// Closes a socket at the end of its scope, also when an assertion throws.
struct socket_guard {
  int fd;
  socket_guard(const socket_guard&) = delete;
  socket_guard& operator=(const socket_guard&) = delete;
  ~socket_guard() {
    if (fd >= 0)
      ::close(fd);
  }
};

// Returns the name wget prints for a port on 127.0.0.1.
std::string loopback(uint16_t port) {
  return "127.0.0.1:" + std::to_string(port);
}

// A minimal HTTP server on 127.0.0.1 in a thread of its own. It answers each
// connection with a header naming it (`Server: NAME`) after `delay`, or never
// if `delay` is negative (it keeps the connection open until it stops). The
// destructor stops and joins the thread within about 50 ms: every wait polls
// with a short timeout and checks a stop flag.
class http_server {
public:
  http_server(std::string name, milliseconds delay)
      : name_(std::move(name)), delay_(delay) {
    fd_ = bind_loopback(port_);
    if (::listen(fd_, 16) != 0) {
      ::close(fd_);
      throw std::runtime_error("listen() failed");
    }
    thread_ = std::thread([this] { run(); });
  }

  http_server(const http_server&) = delete;
  http_server& operator=(const http_server&) = delete;

  ~http_server() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }

  uint16_t port() const {
    return port_;
  }

  // Returns how many connections the server accepted.
  int accepted() const {
    return accepted_.load();
  }

  // Returns when the server last received a complete request.
  clock::time_point requested_at() const {
    return clock::time_point{clock::duration{requested_at_.load()}};
  }

private:
  // Waits up to `d` for `fd` to become readable; false if it did not or the
  // server stops.
  bool wait_readable(int fd, clock::duration d) {
    auto deadline = clock::now() + d;
    while (!stop_) {
      auto left
        = std::chrono::duration_cast<milliseconds>(deadline - clock::now());
      if (left.count() <= 0)
        return false;
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), 50)))
          > 0)
        return true;
    }
    return false;
  }

  void run() {
    while (!stop_) {
      if (!wait_readable(fd_, std::chrono::hours(1)))
        continue;
      int conn = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (conn < 0)
        continue;
      ++accepted_;
      serve(conn);
      ::close(conn);
    }
  }

  // Reads the request, waits `delay_` (the slow server), answers.
  void serve(int conn) {
    std::string request;
    auto deadline = clock::now() + std::chrono::seconds(5);
    while (request.find("\r\n\r\n") == std::string::npos) {
      if (!wait_readable(conn, deadline - clock::now()))
        return;
      char buf[1024];
      auto n = ::recv(conn, buf, sizeof(buf), 0);
      if (n <= 0)
        return;
      request.append(buf, static_cast<size_t>(n));
    }
    requested_at_ = clock::now().time_since_epoch().count();
    if (delay_.count() < 0) {
      // Never answer; hold the connection until the client hangs up or the
      // test ends.
      char c;
      while (!stop_)
        if (wait_readable(conn, std::chrono::hours(1))
            && ::recv(conn, &c, 1, 0) <= 0)
          return;
      return;
    }
    // Simulates a slow server; wakes early only if the client hangs up.
    wait_readable(conn, delay_);
    std::string response = "HTTP/1.0 200 OK\r\nServer: " + name_
                           + "\r\nContent-Type: text/plain\r\n\r\nbody";
    ::send(conn, response.data(), response.size(), MSG_NOSIGNAL);
  }

  std::string name_;
  milliseconds delay_;
  int fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0};
  std::atomic<clock::rep> requested_at_{0};
  std::thread thread_;
};

// Returns the lines of `out` that start with `prefix`.
std::vector<std::string> lines_with(const std::string& out,
                                    const std::string& prefix) {
  std::vector<std::string> result;
  for (auto& line : lines(out))
    if (line.compare(0, prefix.size(), prefix) == 0)
      result.push_back(line);
  return result;
}

// Returns the three header lines wget prints for `server` on `port`.
std::vector<std::string> headers_of(uint16_t port, const std::string& server) {
  auto p = loopback(port) + " header > ";
  return {p + "HTTP/1.0 200 OK", p + "Server: " + server,
          p + "Content-Type: text/plain"};
}

} // namespace

TEST_CASE("wget fetches the headers of three servers at once",
          "[examples][wget]") {
  http_server fast{"troupe-test-1", milliseconds(0)};
  http_server slow2{"troupe-test-2", milliseconds(1000)};
  http_server slow3{"troupe-test-3", milliseconds(1000)};
  auto r = run_process({bin("wget"), loopback(fast.port()),
                        loopback(slow2.port()), loopback(slow3.port())},
                       timeout);
  REQUIRE_FALSE(r.timed_out);
  CAPTURE(r.out, r.err, r.elapsed.count());
  CHECK(r.exit_code == 0);
  // First the three starts, in the order given, as in the seed.
  auto xs = lines(r.out);
  REQUIRE(xs.size() == 12);
  CHECK(std::vector<std::string>(xs.begin(), xs.begin() + 3)
        == std::vector<std::string>{"wget " + loopback(fast.port()) + "...",
                                    "wget " + loopback(slow2.port()) + "...",
                                    "wget " + loopback(slow3.port()) + "..."});
  // Then each server's header, complete and in order.
  CHECK(lines_with(r.out, loopback(fast.port()) + " ")
        == headers_of(fast.port(), "troupe-test-1"));
  CHECK(lines_with(r.out, loopback(slow2.port()) + " ")
        == headers_of(slow2.port(), "troupe-test-2"));
  CHECK(lines_with(r.out, loopback(slow3.port()) + " ")
        == headers_of(slow3.port(), "troupe-test-3"));
  // The fast server's header comes first: it did not wait for the slow ones.
  CHECK(xs[3] == headers_of(fast.port(), "troupe-test-1")[0]);
  // Both slow servers got their requests at about the same time, so their
  // one-second waits overlap: about 1 s in all; one after the other would
  // take at least 2 s. This checks concurrency, not speed.
  auto apart = slow2.requested_at() - slow3.requested_at();
  CHECK(std::chrono::abs(apart) < milliseconds(500));
  CHECK(r.elapsed >= milliseconds(950));
  CHECK(r.elapsed < milliseconds(1800));
}

TEST_CASE("wget reports refused and silent hosts and still fetches the others",
          "[examples][wget]") {
  http_server fast{"troupe-test-1", milliseconds(0)};
  http_server silent{"troupe-test-silent", milliseconds(-1)};
  // A listener that never accepts, with its queue full: the kernel drops
  // further SYNs, so wget's connect() to it never completes.
  uint16_t full = 0;
  socket_guard listener{bind_loopback(full)};
  REQUIRE(::listen(listener.fd, 0) == 0);
  socket_guard filler{::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)};
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(full);
  REQUIRE(::connect(filler.fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr))
          == 0);
  // A port nobody listens on: bound, then closed again (last, so that no
  // other socket of this test gets the port).
  uint16_t refused = 0;
  ::close(bind_loopback(refused));
  auto r = run_process({bin("wget"), "--timeout", "500ms", loopback(refused),
                        loopback(silent.port()), loopback(full),
                        loopback(fast.port())},
                       timeout);
  REQUIRE_FALSE(r.timed_out);
  CAPTURE(r.out, r.err, r.elapsed.count());
  CHECK(r.exit_code == 1);
  CHECK(lines_with(r.out, loopback(fast.port()) + " ")
        == headers_of(fast.port(), "troupe-test-1"));
  CHECK(lines_with(r.out, loopback(refused) + " ")
        == std::vector<std::string>{loopback(refused)
                                    + " error > connection refused"});
  CHECK(lines_with(r.out, loopback(silent.port()) + " ")
        == std::vector<std::string>{loopback(silent.port())
                                    + " error > no response within 500ms"});
  CHECK(lines_with(r.out, loopback(full) + " ")
        == std::vector<std::string>{loopback(full)
                                    + " error > no connection within 500ms"});
  CHECK(silent.accepted() == 1);
  // The refused host fails at once, the two hung ones only at the timeout;
  // all four waits overlap.
  auto xs = lines(r.out);
  REQUIRE(xs.size() == 4 + 3 + 3);
  auto at = [&](const std::string& prefix) {
    return std::find_if(xs.begin(), xs.end(), [&](const std::string& x) {
      return x.compare(0, prefix.size(), prefix) == 0;
    });
  };
  CHECK(at(loopback(refused) + " ") < at(loopback(silent.port()) + " "));
  CHECK(at(loopback(refused) + " ") < at(loopback(full) + " "));
  CHECK(r.elapsed >= milliseconds(450));
  CHECK(r.elapsed < milliseconds(3000));
}

TEST_CASE("wget rejects a missing host or a bad port with exit code 2",
          "[examples][wget]") {
  SECTION("no hosts: the usage") {
    auto r = run_process({bin("wget")}, timeout);
    REQUIRE_FALSE(r.timed_out);
    CHECK(r.exit_code == 2);
    CHECK(r.out.empty());
    CHECK(r.err.find("Usage: wget [OPTIONS] HOST[:PORT]...")
          != std::string::npos);
  }
  SECTION("a port that is not a number") {
    auto r
      = run_process({bin("wget"), "127.0.0.1:1", "host:notaport"}, timeout);
    REQUIRE_FALSE(r.timed_out);
    CHECK(r.exit_code == 2);
    CHECK(r.out.empty()); // nothing was fetched
    CHECK(r.err.find("'host:notaport'") != std::string::npos);
  }
  SECTION("a port out of range, an empty host") {
    for (auto arg : {"127.0.0.1:0", "127.0.0.1:65536", ":80", ""}) {
      CAPTURE(arg);
      auto r = run_process({bin("wget"), arg}, timeout);
      REQUIRE_FALSE(r.timed_out);
      CHECK(r.exit_code == 2);
      CHECK(r.err.find(std::string{"'"} + arg + "'") != std::string::npos);
    }
  }
}

} // namespace troupe::test
