// A library worker for programs_test.cpp, written as a user would: no
// listener, the end from `await_worker`. It joins a task_master's queue
// (`int64_t -> std::string`) as a worker of `int64_t -> std::string` tasks,
// or of `int64_t -> int64_t` with --int-results (which the master refuses);
// with --throw every task throws `no luck with N`. Exits 0 when the queue is
// closed, 1 with the worker's error otherwise.

#include <cstdint>
#include <iostream>
#include <stdexcept>
#include <string>

#include <caf/config_option_adder.hpp>

#include "troupe/queue/task_queue.hpp"
#include "troupe/runtime/net.hpp"
#include "troupe/runtime/run.hpp"

namespace {

struct config : troupe::net_config {
  std::string connect;
  bool int_results = false;
  bool throws = false;

  // Parsed from `connect` by `prepare`.
  std::string host;
  uint16_t port = 0;

  config() : net_config(role::connect) {
    caf::config_option_adder{custom_options_, "global"}
      .add(connect, "connect", "the master's HOST:PORT")
      .add(int_results, "int-results", "answer int64_t, not std::string")
      .add(throws, "throw", "every task throws");
  }

  caf::error prepare() {
    if (auto err = troupe::parse_host_port(connect, host, port))
      return err;
    return secure(host);
  }
};

template <class Result, class F>
int work(troupe::node& n, const config& cfg, F fn) {
  troupe::queue::worker_options opts;
  opts.host = cfg.host;
  opts.port = cfg.port;
  auto w = troupe::queue::spawn_worker<int64_t, Result>(n, cfg, opts, fn);
  if (auto err = troupe::queue::await_worker(n, w)) {
    std::cout << "worker error: " << troupe::error_text(err) << std::endl;
    return 1;
  }
  std::cout << "queue closed" << std::endl;
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  return troupe::run<config>(
    argc, argv, [](troupe::node& n, const config& cfg) {
      bool throws = cfg.throws;
      if (cfg.int_results)
        return work<int64_t>(n, cfg, [](int64_t x) { return x; });
      return work<std::string>(n, cfg, [throws](int64_t x) {
        if (throws)
          throw std::runtime_error("no luck with " + std::to_string(x));
        return std::to_string(x);
      });
    });
}
