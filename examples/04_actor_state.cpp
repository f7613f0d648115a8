// Shows per-actor state: each actor keeps its own student name, which no other
// actor can see, as `threading.local()` gives each thread its own attribute.
//
//   main --greet--> actor-A --(prints, then replies)--> main
//   main --greet--> actor-B --(prints, then replies)--> main
//
// From seed 002: `local_school = threading.local()`, where Thread-A binds
// `local_school.student = 'Alice'` and Thread-B binds 'Bob', and each prints
// 'Hello, <student> (in <thread name>)'. Main asks actor-A first and waits
// for its reply before asking actor-B, so the order of the lines is fixed.
//
// Expected output:
// Hello, Alice (in actor-A)
// Hello, Bob (in actor-B)

#include <chrono>
#include <iostream>
#include <string>

#include <caf/actor_ostream.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/stateful_actor.hpp>

#include "troupe/runtime/run.hpp"

namespace {

using greet_atom = caf::atom_constant<caf::atom("greet")>;

struct config : troupe::config {
  config() {
    description("Two actors, each with its own state (seed 002).");
  }
};

// The per-actor state: like a thread-local, it belongs to one actor only.
struct greeter_state {
  std::string name;    // CAF reports it as self->name(), like a thread's name
  std::string student; // the seed's local_school.student
};

// Binds `student` in its own state; on greet, prints it and quits.
caf::behavior greeter(caf::stateful_actor<greeter_state>* self,
                      std::string name, std::string student) {
  self->state.name = std::move(name);
  self->state.student = std::move(student);
  return {
    [=](greet_atom) {
      caf::aout(self) << "Hello, " << self->state.student << " (in "
                      << self->name() << ")" << std::endl;
      self->quit(); // the reply (empty) still goes out
    },
  };
}

} // namespace

int main(int argc, char** argv) {
  return troupe::run<config>(argc, argv, [](troupe::node& n, const config&) {
    auto a = n.spawn(greeter, std::string{"actor-A"}, std::string{"Alice"});
    auto b = n.spawn(greeter, std::string{"actor-B"}, std::string{"Bob"});
    // Greet A, wait for its reply, then greet B.
    caf::scoped_actor self{n.system()};
    for (auto& g : {a, b}) {
      bool ok = true;
      self->request(g, std::chrono::seconds(10), greet_atom::value)
        .receive([] {},
                 [&](caf::error& err) {
                   std::cerr << "actor_state: " << n.system().render(err)
                             << '\n';
                   ok = false;
                 });
      if (!ok)
        return 1;
    }
    return 0;
  });
}
