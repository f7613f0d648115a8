// Shows a pool for blocking jobs, as seed 001 uses Python's `Pool(4)`: five
// tasks that sleep share four workers, so the fifth waits until one of the
// first four is done, and the parent waits for all of them with `close()` and
// `join()`. Then results arriving through callbacks: one job's value reaches
// its callback, a job that throws reaches its error_callback.
//
//   main --apply_async(task i)--> pool --job--> idle worker (own thread)
//   main --close(), join()------> pool: returns once all jobs have finished
//   worker --value--> callback         worker --throws--> error_callback
//
// From seed 001's `long_time_task`. Python prints the id of the worker
// process; troupe's workers are threads of one process, so this prints the id
// of the worker's thread (Linux TID), the same for every task one worker
// runs. The sleeps are random in [0, --max-sleep) seconds; `--seed N` repeats
// the sleeps of an earlier run.
//
// Expected output (ids and times vary, and so does the order of the lines
// between the first and the last two):
// Parent process 4242.
// Waiting for all subprocesses done...
// Run task 0 (4250)...
// Run task 1 (4251)...
// Run task 2 (4252)...
// Run task 3 (4253)...
// Task 2 runs 0.14 seconds.
// Run task 4 (4252)...
// Task 1 runs 0.27 seconds.
// Task 3 runs 0.86 seconds.
// Task 0 runs 1.41 seconds.
// Task 4 runs 1.91 seconds.
// All subprocesses done.
// callback: task 5 returned 25
// error_callback: task 6 failed: troupe_error(job_failed, task 6 gave up)

#include <chrono>
#include <cstdint>
#include <iostream>
#include <mutex>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>

#include <sys/syscall.h>
#include <unistd.h>

#include "troupe/runtime/run.hpp"
#include "troupe/supervision/pool.hpp"

namespace {

using namespace std::chrono_literals;

struct config : troupe::config {
  int64_t seed = 0;
  double max_sleep = 3.0;
  config() {
    opt_group{custom_options_, "global"}
      .add(seed, "seed", "seed of the random sleeps (default: 0, a new one)")
      .add(max_sleep, "max-sleep", "longest sleep in seconds (default: 3)");
    description("Pool(4) runs 5 sleeping tasks (seed 001), then callbacks.");
  }
};

// Prints one line; workers print concurrently, so whole lines at a time.
void print(const std::string& line) {
  static std::mutex mtx;
  std::lock_guard<std::mutex> guard{mtx};
  std::cout << line << std::endl;
}

// The seed's long_time_task: reports its worker, sleeps, reports how long.
void long_time_task(int name, double seconds) {
  // Python prints os.getpid() of the worker process; this, the worker's TID.
  print("Run task " + std::to_string(name) + " ("
        + std::to_string(syscall(SYS_gettid)) + ")...");
  auto start = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
  std::ostringstream line;
  line.precision(2);
  line << "Task " << name << " runs " << std::fixed << took.count()
       << " seconds.";
  print(line.str());
}

int run_tasks(troupe::node& n, const config& cfg) {
  print("Parent process " + std::to_string(getpid()) + ".");
  std::mt19937 gen{
    static_cast<uint32_t>(cfg.seed != 0 ? cfg.seed : std::random_device{}())};
  // Pool(4): four workers, each on a thread of its own since tasks sleep.
  troupe::supervision::pool p{n, {4, true}};
  for (int i = 0; i < 5; ++i) {
    // The seed's random.random() * 3, drawn here so a seed fixes them all.
    auto seconds = static_cast<double>(gen()) / 4294967296.0 * cfg.max_sleep;
    if (!p.apply_async([i, seconds] { long_time_task(i, seconds); }))
      return 1;
  }
  print("Waiting for all subprocesses done...");
  p.close();
  // Bounded: the schedule takes at most two sleeps.
  auto bound = std::chrono::duration<double>(2 * cfg.max_sleep + 30);
  if (auto err = p.join(std::chrono::duration_cast<caf::timespan>(bound))) {
    std::cerr << "pool_async: " << n.system().render(err) << "\n";
    return 1;
  }
  print("All subprocesses done.");
  // Callbacks: one worker runs both jobs in turn, so they print in order.
  troupe::supervision::pool q{n, {1, false}};
  auto ok
    = q.apply_async([] { return 5 * 5; },
                    [](const int& x) {
                      print("callback: task 5 returned " + std::to_string(x));
                    });
  auto bad = q.apply_async(
    []() -> int { throw std::runtime_error("task 6 gave up"); }, {},
    [&n](const caf::error& err) {
      print("error_callback: task 6 failed: " + n.system().render(err));
    });
  q.close();
  return ok && bad && !q.join(10s) ? 0 : 1;
}

} // namespace

int main(int argc, char** argv) {
  return troupe::run<config>(
    argc, argv, [](troupe::node& n, const config& cfg) {
      if (!(cfg.max_sleep >= 0 && cfg.max_sleep <= 3600)) {
        std::cerr << "pool_async: --max-sleep must be within [0, 3600]\n";
        return 2;
      }
      return run_tasks(n, cfg);
    });
}
