#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scheduler/test_coordinator.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>
#include <catch2/catch.hpp>

#include "troupe/runtime/config.hpp"

#include "counter.hpp"

namespace troupe::examples {

namespace {

struct deterministic_fixture {
  static troupe::config& init(troupe::config& cfg) {
    cfg.set("scheduler.policy", caf::atom("testing"));
    return cfg;
  }
  troupe::config cfg;
  caf::actor_system sys{init(cfg)};
  caf::scheduler::test_coordinator& sched
    = dynamic_cast<caf::scheduler::test_coordinator&>(sys.scheduler());
};

} // namespace

TEST_CASE_METHOD(deterministic_fixture, "counter adds what it is sent",
                 "[examples][counter]") {
  auto hdl = sys.spawn(counter, int64_t{10});
  auto& impl = dynamic_cast<counter_actor::stateful_base<counter_state>&>(
    *caf::actor_cast<caf::abstract_actor*>(hdl));
  sched.run();
  CHECK(impl.state.total == 10);
  caf::anon_send(hdl, caf::add_atom_v, int64_t{7});
  caf::anon_send(hdl, caf::add_atom_v, int64_t{-2});
  CHECK(impl.state.total == 10); // enqueued, not yet processed
  sched.run();
  CHECK(impl.state.total == 15);
  caf::anon_send_exit(hdl, caf::exit_reason::user_shutdown);
  sched.run();
}

TEST_CASE_METHOD(deterministic_fixture,
                 "counter replies with the total after a sender's additions",
                 "[examples][counter]") {
  auto hdl = sys.spawn(counter, int64_t{0});
  int64_t seen = -1;
  sys.spawn([&](caf::event_based_actor* self) {
    for (int64_t i = 1; i <= 100; ++i)
      self->send(hdl, caf::add_atom_v, i);
    self->request(hdl, std::chrono::seconds(1), caf::get_atom_v)
      .then([&](int64_t total) { seen = total; });
  });
  sched.run();
  CHECK(seen == 5050);
  caf::anon_send_exit(hdl, caf::exit_reason::user_shutdown);
  sched.run();
}

} // namespace troupe::examples
