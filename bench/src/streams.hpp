#pragma once

#include <string>

#include "bench.hpp"

// The stream workloads' own code: troupe's streams (variant `troupe`) and
// the lock-free ring (variant `ring`). Raw CAF runs them as ordinary
// messages, in workloads.hpp.

namespace troupe {
class node;
} // namespace troupe

namespace troupe::bench {

/// Returns whether `workload` is one of the stream workloads, which troupe
/// runs with `troupe::stream` pipelines instead of the shared actors.
inline bool is_stream_workload(const std::string& workload) {
  return workload == "stream" || workload == "stream-reply";
}

/// Runs `stream` or `stream-reply` with troupe's streams on `n`.
result run_troupe_stream(const job& j, troupe::node& n);

/// Runs `stream` through a single-producer single-consumer lock-free ring
/// between two threads: the physical reference, no actors.
result run_ring(const job& j);

} // namespace troupe::bench
