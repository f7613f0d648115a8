#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <caf/actor.hpp>
#include <caf/error.hpp>
#include <caf/expected.hpp>
#include <caf/timespan.hpp>

#include "troupe/runtime/dialer.hpp"
#include "troupe/runtime/fwd.hpp"

namespace troupe {

class net_config;

} // namespace troupe

namespace troupe::bus {

class bus;

namespace detail {

class cluster_core;

} // namespace detail

/// Messages a peer routed to this node that never arrived
/// (`cluster_options::on_loss`): NATS's slow-consumer notice.
struct cluster_loss {
  /// The peer's node name.
  std::string peer;
  /// How many.
  uint64_t count = 0;
  /// Why, e.g. "its link to this node was lost with them on their way
  /// (...)" or "its buffer for this node stayed full (slow consumer)".
  std::string why;
};

/// How a `bus_cluster` treats its links.
struct cluster_options {
  /// How long one connect attempt (TCP probe, then the CAF/TLS handshake and
  /// the hello) may take (5 s), and reconnect delays: they start at 100 ms
  /// and double up to 2 s.
  reconnect_options reconnect{std::chrono::seconds{5},
                              std::chrono::milliseconds{100},
                              std::chrono::seconds{2}};
  /// Bytes of messages that may wait for one link before publishers wait
  /// (and then drop; see `max_wait`).
  size_t link_buffer = size_t{16} << 20;
  /// How long a publisher waits for room in a full link buffer before the
  /// message is dropped for that link; a link that made a publisher wait
  /// this long drops at once until half its buffer is free again, so a dead
  /// or stuck peer never holds up publishers for longer.
  caf::timespan max_wait = std::chrono::seconds(1);
  /// Batches sent to one peer and not yet acknowledged.
  uint32_t window = 4;
  /// Called when a peer dropped messages it had routed to this node: its
  /// buffer for this node stayed full (then with its next batch), or its
  /// link to this node went down with them (then once the link is back).
  /// Runs on the cluster's router: it must be quick and must not call the
  /// cluster. The count is also in `cluster_stats::lost`.
  std::function<void(const cluster_loss&)> on_loss;
};

/// One peer of a `bus_cluster` (`bus_cluster::peers`).
struct cluster_peer {
  /// The peer's node name (`troupe.name`) and cluster-unique id.
  std::string name;
  uint64_t id = 0;
  /// `HOST:PORT` for a peer we connected to; empty for one that connected.
  std::string address;
  /// The (pattern, queue group) pairs the peer advertised: subscriptions on
  /// its node and beyond it.
  size_t interest = 0;
};

/// What a `bus_cluster` has done so far (`bus_cluster::stats`).
struct cluster_stats {
  /// Message copies sent to peers, and received from them.
  uint64_t sent = 0;
  uint64_t received = 0;
  /// Copies dropped because a link buffer stayed full (`max_wait`) or the
  /// link went down with them, or that exceeded the hop limit.
  uint64_t dropped = 0;
  /// Copies peers routed to this node that never arrived: those they
  /// dropped for it (their `dropped`), learned from their next batch or,
  /// after a lost link, once it is back (`cluster_options::on_loss`).
  uint64_t lost = 0;
  /// Peers linked now.
  size_t peers = 0;
  /// Links that went down (and, for outbound ones, were retried).
  uint64_t link_losses = 0;
};

/// Joins a `bus` to the buses of other nodes, so that the same subjects,
/// queue groups and requests span processes and hosts (NATS's clustering,
/// over troupe's authenticated connections: mutual TLS off loopback, with
/// `net_config`'s `--authkey-file` or `--tls-*` options).
///
/// ```cpp
/// troupe::bus::bus b{node};
/// troupe::bus::bus_cluster c{node, b, cfg};     // cfg: a net_config
/// auto port = c.listen(4222);                     // accept peers ...
/// auto err = c.connect("10.0.0.2", 4222, 5s);     // ... and/or join one
/// b.publish("orders.eu.created", "order 42");     // reaches every node
/// ```
///
/// How it works:
/// - Nodes are linked in a tree: each `connect` adds a link, which is kept
///   up (redialled with backoff 100 ms -> `reconnect.max_backoff` after a
///   loss) until the cluster ends. A connect that would close a loop (the
///   peer is already reachable through other links) is refused, with the
///   reason.
/// - Interest: each node tells each peer which (pattern, queue group) pairs
///   are subscribed on its side of the link (its own and those learned from
///   its other peers), and updates it as subscriptions come and go. A
///   message crosses a link only if something on the other side matches.
/// - Messages travel along the tree, never back the way they came; each
///   plain subscriber gets a copy, and each queue group one copy at one
///   member (local members first, else one peer's side, round-robin).
/// - Messages to one peer are batched (a batch is what accumulated while
///   the previous ones were in flight, `window` at most unacknowledged), so
///   small messages cost a few copies each, not a network message each.
/// - A peer that dies or is cut off (TCP reset, or 3 s without heartbeats)
///   is dropped with what it advertised: its queue-group members stop
///   getting messages, requests waiting for it fail at once, and new ones
///   fail with `no_responders` once no other peer matches. Publishers never
///   wait for a dead peer for longer than `max_wait`.
///
/// Delivery across nodes is at most once, like NATS core: a message in a
/// batch to a peer that dies is lost (and counted in `dropped`). Losses are
/// not silent, though: each batch says how many messages the sender has
/// routed over the link, so the receiver counts what it dropped (a full
/// buffer), and when a link comes back after a loss, the sender says how
/// many it had routed over the old one: the receiver counts what never
/// arrived in `stats().lost` and tells `cluster_options::on_loss`.
/// Messages published while a link is down are not counted: nothing on the
/// publisher's side then knows of the subscriber.
///
/// Requests: a request forwarded over links fails at once when every link
/// it went over goes down (`errc::link_lost`, naming the peer), or the
/// nodes behind them lost their responders (`errc::link_lost`, or
/// `errc::no_responders` if it never reached one), instead of waiting for
/// its timeout.
///
/// Thread-safety: all member functions may be called from any thread. The
/// cluster must be destroyed before its bus and node; `net_config` must
/// outlive it.
class bus_cluster {
public:
  /// Attaches a router to `b` (replacing any other).
  bus_cluster(node& host, bus& b, const net_config& cfg,
              cluster_options opts = {});

  ~bus_cluster();

  bus_cluster(const bus_cluster&) = delete;
  bus_cluster& operator=(const bus_cluster&) = delete;

  /// Accepts peers at `cfg.bind:port` (0: the OS chooses); returns the port.
  [[nodiscard]] caf::expected<uint16_t> listen(uint16_t port);

  /// Starts a link to the node at `host:port`, kept up until the cluster
  /// ends. With a `wait` above zero, blocks until the link is up or refused:
  /// returns none if the link is up, `troupe::errc::connect_failed` saying why
  /// not (e.g. the peer's certificate is not signed by our CA), or
  /// `troupe::errc::timeout` if it is not up after `wait` (naming the last
  /// failure). Failures that mean "not now" (the peer is busy, the link was
  /// lost during its handshake) are retried within `wait`. A failed link keeps
  /// retrying in the background either way.
  /// `troupe::errc::invalid_option_value` for port 0.
  [[nodiscard]] caf::error connect(const std::string& host, uint16_t port,
                                   caf::timespan wait = caf::timespan{0});

  /// Blocks until some peer advertises interest that matches `subject`
  /// (true) or `timeout` passed (false).
  bool wait_for_interest(std::string_view subject, caf::timespan timeout);

  /// Blocks until every message published so far was handed to the peers
  /// and acknowledged by them, or `timeout` passed (`troupe::errc::timeout`).
  [[nodiscard]] caf::error flush(caf::timespan timeout);

  /// Returns the peers linked now.
  std::vector<cluster_peer> peers() const;

  /// Returns the counters.
  cluster_stats stats() const;

private:
  std::shared_ptr<detail::cluster_core> core_;
  /// The router actor; the one strong reference to it (the core, which the
  /// bus keeps alive, holds a weak one).
  caf::actor router_;
};

} // namespace troupe::bus
