// Shows request/reply between two actors: the producer sends an item as a
// request and goes on only when the consumer's answer has arrived.
//
//   producer --n--> consumer --"200 OK"--> producer    (n = 1 .. items)
//   producer --close--> consumer                       (the seed's c.close())
//
// From seed 003: the generator pair `consumer()` / `produce(c)`, where
// `c.send(n)` switches to the consumer and returns its '200 OK'. Here a
// request plays `c.send(n)` and the consumer's reply plays `yield r`; no lock
// and no shared variable, as in the seed.
//
// Expected output (default: --items 5):
// [PRODUCER] Producing 1...
// [CONSUMER] Consuming 1...
// [PRODUCER] Consumer return: 200 OK
// [PRODUCER] Producing 2...
// [CONSUMER] Consuming 2...
// [PRODUCER] Consumer return: 200 OK
// [PRODUCER] Producing 3...
// [CONSUMER] Consuming 3...
// [PRODUCER] Consumer return: 200 OK
// [PRODUCER] Producing 4...
// [CONSUMER] Consuming 4...
// [PRODUCER] Consumer return: 200 OK
// [PRODUCER] Producing 5...
// [CONSUMER] Consuming 5...
// [PRODUCER] Consumer return: 200 OK

#include <chrono>
#include <cstdint>
#include <iostream>
#include <string>

#include <caf/actor_ostream.hpp>
#include <caf/event_based_actor.hpp>

#include "troupe/runtime/run.hpp"

namespace {

struct config : troupe::config {
  int32_t items = 5;
  config() {
    opt_group{custom_options_, "global"}.add(
      items, "items", "number of items to produce (default: 5)");
    description("A producer and a consumer actor: request/reply (seed 003).");
  }
};

// Consumes one item per request and answers "200 OK"; quits on close.
caf::behavior consumer(caf::event_based_actor* self) {
  return {
    [=](int32_t n) {
      caf::aout(self) << "[CONSUMER] Consuming " << n << "..." << std::endl;
      return std::string{"200 OK"};
    },
    [=](caf::close_atom) { self->quit(); },
  };
}

// Produces item `n`; once the consumer answered, produces `n + 1`.
void produce(caf::event_based_actor* self, const caf::actor& c, int32_t n,
             int32_t items) {
  if (n > items) {
    // Nothing left to produce: close the consumer, then stop producing.
    self->send(c, caf::close_atom_v);
    self->quit();
    return;
  }
  caf::aout(self) << "[PRODUCER] Producing " << n << "..." << std::endl;
  // Ask the consumer; `then` runs the first lambda with its answer.
  self->request(c, std::chrono::seconds(10), n)
    .then(
      [=](const std::string& r) {
        caf::aout(self) << "[PRODUCER] Consumer return: " << r << std::endl;
        produce(self, c, n + 1, items);
      },
      [=](caf::error& err) {
        // No answer: close the consumer anyway and stop with the error.
        self->send(c, caf::close_atom_v);
        self->quit(std::move(err));
      });
}

void producer(caf::event_based_actor* self, const caf::actor& c,
              int32_t items) {
  produce(self, c, 1, items);
}

} // namespace

int main(int argc, char** argv) {
  return troupe::run<config>(
    argc, argv, [](troupe::node& n, const config& cfg) {
      if (cfg.items < 1) {
        std::cerr << "producer_consumer: invalid value '" << cfg.items
                  << "' for option '--items' (expected at least 1)\n";
        return 2;
      }
      // Start the consumer first: the producer needs its handle.
      auto c = n.spawn(consumer);
      n.spawn(producer, c, cfg.items);
      return 0; // run() now waits until both actors have quit
    });
}
