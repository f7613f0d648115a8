#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <caf/actor_addr.hpp>
#include <caf/actor_system.hpp>

#include "troupe/runtime/config.hpp"
#include "troupe/runtime/fwd.hpp"
#include "troupe/runtime/logging.hpp"
#include "troupe/runtime/message_types.hpp"
#include "troupe/runtime/spawn.hpp"

namespace spdlog {
class logger;
} // namespace spdlog

namespace troupe {

namespace detail {

/// Blocks SIGINT and SIGTERM in the calling thread for as long as it lives,
/// so that threads started meanwhile (CAF's scheduler) inherit the mask and
/// only the node's signal watcher receives them.
class signal_blocker {
public:
  explicit signal_blocker(bool enabled);
  ~signal_blocker();
  signal_blocker(const signal_blocker&) = delete;
  signal_blocker& operator=(const signal_blocker&) = delete;

  bool enabled() const noexcept {
    return enabled_;
  }

private:
  bool enabled_;
};

class signal_watcher;

} // namespace detail

/// A process's place in a troupe: owns the `caf::actor_system`, the node's
/// logger and its shutdown. Create one per process, on the main thread, from
/// a parsed `troupe::config` (see also `troupe::run`, which does all of it).
///
/// Actors spawned through `node::spawn` are *top-level*: `stop()` (and
/// SIGINT/SIGTERM, when the node handles signals) sends each of them an exit
/// message with `exit_reason::user_shutdown`. Give actors spawned elsewhere a
/// top-level owner (link or monitor them), or they keep the process alive.
///
/// The destructor waits until every actor has exited. With signal handling
/// on, a signal during that wait still stops the node; if the actors have not
/// exited after `troupe.shutdown-timeout`, the process exits with status 0
/// anyway and logs how many actors were still running.
///
/// `spawn`, `stop`, `stopping` and `wait_for_stop` are thread-safe.
class node {
public:
  /// What the node does on SIGINT and SIGTERM.
  enum class signals {
    /// Leave signal handling to the program (default; for tests and for
    /// applications that embed troupe).
    ignore,
    /// Stop the node: the first signal asks the top-level actors to exit, a
    /// second one ends the process at once.
    stop,
  };

  /// Starts the actor system from `cfg`, which must outlive the node.
  /// @throws std::runtime_error if CAF or the logger cannot start; only here.
  explicit node(config& cfg, signals mode = signals::ignore);

  ~node();

  node(const node&) = delete;
  node& operator=(const node&) = delete;

  // -- properties -------------------------------------------------------------

  caf::actor_system& system() noexcept {
    return sys_;
  }

  const config& cfg() const noexcept {
    return cfg_;
  }

  /// Returns this node's name (`troupe.name`).
  const std::string& name() const noexcept {
    return cfg_.name;
  }

  /// Returns this node's logger, named after the node.
  spdlog::logger& log() const noexcept {
    return *log_;
  }

  /// Returns the fingerprint of this node's message registry (see
  /// `troupe::registry_fingerprint`).
  std::string fingerprint() const;

  /// Returns what this node tells a peer about itself: its name and message
  /// registry (see `troupe::make_node_info`).
  node_info info() const;

  // -- actors -----------------------------------------------------------------

  /// Spawns a top-level actor: like `system().spawn(fun, xs...)`, and the
  /// node tells it to exit on `stop()`. Its exceptions and unexpected
  /// messages go to the node's log, and a request it was handling when it
  /// threw gets an error with the exception's message (see
  /// `troupe::spawn`).
  template <class F, class... Ts>
  auto spawn(F fun, Ts&&... xs) {
    auto hdl = troupe::spawn(sys_, std::move(fun), std::forward<Ts>(xs)...);
    track(caf::actor_cast<caf::actor_addr>(hdl));
    return hdl;
  }

  /// Like `spawn`, with a class-based actor type `T`. Installs no handlers:
  /// call `troupe::install_log_handlers(this)` in `T`'s constructor.
  template <class T, caf::spawn_options Os = caf::no_spawn_options, class... Ts>
  auto spawn(Ts&&... xs) {
    auto hdl = sys_.spawn<T, Os>(std::forward<Ts>(xs)...);
    track(caf::actor_cast<caf::actor_addr>(hdl));
    return hdl;
  }

  /// Makes `addr` a top-level actor of this node.
  void track(caf::actor_addr addr);

  // -- shutdown ---------------------------------------------------------------

  /// Asks every top-level actor to exit (`exit_reason::user_shutdown`) and
  /// wakes `wait_for_stop`. Idempotent.
  void stop();

  /// Returns whether `stop()` was called (by the program or by a signal).
  bool stopping() const noexcept {
    return stopping_.load();
  }

  /// Returns whether a signal stopped the node.
  bool stopped_by_signal() const noexcept {
    return stop_signal_.load() != 0;
  }

  /// Returns the signal that stopped the node (SIGINT or SIGTERM), or 0.
  int stop_signal() const noexcept {
    return stop_signal_.load();
  }

  /// Blocks until `stop()` is called or `timeout` passes; returns `stopping()`.
  bool wait_for_stop(caf::timespan timeout);

  /// Blocks until `stop()` is called.
  void wait_for_stop();

  /// Blocks until every actor of the system has exited; the destructor calls
  /// it too.
  void await_actors();

private:
  friend class detail::signal_watcher;

  void stop_by_signal(int signo);

  config& cfg_;
  std::shared_ptr<spdlog::logger> log_;
  detail::signal_blocker blocker_; // before sys_: CAF's threads inherit it
  caf::actor_system sys_;
  std::unique_ptr<detail::signal_watcher> watcher_;

  std::mutex mtx_;
  std::condition_variable stop_cv_;
  std::vector<caf::actor_addr> top_level_;
  size_t prune_at_ = 1024;
  std::atomic<bool> stopping_{false};
  std::atomic<int> stop_signal_{0};
};

} // namespace troupe
