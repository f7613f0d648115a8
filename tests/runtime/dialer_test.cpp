// The backoff's delays, and connect attempts (`dial`) between two nodes in
// one process, over 127.0.0.1: one that reaches a published actor, one to a
// closed port.

#include "troupe/runtime/dialer.hpp"

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include <arpa/inet.h>
#include <caf/actor.hpp>
#include <caf/after.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/scoped_actor.hpp>
#include <catch2/catch.hpp>
#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include "troupe/runtime/errc.hpp"
#include "troupe/runtime/net.hpp"
#include "troupe/runtime/node.hpp"
#include "troupe/runtime/security.hpp"

namespace troupe {

namespace {

using namespace std::chrono_literals;

/// A node on loopback: plain TCP, or TLS with `key_file`; `secured`:
/// whether its config's `secure()` was called.
struct test_node {
  explicit test_node(const std::string& name, bool secured = true,
                     const std::string& key_file = "",
                     const std::string& cookie_file = "")
      : cfg(net_config::role::listen) {
    spdlog::set_level(spdlog::level::off);
    cfg.log_level = "off";
    cfg.name = name;
    cfg.authkey_file = key_file;
    cfg.cookie_file = cookie_file;
    if (secured)
      REQUIRE_FALSE(cfg.secure("127.0.0.1"));
    host = std::make_unique<node>(cfg);
  }

  ~test_node() {
    host->stop();
  }

  net_config cfg;
  std::unique_ptr<node> host;
};

/// What a `dial` reported.
struct outcome {
  bool ok = false;
  bool empty = false;
  caf::actor remote;
  caf::error why;
};

outcome dial_and_wait(test_node& from, uint16_t port,
                      const std::string& host = "127.0.0.1",
                      caf::timespan timeout = 5s) {
  outcome out;
  caf::scoped_actor self{from.host->system()};
  dial(from.host->system(), from.cfg, host, port, timeout, caf::actor{self});
  self->receive(
    [&](dial_ok_atom, caf::actor& remote) {
      out.ok = true;
      out.remote = std::move(remote);
    },
    [&](dial_empty_atom) { out.empty = true; },
    [&](dial_failed_atom, caf::error& why) { out.why = std::move(why); },
    caf::after(30s) >> [&] { out.why = caf::make_error(errc::timeout); });
  return out;
}

/// Returns a TCP socket bound to 127.0.0.1 on a port the OS chose, which it
/// stores in `port`.
int bound_loopback_socket(uint16_t& port) {
  auto fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(sa);
  auto* addr = reinterpret_cast<sockaddr*>(&sa);
  REQUIRE(::bind(fd, addr, len) == 0);
  REQUIRE(::getsockname(fd, addr, &len) == 0);
  port = ntohs(sa.sin_port);
  return fd;
}

/// Returns a loopback port that nobody listens on (bound, then closed).
uint16_t closed_port() {
  uint16_t port = 0;
  ::close(bound_loopback_socket(port));
  return port;
}

caf::behavior echo(caf::event_based_actor*) {
  return {[](int32_t x) { return x; }};
}

} // namespace

TEST_CASE("addresses are written as they are read", "[runtime][dialer]") {
  CHECK(format_address("127.0.0.1", 5000) == "127.0.0.1:5000");
  CHECK(format_address("::1", 5000) == "[::1]:5000");
  std::string host;
  uint16_t port = 0;
  REQUIRE_FALSE(parse_host_port(format_address("::1", 5000), host, port));
  CHECK(host == "::1");
  CHECK(port == 5000);
  REQUIRE_FALSE(parse_host_port("node-1:80", host, port));
  CHECK(host == "node-1");
  CHECK(port == 80);
  CHECK(parse_host_port("::1:5000", host, port) == errc::invalid_option_value);
  CHECK(parse_host_port("h:0", host, port) == errc::invalid_option_value);
  CHECK_FALSE(parse_host_port("h:0", host, port, true));
}

TEST_CASE("backoff doubles from the initial delay up to the maximum",
          "[runtime][dialer]") {
  reconnect_options opts;
  opts.initial_backoff = 100ms;
  opts.max_backoff = 350ms;
  backoff delays{opts};
  CHECK(delays.current() == caf::timespan{100ms});
  CHECK(delays.next() == caf::timespan{100ms});
  CHECK(delays.next() == caf::timespan{200ms});
  CHECK(delays.next() == caf::timespan{350ms});
  CHECK(delays.next() == caf::timespan{350ms});
  SECTION("a reset starts over") {
    delays.reset();
    CHECK(delays.current() == caf::timespan{100ms});
    CHECK(delays.next() == caf::timespan{100ms});
    CHECK(delays.next() == caf::timespan{200ms});
  }
}

TEST_CASE("a default backoff goes from 100 ms to 2 s", "[runtime][dialer]") {
  backoff delays;
  CHECK(delays.next() == caf::timespan{100ms});
  for (int i = 0; i < 10; ++i)
    static_cast<void>(delays.next()); // only the last one matters
  CHECK(delays.next() == caf::timespan{2s});
}

TEST_CASE("dial reports the actor a peer publishes", "[runtime][dialer]") {
  test_node a{"a"};
  test_node b{"b"};
  auto hdl = a.host->spawn(echo);
  auto port = listen(a.host->system(), hdl, a.cfg, 0);
  REQUIRE(port);
  auto got = dial_and_wait(b, *port);
  INFO((got.why ? error_text(got.why) + " / " + to_string(got.why) : ""));
  CHECK_FALSE(got.why);
  REQUIRE(got.ok);
  caf::scoped_actor self{b.host->system()};
  int32_t answer = 0;
  self->request(got.remote, 10s, int32_t{21})
    .receive([&](int32_t x) { answer = x; }, [&](caf::error&) {});
  CHECK(answer == 21);
}

TEST_CASE("dial to a closed port says that the peer cannot be reached",
          "[runtime][dialer]") {
  test_node b{"b"};
  auto port = closed_port();
  auto got = dial_and_wait(b, port);
  CHECK_FALSE(got.ok);
  CHECK(got.why == errc::connect_failed);
  CHECK_THAT(
    error_text(got.why),
    Catch::StartsWith("cannot reach 127.0.0.1:" + std::to_string(port) + ": "));
}

TEST_CASE("a key means TLS even if the program never calls secure()",
          "[runtime][dialer]") {
  auto dir = security::make_private_dir();
  REQUIRE(dir);
  auto key = *dir + "/cluster.key";
  REQUIRE_FALSE(security::write_key_file(key));
  {
    // Neither node calls secure(): listen and dial do it for them.
    test_node a{"a", false, key};
    test_node b{"b", false, key};
    auto port = listen(a.host->system(), a.host->spawn(echo), a.cfg, 0);
    REQUIRE(port);
    CHECK(a.cfg.tls());
    auto got = dial_and_wait(b, *port);
    CHECK_FALSE(got.why);
    CHECK(got.ok);
    CHECK(b.cfg.tls());
    // A node without the key is refused, and told why.
    test_node plain{"plain"};
    auto refused = dial_and_wait(plain, *port);
    CHECK_FALSE(refused.ok);
    CHECK(refused.why == errc::refused);
    CHECK_THAT(error_text(refused.why),
               Catch::Contains("the peer requires TLS"));
    // Another cluster's key: refused for good too (errc::refused, which a
    // caller does not retry forever), and told why.
    auto other_key = *dir + "/other.key";
    REQUIRE_FALSE(security::write_key_file(other_key));
    test_node stranger{"stranger", false, other_key};
    auto foreign = dial_and_wait(stranger, *port);
    CHECK_FALSE(foreign.ok);
    CHECK(foreign.why == errc::refused);
    CHECK_THAT(error_text(foreign.why), Catch::Contains("TLS handshake refused")
                                          || Catch::Contains("cluster CA"));
  }
  security::remove_private_dir(*dir);
}

TEST_CASE("plain TCP peers need the same cookie", "[runtime][dialer]") {
  auto dir = security::make_private_dir();
  REQUIRE(dir);
  {
    // Made on first use, in a directory of their own.
    test_node a{"a", true, "", *dir + "/a/cookie"};
    test_node a2{"a2", true, "", *dir + "/a/cookie"};
    test_node b{"b", true, "", *dir + "/b/cookie"};
    CHECK(a.cfg.cookie() == a2.cfg.cookie());
    CHECK(a.cfg.cookie() != b.cfg.cookie());
    auto port = listen(a.host->system(), a.host->spawn(echo), a.cfg, 0);
    REQUIRE(port);
    auto same = dial_and_wait(a2, *port);
    CHECK_FALSE(same.why);
    CHECK(same.ok);
    auto other = dial_and_wait(b, *port);
    CHECK_FALSE(other.ok);
    CHECK(other.why == errc::refused);
    CHECK_THAT(error_text(other.why),
               Catch::Contains("the peer does not know our cookie"));
    ::unlink((*dir + "/a/cookie").c_str());
    ::unlink((*dir + "/b/cookie").c_str());
    ::rmdir((*dir + "/a").c_str());
    ::rmdir((*dir + "/b").c_str());
  }
  security::remove_private_dir(*dir);
}

TEST_CASE("a peer that accepts but never answers fails the dial at its "
          "connect timeout, which the error names",
          "[runtime][dialer]") {
  // A listening socket nobody accepts from: the kernel completes the TCP
  // handshake, then nothing answers the preamble.
  uint16_t port = 0;
  auto fd = bound_loopback_socket(port);
  REQUIRE(::listen(fd, 8) == 0);
  test_node b{"b"};
  auto start = std::chrono::steady_clock::now();
  auto got = dial_and_wait(b, port, "127.0.0.1", 1s);
  auto took = std::chrono::steady_clock::now() - start;
  ::close(fd);
  CHECK_FALSE(got.ok);
  CHECK(got.why == errc::connect_failed);
  CHECK_THAT(error_text(got.why),
             Catch::Contains("no answer to troupe's preamble within 1000 ms "
                             "(--connect-timeout)"));
  CHECK(took >= 900ms);
  CHECK(took < 10s);
}

TEST_CASE("plain TCP off loopback is refused without --insecure",
          "[runtime][dialer]") {
  test_node a{"a"};
  // Refused before any packet is sent.
  auto got = dial_and_wait(a, 9, "192.0.2.1");
  CHECK_FALSE(got.ok);
  CHECK(got.why == errc::insecure_refused);
  CHECK_THAT(error_text(got.why),
             Catch::Contains("refusing to connect to 192.0.2.1:9"));
}

} // namespace troupe
