#pragma once

#include <cstdint>
#include <string>

// What the harness (main.cpp) and the workloads (workloads.hpp) share. Kept
// free of CAF headers so that the harness compiles fast.

namespace troupe::bench {

/// What one child process measures.
struct job {
  /// `ping-pong`, `fan-in`, `spawn-main` or `spawn-actor`.
  std::string workload;
  /// Round trips, messages per sender, or actors.
  int64_t n = 0;
  /// Senders (`fan-in` only).
  int32_t k = 0;
};

/// What one child process reports.
struct result {
  /// Round trips/s, messages/s, or seconds (spawns).
  double value = 0;
  /// Spawns only: (peak RSS while all actors live - RSS before) / actors.
  double bytes_per_actor = 0;
};

/// Runs `j` on raw CAF: `caf::actor_system_config` with CAF's defaults, or
/// with `scheduler.policy='sharing'`; `sys.spawn`.
result run_caf(const job& j, bool sharing);

/// Runs `j` on troupe: `troupe::config` with troupe's defaults and a
/// `troupe::node`; `node::spawn`.
result run_troupe(const job& j);

} // namespace troupe::bench
