#pragma once

#include <cstddef>
#include <memory>
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

/// A request on its way to remote responders (`bus::request`), as the
/// router that forwarded it sees it: the router says to how many nodes it
/// forwarded the request (`forwarded`) and when one of them is lost before
/// the reply (`lost`): the link to it went down, or the node said that the
/// responders it forwarded the request to are gone. When every one is lost
/// (and no local subscriber got the request), the request fails at once
/// instead of waiting for its timeout. A router keeps it by `weak_ptr`: it
/// expires when the request ends.
///
/// Thread-safety: both member functions may be called from any thread.
class request_tracker {
public:
  virtual ~request_tracker();

  /// The request went to one more node.
  virtual void forwarded() = 0;

  /// One node it went to is lost, for `why` (e.g. "lost the link to peer
  /// 'n1': ..."). `maybe_delivered`: whether a responder may have got it
  /// (the request fails with `errc::link_lost` then, else with
  /// `errc::no_responders`).
  virtual void lost(const std::string& why, bool maybe_delivered) = 0;
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
///   local interest like any other, so replies find their way back;
///   `route_request` returns how many remote receivers it forwarded to, so
///   that a request with only remote responders does not fail with
///   `errc::no_responders`, and tells the request's `request_tracker` when
///   they are lost, so that it fails at once.
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

  /// Like `route`, for a request of `bus::request`: also calls
  /// `t->forwarded()` for each node the request goes to and `t->lost(...)`
  /// for each of them lost before the request ends. The default calls
  /// `route` (the request then waits for its timeout if its responders'
  /// nodes are lost).
  virtual size_t
  route_request(const bus_message_view& msg,
                const std::vector<std::string_view>& served_groups,
                const std::shared_ptr<request_tracker>& t);
};

/// Which local subscribers an injected message reaches (`bus::inject`).
struct inject_options {
  /// Whether plain (non-group) subscribers get it.
  bool plain = true;
  /// Queue groups for which one local member gets it.
  std::vector<std::string> queue_groups;
};

} // namespace troupe::bus
