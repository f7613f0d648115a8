#pragma once

// Private: the router actor of a bus cluster, one per node. It links to the
// routers of other nodes, exchanges subscription interest with them, sends
// them the batches that publishers fill (cluster_core.hpp), and delivers and
// forwards the batches it receives. The dialers of `bus_cluster`
// (cluster.cpp) find peers for it.

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <caf/actor.hpp>
#include <caf/actor_addr.hpp>
#include <caf/atom.hpp>
#include <caf/behavior.hpp>
#include <caf/response_promise.hpp>
#include <caf/stateful_actor.hpp>

#include "troupe/bus/fwd.hpp"

#include "cluster_core.hpp"
#include "interest_table.hpp"

namespace troupe::bus::detail {

// Within a node: publishers, the bus, dialers and `bus_cluster` tell the
// router (see `router` for what each means).
using bus_flush_atom = caf::atom_constant<caf::atom("busflush")>;
using bus_local_atom = caf::atom_constant<caf::atom("buslocal")>;
using bus_drain_atom = caf::atom_constant<caf::atom("busdrain")>;
// Between a dialer (cluster.cpp) and the router, one atom per message.
using bus_dialer_atom = caf::atom_constant<caf::atom("busdialer")>;
using bus_dialed_atom = caf::atom_constant<caf::atom("busdialed")>;
using bus_linked_atom = caf::atom_constant<caf::atom("buslinked")>;
using bus_unlinked_atom = caf::atom_constant<caf::atom("busunlink")>;
using bus_lost_atom = caf::atom_constant<caf::atom("buslost")>;
using bus_redial_atom = caf::atom_constant<caf::atom("busredial")>;

/// A (pattern, queue group) pair. An empty pattern marks a node's presence
/// (the group is then its id): nodes are advertised like interest, which is
/// how a connect that would close a loop is recognised.
using interest_key = std::pair<std::string, std::string>;

/// State of the router actor (`router`).
struct router_state {
  core_ptr core;
  bus* local = nullptr;
  /// The interest of this node's bus, as it reported it
  /// (`bus_local_atom`): what this node advertises, and which queue groups
  /// of an inbound message have a member here. It counts, because the bus's
  /// initial list may arrive after later changes.
  interest_table local_interest;
  /// Who has each interest: 0 for this node, else a link id. A link is
  /// told of an interest if anyone but itself has it (split horizon).
  std::map<interest_key, std::vector<uint64_t>> sources;
  /// Links by id; ids from 1, never reused.
  std::map<uint64_t, link_ptr> links;
  std::map<caf::actor_addr, uint64_t> by_remote;
  uint64_t next_link = 1;
  /// Outbound links: dial id -> (dialer, link id or 0).
  struct dial {
    caf::actor dialer;
    std::string address;
    uint64_t link = 0;
  };
  std::map<uint64_t, dial> dials;
  /// `flush` callers waiting for every buffer to empty.
  std::vector<caf::response_promise> drains;
  /// Acknowledgements held back while some buffer is over its limit.
  std::vector<caf::response_promise> held;

  /// Requests from a peer that this node forwarded to other peers (and
  /// delivered to no local subscriber), by reply subject: when every link
  /// they went over is lost, the peer they came from hears of it
  /// (`bus_nack`). Erased when a reply passes, or after a while; the
  /// queue holds them in the order they came (entries already erased are
  /// skipped when they reach its front).
  struct relayed_request {
    uint64_t from = 0;
    std::vector<uint64_t> links;
    bool maybe = false;
    std::string why;
    uint64_t seq = 0;
  };
  std::map<std::string, relayed_request, std::less<>> relayed;
  std::deque<std::pair<std::chrono::steady_clock::time_point,
                       std::pair<std::string, uint64_t>>>
    relayed_order;
  uint64_t next_seq = 1;

  /// Outbound links that went down with messages unacknowledged, by peer
  /// node: told to the peer when it is linked again (`bus_tally`).
  struct owed_tally {
    uint64_t link = 0;
    uint64_t destined = 0;
    std::string why;
    uint64_t seq = 0;
  };
  std::map<uint64_t, owed_tally> owed;
  /// Inbound counts of links that went down, by peer node, to compare with
  /// its tally.
  struct inbound_tally {
    uint64_t peer_link = 0;
    uint64_t received = 0;
    uint64_t reported = 0;
    uint64_t seq = 0;
  };
  std::map<uint64_t, inbound_tally> closed_in;

  static inline const char* name = "troupe.bus_router";
};

using router_ptr = caf::stateful_actor<router_state>*;

/// Returns the behavior of the router of `core`'s node, which delivers what
/// peers send to `local`. Messaging interface:
/// - from this node:
///   - `(bus_local_atom, bool added, std::string pattern, std::string
///     group)`: the bus's interest changed (or its initial list); no reply.
///   - `(bus_flush_atom, uint64_t link)`: publishers filled that link's
///     empty buffer; no reply.
///   - `(bus_drain_atom) -> unit`: replies once every buffer is empty and
///     every batch acknowledged (`bus_cluster::flush`).
///   - `(bus_dialer_atom, uint64_t dial, std::string address)`: a dialer
///     introduces itself; no reply.
///   - `(bus_dialed_atom, uint64_t dial, caf::actor remote, std::string
///     address)`: a dialer reached a peer's router; the router says hello
///     and answers the dialer with `(bus_linked_atom)` once linked.
/// - from peers' routers: `(bus_hello_atom, ...)`, `(bus_interest_atom,
///   ...)`, `(bus_batch_atom, ...)`, `(bus_tally_atom, ...)` and
///   `(bus_nack_atom, ...)`, see cluster_router.cpp.
/// - sends dialers `(bus_lost_atom, std::string why)` when their link went
///   down, and `(bus_unlinked_atom, std::string why, bool transient)` when a
///   peer was reached but no link came of it (refused, or the hello failed;
///   `transient` if the connection was lost or the hello timed out).
caf::behavior router(router_ptr self, core_ptr core, bus* local);

} // namespace troupe::bus::detail
