#pragma once

// Private: a subscription of a bus (`bus_sub`: its buffer, its callback and
// the drainer actor that runs the callback), as publishers and the drainer
// see it. How a message travels from `publish` to a callback:
//
//   publish --(this thread's snapshot cache, snapshot_cache.hpp)-->
//     matching subscriptions
//     --push: lock, append the message's bytes to the buffer, unlock-->
//   subscription buffer --(only when it was idle: one CAF message)-->
//   drainer actor --drain: swap the whole buffer out at once, then copy
//     each message into one reused bus_message and run the callback on it
//
// The drainer is the only reader of a buffer and runs one batch at a time,
// so a subscription's callback never runs concurrently with itself. It runs
// at most `max_per_turn` messages per turn and then sends itself another
// drain message, so that a busy subscription does not hold a scheduler
// thread forever.

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include <caf/actor.hpp>
#include <caf/atom.hpp>
#include <caf/behavior.hpp>
#include <caf/fwd.hpp>
#include <caf/send.hpp>
#include <caf/timespan.hpp>
#include <spdlog/fwd.h>

#include "troupe/bus/bus.hpp"

#include "record_buffer.hpp"
#include "spin_lock.hpp"

namespace troupe::bus::detail {

/// Tells a drainer to run its subscription's callback on what is buffered.
using drain_atom = caf::atom_constant<caf::atom("subdrain")>;

/// Keeps data written by publishers, data written by the drainer, and data
/// read by both on separate cache lines.
constexpr size_t cache_line = 64;

using sub_lock = std::unique_lock<spin_lock>;

class bus_sub;

/// The subscription whose callback runs on this thread, if any.
extern thread_local bus_sub* current_sub;

enum class push_result { queued, dropped, closed };

/// One subscription: its buffer, its callback and the actor that runs it.
///
/// A publisher appends a message to `pending_` under the lock; the drainer
/// swaps all of `pending_` with its own, empty `batch_` at once (O(1) under
/// the lock), then runs the callback on each message of the batch without
/// the lock. So the two meet at the lock once per batch, not per message.
///
/// Invariants, under `mtx_` unless marked: (1) `pending_.count() <=
/// capacity_`; (2) `scheduled_` is true from the push that found the
/// subscription idle until a drain finds nothing left, and meanwhile exactly
/// one drain message is in flight or running, so a push sends one only when
/// `scheduled_` was false; (3) `running_` is true only while the drainer
/// runs callbacks, outside the lock; (4) once `closed_` is true, nothing is
/// pending and the callback runs no more (the drainer checks `closing_`
/// before each call); (5) `batch_`, `batch_pos_`, `batch_left_` and `msg_`
/// belong to the drainer (no lock).
class bus_sub {
public:
  /// An inline sink: runs on the publisher's thread, no buffer (used for
  /// the reply subjects of requests).
  using sink_fn = std::function<void(const bus_message_view&)>;

  bus_sub(uint64_t sub_id, std::string pat, subscription_options opts,
          bus_callback f, sink_fn sink, spdlog::logger* log)
      : id(sub_id), pattern(std::move(pat)), group(std::move(opts.queue_group)),
        capacity_(opts.capacity), policy_(opts.policy),
        max_wait_(opts.max_wait), sink_(std::move(sink)), log_(log),
        callback_(std::move(f)) {
    // nop
  }

  bus_sub(const bus_sub&) = delete;
  bus_sub& operator=(const bus_sub&) = delete;

  const uint64_t id;
  const std::string pattern;
  const std::string group;

  /// Sets the actor that drains the buffer; before anyone can publish here.
  void start(caf::actor drainer) {
    std::lock_guard<spin_lock> guard{mtx_};
    drainer_ = std::move(drainer);
  }

  /// Returns whether the subscription is open and likely has room.
  bool has_room() const noexcept {
    return !closing_.load(std::memory_order_relaxed)
           && pending_hint_.load(std::memory_order_relaxed) < capacity_;
  }

  push_result push(const bus_message_view& m) {
    if (sink_) {
      if (closing_.load(std::memory_order_acquire))
        return push_result::closed;
      sink_(m);
      return push_result::queued;
    }
    caf::actor wake;
    {
      sub_lock guard{mtx_};
      if (closed_)
        return push_result::closed;
      if (dead_) {
        ++dropped_;
        return push_result::dropped;
      }
      if (pending_.count() >= capacity_) {
        switch (policy_) {
          case bus_overflow::drop_newest:
            ++dropped_;
            return push_result::dropped;
          case bus_overflow::drop_oldest:
            pending_.pop_front();
            ++dropped_;
            break;
          case bus_overflow::block: {
            // The callback of this subscription would wait for itself.
            if (current_sub == this) {
              ++dropped_;
              return push_result::dropped;
            }
            ++blocked_;
            ++waiters_;
            auto room = not_full_.wait_for(guard, max_wait_, [this] {
              return closed_ || dead_ || pending_.count() < capacity_;
            });
            --waiters_;
            if (closed_)
              return push_result::closed;
            if (!room || dead_) {
              ++dropped_;
              return push_result::dropped;
            }
            break;
          }
        }
      }
      pending_.push_back(m);
      pending_hint_.store(pending_.count(), std::memory_order_relaxed);
      if (!scheduled_) {
        scheduled_ = true;
        wake = drainer_;
      }
    }
    if (wake)
      caf::anon_send(wake, drain_atom::value);
    return push_result::queued;
  }

  /// Runs the callback on what is buffered. Returns true if it stopped after
  /// `max_per_turn` messages with more left: the caller must send another
  /// drain message.
  bool drain();

  /// Ends the subscription: drops what is buffered, wakes blocked
  /// publishers, waits for a running callback (unless called from it),
  /// destroys the callback and stops the drainer. Idempotent.
  void close();

  /// The drainer is gone (e.g. `node::stop`): drop what would wait for it.
  void drainer_down();

  /// Returns the counters (under the lock).
  subscription_stats stats();

  bool closed() const noexcept {
    return closing_.load(std::memory_order_acquire);
  }

  bool is_sink() const noexcept {
    return static_cast<bool>(sink_);
  }

private:
  // Counts on a counter that only the drainer writes: no atomic increment.
  static void bump(std::atomic<uint64_t>& x) noexcept {
    x.store(x.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }

  // -- read by all, written rarely --

  const size_t capacity_;
  const bus_overflow policy_;
  const caf::timespan max_wait_;
  const sink_fn sink_;
  spdlog::logger* const log_;
  std::atomic<bool> closing_{false};

  // -- written by publishers --

  alignas(cache_line) std::atomic<size_t> pending_hint_{0};
  spin_lock mtx_;
  std::condition_variable_any not_full_;
  std::condition_variable_any idle_;
  record_buffer pending_;
  bus_callback callback_;
  caf::actor drainer_;
  bool scheduled_ = false;
  bool running_ = false;
  bool closed_ = false;
  bool dead_ = false;
  size_t waiters_ = 0;
  uint64_t dropped_ = 0;
  uint64_t blocked_ = 0;

  // -- written by the drainer --

  alignas(cache_line) std::atomic<uint64_t> delivered_{0};
  std::atomic<uint64_t> failed_{0};
  record_buffer batch_;
  size_t batch_pos_ = 0;
  size_t batch_left_ = 0;
  bus_message msg_;
};

/// Runs a subscription's callback; spawned by the bus for each subscription
/// that is not an inline sink. Messaging interface:
/// - `(drain_atom)`: drains the buffer; no reply. Sent by the publisher that
///   finds the subscription idle, and by the drainer itself after
///   `max_per_turn` messages.
caf::behavior drainer(caf::event_based_actor* self,
                      std::shared_ptr<bus_sub> sub);

} // namespace troupe::bus::detail
