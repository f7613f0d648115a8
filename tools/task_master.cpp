// task_master: the master of seed 002's distributed task queue, done
// properly. Serves the queue `tasks` at an address, puts N tasks (distinct
// numbers in random order), prints each result as it arrives, closes the
// queue so the workers leave, and exits 0 once every task has its result.
//
//   task_master --port 5000 --tasks 10            # plain TCP on 127.0.0.1
//   task_master --bind 0.0.0.0 --port 5000 --authkey-file cluster.key
//   task_master --port 5000 --store queue.db      # survives kill -9
//
// Output (seed 002's lines):
//   listening on 127.0.0.1:5000
//   Put task 3411...            (one per task)
//   Try get results...
//   Result: 3411 * 3411 = 11634921
//   master exit.

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include <caf/config_option_adder.hpp>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include "troupe/queue/task_queue.hpp"
#include "troupe/runtime/net.hpp"
#include "troupe/runtime/run.hpp"

namespace {

using namespace std::chrono_literals;
using queue = troupe::queue::task_queue<int64_t, std::string>;

struct config : troupe::net_config {
  uint16_t port = 5000;
  uint32_t tasks = 10;
  std::string store;
  std::string queue_name = "tasks";
  caf::timespan timeout = 10s;
  caf::timespan lease = 30s;
  uint32_t max_attempts = 3;
  caf::timespan retry_backoff = 1s;
  caf::timespan retry_backoff_max = 60s;
  uint64_t seed = 0;
  bool quiet = false;
  bool progress = false;

  config() : net_config(role::listen) {
    description("serves a task queue, puts N tasks and collects their results "
                "(seed 002's task_master)");
    caf::config_option_adder{custom_options_, "global"}
      .add(port, "port", "port to listen on (0: the OS chooses)")
      .add(tasks, "tasks", "number of tasks to put (default 10)")
      .add(store, "store",
           "SQLite file for the queue: a restarted master resumes it")
      .add(queue_name, "queue", "name of the queue (default 'tasks')")
      .add(timeout, "timeout",
           "give up when no result arrives for this long (default 10s)")
      .add(lease, "lease",
           "a worker's time for a task before it goes to another (30s)")
      .add(max_attempts, "max-attempts",
           "deliveries of a task before it is dead-lettered (default 3)")
      .add(retry_backoff, "retry-backoff",
           "wait before a failed task is retried, doubling per failure, "
           "with jitter (default 1s; 0: at once)")
      .add(retry_backoff_max, "retry-backoff-max",
           "longest wait before a retry (default 60s)")
      .add(seed, "seed",
           "seed for the random task numbers (0: random; with --store, "
           "derived from the store's path so a restart puts the same tasks)")
      .add(quiet, "quiet", "print only the listening line and the summary")
      .add(progress, "progress", "show a progress bar on stderr");
  }

  caf::error prepare() {
    if (tasks == 0)
      return caf::make_error(troupe::errc::invalid_option_value,
                             "--tasks must be at least 1");
    if (max_attempts == 0)
      return caf::make_error(troupe::errc::invalid_option_value,
                             "--max-attempts must be at least 1");
    return secure(bind);
  }
};

// Returns `n` distinct numbers in random order: seed 002 drew from
// 0..10000; more tasks need a larger range.
std::vector<int64_t> task_numbers(uint32_t n, uint64_t seed) {
  std::vector<int64_t> xs(std::max<uint32_t>(n, 10001));
  std::iota(xs.begin(), xs.end(), 0);
  std::mt19937_64 gen{seed != 0 ? seed : std::random_device{}()};
  std::shuffle(xs.begin(), xs.end(), gen);
  xs.resize(n);
  return xs;
}

// Returns the seed of the task numbers: `--seed`, else with a store one
// derived from its path (FNV-1a), so that a master restarted with the same
// arguments draws the same numbers, else 0 (random).
uint64_t task_seed(const config& cfg) {
  if (cfg.seed != 0 || cfg.store.empty())
    return cfg.seed;
  char* real = ::realpath(cfg.store.c_str(), nullptr);
  std::string path = real != nullptr ? real : cfg.store;
  std::free(real);
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : path)
    h = (h ^ c) * 1099511628211ull;
  return h != 0 ? h : 1;
}

// Draws a progress bar on stderr; on a pipe or file, a line per tenth.
void draw_progress(uint64_t done, uint64_t total) {
  static const bool tty = ::isatty(STDERR_FILENO) == 1;
  if (!tty) {
    static uint64_t next = 0;
    if (done * 10 >= next * total) {
      std::fprintf(stderr, "progress: %llu%% (%llu/%llu)\n",
                   static_cast<unsigned long long>(done * 100 / total),
                   static_cast<unsigned long long>(done),
                   static_cast<unsigned long long>(total));
      next = done * 10 / total + 1;
    }
    return;
  }
  constexpr int width = 40;
  auto filled = static_cast<int>(width * done / std::max<uint64_t>(total, 1));
  std::fprintf(stderr, "\r[%s%s] %llu/%llu", std::string(filled, '#').c_str(),
               std::string(width - filled, '.').c_str(),
               static_cast<unsigned long long>(done),
               static_cast<unsigned long long>(total));
  if (done == total)
    std::fputc('\n', stderr);
}

int run_master(troupe::node& n, const config& cfg) {
  auto prog = cfg.program_name();
  troupe::queue::queue_options opts;
  opts.name = cfg.queue_name;
  opts.store = cfg.store;
  opts.lease = cfg.lease;
  opts.max_attempts = cfg.max_attempts;
  opts.retry_backoff = cfg.retry_backoff;
  opts.retry_backoff_max = cfg.retry_backoff_max;
  auto q = queue::create(n, opts);
  if (!q) {
    std::cerr << prog << ": " << troupe::error_text(q.error()) << std::endl;
    n.stop();
    return 1;
  }
  auto port = troupe::queue::serve_queues(n, cfg, cfg.port, {q->actor()});
  if (!port) {
    std::cerr << prog << ": " << troupe::error_text(port.error()) << std::endl;
    n.stop();
    return 1;
  }
  std::cout << "listening on " << cfg.bind << ":" << *port << std::endl;
  if (cfg.insecure_plain())
    n.log().warn("--insecure: tasks and results cross the network "
                 "unencrypted and anyone who reaches {}:{} can join",
                 cfg.bind, *port);
  auto start = std::chrono::steady_clock::now();
  auto& resumed = q->resumed();
  if (resumed.tasks > 0)
    std::cout << "Resuming " << resumed.tasks << " tasks from " << cfg.store
              << ": " << resumed.consumed << " results taken, "
              << resumed.pending << " tasks pending." << std::endl;
  // Each task's key is its index: a restart with the same arguments (so the
  // same numbers) puts only what the killed master had not put.
  uint64_t added = 0;
  if (!resumed.closed) {
    auto numbers = task_numbers(cfg.tasks, task_seed(cfg));
    // Put in batches: one request (and one commit with --store) each.
    constexpr size_t batch = 1000;
    for (size_t i = 0; i < numbers.size(); i += batch) {
      auto end = std::min(numbers.size(), i + batch);
      std::vector<int64_t> xs(numbers.begin() + i, numbers.begin() + end);
      std::vector<bool> fresh(xs.size(), true);
      caf::error err;
      if (cfg.store.empty()) {
        // Nothing to resume: no keys, which would only cost memory.
        if (auto ids = q->put_all(xs); !ids)
          err = std::move(ids.error());
      } else {
        std::vector<std::string> keys;
        keys.reserve(xs.size());
        for (auto k = i; k < end; ++k)
          keys.push_back(std::to_string(k));
        if (auto receipts = q->put_all(xs, std::move(keys)); !receipts)
          err = std::move(receipts.error());
        else
          for (size_t k = 0; k < xs.size(); ++k)
            fresh[k] = (*receipts)[k].added;
      }
      if (err) {
        std::cerr << prog << ": " << troupe::error_text(err) << std::endl;
        n.stop();
        return 1;
      }
      for (size_t k = 0; k < xs.size(); ++k) {
        if (!fresh[k])
          continue;
        ++added;
        if (!cfg.quiet)
          std::cout << "Put task " << xs[k] << "...\n";
      }
      // With a store, a batch counts as put once its lines are out.
      if (!cfg.store.empty())
        std::cout.flush();
    }
    if (resumed.tasks > 0 && added > 0)
      std::cout << "Put " << added
                << " tasks that the earlier master had not put." << std::endl;
  }
  // Results still to come: of every task stored, those not taken before.
  uint64_t expected = resumed.tasks + added - resumed.consumed;
  if (!cfg.quiet)
    std::cout << "Try get results..." << std::endl;
  uint64_t got = 0;
  uint64_t failed = 0;
  while (got < expected) {
    auto r = q->get(cfg.timeout);
    if (!r) {
      if (r.error() != troupe::errc::closed && !n.stopped_by_signal())
        std::cerr << prog << ": " << troupe::error_text(r.error()) << std::endl;
      break;
    }
    ++got;
    if (r->value) {
      if (!cfg.quiet)
        std::cout << "Result: " << *r->value << '\n';
    } else {
      ++failed;
      std::cout << "Failed: task " << r->id << " after " << r->attempts
                << " attempts: " << troupe::error_text(r->value.error())
                << '\n';
    }
    // With a store, a result counts as handled once its line is out: a
    // master killed before this is handed the result again on restart.
    if (!cfg.store.empty())
      std::cout.flush();
    q->task_done(r->id);
    if (cfg.progress && (got % 256 == 0 || got == expected))
      draw_progress(got, expected);
  }
  std::cout.flush();
  auto secs
    = std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
        .count();
  auto st = q->stats();
  // Closing waits up to 5 s: workers that were away (a restart, a lost
  // connection) retry at least every 2 s, and meanwhile hear that the queue
  // is closed.
  int rc = 0;
  if (got < expected && n.stopped_by_signal()) {
    std::cerr << prog << ": interrupted: " << (expected - got) << " of "
              << expected << " results missing" << std::endl;
    rc = 1; // troupe::run makes it 130 or 143
  } else if (got < expected) {
    std::cerr << prog << ": " << (expected - got) << " of " << expected
              << " results missing after waiting "
              << caf::deep_to_string(cfg.timeout) << " for the next one"
              << std::endl;
    rc = 1;
  } else if (auto err = q->close(5s)) {
    std::cerr << prog << ": closing the queue: " << troupe::error_text(err)
              << std::endl;
  }
  char rate[64];
  std::snprintf(rate, sizeof(rate), "%.0f", secs > 0 ? got / secs : 0.0);
  std::cout << "summary: " << got << " results of " << expected << " tasks ("
            << failed << " failed), " << st.workers_seen << " workers, " << rate
            << " tasks/s, " << st.redelivered << " redelivered, "
            << st.duplicates << " duplicates dropped" << std::endl;
  if (rc == 0)
    std::cout << "master exit." << std::endl;
  n.stop();
  return rc;
}

} // namespace

int main(int argc, char** argv) {
  return troupe::run<config>(argc, argv, run_master);
}
