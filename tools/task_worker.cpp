// task_worker: a worker of seed 002's distributed task queue. Connects to a
// task_master, takes tasks n from its queue and answers "n * n = n²". If the
// master goes away it reconnects with backoff; when the master closes the
// queue it prints `worker exit.` and exits 0. It exits 1 if the master
// refuses it --max-refusals times in a row, or stays out of reach for
// --give-up-after.
//
//   task_worker --connect 127.0.0.1:5000
//   task_worker --connect 10.0.0.1:5000 --authkey-file cluster.key
//
// Output (seed 002's lines):
//   Connect to server 127.0.0.1:5000...
//   run task 3411 * 3411...     (one per task)
//   worker exit.

#include <chrono>
#include <cstdint>
#include <iostream>
#include <string>
#include <thread>

#include <caf/config_option_adder.hpp>
#include <spdlog/spdlog.h>

#include "troupe/queue/task_queue.hpp"
#include "troupe/runtime/net.hpp"
#include "troupe/runtime/run.hpp"

namespace {

using namespace std::chrono_literals;
using troupe::queue::worker_event;

struct config : troupe::net_config {
  std::string connect = "127.0.0.1:5000";
  std::string queue = "tasks";
  uint32_t prefetch = 1024;
  bool fixed_window = false;
  caf::timespan work = caf::timespan{0};
  caf::timespan connect_timeout = 2s;
  uint32_t max_refusals = 3;
  caf::timespan give_up_after = 5min;
  bool quiet = false;

  // Parsed from `connect` by `prepare`.
  std::string host;
  uint16_t port = 0;

  config() : net_config(role::connect) {
    description(
      "takes tasks from a task_master's queue and answers them (seed 002's "
      "task_worker)\n\n"
      "Exits 0 when the master closes the queue (also after a master "
      "restart).\n"
      "Exits 1 when the master refuses it --max-refusals times in a row for "
      "the same\nreason (another cluster key or cookie, a certificate, task "
      "types, queue name),\nor when no master was reached for "
      "--give-up-after. Connection refused, timeouts,\nresets and 'busy' "
      "are retried with backoff (100 ms doubling to 2 s); each new\nreason "
      "is logged once.");
    caf::config_option_adder{custom_options_, "global"}
      .add(connect, "connect",
           "the master's HOST:PORT (default 127.0.0.1:5000)")
      .add(queue, "queue", "name of the queue (default 'tasks')")
      .add(prefetch, "prefetch",
           "most tasks out at this worker at once (default 1024)")
      .add(fixed_window, "fixed-window",
           "always ask for --prefetch tasks; default: fit the window to the "
           "tasks' duration (about 50 ms of work)")
      .add(work, "work", "time each task takes, e.g. 1s as in seed 002")
      .add(connect_timeout, "connect-timeout",
           "bound of one connection attempt (default 2s)")
      .add(max_refusals, "max-refusals",
           "exit 1 after the master refused this worker this many times in "
           "a row for the same reason (default 3)")
      .add(give_up_after, "give-up-after",
           "exit 1 when no master was reached for this long, since the start "
           "or the last loss (default 5min; 0s: never)")
      .add(quiet, "quiet", "print no line per task");
  }

  caf::error prepare() {
    if (auto err = troupe::parse_host_port(connect, host, port))
      return err;
    if (prefetch == 0)
      return caf::make_error(troupe::errc::invalid_option_value,
                             "--prefetch must be at least 1");
    if (max_refusals == 0)
      return caf::make_error(troupe::errc::invalid_option_value,
                             "--max-refusals must be at least 1");
    if (give_up_after < caf::timespan{0})
      return caf::make_error(troupe::errc::invalid_option_value,
                             "--give-up-after must not be negative");
    return secure(host);
  }
};

int run_worker(troupe::node& n, const config& cfg) {
  auto prog = cfg.program_name();
  troupe::queue::worker_options opts;
  opts.host = cfg.host;
  opts.port = cfg.port;
  opts.queue = cfg.queue;
  opts.prefetch = cfg.prefetch;
  opts.adaptive = !cfg.fixed_window;
  opts.reconnect.connect_timeout = cfg.connect_timeout;
  opts.max_refusals = cfg.max_refusals;
  opts.give_up_after = cfg.give_up_after;
  bool quiet = cfg.quiet;
  auto work = cfg.work;
  // The listener and the task function run on the worker's thread. The
  // worker logs losses, refusals and why it gives up itself.
  bool announced = false;
  auto listener = [&](worker_event ev, const std::string& text) {
    if (ev == worker_event::connecting && !announced) {
      std::cout << "Connect to server " << text << "..." << std::endl;
      announced = true;
    }
  };
  auto task = [quiet, work](const int64_t& x) {
    if (!quiet)
      std::cout << "run task " << x << " * " << x << "...\n";
    if (work > caf::timespan{0})
      std::this_thread::sleep_for(work);
    return std::to_string(x) + " * " + std::to_string(x) + " = "
           + std::to_string(x * x);
  };
  if (cfg.insecure_plain())
    n.log().warn("--insecure: talking to {} over unencrypted TCP", cfg.connect);
  auto worker = troupe::queue::spawn_worker<int64_t, std::string>(
    n, cfg, opts, task, listener);
  auto err = troupe::queue::await_worker(n, worker);
  std::cout.flush();
  if (err) {
    // A refusal or --give-up-after: the worker logged why at error level.
    // Stopped by a signal: troupe::run makes it 130/143.
    if (n.stopped_by_signal())
      return 1;
    // The worker ends with a troupe error only when it gives up, which it
    // logged; anything else (an exit reason of CAF's) is said here.
    auto own = err.category() == caf::atom("troupe")
               || err.category() == caf::atom("troupe_q");
    if (!own)
      std::cerr << prog << ": the worker ended before its queue closed: "
                << n.system().render(err) << std::endl;
    return 1;
  }
  std::cout << "worker exit." << std::endl;
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  return troupe::run<config>(argc, argv, run_worker);
}
