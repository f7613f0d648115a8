#pragma once

// Private: the snapshots of which subscriptions a subject reaches, and the
// caches that let a publisher find them without taking the bus's lock: one
// per bus, shared, and one per thread, for all buses.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "troupe/bus/router.hpp"

#include "subscription.hpp"

namespace troupe::bus::detail {

/// The subscriptions that a subject reaches, immutable once built (but for
/// the round-robin counters of its groups).
struct bus_snapshot {
  struct group {
    std::string name;
    std::vector<std::shared_ptr<bus_sub>> members;
    mutable std::atomic<size_t> next{0};
  };
  std::string subject;
  std::vector<std::shared_ptr<bus_sub>> plain;
  std::vector<std::unique_ptr<group>> groups;
  std::shared_ptr<bus_router> router;

  const group* find_group(std::string_view name) const noexcept {
    for (auto& g : groups)
      if (g->name == name)
        return g.get();
    return nullptr;
  }
};

using snapshot_ptr = std::shared_ptr<const bus_snapshot>;

/// A slot of a thread's snapshot cache: valid while `bus` and `gen` match.
struct cache_slot {
  uint64_t bus = 0;
  uint64_t gen = 0;
  snapshot_ptr snap;
};

/// The snapshots of one bus. A publisher first looks in its thread's cache
/// (`find`: a hash and a few compares, no lock, no atomic write); on a miss
/// it takes the bus's lock and asks the bus's shared cache, which builds the
/// snapshot if need be (`store`). Any change of the subscriptions or of the
/// router invalidates every snapshot at once (`invalidate`): it bumps a
/// generation that each thread's slot must match.
///
/// Invariants, under the bus's lock: (1) `shared_` holds only snapshots of
/// the current subscriptions (it is cleared on every change); (2) `gen_`
/// changes with every change, so a thread's slot with an older generation is
/// never used.
///
/// Thread-safety: `find` may be called from any thread at any time; `store`
/// and `invalidate` only under the bus's lock.
class snapshot_cache {
public:
  /// Snapshots cached per bus (then the shared cache starts over).
  static constexpr size_t max_subjects = 4096;

  explicit snapshot_cache(uint64_t bus_id) noexcept : bus_id_(bus_id) {
    // nop
  }

  snapshot_cache(const snapshot_cache&) = delete;
  snapshot_cache& operator=(const snapshot_cache&) = delete;

  /// Returns this thread's snapshot of `subject` if it is current; else
  /// null, and `slot` is this thread's slot for `subject`, for `store`.
  const snapshot_ptr* find(std::string_view subject,
                           cache_slot*& slot) const noexcept;

  /// Puts the bus's snapshot of `subject` in `slot`, from the shared cache
  /// or made by `build(subject)`, and returns it there. Under the bus's lock.
  template <class Build>
  const snapshot_ptr* store(cache_slot& slot, std::string_view subject,
                            Build&& build) {
    snapshot_ptr snap;
    if (auto i = shared_.find(subject); i != shared_.end()) {
      snap = i->second;
    } else {
      snap = build(subject);
      if (shared_.size() >= max_subjects)
        shared_.clear();
      shared_.emplace(snap->subject, snap);
    }
    slot.bus = bus_id_;
    slot.gen = gen_.load(std::memory_order_relaxed);
    slot.snap = std::move(snap);
    return &slot.snap;
  }

  /// Makes every snapshot stale: the subscriptions or the router changed.
  /// Under the bus's lock.
  void invalidate() {
    shared_.clear();
    gen_.fetch_add(1, std::memory_order_release);
  }

private:
  const uint64_t bus_id_;
  std::atomic<uint64_t> gen_{1};
  /// Keys view the snapshots' subjects.
  std::unordered_map<std::string_view, snapshot_ptr> shared_;
};

} // namespace troupe::bus::detail
