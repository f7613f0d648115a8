#pragma once

// Private: the state that publishers and the router actor of a bus cluster
// share (`cluster_core`), which is also the bus's router hook, and a link to
// a peer as both see it (`cluster_link`).
//
// Threads: `cluster_core::route` runs on publishers' threads and reads the
// routing table (`links` and what each advertised) under a shared lock; the
// router actor (cluster_router.hpp) owns everything else and changes the
// table under the exclusive lock. Each link has an outbound buffer of
// encoded messages (wire.hpp) under its own mutex: publishers append, the
// router swaps it out and sends it as one CAF message when fewer than
// `window` batches are unacknowledged.

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <caf/actor.hpp>
#include <caf/actor_addr.hpp>
#include <caf/actor_cast.hpp>

#include "troupe/bus/cluster.hpp"
#include "troupe/bus/router.hpp"
#include "troupe/runtime/fwd.hpp"

#include "interest_table.hpp"

namespace troupe::bus::detail {

/// A peer as publishers see it: what it advertised, and the buffer of
/// messages on their way to it.
struct cluster_link {
  uint64_t id = 0;
  caf::actor remote;
  std::string name;
  uint64_t node = 0;
  std::string address;
  /// Set once its hello arrived: only then does routing consider it.
  bool up = false;

  // -- what it advertised (under the table lock) --

  /// The (pattern, queue group) pairs the peer advertised, each once (the
  /// router adds a pair only if absent); nodes' presence is not in here.
  interest_table keys;

  // -- outbound (under mtx) --
  std::mutex mtx;
  std::condition_variable room;
  std::string buf;
  size_t buffered = 0;
  bool flush_pending = false;
  bool stalled = false;
  bool dead = false;
  /// Records routed to this link: appended, or dropped while it was alive
  /// (`max_wait`). Each batch tells the peer the count so far, so that it
  /// can count what never arrived.
  uint64_t destined = 0;
  /// This node's requests that went over this link, by reply subject: told
  /// when the link goes down or the peer says it lost one.
  std::unordered_map<std::string, std::weak_ptr<request_tracker>> requests;
  size_t prune_requests_at = 1024;

  // -- the router's alone --
  uint32_t inflight = 0;
  /// Records in the batches the peer acknowledged.
  uint64_t acked = 0;
  /// `destined` as the last batch told the peer (written under `mtx`).
  uint64_t told = 0;
  /// Inbound: the peer's id for this link, the records that arrived, the
  /// highest count the peer said it routed here, and what of the gap was
  /// reported as lost already.
  uint64_t peer_link = 0;
  uint64_t received = 0;
  uint64_t peer_destined = 0;
  uint64_t reported = 0;
};

/// The state publishers and the router share; also the bus's router hook.
///
/// Thread-safety: `route`, `forward` and `interested` may be called from
/// any thread; `links` and each link's `up` and `keys` change only on the
/// router's thread, under the exclusive `table_mtx`; the counters are
/// atomic; `wait_mtx` guards the waiters' fields.
class cluster_core : public bus_router {
public:
  cluster_core(node& hst, const net_config& config, cluster_options options);

  ~cluster_core() override;

  // -- bus_router -------------------------------------------------------------

  /// Tells the router (`bus_local_atom`).
  void interest_changed(bool added, const bus_interest& x) override;

  size_t route(const bus_message_view& msg,
               const std::vector<std::string_view>& served_groups) override;

  size_t route_request(const bus_message_view& msg,
                       const std::vector<std::string_view>& served_groups,
                       const std::shared_ptr<request_tracker>& t) override;

  // -- routing ----------------------------------------------------------------

  /// Hands `msg` to every link but `from` that wants it: plain subscribers
  /// if `plain`; groups: with `all_groups`, every group not in `groups`
  /// (those were served), else only those in `groups`. Returns the number
  /// of links it went to. `may_wait`: whether a full buffer may make the
  /// caller wait (publishers) or not (the router, which empties them).
  /// `t`: a request of this node's bus, told of each link it went over;
  /// `to`: filled with the ids of the links it went to.
  size_t forward(const bus_message_view& msg, uint64_t from, bool plain,
                 const std::vector<std::string_view>& groups, uint8_t hops,
                 bool all_groups, bool may_wait = true,
                 bool* over_limit = nullptr,
                 const std::shared_ptr<request_tracker>* t = nullptr,
                 std::vector<uint64_t>* to = nullptr);

  /// Appends one record to `l`'s buffer; wakes the router if the buffer was
  /// empty. Returns false if the message was dropped. Records `t` (if any)
  /// as carried by `l`.
  bool append(cluster_link& l, const bus_message_view& msg, uint8_t hops,
              bool plain, const std::vector<std::string_view>& groups,
              bool may_wait, bool* over_limit,
              const std::shared_ptr<request_tracker>* t);

  /// Returns whether a link advertises interest matching `subject`.
  bool interested(std::string_view subject);

  /// Wakes the waiters of `wait_for_interest`: the peers' interest changed.
  void notify_interest();

  // -- state ------------------------------------------------------------------

  node& host;
  const net_config& cfg;
  cluster_options opts;
  /// This node's id in the cluster, random.
  uint64_t id = 0;
  /// The router actor. Weak: the bus keeps this object alive in per-thread
  /// caches, and a strong reference would keep the dead router's thread
  /// waiting, and with it the actor system's shutdown.
  caf::actor_addr router_addr;
  std::atomic<bool> closed{false};

  caf::actor router() const {
    return caf::actor_cast<caf::actor>(router_addr);
  }

  std::atomic<size_t> turn{0};

  std::shared_mutex table_mtx;
  std::map<uint64_t, std::shared_ptr<cluster_link>> links;

  std::atomic<uint64_t> sent{0};
  std::atomic<uint64_t> received{0};
  std::atomic<uint64_t> dropped{0};
  std::atomic<uint64_t> losses{0};
  std::atomic<uint64_t> lost{0};

  // Waiters of `connect` and `wait_for_interest`.
  std::mutex wait_mtx;
  std::condition_variable wait_cv;
  uint64_t interest_version = 0;
  /// Per dialer: up once, and why its last attempt failed.
  struct dial_status {
    bool up = false;
    uint64_t failures = 0;
    // Failures that say "no" (refused, unreachable, misconfigured), as
    // opposed to "not now" (busy, a link lost in its handshake).
    uint64_t refusals = 0;
    std::string last_error;
  };
  std::map<uint64_t, dial_status> dials;
  uint64_t next_dial = 1;
};

using core_ptr = std::shared_ptr<cluster_core>;
using link_ptr = std::shared_ptr<cluster_link>;

} // namespace troupe::bus::detail
