#pragma once

#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

#include <caf/error.hpp>
#include <caf/expected.hpp>
#include <caf/timespan.hpp>

#include "troupe/runtime/errc.hpp"

namespace troupe {

/// A result that one side delivers once and plain threads wait for: how a
/// blocking handle of troupe waits for what another party delivers (a
/// pool's `async_result`, the bus's `request`); a handle that asks an actor
/// uses `blocking_request` instead. An actor or another thread calls
/// `deliver`; the waiting thread calls `wait(timeout)`. The first
/// delivery wins and later ones are ignored, so an answer and a failure (a
/// shutdown, a lost peer) may race without harm.
///
/// Invariant: once `ready()` is true the value never changes.
///
/// Thread-safety: every member function may be called from any thread
/// concurrently. Share it through a `std::shared_ptr`, so that a late
/// delivery after the waiter gave up finds it alive.
template <class T>
class one_shot {
public:
  one_shot() = default;

  one_shot(const one_shot&) = delete;
  one_shot& operator=(const one_shot&) = delete;

  /// Stores `x` unless a value is there already, runs `before_ready(x)`
  /// outside the lock (e.g. a result callback that must have run when
  /// `wait` returns), then wakes the waiters. Returns whether `x` was
  /// stored.
  template <class F>
  bool deliver(caf::expected<T> x, F&& before_ready) {
    {
      std::lock_guard<std::mutex> guard{mtx_};
      if (value_)
        return false;
      value_ = std::move(x);
    }
    // `value_` no longer changes: read it without the lock.
    before_ready(static_cast<const caf::expected<T>&>(*value_));
    std::lock_guard<std::mutex> guard{mtx_};
    ready_ = true;
    cv_.notify_all();
    return true;
  }

  /// Stores `x` unless a value is there already and wakes the waiters.
  /// Returns whether `x` was stored.
  bool deliver(caf::expected<T> x) {
    return deliver(std::move(x), [](const caf::expected<T>&) {});
  }

  /// Returns whether a value was delivered (and its `before_ready` ran).
  bool ready() const {
    std::lock_guard<std::mutex> guard{mtx_};
    return ready_;
  }

  /// Waits up to `timeout` for the value and returns a copy of it, or
  /// `errc::timeout` with `what` as its message.
  [[nodiscard]] caf::expected<T> wait(caf::timespan timeout,
                                      const std::string& what) const {
    std::unique_lock<std::mutex> guard{mtx_};
    if (!cv_.wait_for(guard, timeout, [this] { return ready_; }))
      return caf::make_error(errc::timeout, what);
    return *value_;
  }

  /// Waits as long as it takes for the value and returns a copy of it.
  [[nodiscard]] caf::expected<T> wait() const {
    std::unique_lock<std::mutex> guard{mtx_};
    cv_.wait(guard, [this] { return ready_; });
    return *value_;
  }

  /// Like `wait(timeout, what)`, but moves the value out: for the one
  /// waiter of a slot that nobody else reads.
  [[nodiscard]] caf::expected<T> take(caf::timespan timeout,
                                      const std::string& what) {
    std::unique_lock<std::mutex> guard{mtx_};
    if (!cv_.wait_for(guard, timeout, [this] { return ready_; }))
      return caf::make_error(errc::timeout, what);
    return std::move(*value_);
  }

private:
  mutable std::mutex mtx_;
  mutable std::condition_variable cv_;
  std::optional<caf::expected<T>> value_;
  bool ready_ = false;
};

} // namespace troupe
