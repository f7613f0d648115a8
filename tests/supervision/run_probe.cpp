// A troupe program for run_returns_test.cpp. --make names what main's
// function creates before it returns, so that troupe::run has to decide
// whether to wait:
//
//   supervisor     a supervisor with an idle child, asked once for it
//   ticker         a supervisor whose child has a timer of its own
//   pool           a pool that ran one job
//   queue          a task queue holding a task
//   served-queue   a task queue published to workers on a loopback port
//   bus            a message bus with a subscription that answered a request
//   local-worker   a task queue with a local worker that ran its tasks
//   worker         a plain actor that works for --work, then quits
//   crash          a supervised child that throws, reached through its
//                  stable handle before and after its restart, and a pool
//                  job that throws; prints what the requests got
//
// It prints "ready" when main's function returns.

#include <chrono>
#include <cstdint>
#include <iostream>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <caf/event_based_actor.hpp>

#include "troupe/bus/bus.hpp"
#include "troupe/queue/task_queue.hpp"
#include "troupe/runtime/blocking_request.hpp"
#include "troupe/runtime/net.hpp"
#include "troupe/runtime/run.hpp"
#include "troupe/supervision/pool.hpp"
#include "troupe/supervision/supervisor.hpp"

namespace {

using namespace std::chrono_literals;
namespace sv = troupe::supervision;
using crash_atom = caf::atom_constant<caf::atom("crash")>;

struct probe_config : troupe::net_config {
  std::string make;
  caf::timespan work = std::chrono::milliseconds(0);
  probe_config() : troupe::net_config(role::listen) {
    opt_group{custom_options_, "global"}
      .add(make, "make", "what to create (see run_probe.cpp)")
      .add(work, "work", "how long the worker works (--make worker)");
  }
  caf::error prepare() {
    return secure(bind);
  }
};

// Adds what it is sent; throws on crash.
caf::behavior counter() {
  auto n = std::make_shared<int32_t>(0);
  return {
    [n](caf::add_atom, int32_t x) { return *n += x; },
    [](crash_atom) -> int32_t {
      throw std::runtime_error("boom: the counter broke");
    },
  };
}

// A server with a timer of its own (a heartbeat): never idle.
caf::behavior ticker(caf::event_based_actor* self) {
  self->delayed_send(self, 50ms, caf::tick_atom_v);
  return {[self](caf::tick_atom) {
    self->delayed_send(self, 50ms, caf::tick_atom_v);
  }};
}

// Works for `d`, then quits: a plain actor the program waits for.
caf::behavior worker(caf::event_based_actor* self, caf::timespan d) {
  self->delayed_send(self, d, caf::tick_atom_v);
  return {[self](caf::tick_atom) {
    std::cout << "worker done" << std::endl;
    self->quit();
  }};
}

caf::actor start_counter(troupe::node& n) {
  return n.spawn(
    sv::supervisor, sv::supervisor_flags{},
    std::vector<sv::child_spec>{sv::actor_child("counter", counter)});
}

int crash(troupe::node& n) {
  auto sup = start_counter(n);
  auto h = sv::child_handle(n.system(), sup, "counter");
  if (!h)
    return 1;
  auto& sys = n.system();
  auto add = [&](int32_t x) {
    return troupe::blocking_request<int32_t>(sys, *h, 5s, caf::add_atom_v, x);
  };
  auto before = add(1);
  std::cout << "before: " << (before ? std::to_string(*before) : "-") << '\n';
  auto broke
    = troupe::blocking_request<int32_t>(sys, *h, 5s, crash_atom::value);
  std::cout << "crash: "
            << (broke ? "no error" : troupe::error_text(broke.error())) << '\n';
  // The same handle, now reaching the restarted counter (which starts at 0).
  auto after = add(2);
  std::cout << "after restart: "
            << (after ? std::to_string(*after)
                      : troupe::error_text(after.error()))
            << '\n';
  sv::pool p{n, sv::pool_options{1, false}};
  auto job
    = p.apply_async([]() -> int { throw std::runtime_error("bad job"); });
  auto res = job ? job->get(5s) : caf::expected<int>{job.error()};
  std::cout << "pool: " << (res ? "no error" : troupe::error_text(res.error()))
            << '\n';
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  return troupe::run<probe_config>(
    argc, argv, [](troupe::node& n, const probe_config& cfg) {
      if (cfg.make == "supervisor") {
        auto sup = start_counter(n);
        auto c = troupe::blocking_request<caf::actor>(
          n.system(), sup, 5s, caf::get_atom_v, std::string{"counter"});
        if (!c)
          return 1;
        auto got = troupe::blocking_request<int32_t>(
          n.system(), *c, 5s, caf::add_atom_v, int32_t{1});
        if (!got || *got != 1)
          return 1;
      } else if (cfg.make == "ticker") {
        n.spawn(sv::supervisor, sv::supervisor_flags{},
                std::vector<sv::child_spec>{sv::actor_child("ticker", ticker)});
      } else if (cfg.make == "pool") {
        sv::pool p{n, sv::pool_options{2, false}};
        auto r = p.apply_async([] { return 6 * 7; });
        if (!r || r->get(5s) != 42)
          return 1;
      } else if (cfg.make == "queue" || cfg.make == "served-queue") {
        auto q = troupe::queue::task_queue<int64_t, std::string>::create(
          n, troupe::queue::queue_options{});
        if (!q || !q->put(7))
          return 1;
        if (cfg.make == "served-queue") {
          auto port = troupe::queue::serve_queues(n, cfg, 0, {q->actor()});
          if (!port)
            return 1;
          std::cout << "serving on port " << *port << std::endl;
        }
      } else if (cfg.make == "local-worker") {
        auto q = troupe::queue::task_queue<int64_t, int64_t>::create(
          n, troupe::queue::queue_options{});
        if (!q)
          return 1;
        troupe::queue::spawn_local_worker(
          n, *q, [](const int64_t& x) { return x * x; });
        if (!q->put(7))
          return 1;
        auto r = q->get(5s);
        if (!r || !r->value || *r->value != 49)
          return 1;
      } else if (cfg.make == "bus") {
        troupe::bus::bus b{n};
        auto echo
          = b.subscribe("probe.echo", [&b](const troupe::bus::bus_message& m) {
              static_cast<void>(b.reply(m, m.payload));
            });
        if (!echo)
          return 1;
        auto answer = b.request("probe.echo", "hi", 5s);
        if (!answer || answer->payload != "hi")
          return 1;
      } else if (cfg.make == "worker") {
        n.spawn(worker, cfg.work);
      } else if (cfg.make == "crash") {
        if (crash(n) != 0)
          return 1;
      } else {
        std::cerr << "run_probe: unknown --make '" << cfg.make << "'\n";
        return 2;
      }
      std::cout << "ready" << std::endl;
      return 0;
    });
}
