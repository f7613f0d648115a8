// Shows that state owned by one actor needs no lock: many adder actors send
// additions to one counter actor at the same time, and no update is lost.
//
//   main --spawn--> coordinator --spawn--> adder i          (i = 0 .. A-1)
//   adder i --add(2i+1), `rounds` times--> counter
//   adder i --done--> coordinator
//   coordinator --get (after the last done)--> counter --total--> coordinator
//
// From seed 002: processes adding 1 and 3 to a shared `mp.Value('i', 0)`, first
// losing updates and then guarded by `mp.Lock()` (and `threading.Lock()`
// around `balance += n`). Here only the counter touches the value. Each adder
// sends its adds before its done, so by the time the coordinator asks, the
// counter has received every add: the total is always rounds * adders^2.
//
// Expected output (default: --adders 2 --rounds 10):
// adder 0 adds 1 x 10
// adder 1 adds 3 x 10
// total: 40

#include <chrono>
#include <cstdint>
#include <iostream>

#include <caf/actor_ostream.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>

#include "troupe/runtime/run.hpp"

#include "counter.hpp"

namespace {

using troupe::examples::counter_actor;
using done_atom = caf::atom_constant<caf::atom("done")>;

struct config : troupe::config {
  int32_t adders = 2;
  int32_t rounds = 10;
  config() {
    opt_group{custom_options_, "global"}
      .add(adders, "adders", "number of adder actors (default: 2)")
      .add(rounds, "rounds", "additions per adder (default: 10)");
    description("Adder actors share a counter actor, no lock (seed 002).");
  }
};

// Adds `x` to the counter `rounds` times, tells the coordinator, and quits.
void adder(caf::event_based_actor* self, const counter_actor& c, int64_t x,
           int32_t rounds, const caf::actor& coordinator) {
  for (int32_t i = 0; i < rounds; ++i)
    self->send(c, caf::add_atom_v, x);
  self->send(coordinator, done_atom::value);
}

struct coordinator_state {
  int32_t running = 0; // adders that have not reported done yet
};

// Starts the adders, waits for all of them, then prints the counter's total.
caf::behavior coordinator(caf::stateful_actor<coordinator_state>* self,
                          const counter_actor& c, int32_t adders,
                          int32_t rounds) {
  for (int32_t i = 0; i < adders; ++i) {
    if (adders <= 10)
      caf::aout(self) << "adder " << i << " adds " << 2 * i + 1 << " x "
                      << rounds << std::endl;
    self->spawn(adder, c, int64_t{2} * i + 1, rounds,
                caf::actor_cast<caf::actor>(self));
  }
  self->state.running = adders;
  return {
    [=](done_atom) {
      if (--self->state.running > 0)
        return;
      // Every adder is done, so every add is in the counter's mailbox ahead
      // of this request.
      self->request(c, std::chrono::seconds(10), caf::get_atom_v)
        .then(
          [=](int64_t total) {
            caf::aout(self) << "total: " << total << std::endl;
            self->send_exit(c, caf::exit_reason::user_shutdown);
            self->quit();
          },
          [=](caf::error& err) {
            self->send_exit(c, caf::exit_reason::user_shutdown);
            self->quit(std::move(err));
          });
    },
  };
}

} // namespace

int main(int argc, char** argv) {
  return troupe::run<config>(
    argc, argv, [](troupe::node& n, const config& cfg) {
      if (cfg.adders < 1 || cfg.adders > 100000) {
        std::cerr << "counter: invalid value '" << cfg.adders
                  << "' for option '--adders' (expected 1 to 100000)\n";
        return 2;
      }
      if (cfg.rounds < 0) {
        std::cerr << "counter: invalid value '" << cfg.rounds
                  << "' for option '--rounds' (expected at least 0)\n";
        return 2;
      }
      // The counter owns the value; the coordinator runs everything else.
      auto c = n.spawn(troupe::examples::counter, int64_t{0});
      n.spawn(coordinator, c, cfg.adders, cfg.rounds);
      return 0; // run() waits until the coordinator stopped the counter
    });
}
