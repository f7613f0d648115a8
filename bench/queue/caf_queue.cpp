// caf_queue: seed 002's task queue written in plain CAF 0.17, as a CAF user
// would write it without troupe: the reference the queue benchmark compares
// troupe's task_master/task_worker with. One program, two modes.
//
//   caf_queue master --port 0 --tasks 100000
//   caf_queue worker --connect 127.0.0.1:PORT [--window 64]
//   (both: [--policy sharing] for CAF's 'sharing' scheduler; default
//   'stealing', CAF's own default)
//
// The master actor owns the tasks (distinct numbers in random order, as
// task_master draws them) and is published on 127.0.0.1. Each worker
// connects with `remote_actor`, then keeps `window` requests outstanding:
//
//   worker --(task_atom)--> master --n--> worker        (request/response)
//   worker --(result_atom, n, "n * n = n²")--> master   (one-way send)
//
// and asks again for each answer; a reply of -1 means no tasks are left.
// No leases, no redelivery, no store: a lost worker loses its tasks.
//
// Output: the master prints `listening on 127.0.0.1:PORT`, progress
// (`\rGOT/TOTAL`, every 256 results) on stderr, then
// `summary: N results of N tasks (0 failed), K workers, R tasks/s` and
// `master exit.`; the worker prints `Connect to server HOST:PORT...` and
// `worker exit after N tasks.`.

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include <caf/all.hpp>
#include <caf/io/all.hpp>

namespace {

using namespace std::chrono_literals;

using task_atom = caf::atom_constant<caf::atom("task")>;
using result_atom = caf::atom_constant<caf::atom("result")>;

// -- master -------------------------------------------------------------------

// What the master actor leaves for `main` to print once it has exited.
struct master_report {
  uint64_t got = 0;
  uint64_t failed = 0;
  uint32_t workers = 0;
};

struct master_state {
  std::vector<int64_t> tasks;
  size_t next = 0;
  master_report* report = nullptr;
};

caf::behavior master(caf::stateful_actor<master_state>* self,
                     std::vector<int64_t> tasks, master_report* report) {
  self->state.tasks = std::move(tasks);
  self->state.report = report;
  return {
    [=](caf::join_atom) { ++self->state.report->workers; },
    [=](task_atom) -> int64_t {
      auto& st = self->state;
      return st.next < st.tasks.size() ? st.tasks[st.next++] : -1;
    },
    [=](result_atom, int64_t, const std::string& r) {
      auto& rep = *self->state.report;
      ++rep.got;
      if (r.empty())
        ++rep.failed;
      auto total = self->state.tasks.size();
      if (rep.got % 256 == 0 || rep.got == total)
        std::fprintf(stderr, "\r%llu/%llu",
                     static_cast<unsigned long long>(rep.got),
                     static_cast<unsigned long long>(total));
      if (rep.got == total) {
        std::fputc('\n', stderr);
        self->quit();
      }
    },
  };
}

// Returns `n` distinct numbers in random order (task_master's draw).
std::vector<int64_t> task_numbers(uint32_t n) {
  std::vector<int64_t> xs(std::max<uint32_t>(n, 10001));
  std::iota(xs.begin(), xs.end(), 0);
  std::mt19937_64 gen{std::random_device{}()};
  std::shuffle(xs.begin(), xs.end(), gen);
  xs.resize(n);
  return xs;
}

int run_master(caf::actor_system& sys, uint16_t port, uint32_t n) {
  master_report report;
  auto m = sys.spawn(master, task_numbers(n), &report);
  auto actual = sys.middleman().publish(m, port, "127.0.0.1", true);
  if (!actual) {
    std::cerr << "caf_queue: " << sys.render(actual.error()) << std::endl;
    caf::anon_send_exit(m, caf::exit_reason::user_shutdown);
    return 1;
  }
  std::cout << "listening on 127.0.0.1:" << *actual << std::endl;
  auto start = std::chrono::steady_clock::now();
  caf::scoped_actor self{sys};
  self->wait_for(m);
  auto secs
    = std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
        .count();
  char rate[64];
  std::snprintf(rate, sizeof(rate), "%.0f", secs > 0 ? report.got / secs : 0.0);
  std::cout << "summary: " << report.got << " results of " << n << " tasks ("
            << report.failed << " failed), " << report.workers << " workers, "
            << rate << " tasks/s" << std::endl;
  std::cout << "master exit." << std::endl;
  return 0;
}

// -- worker -------------------------------------------------------------------

struct worker_state {
  caf::actor master;
  uint32_t outstanding = 0;
  uint64_t done = 0;
  bool drained = false;
  uint64_t* done_out = nullptr;
};

using worker_actor = caf::stateful_actor<worker_state>;

void finish(worker_actor* self) {
  *self->state.done_out = self->state.done;
  self->quit();
}

// Sends one request for a task; its answer computes the result, sends it and
// asks again, so the number of outstanding requests stays constant.
void ask(worker_actor* self) {
  ++self->state.outstanding;
  self->request(self->state.master, 30s, task_atom::value)
    .then(
      [=](int64_t x) {
        auto& st = self->state;
        --st.outstanding;
        if (x < 0) {
          st.drained = true;
          if (st.outstanding == 0)
            finish(self);
          return;
        }
        auto r = std::to_string(x) + " * " + std::to_string(x) + " = "
                 + std::to_string(x * x);
        self->send(st.master, result_atom::value, x, std::move(r));
        ++st.done;
        ask(self);
      },
      [=](caf::error&) {
        // The master left (it exits after its last result).
        finish(self);
      });
}

caf::behavior worker(worker_actor* self, caf::actor m, uint32_t window,
                     uint64_t* done_out) {
  self->state.master = m;
  self->state.done_out = done_out;
  self->monitor(m);
  self->set_down_handler([=](caf::down_msg&) { finish(self); });
  self->send(m, caf::join_atom_v);
  for (uint32_t i = 0; i < window; ++i)
    ask(self);
  return {
    [](caf::ok_atom) {}, // unused: the work happens in the replies above
  };
}

int run_worker(caf::actor_system& sys, const std::string& host, uint16_t port,
               uint32_t window) {
  std::cout << "Connect to server " << host << ":" << port << "..."
            << std::endl;
  auto m = sys.middleman().remote_actor(host, port);
  if (!m) {
    std::cerr << "caf_queue: " << sys.render(m.error()) << std::endl;
    return 1;
  }
  uint64_t done = 0;
  auto w = sys.spawn(worker, *m, window, &done);
  caf::scoped_actor self{sys};
  self->wait_for(w);
  std::cout << "worker exit after " << done << " tasks." << std::endl;
  return 0;
}

int usage() {
  std::cerr << "usage: caf_queue master [--port P] [--tasks N] [--policy X]\n"
               "       caf_queue worker --connect HOST:PORT [--window W] "
               "[--policy X]\n";
  return 2;
}

} // namespace

int main(int argc, char** argv) {
  if (argc < 2)
    return usage();
  std::string mode = argv[1];
  uint16_t port = 0;
  uint32_t tasks = 100000;
  uint32_t window = 64;
  std::string connect = "127.0.0.1:5000";
  std::string policy;
  for (int i = 2; i + 1 < argc; i += 2) {
    std::string key = argv[i];
    std::string val = argv[i + 1];
    if (key == "--port")
      port = static_cast<uint16_t>(std::stoul(val));
    else if (key == "--tasks")
      tasks = static_cast<uint32_t>(std::stoul(val));
    else if (key == "--window")
      window = static_cast<uint32_t>(std::stoul(val));
    else if (key == "--connect")
      connect = val;
    else if (key == "--policy")
      policy = val;
    else
      return usage();
  }
  if ((argc % 2) != 0 || tasks == 0 || window == 0)
    return usage();
  // CAF's defaults otherwise: 'stealing', max(cores, 4) threads.
  caf::actor_system_config cfg;
  cfg.load<caf::io::middleman>();
  if (!policy.empty())
    cfg.set("scheduler.policy", caf::atom_from_string(policy));
  caf::actor_system sys{cfg};
  if (mode == "master")
    return run_master(sys, port, tasks);
  if (mode == "worker") {
    auto colon = connect.rfind(':');
    if (colon == std::string::npos)
      return usage();
    return run_worker(
      sys, connect.substr(0, colon),
      static_cast<uint16_t>(std::stoul(connect.substr(colon + 1))), window);
  }
  return usage();
}
