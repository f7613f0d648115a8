// Variant `troupe`: troupe's API with its defaults. Top-level actors go
// through `node::spawn`, whose bookkeeping (for shutdown) is measured too.

#include <utility>

#include "troupe/runtime/config.hpp"
#include "troupe/runtime/node.hpp"

#include "streams.hpp"
#include "workloads.hpp"

namespace troupe::bench {

result run_troupe(const job& j) {
  // No `cfg.parse`: it would read the program's INI file from the working
  // directory. Defaults only, as for the raw CAF variants.
  troupe::config cfg;
  cfg.name = "troupe_bench";
  if (j.workload == "stream-reply") // the seed's case: one thread
    cfg.set("scheduler.max-threads", 1);
  troupe::node n{cfg};
  if (is_stream_workload(j.workload)) // troupe's streams, not messages
    return run_troupe_stream(j, n);
  return run_workload(j, n.system(), [&](auto fn, auto&&... xs) {
    return n.spawn(fn, std::forward<decltype(xs)>(xs)...);
  });
}

} // namespace troupe::bench
