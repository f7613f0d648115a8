// Shows concurrency without extra threads: two actors share ONE scheduler
// thread and wait by sending themselves a delayed message instead of sleeping,
// so their waits overlap and the program takes one second, not two.
//
//   hello 1 --tick, 1 s later--> hello 1
//   hello 2 --tick, 1 s later--> hello 2      (both on the same thread)
//
// From seed 003 (also in 002): asyncio's `hello()` run twice by one event
// loop, printing the current thread before and after
// `yield from asyncio.sleep(1)`. The scheduler thread plays the event loop;
// `--scheduler.max-threads N` gives it more threads.
//
// Expected output (the thread id varies, but all four lines show the same):
// Hello world! (thread 4242)
// Hello world! (thread 4242)
// Hello again! (thread 4242)
// Hello again! (thread 4242)

#include <chrono>
#include <cstddef>

#include <caf/actor_ostream.hpp>
#include <caf/event_based_actor.hpp>
#include <sys/syscall.h>
#include <unistd.h>

#include "troupe/runtime/run.hpp"

namespace {

struct config : troupe::config {
  config() {
    // One scheduler thread, like asyncio's one event loop; the command line
    // can still override it.
    set("scheduler.max-threads", size_t{1});
    description("Two actors take turns on one thread (seed 003).");
  }
};

// Returns the OS id of the calling thread.
long thread_id() {
  return syscall(SYS_gettid);
}

// Greets, waits one second without blocking its thread, greets again, quits.
caf::behavior hello(caf::event_based_actor* self) {
  caf::aout(self) << "Hello world! (thread " << thread_id() << ")" << std::endl;
  // The seed's asyncio.sleep(1): a message to itself, delivered in 1 s;
  // meanwhile the thread is free to run the other actor.
  self->delayed_send(self, std::chrono::seconds(1), caf::tick_atom_v);
  return {
    [=](caf::tick_atom) {
      caf::aout(self) << "Hello again! (thread " << thread_id() << ")"
                      << std::endl;
      self->quit();
    },
  };
}

} // namespace

int main(int argc, char** argv) {
  return troupe::run<config>(argc, argv, [](troupe::node& n, const config&) {
    // Two tasks, as in the seed's `tasks = [hello(), hello()]`.
    n.spawn(hello);
    n.spawn(hello);
    return 0; // run() waits for both, about one second
  });
}
