#pragma once

// Private: the thread that turns SIGINT/SIGTERM into `node::stop()`.

#include <thread>

#include "troupe/runtime/fwd.hpp"

namespace troupe::detail {

/// Waits for SIGINT and SIGTERM (which `signal_blocker` keeps away from every
/// other thread) on a signalfd. The first signal stops the node; if the
/// process is still there `troupe.shutdown-timeout` later, or when a second
/// signal comes, it flushes the log and exits with status 0.
///
/// Invariant: `node_` outlives this object (the node destroys it after all
/// actors have exited).
class signal_watcher {
public:
  explicit signal_watcher(node& n);
  ~signal_watcher();
  signal_watcher(const signal_watcher&) = delete;
  signal_watcher& operator=(const signal_watcher&) = delete;

private:
  void run();

  node& node_;
  int signal_fd_ = -1;
  int wake_fd_ = -1;
  std::thread thread_;
};

} // namespace troupe::detail
