// Uses the installed troupe: a node, the counter actor and the option parser.

#include <iostream>

#include <caf/scoped_actor.hpp>

#include "troupe/actors/counter.hpp"
#include "troupe/runtime/run.hpp"

struct app_config : troupe::config {
  int32_t adders = 2;
  app_config() {
    opt_group{custom_options_, "global"}.add(adders, "adders", "how many adds");
  }
};

int main(int argc, char** argv) {
  return troupe::run<app_config>(
    argc, argv, [](troupe::node& n, const app_config& cfg) {
      auto c = n.spawn(troupe::actors::counter, int64_t{0});
      caf::scoped_actor self{n.system()};
      for (int32_t i = 0; i < cfg.adders; ++i)
        self->send(c, caf::add_atom_v, int64_t{3});
      int rc = 1;
      self->request(c, std::chrono::seconds(10), caf::get_atom_v)
        .receive(
          [&](int64_t total) {
            std::cout << "consumer total: " << total << std::endl;
            rc = 0;
          },
          [&](caf::error& err) {
            std::cerr << n.system().render(err) << std::endl;
          });
      n.stop();
      return rc;
    });
}
