// Shows a pool of worker actors used from plain code, like Python's
// multiprocessing.Pool: map a function over a list, then submit single jobs
// and wait for their results.
//
//   main --map(job, 0..9)-------> pool: dispatcher --job--> idle worker
//   main <--results, in order---- pool                <--result-- worker
//   main --apply_async(job, 2)--> pool ... main --get()--> 4
//
// From seed 002's multicore(): with job(x) = x*x, `pool.map(job, range(10))`,
// then `pool.apply_async(job, (2,)).get()`, then the same ten results again
// from ten `apply_async(...).get()` calls. Each worker asks the pool for the
// next job whenever it is idle, so a slow job never holds up the others.
//
// Expected output (any --workers):
// [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]
// 4
// [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]

#include <chrono>
#include <cstdint>
#include <iostream>
#include <string>
#include <vector>

#include "troupe/runtime/run.hpp"
#include "troupe/supervision/pool.hpp"

namespace {

struct config : troupe::config {
  int32_t workers = 0;
  config() {
    opt_group{custom_options_, "global"}.add(
      workers, "workers", "pool size (default: 0, one per core)");
    description("map and apply_async on a pool of workers (seed 002).");
  }
};

// The job of seed 002.
int32_t job(int32_t x) {
  return x * x;
}

// Prints `xs` as Python prints a list of ints.
void print_list(const std::vector<int32_t>& xs) {
  std::string line = "[";
  for (size_t i = 0; i < xs.size(); ++i)
    line += (i == 0 ? "" : ", ") + std::to_string(xs[i]);
  std::cout << line << "]" << std::endl;
}

// Runs the three steps of seed 002; returns the exit code.
int multicore(troupe::node& n, size_t workers) {
  // Start the pool: `workers` worker actors under a supervisor.
  troupe::supervision::pool pool{n, {workers, false}};
  // Step 1: map job over 0..9; the results come back in input order.
  std::vector<int32_t> inputs{0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  auto squares = pool.map(job, inputs);
  if (!squares) {
    std::cerr << "pool_map: " << n.system().render(squares.error()) << "\n";
    return 1;
  }
  print_list(*squares);
  // Step 2: one job, submitted asynchronously; get() waits for its result.
  auto four = pool.apply_async([] { return job(2); });
  auto x = four ? four->get(std::chrono::seconds(10)) : four.error();
  if (!x) {
    std::cerr << "pool_map: " << n.system().render(x.error()) << "\n";
    return 1;
  }
  std::cout << *x << std::endl;
  // Step 3: one apply_async per input, each waited for in turn.
  std::vector<int32_t> again;
  for (auto i : inputs) {
    auto r = pool.apply_async([i] { return job(i); });
    auto y = r ? r->get(std::chrono::seconds(10)) : r.error();
    if (!y) {
      std::cerr << "pool_map: " << n.system().render(y.error()) << "\n";
      return 1;
    }
    again.push_back(*y);
  }
  print_list(again);
  // No more jobs: close, then wait for every job (here all are done).
  pool.close();
  return pool.join() ? 1 : 0;
}

} // namespace

int main(int argc, char** argv) {
  return troupe::run<config>(
    argc, argv, [](troupe::node& n, const config& cfg) {
      if (cfg.workers < 0) {
        std::cerr << "pool_map: invalid value '" << cfg.workers
                  << "' for option '--workers' (expected at least 0)\n";
        return 2;
      }
      // The pool is destroyed (its actors stopped) before run() waits for
      // the node's actors to exit.
      return multicore(n, static_cast<size_t>(cfg.workers));
    });
}
