// bus_cluster with two nodes in one process (two actor systems linked over
// 127.0.0.1): typed payloads and requests across the link, queue groups
// that prefer local members, flush, peers and counters, and a loop refused.

#include "troupe/bus/cluster.hpp"

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
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

  explicit bus_host(const std::string& name) : cfg(net_config::role::listen) {
    init(cfg, name);
    host = std::make_unique<troupe::node>(cfg);
    b = std::make_unique<bus>(*host);
    cluster = std::make_unique<bus_cluster>(*host, *b, cfg);
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

} // namespace troupe::bus
