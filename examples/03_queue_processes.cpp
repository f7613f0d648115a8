// Shows a queue actor between a writer and a reader: a `get` on an empty queue
// is answered later, through a response promise, when an item arrives.
//
//   writer --put A, put B, put C, close--> queue
//   reader --get--> queue --A | B | C | error(closed)--> reader   (repeated)
//   main: waits until writer and reader have quit, then stops the queue
//
// From seed 002: `Process(target=write)` and `Process(target=read)` sharing a
// `multiprocessing.Queue`. The seed's reader loops forever and the parent
// ends it with `pr.terminate()`; here the writer closes the queue and the
// reader stops on its own once the queue reports that it is closed.
//
// Expected output (actor ids vary; writer and reader lines may interleave,
// but each `Get X` comes after `Put X`):
// Process to write: 5
// Put A to queue...
// Put B to queue...
// Put C to queue...
// Process to read: 6
// Get A from queue.
// Get B from queue.
// Get C from queue.
// Queue closed, reader exits.

#include <deque>
#include <string>

#include <caf/actor_ostream.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/stateful_actor.hpp>

#include "troupe/runtime/errc.hpp"
#include "troupe/runtime/run.hpp"

namespace {

struct config : troupe::config {
  config() {
    description("A writer and a reader actor share a queue actor (seed 002).");
  }
};

struct queue_state {
  std::deque<std::string> items;
  std::deque<caf::typed_response_promise<std::string>> waiting; // empty gets
  bool closed = false;
};

// put appends; get replies with the next item, now or when one arrives; after
// close, get fails with `errc::closed` once the items are gone.
caf::behavior queue(caf::stateful_actor<queue_state>* self) {
  return {
    [=](caf::put_atom, std::string& x) {
      auto& st = self->state;
      if (st.closed)
        return; // nobody may put after close; drop it
      if (st.waiting.empty()) {
        st.items.push_back(std::move(x));
      } else { // a reader is already waiting: hand the item over directly
        st.waiting.front().deliver(std::move(x));
        st.waiting.pop_front();
      }
    },
    [=](caf::get_atom) -> caf::result<std::string> {
      auto& st = self->state;
      if (!st.items.empty()) {
        auto x = std::move(st.items.front());
        st.items.pop_front();
        return x;
      }
      if (st.closed)
        return troupe::errc::closed;
      // Nothing yet: promise an answer and keep the reader waiting.
      return st.waiting.emplace_back(
        self->make_response_promise<std::string>());
    },
    [=](caf::close_atom) {
      self->state.closed = true;
      for (auto& rp : self->state.waiting) // only when no items are left
        rp.deliver(caf::make_error(troupe::errc::closed));
      self->state.waiting.clear();
    },
  };
}

// Prints its id, puts A, B and C, then closes the queue and quits.
void writer(caf::event_based_actor* self, const caf::actor& q) {
  caf::aout(self) << "Process to write: " << self->id() << std::endl;
  for (const char* x : {"A", "B", "C"}) {
    caf::aout(self) << "Put " << x << " to queue..." << std::endl;
    self->send(q, caf::put_atom_v, std::string{x});
  }
  // Sent after the puts, so the queue still hands out all three items.
  self->send(q, caf::close_atom_v);
}

// Gets one item and prints it, then the next, until the queue is closed.
void read_next(caf::event_based_actor* self, const caf::actor& q) {
  // Like the seed's q.get(True): wait as long as it takes, no timeout.
  self->request(q, caf::infinite, caf::get_atom_v)
    .then(
      [=](const std::string& x) {
        caf::aout(self) << "Get " << x << " from queue." << std::endl;
        read_next(self, q);
      },
      [=](caf::error& err) {
        if (err == troupe::errc::closed)
          caf::aout(self) << "Queue closed, reader exits." << std::endl;
        self->quit(err == troupe::errc::closed ? caf::error{} : err);
      });
}

// Prints its id, then reads until the queue is closed.
void reader(caf::event_based_actor* self, const caf::actor& q) {
  caf::aout(self) << "Process to read: " << self->id() << std::endl;
  read_next(self, q);
}

} // namespace

int main(int argc, char** argv) {
  return troupe::run<config>(argc, argv, [](troupe::node& n, const config&) {
    // The parent creates the queue and hands it to both sides.
    auto q = n.spawn(queue);
    auto w = n.spawn(writer, q);
    auto r = n.spawn(reader, q);
    // Wait for both to quit (the seed's pw.join()), then stop the queue.
    caf::scoped_actor self{n.system()};
    self->monitor(w);
    self->monitor(r);
    for (int i = 0; i < 2; ++i)
      self->receive([](const caf::down_msg&) {});
    self->send_exit(q, caf::exit_reason::user_shutdown);
    return 0;
  });
}
