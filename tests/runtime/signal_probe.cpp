// A troupe program for signal_test.cpp: spawns one top-level actor that stays
// alive on its own (a pending timer holds a reference to it, as in any server)
// and returns from main's function, so that troupe::run waits for the actor.
// With --stubborn the actor also ignores exit messages, so only
// troupe.shutdown-timeout ends the process. --result N is what main's function
// returns: 0 for a program whose work is complete, anything else if not.

#include <chrono>
#include <iostream>

#include <caf/event_based_actor.hpp>
#include <caf/system_messages.hpp>

#include "troupe/runtime/run.hpp"

namespace {

struct probe_config : troupe::config {
  probe_config() {
    opt_group{custom_options_, "global"}
      .add<bool>("stubborn", "the actor ignores exit messages")
      .add<int>("result", "what main's function returns (default 0)");
  }
};

caf::behavior waiter(caf::event_based_actor* self, bool stubborn) {
  if (stubborn)
    self->set_exit_handler([](caf::exit_msg&) {});
  self->delayed_send(self, std::chrono::hours(1), caf::tick_atom_v);
  return {[](caf::tick_atom) {}};
}

} // namespace

int main(int argc, char** argv) {
  return troupe::run<probe_config>(
    argc, argv, [](troupe::node& n, const probe_config& cfg) {
      n.spawn(waiter, caf::get_or(cfg, "stubborn", false));
      std::cout << "ready" << std::endl;
      return caf::get_or(cfg, "result", 0);
    });
}
