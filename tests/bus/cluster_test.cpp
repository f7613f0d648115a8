// bus_cluster with two nodes in one process (two actor systems linked over
// 127.0.0.1): typed payloads and requests across the link, queue groups
// that prefer local members, flush, peers and counters, a loop refused, and
// requests that fail at once when their responders' node or link is lost.

#include "troupe/bus/cluster.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>
#include <spdlog/spdlog.h>

#include "troupe/bus/bus.hpp"
#include "troupe/runtime/errc.hpp"
#include "troupe/runtime/net.hpp"
#include "troupe/runtime/node.hpp"

#include "bus_test_util.hpp"

namespace troupe::bus {

namespace {

using namespace std::chrono_literals;
using test::eventually;
using test::recorder;

/// A node with a bus and a cluster, listening on an OS-chosen port.
struct bus_host {
  static net_config& init(net_config& cfg, const std::string& name) {
    spdlog::set_level(spdlog::level::off);
    cfg.log_level = "off";
    cfg.name = name;
    REQUIRE_FALSE(cfg.secure("127.0.0.1"));
    return cfg;
  }

  explicit bus_host(const std::string& name, cluster_options opts = {})
      : cfg(net_config::role::listen) {
    init(cfg, name);
    host = std::make_unique<troupe::node>(cfg);
    b = std::make_unique<bus>(*host);
    cluster = std::make_unique<bus_cluster>(*host, *b, cfg, std::move(opts));
    auto p = cluster->listen(0);
    REQUIRE(p);
    port = *p;
  }

  ~bus_host() {
    cluster.reset();
    b.reset();
    host->stop();
  }

  void link_to(const bus_host& other) {
    auto err = cluster->connect("127.0.0.1", other.port, 20s);
    REQUIRE_FALSE(err);
  }

  net_config cfg;
  std::unique_ptr<troupe::node> host;
  std::unique_ptr<bus> b;
  std::unique_ptr<bus_cluster> cluster;
  uint16_t port = 0;
};

} // namespace

TEST_CASE("bus cluster: typed payloads and requests cross a link") {
  bus_host a{"a"};
  bus_host b{"b"};
  b.link_to(a);
  recorder got;
  auto sub = b.b->subscribe("prices.*", got.callback());
  REQUIRE(sub);
  auto echo = b.b->subscribe("echo", [&](const bus_message& m) {
    CHECK_FALSE(b.b->reply(m, "re: " + m.payload));
  });
  REQUIRE(echo);
  REQUIRE(a.cluster->wait_for_interest("prices.acme", 20s));
  REQUIRE(a.cluster->wait_for_interest("echo", 20s));
  CHECK_FALSE(a.b->publish("prices.acme", std::vector<int32_t>{9, 5, 1}));
  CHECK_FALSE(a.b->publish("prices.acme", "text"));
  REQUIRE(got.wait_for(2));
  auto msgs = got.messages();
  auto xs = msgs[0].get<std::vector<int32_t>>();
  REQUIRE(xs);
  CHECK(*xs == std::vector<int32_t>{9, 5, 1});
  CHECK(msgs[1].type == 0);
  CHECK(msgs[1].payload == "text");
  CHECK_FALSE(msgs[1].get<std::vector<int32_t>>());
  auto r = a.b->request("echo", "ping", 20s);
  REQUIRE(r);
  CHECK(r->payload == "re: ping");
  auto none = a.b->request("nobody", "ping", 20s);
  REQUIRE_FALSE(none);
  CHECK(none.error() == errc::no_responders);
  auto peers = a.cluster->peers();
  REQUIRE(peers.size() == 1);
  CHECK(peers[0].name == "b");
  CHECK(peers[0].address.empty()); // b connected to a
  CHECK(a.cluster->stats().sent >= 3);
  CHECK(b.cluster->stats().received >= 3);
  CHECK(a.cluster->stats().dropped == 0);
}

TEST_CASE("bus cluster: a queue group prefers local members and falls back "
          "to the other node") {
  bus_host a{"a"};
  bus_host b{"b"};
  b.link_to(a);
  subscription_options group;
  group.queue_group = "workers";
  recorder at_a;
  recorder at_b;
  auto sa = a.b->subscribe("jobs", group, at_a.callback());
  auto sb = b.b->subscribe("jobs", group, at_b.callback());
  REQUIRE(sa);
  REQUIRE(sb);
  REQUIRE(a.cluster->wait_for_interest("jobs", 20s));
  REQUIRE(b.cluster->wait_for_interest("jobs", 20s));
  for (int i = 0; i < 100; ++i) {
    CHECK_FALSE(a.b->publish("jobs", "a" + std::to_string(i)));
    CHECK_FALSE(b.b->publish("jobs", "b" + std::to_string(i)));
  }
  REQUIRE(at_a.wait_for(100));
  REQUIRE(at_b.wait_for(100));
  CHECK_FALSE(a.cluster->flush(20s));
  CHECK_FALSE(b.cluster->flush(20s));
  // Each side's member took its own side's messages.
  for (auto& p : at_a.payloads())
    CHECK(p[0] == 'a');
  for (auto& p : at_b.payloads())
    CHECK(p[0] == 'b');
  // Without a local member, A's messages go to B's.
  sa->unsubscribe();
  for (int i = 0; i < 50; ++i)
    CHECK_FALSE(a.b->publish("jobs", "x" + std::to_string(i)));
  CHECK_FALSE(a.cluster->flush(20s));
  REQUIRE(at_b.wait_for(150));
  CHECK(at_a.size() == 100);
  CHECK(a.cluster->stats().dropped == 0);
}

TEST_CASE("bus cluster: flush waits until the peer has taken every message") {
  bus_host a{"a"};
  bus_host b{"b"};
  b.link_to(a);
  recorder got;
  auto sub = b.b->subscribe("bulk", got.callback());
  REQUIRE(sub);
  REQUIRE(a.cluster->wait_for_interest("bulk", 20s));
  for (int i = 0; i < 20000; ++i)
    REQUIRE_FALSE(a.b->publish("bulk", std::to_string(i)));
  CHECK_FALSE(a.cluster->flush(20s));
  CHECK(a.cluster->stats().sent == 20000);
  CHECK(b.cluster->stats().received == 20000);
  REQUIRE(got.wait_for(20000));
  auto ps = got.payloads();
  bool in_order = true;
  for (size_t i = 0; i < ps.size(); ++i)
    in_order = in_order && ps[i] == std::to_string(i);
  CHECK(in_order);
}

TEST_CASE("bus cluster: a link that would close a loop is refused") {
  bus_host a{"a"};
  bus_host b{"b"};
  bus_host c{"c"};
  b.link_to(a);
  c.link_to(b);
  // c -> a: a is reachable through b already.
  auto err = c.cluster->connect("127.0.0.1", a.port, 20s);
  REQUIRE(err);
  CHECK(err == troupe::errc::connect_failed);
  CHECK(error_text(err).find("must form a tree") != std::string::npos);
  // A node cannot link to itself either.
  auto self = a.cluster->connect("127.0.0.1", a.port, 20s);
  REQUIRE(self);
  CHECK(error_text(self).find("this node itself") != std::string::npos);
  CHECK(a.cluster->peers().size() == 1);
}

TEST_CASE("bus cluster: messages a peer drops for a slow node are counted "
          "and reported there") {
  // A drops for B once B stops taking batches: a small buffer, a short wait.
  cluster_options fast_drop;
  fast_drop.link_buffer = 4096;
  fast_drop.max_wait = 10ms;
  fast_drop.window = 1;
  bus_host a{"a", fast_drop};
  std::atomic<uint64_t> reported{0};
  std::string why;
  std::mutex why_mtx;
  cluster_options told;
  told.on_loss = [&](const cluster_loss& x) {
    std::lock_guard<std::mutex> guard{why_mtx};
    why = x.peer + ": " + x.why;
    reported += x.count;
  };
  bus_host b{"b", told};
  b.link_to(a);
  // B's subscriber holds its first message until the gate opens; with room
  // for one more, B's router then waits for room and takes no more batches.
  std::promise<void> gate;
  auto opened = gate.get_future().share();
  recorder got;
  subscription_options one;
  one.capacity = 1;
  one.max_wait = 60s;
  auto sub = b.b->subscribe("slow", one, [&](const bus_message& m) {
    if (got.size() == 0)
      CHECK(opened.wait_for(20s) == std::future_status::ready);
    got.add(m);
  });
  REQUIRE(sub);
  REQUIRE(a.cluster->wait_for_interest("slow", 20s));
  constexpr uint64_t n = 2000;
  for (uint64_t i = 0; i < n; ++i)
    REQUIRE_FALSE(a.b->publish("slow", std::string(200, 'x')));
  auto dropped = a.cluster->stats().dropped;
  CHECK(dropped > 0);
  gate.set_value();
  CHECK_FALSE(a.cluster->flush(20s));
  // Every message arrived or was reported lost (bounded wait).
  eventually([&] { return got.size() + reported >= n; });
  CHECK(got.size() + reported == n);
  CHECK(reported == dropped);
  CHECK(b.cluster->stats().lost == dropped);
  std::lock_guard<std::mutex> guard{why_mtx};
  CHECK(why == "a: its buffer for this node stayed full (slow consumer)");
}

namespace {

/// Starts `b.request(subject, ...)` on another thread with a 60 s timeout:
/// longer than any wait of these tests, so a result within them is no
/// timeout.
std::future<caf::expected<bus_message>> request_async(bus& b,
                                                      std::string subject) {
  return std::async(std::launch::async,
                    [&b, subject] { return b.request(subject, "ping", 60s); });
}

/// Returns the request's result if it came within 20 s.
caf::expected<bus_message>
result_of(std::future<caf::expected<bus_message>>& f) {
  REQUIRE(f.wait_for(20s) == std::future_status::ready);
  return f.get();
}

} // namespace

TEST_CASE("bus cluster: a request fails at once when its own link to the "
          "responder's node is lost") {
  bus_host a{"a"};
  auto b = std::make_unique<bus_host>("b");
  b->link_to(a);
  recorder got; // the responder takes the request and never answers
  auto sub = b->b->subscribe("slow", got.callback());
  REQUIRE(sub);
  REQUIRE(a.cluster->wait_for_interest("slow", 20s));
  auto f = request_async(*a.b, "slow");
  REQUIRE(got.wait_for(1));
  sub->unsubscribe();
  b.reset(); // b's node ends: a's only link goes down
  auto r = result_of(f);
  REQUIRE_FALSE(r);
  CHECK(r.error() == errc::link_lost);
  CHECK(error_text(r.error()).find("lost the link to peer 'b'")
        != std::string::npos);
}

TEST_CASE("bus cluster: a request fails at once when the node of its "
          "responder, two links away, is lost") {
  bus_host a{"a"};
  bus_host b{"b"};
  auto c = std::make_unique<bus_host>("c");
  b.link_to(a);
  c->link_to(b);
  recorder got;
  auto sub = c->b->subscribe("slow", got.callback());
  REQUIRE(sub);
  REQUIRE(a.cluster->wait_for_interest("slow", 20s));
  auto f = request_async(*a.b, "slow");
  REQUIRE(got.wait_for(1));
  sub->unsubscribe();
  c.reset(); // a's link to b stays up; b's to c goes down
  auto r = result_of(f);
  REQUIRE_FALSE(r);
  CHECK(r.error() == errc::link_lost);
  CHECK(error_text(r.error()).find("lost the link to peer 'c'")
        != std::string::npos);
  CHECK(a.cluster->peers().size() == 1);
}

TEST_CASE("bus cluster: a request whose responders are on two nodes fails "
          "only when both are lost") {
  bus_host a{"a"};
  auto b = std::make_unique<bus_host>("b");
  auto c = std::make_unique<bus_host>("c");
  b->link_to(a);
  c->link_to(a);
  recorder at_b;
  recorder at_c;
  auto sb = b->b->subscribe("slow", at_b.callback());
  auto sc = c->b->subscribe("slow", at_c.callback());
  REQUIRE(sb);
  REQUIRE(sc);
  // Until a knows both subscriptions (each peer advertises its reply
  // subjects and 'slow'); bounded.
  auto both = [&] {
    auto ps = a.cluster->peers();
    return ps.size() == 2 && ps[0].interest >= 2 && ps[1].interest >= 2;
  };
  REQUIRE(eventually(both));
  SECTION("the one left answers") {
    auto f = request_async(*a.b, "slow");
    REQUIRE(at_b.wait_for(1));
    REQUIRE(at_c.wait_for(1));
    sb->unsubscribe();
    b.reset();
    // Once a lost b (bounded wait), the request still waits, and c's
    // answer wins.
    REQUIRE(eventually([&] { return a.cluster->peers().size() == 1; }));
    CHECK(f.wait_for(0s) == std::future_status::timeout);
    CHECK_FALSE(c->b->reply(at_c.messages()[0], "from c"));
    auto r = result_of(f);
    REQUIRE(r);
    CHECK(r->payload == "from c");
  }
  SECTION("both are lost") {
    auto f = request_async(*a.b, "slow");
    REQUIRE(at_b.wait_for(1));
    REQUIRE(at_c.wait_for(1));
    sb->unsubscribe();
    sc->unsubscribe();
    b.reset();
    c.reset();
    auto r = result_of(f);
    REQUIRE_FALSE(r);
    CHECK(r.error() == errc::link_lost);
  }
}

} // namespace troupe::bus
