#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "troupe/bus/message.hpp"

// The hook through which a cross-node router joins a `bus` to the buses of
// other nodes; see `bus_router`. `bus_cluster` (bus/cluster.hpp) is the
// router of this library.

namespace troupe::bus {

/// A pattern with at least one local subscription, and the queue group of
/// those subscriptions (empty: plain subscribers).
struct bus_interest {
  std::string pattern;
  std::string queue_group;

  friend bool operator==(const bus_interest& x, const bus_interest& y) {
    return x.pattern == y.pattern && x.queue_group == y.queue_group;
  }
};

/// The hook through which a cross-node router joins a bus to the buses of
/// other nodes (`bus::attach_router`). The design follows NATS clustering:
///
/// - Interest: the bus reports each (pattern, queue group) pair that gains
///   its first local subscription or loses its last one; the router sends
///   these to its peers, which keep them in an index per peer.
/// - Outbound: every message published on this node (not one injected) is
///   handed to `route` after local delivery, with the queue groups that
///   already got a local member. The router forwards one copy to each node
///   with matching plain interest or with a member of a queue group that is
///   not yet served (local members are preferred, as in NATS), listing the
///   groups that node must serve.
/// - Inbound: the router on the receiving node calls `bus::inject`, which
///   delivers to local subscribers only (plain ones if the sender asked for
///   it, one member of each listed group) and never calls `route`: a message
///   crosses at most one hop, so nothing echoes back or loops.
/// - Requests: the reply subjects of this bus (`_INBOX.<bus id>.<n>`) are a
///   local interest like any other, so replies find their way back; `route`
///   returns how many remote receivers it forwarded to, so that a request
///   with only remote responders does not fail with `errc::no_responders`.
///
/// `interest_changed` runs while the bus holds the lock of its subscription
/// index: it must be quick and must not call the bus (send a message to the
/// router actor instead). `route` runs on the publisher's thread, holding no
/// lock of the bus: it must not block (the publisher waits for it) and must
/// not publish on this bus (that would be routed again).
class bus_router {
public:
  virtual ~bus_router();

  /// `x` gained its first local subscription (`added`) or lost its last.
  virtual void interest_changed(bool added, const bus_interest& x) = 0;

  /// Forwards `msg`, published on this node, to the nodes that want it;
  /// `served_groups` got a local member already. Returns the number of
  /// nodes it was forwarded to. Runs on the publisher's thread.
  virtual size_t route(const bus_message_view& msg,
                       const std::vector<std::string_view>& served_groups)
    = 0;
};

/// Which local subscribers an injected message reaches (`bus::inject`).
struct inject_options {
  /// Whether plain (non-group) subscribers get it.
  bool plain = true;
  /// Queue groups for which one local member gets it.
  std::vector<std::string> queue_groups;
};

} // namespace troupe::bus
