// The NATS client port with a client nobody here wrote: the NATS C client
// (Debian libnats-dev) against a bus served by `client_port`, beside the
// bus's own subscribers. Every wait is bounded (the C client's timeouts).

#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <catch2/catch.hpp>
#include <nats/nats.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include "troupe/bus/bus.hpp"
#include "troupe/bus/client_port.hpp"
#include "troupe/runtime/config.hpp"
#include "troupe/runtime/errc.hpp"
#include "troupe/runtime/node.hpp"

#include "net_util.hpp"
#include "process.hpp"

namespace troupe::bus {

namespace {

using namespace std::chrono_literals;

// Bound of every wait, in milliseconds (the C client's unit).
constexpr int64_t patience_ms = 20000;

struct fixture {
  static troupe::config& init(troupe::config& cfg) {
    spdlog::set_level(spdlog::level::off);
    cfg.log_level = "off";
    return cfg;
  }
  troupe::config cfg;
  troupe::node node{init(cfg)};
  bus b{node};
  std::unique_ptr<client_port> port;

  explicit fixture(client_port_options opts = {}) {
    opts.port = 0;
    auto p = client_port::open(b, opts);
    REQUIRE(p);
    port = std::move(*p);
  }

  ~fixture() {
    port.reset();
    node.stop();
  }

  std::string url() const {
    return "nats://127.0.0.1:" + std::to_string(port->port());
  }
};

/// A connection of the C client, closed and destroyed with the object.
struct client {
  natsConnection* nc = nullptr;

  explicit client(const std::string& url) {
    natsOptions* opts = nullptr;
    REQUIRE(natsOptions_Create(&opts) == NATS_OK);
    REQUIRE(natsOptions_SetURL(opts, url.c_str()) == NATS_OK);
    REQUIRE(natsOptions_SetAllowReconnect(opts, false) == NATS_OK);
    auto s = natsConnection_Connect(&nc, opts);
    natsOptions_Destroy(opts);
    INFO(natsStatus_GetText(s));
    REQUIRE(s == NATS_OK);
  }

  ~client() {
    natsConnection_Destroy(nc);
  }

  /// Round trip to the server: it has read everything sent before.
  void flush() {
    REQUIRE(natsConnection_FlushTimeout(nc, patience_ms) == NATS_OK);
  }
};

/// A synchronous subscription of the C client.
struct sync_sub {
  natsSubscription* sub = nullptr;

  sync_sub(client& c, const char* subject, const char* queue = nullptr) {
    auto s = queue == nullptr
               ? natsConnection_SubscribeSync(&sub, c.nc, subject)
               : natsConnection_QueueSubscribeSync(&sub, c.nc, subject, queue);
    REQUIRE(s == NATS_OK);
  }

  ~sync_sub() {
    natsSubscription_Destroy(sub);
  }

  /// The next message's subject and payload; fails the test after
  /// `timeout_ms`.
  std::pair<std::string, std::string> next(int64_t timeout_ms = patience_ms) {
    natsMsg* m = nullptr;
    auto s = natsSubscription_NextMsg(&m, sub, timeout_ms);
    REQUIRE(s == NATS_OK);
    std::pair<std::string, std::string> result{
      natsMsg_GetSubject(m),
      std::string{natsMsg_GetData(m),
                  static_cast<size_t>(natsMsg_GetDataLength(m))}};
    natsMsg_Destroy(m);
    return result;
  }

  /// Whether a message arrives within `timeout_ms`.
  bool any(int64_t timeout_ms) {
    natsMsg* m = nullptr;
    auto s = natsSubscription_NextMsg(&m, sub, timeout_ms);
    natsMsg_Destroy(m);
    return s == NATS_OK;
  }
};

// Sends `bytes` on a raw TCP connection to `port` and returns what the
// server wrote until it closed the connection, or wrote `until` if not
// empty (at most `patience_ms`).
std::string raw_exchange(uint16_t port, const std::string& bytes,
                         const std::string& until = {}) {
  int fd = troupe::test::connect_loopback(port);
  REQUIRE(::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL)
          == static_cast<ssize_t>(bytes.size()));
  std::string got;
  auto deadline
    = std::chrono::steady_clock::now() + std::chrono::milliseconds{patience_ms};
  while (std::chrono::steady_clock::now() < deadline) {
    if (!until.empty() && got.find(until) != std::string::npos)
      break;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0)
      continue;
    char buf[4096];
    auto n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0)
      break;
    got.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return got;
}

} // namespace

TEST_CASE("nats client: publish and subscribe with wildcards through the "
          "client port",
          "[bus][nats][client]") {
  fixture f;
  client sub_side{f.url()};
  client pub_side{f.url()};
  sync_sub star{sub_side, "orders.*"};
  sync_sub rest{sub_side, "orders.>"};
  sub_side.flush();
  REQUIRE(natsConnection_PublishString(pub_side.nc, "orders.eu", "one")
          == NATS_OK);
  REQUIRE(natsConnection_PublishString(pub_side.nc, "orders.eu.created", "two")
          == NATS_OK);
  pub_side.flush();
  CHECK(star.next()
        == std::make_pair(std::string{"orders.eu"}, std::string{"one"}));
  CHECK(rest.next()
        == std::make_pair(std::string{"orders.eu"}, std::string{"one"}));
  CHECK(
    rest.next()
    == std::make_pair(std::string{"orders.eu.created"}, std::string{"two"}));
  CHECK_FALSE(star.any(50)); // orders.eu.created has one token too many
}

TEST_CASE("nats client: messages cross between NATS clients and the bus's own "
          "subscribers, bytes unchanged",
          "[bus][nats][client]") {
  fixture f;
  client c{f.url()};
  std::mutex mtx;
  std::vector<std::string> native;
  std::condition_variable cv;
  auto sub = f.b.subscribe("to.native", [&](const bus_message& m) {
    std::lock_guard<std::mutex> guard{mtx};
    native.push_back(m.payload);
    cv.notify_all();
  });
  REQUIRE(sub);
  std::string binary{"a\0b\r\n\xff", 6};
  REQUIRE(natsConnection_Publish(c.nc, "to.native", binary.data(),
                                 static_cast<int>(binary.size()))
          == NATS_OK);
  c.flush();
  {
    std::unique_lock<std::mutex> guard{mtx};
    REQUIRE(cv.wait_for(guard, 20s, [&] { return !native.empty(); }));
    CHECK(native.front() == binary);
  }
  sync_sub from{c, "from.native"};
  c.flush();
  REQUIRE_FALSE(f.b.publish("from.native", binary));
  CHECK(from.next().second == binary);
}

TEST_CASE("nats client: a queue group spans NATS clients and a native member - "
          "each message reaches one of them",
          "[bus][nats][client]") {
  fixture f;
  client a{f.url()};
  client b{f.url()};
  sync_sub qa{a, "jobs", "workers"};
  sync_sub qb{b, "jobs", "workers"};
  std::atomic<int> native_got{0};
  subscription_options opts;
  opts.queue_group = "workers";
  auto native
    = f.b.subscribe("jobs", opts, [&](const bus_message&) { ++native_got; });
  REQUIRE(native);
  a.flush();
  b.flush();
  constexpr int n = 300;
  for (int i = 0; i < n; ++i)
    REQUIRE_FALSE(f.b.publish("jobs", std::to_string(i)));
  // Count what each NATS member got until all n are accounted for.
  int got_a = 0;
  int got_b = 0;
  auto deadline = std::chrono::steady_clock::now() + 20s;
  while (got_a + got_b + native_got < n
         && std::chrono::steady_clock::now() < deadline) {
    if (qa.any(10))
      ++got_a;
    if (qb.any(10))
      ++got_b;
  }
  CHECK(got_a + got_b + native_got == n);
  CHECK(got_a > 0);
  CHECK(got_b > 0);
  // And no copy more.
  CHECK_FALSE(qa.any(50));
  CHECK_FALSE(qb.any(50));
}

TEST_CASE("nats client: requests and replies between NATS clients and the bus",
          "[bus][nats][client]") {
  fixture f;
  client responder{f.url()};
  client requester{f.url()};
  // A NATS responder, answered through its reply subject.
  natsSubscription* rs = nullptr;
  REQUIRE(natsConnection_Subscribe(
            &rs, responder.nc, "svc.upper",
            [](natsConnection* nc, natsSubscription*, natsMsg* m, void*) {
              std::string s{natsMsg_GetData(m),
                            static_cast<size_t>(natsMsg_GetDataLength(m))};
              for (auto& ch : s)
                ch = static_cast<char>(std::toupper(ch));
              natsConnection_PublishString(nc, natsMsg_GetReply(m), s.c_str());
              natsMsg_Destroy(m);
            },
            nullptr)
          == NATS_OK);
  responder.flush();
  natsMsg* reply = nullptr;
  REQUIRE(natsConnection_RequestString(&reply, requester.nc, "svc.upper",
                                       "hello", patience_ms)
          == NATS_OK);
  CHECK(std::string{natsMsg_GetData(reply)} == "HELLO");
  natsMsg_Destroy(reply);
  // The bus asks the NATS responder.
  auto r = f.b.request("svc.upper", std::string{"from troupe"}, 20s);
  REQUIRE(r);
  CHECK(r->payload == "FROM TROUPE");
  // A NATS client asks a native responder.
  auto native = f.b.subscribe("svc.len", [&](const bus_message& m) {
    REQUIRE_FALSE(f.b.reply(m, std::to_string(m.payload.size())));
  });
  REQUIRE(native);
  REQUIRE(natsConnection_RequestString(&reply, requester.nc, "svc.len", "four",
                                       patience_ms)
          == NATS_OK);
  CHECK(std::string{natsMsg_GetData(reply)} == "4");
  natsMsg_Destroy(reply);
  natsSubscription_Destroy(rs);
}

TEST_CASE("nats client: UNSUB with a count ends the subscription after that "
          "many messages",
          "[bus][nats][client]") {
  fixture f;
  client c{f.url()};
  sync_sub s{c, "ticks"};
  REQUIRE(natsSubscription_AutoUnsubscribe(s.sub, 2) == NATS_OK);
  c.flush();
  for (int i = 0; i < 5; ++i)
    REQUIRE_FALSE(f.b.publish("ticks", std::to_string(i)));
  CHECK(s.next().second == "0");
  CHECK(s.next().second == "1");
  CHECK_FALSE(s.any(100));
  CHECK(f.port->stats().out_msgs == 2);
}

TEST_CASE("nats client: a payload of max_payload passes - one byte more is "
          "refused by the client, which read the limit from INFO",
          "[bus][nats][client]") {
  fixture f;
  client c{f.url()};
  CHECK(natsConnection_GetMaxPayload(c.nc) == 1 << 20);
  sync_sub s{c, "big"};
  c.flush();
  std::string payload(size_t{1} << 20, 'x');
  payload.back() = 'y';
  REQUIRE(natsConnection_Publish(c.nc, "big", payload.data(),
                                 static_cast<int>(payload.size()))
          == NATS_OK);
  CHECK(s.next().second == payload);
  payload.push_back('z');
  CHECK(natsConnection_Publish(c.nc, "big", payload.data(),
                               static_cast<int>(payload.size()))
        == NATS_MAX_PAYLOAD);
}

TEST_CASE("nats client port: garbage and oversized input get -ERR and a close",
          "[bus][nats][client]") {
  client_port_options opts;
  opts.max_payload = 1024;
  fixture f{opts};
  auto got = raw_exchange(f.port->port(), "GET / HTTP/1.1\r\n\r\n");
  CHECK_THAT(got, Catch::StartsWith("INFO {"));
  CHECK_THAT(got, Catch::EndsWith("-ERR 'Unknown Protocol Operation'\r\n"));
  got = raw_exchange(f.port->port(), "PUB x 1025\r\n");
  CHECK_THAT(got, Catch::EndsWith("-ERR 'Maximum Payload Violation'\r\n"));
  got
    = raw_exchange(f.port->port(), "SUB " + std::string(5000, 'a') + " 1\r\n");
  CHECK_THAT(got, Catch::EndsWith("-ERR 'Maximum Control Line Exceeded'\r\n"));
  // The port still serves.
  got = raw_exchange(f.port->port(), "PING\r\nGARBAGE\r\n");
  CHECK_THAT(got, Catch::Contains("PONG\r\n"));
  CHECK(f.port->stats().protocol_errors == 4);
  CHECK(f.port->stats().clients == 0);
}

TEST_CASE("nats client port: with a token or a user and password, only "
          "clients that send them get in",
          "[bus][nats][client]") {
  client_port_options opts;
  opts.token = "s3cret";
  opts.user = "alice";
  opts.password = "pw";
  opts.auth_timeout = 300ms;
  fixture f{opts};
  auto url = "nats://127.0.0.1:" + std::to_string(f.port->port());
  auto try_connect = [](const std::string& u) {
    natsOptions* o = nullptr;
    natsOptions_Create(&o);
    natsOptions_SetURL(o, u.c_str());
    natsOptions_SetAllowReconnect(o, false);
    natsConnection* nc = nullptr;
    auto s = natsConnection_Connect(&nc, o);
    natsConnection_Destroy(nc);
    natsOptions_Destroy(o);
    return s;
  };
  CHECK(try_connect("nats://s3cret@127.0.0.1:" + std::to_string(f.port->port()))
        == NATS_OK);
  CHECK(
    try_connect("nats://alice:pw@127.0.0.1:" + std::to_string(f.port->port()))
    == NATS_OK);
  CHECK(try_connect(url) != NATS_OK);
  CHECK(try_connect("nats://wrong@127.0.0.1:" + std::to_string(f.port->port()))
        != NATS_OK);
  CHECK(
    try_connect("nats://alice:nope@127.0.0.1:" + std::to_string(f.port->port()))
    != NATS_OK);
  // Anything before CONNECT, or nothing at all, is refused too; what
  // follows the refusal is not read.
  auto got = raw_exchange(f.port->port(), "SUB x 1\r\nPING\r\n");
  CHECK_THAT(got, Catch::EndsWith("-ERR 'Authorization Violation'\r\n"));
  CHECK_THAT(got, !Catch::Contains("PONG"));
  got = raw_exchange(f.port->port(), "");
  CHECK_THAT(got, Catch::EndsWith("-ERR 'Authentication Timeout'\r\n"));
  got = raw_exchange(f.port->port(),
                     "CONNECT {\"auth_token\":\"s3cret\"}\r\nPING\r\n",
                     "PONG\r\n");
  CHECK_THAT(got, Catch::Contains("PONG\r\n"));
}

TEST_CASE("nats client port: a client that does not read is a slow consumer: "
          "told, counted and cut off",
          "[bus][nats][client]") {
  client_port_options opts;
  opts.max_payload = 1024;
  opts.max_pending = 64 * 1024;
  fixture f{opts};
  int fd = troupe::test::connect_loopback(f.port->port());
  std::string hello = "SUB flood 1\r\nPING\r\n";
  REQUIRE(::send(fd, hello.data(), hello.size(), MSG_NOSIGNAL) > 0);
  // Read up to the PONG: the subscription is in place.
  std::string got;
  auto deadline = std::chrono::steady_clock::now() + 20s;
  while (got.find("PONG\r\n") == std::string::npos
         && std::chrono::steady_clock::now() < deadline) {
    char buf[4096];
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 100) > 0) {
      auto n = ::recv(fd, buf, sizeof(buf), 0);
      REQUIRE(n > 0);
      got.append(buf, static_cast<size_t>(n));
    }
  }
  REQUIRE(got.find("PONG\r\n") != std::string::npos);
  // Now it stops reading; publish until the port gives up on it.
  std::string payload(1000, 'x');
  deadline = std::chrono::steady_clock::now() + 20s;
  while (f.port->stats().slow_consumers == 0
         && std::chrono::steady_clock::now() < deadline)
    REQUIRE_FALSE(f.b.publish("flood", payload));
  CHECK(f.port->stats().slow_consumers == 1);
  auto st = f.port->stats();
  CHECK(st.dropped >= 1);
  // What it finds when it reads at last: the messages that fit, then the
  // notice, then the end of the connection.
  got.clear();
  deadline = std::chrono::steady_clock::now() + 20s;
  while (std::chrono::steady_clock::now() < deadline) {
    char buf[65536];
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0)
      continue;
    auto n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0)
      break;
    got.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  CHECK_THAT(got, Catch::EndsWith("-ERR 'Slow Consumer'\r\n"));
  // It read in full every message counted as delivered: the others are
  // counted as lost.
  size_t frames = 0;
  const std::string frame = "MSG flood 1 1000\r\n" + payload + "\r\n";
  for (size_t pos = 0; got.compare(pos, frame.size(), frame) == 0;
       pos += frame.size())
    ++frames;
  CHECK(frames == st.out_msgs);
}

TEST_CASE("nats client port: plain TCP off loopback is refused - bad limits "
          "too",
          "[bus][nats][client]") {
  troupe::config cfg;
  cfg.log_level = "off";
  troupe::node node{cfg};
  bus b{node};
  client_port_options opts;
  opts.host = "0.0.0.0";
  auto p = client_port::open(b, opts);
  REQUIRE_FALSE(p);
  CHECK(p.error() == troupe::errc::insecure_refused);
  opts = client_port_options{};
  opts.max_pending = 10;
  p = client_port::open(b, opts);
  REQUIRE_FALSE(p);
  CHECK(p.error() == troupe::errc::invalid_option_value);
  node.stop();
}

} // namespace troupe::bus

namespace troupe::bus {

namespace {

using troupe::test::bin;
using troupe::test::child_process;
using troupe::test::lines;

constexpr std::chrono::milliseconds process_patience{60000};

// Returns the port on the line of `p`'s stdout that starts with `prefix`
// (`listening on 127.0.0.1:`, `clients on 127.0.0.1:`).
uint16_t port_after(child_process& p, const std::string& prefix) {
  REQUIRE(p.wait_for_stdout(prefix, process_patience));
  for (auto& line : lines(p.out()))
    if (line.rfind(prefix, 0) == 0)
      return static_cast<uint16_t>(std::stoi(line.substr(prefix.size())));
  // The line may not be complete yet.
  REQUIRE(p.wait_for_stdout("\n", process_patience));
  FAIL("no line starts with " << prefix);
  return 0;
}

} // namespace

TEST_CASE("nats client port: a NATS client on one node and a native troupe "
          "sub on a linked node share subjects",
          "[bus][nats][client][programs]") {
  // a: a bus node that serves NATS clients; b: a node linked to a; then a
  // native `troupe sub` linked to b.
  child_process a{{bin("troupe"), "node", "--listen", "127.0.0.1:0",
                   "--client-listen", "127.0.0.1:0"}};
  auto a_port = port_after(a, "listening on 127.0.0.1:");
  auto clients_port = port_after(a, "clients on 127.0.0.1:");
  child_process b{{bin("troupe"), "node", "--listen", "127.0.0.1:0",
                   "--connect", "127.0.0.1:" + std::to_string(a_port)}};
  auto b_port = port_after(b, "listening on 127.0.0.1:");
  child_process sub{{bin("troupe"), "sub", "orders.>", "--connect",
                     "127.0.0.1:" + std::to_string(b_port)}};
  client c{"nats://127.0.0.1:" + std::to_string(clients_port)};
  // Publish until the subscription's interest has crossed both links (the
  // first messages may find none yet), then once more with a marker.
  sync_sub echo{c, "orders.>"};
  c.flush();
  auto deadline = std::chrono::steady_clock::now() + 20s;
  while (!sub.wait_for_stdout("orders.eu: ping", 50ms)
         && std::chrono::steady_clock::now() < deadline) {
    REQUIRE(natsConnection_PublishString(c.nc, "orders.eu", "ping") == NATS_OK);
    c.flush();
  }
  REQUIRE(natsConnection_PublishString(c.nc, "orders.eu.created", "order 42")
          == NATS_OK);
  c.flush();
  CHECK(sub.wait_for_stdout("orders.eu.created: order 42\n", process_patience));
  sub.send_signal(SIGTERM);
  auto r = sub.wait(process_patience);
  for (auto& line : lines(r.out))
    CHECK((line == "orders.eu: ping" || line == "orders.eu.created: order 42"));
  // The NATS client's own subscription saw them too (echo is on).
  CHECK(echo.next().second == "ping");
  a.send_signal(SIGTERM);
  b.send_signal(SIGTERM);
  CHECK(a.wait(process_patience).exit_code == 0);
  CHECK(b.wait(process_patience).exit_code == 0);
}

} // namespace troupe::bus
