// Variants `caf` and `caf-sharing`: raw CAF as a user writes it.

#include <utility>

#include <caf/actor_system_config.hpp>
#include <caf/atom.hpp>

#include "workloads.hpp"

namespace troupe::bench {

result run_caf(const job& j, bool sharing) {
  caf::actor_system_config cfg;
  if (sharing)
    cfg.set("scheduler.policy", caf::atom("sharing"));
  if (j.workload == "stream-reply") // the seed's case: one thread
    cfg.set("scheduler.max-threads", 1);
  caf::actor_system sys{cfg};
  return run_workload(j, sys, [&](auto fn, auto&&... xs) {
    return sys.spawn(fn, std::forward<decltype(xs)>(xs)...);
  });
}

} // namespace troupe::bench
