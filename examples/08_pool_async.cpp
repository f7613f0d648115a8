// Shows a pool for blocking jobs: each worker has a thread of its own, so
// sleeping jobs cannot starve CAF's scheduler. Results arrive through
// callbacks and through handles; a job that throws fails only itself.
//
//   main --apply_async(fetch, i)--> pool --job--> idle worker (own thread)
//   worker --value--> callback      worker --error--> error_callback
//   worker --throws--> exits --> supervisor --restart--> new worker
//   main --get()--> result i (in submission order)
//
// From seed 000's gevent pool: a few "downloads" (here: sleeps) share a pool
// of limited size, and the program waits for all of them. Here the third
// download fails; the pool restarts that worker and carries on.
//
// Expected output (default: --jobs 6 --workers 3):
// job 0: page 0
// job 1: page 1
// job 2 failed: troupe_error(job_failed, page 2 is missing)
// job 3: page 3
// job 4: page 4
// job 5: page 5
// callbacks: 5 ok, 1 failed

#include <atomic>
#include <chrono>
#include <cstdint>
#include <iostream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "troupe/actors/pool.hpp"
#include "troupe/runtime/run.hpp"

namespace {

using namespace std::chrono_literals;
using troupe::actors::async_result;

struct config : troupe::config {
  int32_t jobs = 6;
  int32_t workers = 3;
  config() {
    opt_group{custom_options_, "global"}
      .add(jobs, "jobs", "number of downloads (default: 6)")
      .add(workers, "workers", "pool size (default: 3)");
    description("Blocking jobs on a pool, with callbacks (seed 000).");
  }
};

// A slow "download" that blocks its thread; page 2 fails.
std::string fetch(int32_t i) {
  std::this_thread::sleep_for(50ms);
  if (i == 2)
    throw std::runtime_error("page 2 is missing");
  return "page " + std::to_string(i);
}

int download(caf::actor_system& sys, const config& cfg) {
  // A blocking pool: every worker runs on a detached thread.
  troupe::actors::pool pool{sys, {static_cast<size_t>(cfg.workers), true}};
  std::atomic<int> ok{0};
  std::atomic<int> failed{0};
  // Submit every job; the callbacks run on the workers' threads.
  std::vector<async_result<std::string>> results;
  for (int32_t i = 0; i < cfg.jobs; ++i) {
    auto r = pool.apply_async([i] { return fetch(i); },
                              [&ok](const std::string&) { ++ok; },
                              [&failed](const caf::error&) { ++failed; });
    if (!r) {
      std::cerr << "pool_async: " << sys.render(r.error()) << "\n";
      return 1;
    }
    results.push_back(std::move(*r));
  }
  // No more jobs; wait until all have finished (and their callbacks ran).
  pool.close();
  if (auto err = pool.join(10s)) {
    std::cerr << "pool_async: " << sys.render(err) << "\n";
    return 1;
  }
  // Print each result in submission order.
  for (size_t i = 0; i < results.size(); ++i) {
    auto x = results[i].get(0s);
    if (x)
      std::cout << "job " << i << ": " << *x << std::endl;
    else
      std::cout << "job " << i << " failed: " << sys.render(x.error())
                << std::endl;
  }
  std::cout << "callbacks: " << ok << " ok, " << failed << " failed"
            << std::endl;
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  return troupe::run<config>(
    argc, argv, [](troupe::node& n, const config& cfg) {
      if (cfg.jobs < 0 || cfg.workers < 1) {
        std::cerr << "pool_async: --jobs must be at least 0 and --workers at "
                     "least 1\n";
        return 2;
      }
      return download(n.system(), cfg);
    });
}
