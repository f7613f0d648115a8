// Uses the installed troupe: a node, a typed actor and the option parser.

#include <iostream>

#include <caf/scoped_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "troupe/runtime/run.hpp"

struct app_config : troupe::config {
  int32_t adders = 2;
  app_config() {
    opt_group{custom_options_, "global"}.add(adders, "adders", "how many adds");
  }
};

using counter_actor
  = caf::typed_actor<caf::reacts_to<caf::add_atom, int64_t>,
                     caf::replies_to<caf::get_atom>::with<int64_t>>;

counter_actor::behavior_type counter(counter_actor::pointer, int64_t* total) {
  return {
    [=](caf::add_atom, int64_t x) { *total += x; },
    [=](caf::get_atom) { return *total; },
  };
}

int main(int argc, char** argv) {
  return troupe::run<app_config>(
    argc, argv, [](troupe::node& n, const app_config& cfg) {
      static int64_t total = 0;
      auto c = n.spawn(counter, &total);
      caf::scoped_actor self{n.system()};
      for (int32_t i = 0; i < cfg.adders; ++i)
        self->send(c, caf::add_atom_v, int64_t{3});
      int rc = 1;
      self->request(c, std::chrono::seconds(10), caf::get_atom_v)
        .receive(
          [&](int64_t x) {
            std::cout << "consumer total: " << x << std::endl;
            rc = 0;
          },
          [&](caf::error& err) {
            std::cerr << n.system().render(err) << std::endl;
          });
      n.stop();
      return rc;
    });
}
